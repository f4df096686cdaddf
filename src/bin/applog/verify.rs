//! `applog verify`: a read-only check of every frame.

use std::path::PathBuf;

use serde::Serialize;

use crate::info::human;
use crate::problems::{
    corrupt_failure, corruption_text, corruptions_json, json_path, torn_tail_json, torn_tail_text,
    CorruptionJson, TornTailJson,
};
use crate::progress::{segments_of, Progress, ProgressArgs};
use crate::{Failure, Out, ReportFormat};

/// Check every record of a log, without changing anything.
///
/// Prints a summary and every problem with its segment file and byte offset. A torn tail
/// (bytes after the last record, left by a crash) is reported but is not corruption: the
/// next writer cuts it. Exit 0 when the log is clean, 1 when it is corrupt. On a terminal, a
/// check that takes longer than a second shows a progress spinner on stderr.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// How to print the report.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    #[command(flatten)]
    progress: ProgressArgs,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let (segments, bytes) = segments_of(&args.log);
    let progress = Progress::start(
        format!(
            "verifying {} ({segments} segment{}, {})",
            args.log.display(),
            if segments == 1 { "" } else { "s" },
            human(bytes)
        ),
        &args.progress,
    );
    let report = applog::verify(&args.log);
    drop(progress);
    let report = report?;
    let printed = print(&args, &report);
    if !report.is_clean() {
        // Even when stdout was closed early: a corrupt log is never exit 0.
        return Err(corrupt_failure(&args.log, &report));
    }
    printed
}

fn print(args: &Args, r: &applog::VerifyReport) -> Result<(), Failure> {
    let mut out = Out::new();
    match args.format {
        ReportFormat::Text => {
            writeln!(out, "log        {}", args.log.display())?;
            writeln!(out, "segments   {}", r.segments.len())?;
            writeln!(out, "records    {}", r.records)?;
            writeln!(out, "first seq  {}", r.first_seq)?;
            writeln!(out, "next seq   {}", r.next_seq)?;
            writeln!(out, "bytes      {}", r.bytes)?;
            if let Some(t) = &r.torn_tail {
                writeln!(out, "torn tail  {}", torn_tail_text(t))?;
            }
            for s in &r.segments {
                if let Some(at) = s.cut_at {
                    writeln!(
                        out,
                        "cut        {} at byte offset {at}: the log's end was cut at seq {}",
                        s.path.display(),
                        s.base_seq + s.records
                    )?;
                }
            }
            for path in &r.removed_by_cut {
                writeln!(
                    out,
                    "past cut   {}: removed by a cut of the log's end (the next writer deletes it)",
                    path.display()
                )?;
            }
            for path in &r.removed_by_reset {
                writeln!(
                    out,
                    "before reset {}: removed by a reset of the log (the next writer deletes it)",
                    path.display()
                )?;
            }
            for c in &r.corruptions {
                writeln!(out, "corrupt    {}", corruption_text(c))?;
            }
            let status = match (r.is_clean(), r.torn_tail.is_some()) {
                (true, false) => "clean".to_string(),
                (true, true) => "clean (with a torn tail)".to_string(),
                (false, _) => format!(
                    "CORRUPT ({} problem{})",
                    r.corruptions.len(),
                    if r.corruptions.len() == 1 { "" } else { "s" }
                ),
            };
            writeln!(out, "status     {status}")?;
        }
        ReportFormat::Json => out.json(&Report {
            log: json_path(&args.log),
            clean: r.is_clean(),
            segments: r.segments.len(),
            records: r.records,
            first_seq: r.first_seq,
            next_seq: r.next_seq,
            bytes: r.bytes,
            torn_tail: torn_tail_json(r.torn_tail.as_ref()),
            corruptions: corruptions_json(&r.corruptions),
            cuts: r
                .segments
                .iter()
                .filter_map(|s| {
                    s.cut_at.map(|offset| CutJson {
                        segment: json_path(&s.path),
                        offset,
                        seq: s.base_seq + s.records,
                    })
                })
                .collect(),
            removed_by_cut: r.removed_by_cut.iter().map(|p| json_path(p)).collect(),
            removed_by_reset: r.removed_by_reset.iter().map(|p| json_path(p)).collect(),
        })?,
    }
    out.finish()
}

/// `verify --format json`.
#[derive(Serialize)]
struct Report {
    log: String,
    clean: bool,
    segments: usize,
    records: u64,
    first_seq: u64,
    next_seq: u64,
    bytes: u64,
    torn_tail: Option<TornTailJson>,
    corruptions: Vec<CorruptionJson>,
    /// Segments whose end was cut (`Writer::truncate_back`).
    cuts: Vec<CutJson>,
    /// Segment files wholly past a cut, left by a crash.
    removed_by_cut: Vec<String>,
    removed_by_reset: Vec<String>,
}

/// A cut of the log's end in `verify --format json`.
#[derive(Serialize)]
struct CutJson {
    segment: String,
    offset: u64,
    seq: u64,
}
