//! `applog consumers`: the named consumers of a log (list, reset, delete), and the parser of
//! consumer names shared with `tail --name`.

use std::path::PathBuf;

use applog::{ConsumerInfo, ConsumerState};

use serde::Serialize;

use crate::problems::json_path;
use crate::times::rfc3339_secs as rfc3339;
use crate::{Failure, Out, ReportFormat};

/// List a log's named consumers: where each resumes, how far behind the end of the log it is,
/// when it last committed, and whether a process reads with it now (active), nobody does
/// (idle), or retention stopped waiting for it (parked). With --reset or --delete, change one.
///
/// Listing takes no lock and disturbs nobody, so it can run beside the writer and the
/// consumers. Exit 1 when the consumer to reset or delete does not exist or is in use, or
/// when the seq to reset to lies outside the log.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// Set consumer NAME's position to the seq given with --to (it resumes there) and
    /// un-park it. It must not be in use.
    #[arg(
        long,
        value_name = "NAME",
        value_parser = parse_name,
        requires = "to",
        conflicts_with = "delete"
    )]
    reset: Option<String>,
    /// The seq --reset sets: from the log's first seq to its next seq (its end).
    #[arg(long, value_name = "SEQ", requires = "reset")]
    to: Option<u64>,
    /// Delete consumer NAME: retention no longer waits for it. It must not be in use.
    #[arg(long, value_name = "NAME", value_parser = parse_name)]
    delete: Option<String>,
    /// How to print the list (or what was done).
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

/// Clap's parser for a consumer name: the library's rule, so that a bad name is a usage error.
pub fn parse_name(s: &str) -> Result<String, String> {
    applog::validate_consumer_name(s)
        .map(|()| s.to_owned())
        .map_err(|e| e.to_string())
}

pub fn run(args: Args) -> Result<(), Failure> {
    // Resetting and deleting take the registry lock, which makes the `consumers` directory:
    // make sure first that this is a log.
    if args.reset.is_some() || args.delete.is_some() {
        drop(applog::Reader::open(&args.log)?);
    }
    let mut out = Out::new();
    let json = args.format == ReportFormat::Json;
    if let Some(name) = &args.reset {
        let seq = args.to.unwrap_or_default(); // clap requires --to with --reset
        applog::reset_consumer(&args.log, name, seq)?;
        if json {
            out.json(&Action {
                name,
                action: "reset",
                next_seq: Some(seq),
            })?;
        } else {
            writeln!(out, "reset consumer {name}: it resumes at seq {seq}")?;
        }
    } else if let Some(name) = &args.delete {
        applog::delete_consumer(&args.log, name)?;
        if json {
            out.json(&Action {
                name,
                action: "delete",
                next_seq: None,
            })?;
        } else {
            writeln!(out, "deleted consumer {name}")?;
        }
    } else {
        let list = applog::consumers(&args.log)?;
        if json {
            out.json(&list.iter().map(info_json).collect::<Vec<_>>())?;
        } else {
            print_table(&mut out, &list)?;
        }
    }
    out.finish()
}

/// The pid of an active consumer's holder, when known.
fn holder(state: &ConsumerState) -> Option<u32> {
    match state {
        ConsumerState::Active { pid } => *pid,
        _ => None,
    }
}

fn state_text(state: &ConsumerState) -> String {
    match state {
        ConsumerState::Active { pid: Some(pid) } => format!("active (pid {pid})"),
        ConsumerState::Parked { seq, lag_bytes, at } => format!(
            "parked at seq {seq}, {lag_bytes} bytes behind, since {}",
            rfc3339(*at)
        ),
        other => other.as_str().to_owned(),
    }
}

/// A header and one aligned row per consumer (only the header when there is none).
fn print_table(out: &mut Out, list: &[ConsumerInfo]) -> Result<(), Failure> {
    let w = list.iter().map(|c| c.name.len()).max().unwrap_or(0).max(8);
    writeln!(
        out,
        "{:<w$}  {:>12} {:>12} {:>14}  {:<20}  state",
        "name", "next seq", "lag", "lag bytes", "last commit"
    )?;
    for c in list {
        writeln!(
            out,
            "{:<w$}  {:>12} {:>12} {:>14}  {:<20}  {}",
            c.name,
            c.next_seq,
            c.lag,
            c.lag_bytes,
            rfc3339(c.last_commit),
            state_text(&c.state)
        )?;
    }
    Ok(())
}

/// `consumers --reset/--delete --format json`.
#[derive(Serialize)]
struct Action<'a> {
    name: &'a str,
    action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_seq: Option<u64>,
}

/// A consumer in `consumers --format json`.
#[derive(Serialize)]
struct InfoJson<'a> {
    name: &'a str,
    path: String,
    next_seq: u64,
    lag: u64,
    lag_bytes: u64,
    last_commit: String,
    state: &'static str,
    pid: Option<u32>,
    parked: Option<ParkedJson>,
}

#[derive(Serialize)]
struct ParkedJson {
    seq: u64,
    lag_bytes: u64,
    at: String,
}

fn info_json(c: &ConsumerInfo) -> InfoJson<'_> {
    InfoJson {
        name: &c.name,
        path: json_path(&c.path),
        next_seq: c.next_seq,
        lag: c.lag,
        lag_bytes: c.lag_bytes,
        last_commit: rfc3339(c.last_commit),
        state: c.state.as_str(),
        pid: holder(&c.state),
        parked: match &c.state {
            ConsumerState::Parked { seq, lag_bytes, at } => Some(ParkedJson {
                seq: *seq,
                lag_bytes: *lag_bytes,
                at: rfc3339(*at),
            }),
            _ => None,
        },
    }
}
