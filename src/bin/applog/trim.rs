//! `applog trim`: retention from the command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Failure, Out, ReportFormat};

/// Remove the oldest segments of a log, never what a consumer still needs.
///
/// Removes whole segments whose records all lie below --before SEQ (or below what
/// --max-bytes and --max-age keep) and below the position of every consumer that is not
/// parked. Without --before or a limit, it trims up to the slowest consumer, and removes
/// nothing when the log has no consumer. The newest segment is always kept. It runs beside a
/// live writer and its consumers. It says what it removed, which consumer held it back, and
/// which consumers it parked.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// Remove only segments whose records all lie below SEQ.
    #[arg(long, value_name = "SEQ")]
    before: Option<u64>,
    /// Keep at most N bytes of segment files (suffixes K, M, G, T: powers of 1024).
    #[arg(long, value_name = "N", value_parser = parse_bytes)]
    max_bytes: Option<u64>,
    /// Remove segments whose records are all older than DURATION, by the time their file was
    /// last written: a whole number and a unit, ms, s, m, h or d (30s, 10m, 2h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_age: Option<Duration>,
    /// Park a consumer that lags more than N bytes (suffixes K, M, G, T): retention stops
    /// waiting for it, and reading with it fails until it is reset (`applog consumers LOG
    /// --reset NAME --to SEQ`).
    #[arg(long, value_name = "N", value_parser = parse_bytes)]
    park_lag_bytes: Option<u64>,
    /// Park a consumer that lags and has not committed for DURATION (as --max-age).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    park_idle: Option<Duration>,
    /// Change nothing; say what would be removed and which consumers would be parked.
    #[arg(long)]
    dry_run: bool,
    /// How to print what was done.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

pub fn run(args: Args) -> Result<(), Failure> {
    // The pass takes the registry lock, which makes the `consumers` directory: make sure
    // first that this is a log.
    drop(applog::Reader::open(&args.log)?);
    let mut policy = applog::Retention::new();
    if let Some(n) = args.max_bytes {
        policy = policy.max_bytes(n);
    }
    if let Some(d) = args.max_age {
        policy = policy.max_age(d);
    }
    if let Some(n) = args.park_lag_bytes {
        policy = policy.park_lag_bytes(n);
    }
    if let Some(d) = args.park_idle {
        policy = policy.park_idle(d);
    }
    let mut trim = applog::Trim::new().policy(policy).dry_run(args.dry_run);
    if let Some(seq) = args.before {
        trim = trim.before(seq);
    }
    let report = applog::trim(&args.log, &trim)?;
    // Up to the slowest consumer, and there is none.
    let unbounded = args.before.is_none() && args.max_bytes.is_none() && args.max_age.is_none();
    let note = (unbounded && report.removed.is_empty() && applog::consumers(&args.log)?.is_empty())
        .then_some(
            "the log has no consumers to trim up to: give --before SEQ, --max-bytes or --max-age",
        );
    let mut out = Out::new();
    match args.format {
        ReportFormat::Text => print_text(&mut out, &args.log, &report, note)?,
        ReportFormat::Json => print_json(&mut out, &report, note)?,
    }
    out.finish()
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {one}s")
    }
}

fn print_text(
    out: &mut Out,
    log: &Path,
    r: &applog::TrimReport,
    note: Option<&str>,
) -> Result<(), Failure> {
    let (remove, park, is) = if r.dry_run {
        ("would remove", "would park", "would be")
    } else {
        ("removed", "parked", "is now")
    };
    for p in &r.removed {
        writeln!(out, "{remove} {}", file_name(p))?;
    }
    if r.removed.is_empty() {
        let nothing = if r.dry_run {
            "would remove nothing"
        } else {
            "removed nothing"
        };
        match note {
            Some(note) => writeln!(out, "{nothing}: {note}")?,
            None => writeln!(out, "{nothing}; the first seq is {}", r.first_seq)?,
        }
    } else {
        writeln!(
            out,
            "{remove} {}: {} records, {} bytes; the first seq {is} {}",
            plural(r.removed.len(), "segment"),
            r.records,
            r.bytes,
            r.first_seq
        )?;
    }
    if let Some(name) = &r.held_back_by {
        writeln!(
            out,
            "held back by consumer {name:?}, the slowest one not parked"
        )?;
    }
    for name in &r.parked {
        writeln!(
            out,
            "{park} consumer {name:?}: it fell too far behind, and retention no longer waits for it \
             (`applog consumers {} --reset {name} --to SEQ` lets it go on)",
            log.display()
        )?;
    }
    Ok(())
}

/// `trim --format json`.
#[derive(serde::Serialize)]
struct Report<'a> {
    removed_segments: Vec<String>,
    records: u64,
    bytes: u64,
    first_seq: u64,
    held_back_by: Option<&'a str>,
    parked: &'a [String],
    dry_run: bool,
    note: Option<&'a str>,
}

fn print_json(out: &mut Out, r: &applog::TrimReport, note: Option<&str>) -> Result<(), Failure> {
    out.json(&Report {
        removed_segments: r.removed.iter().map(|p| file_name(p)).collect(),
        records: r.records,
        bytes: r.bytes,
        first_seq: r.first_seq,
        held_back_by: r.held_back_by.as_deref(),
        parked: &r.parked,
        dry_run: r.dry_run,
        note,
    })
}

/// A byte count: a whole number, optionally followed by K, M, G or T (powers of 1024).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        Some(b'T' | b't') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n: u64 = digits.parse().map_err(|_| {
        format!("{s:?} is no byte count (a whole number, optionally with K, M, G or T)")
    })?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A duration: a whole number and a unit, `ms`, `s`, `m`, `h` or `d`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!("{s:?} is no duration (a whole number and a unit: ms, s, m, h or d, as in 30s, 10m, 2h, 7d)")
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = |per: u64| {
        n.checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{s:?} is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in [
            "",
            "30",
            "s",
            "1.5h",
            "-1s",
            "3 s",
            "1w",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn byte_counts_take_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        for bad in ["", "K", "1.5M", "-1", "1P", "99999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
