//! `applog info`: segments, sizes, reservation, lock, metadata names.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::problems::{
    corrupt_failure, corruptions_json, json_path, torn_tail_json, torn_tail_text, CorruptionJson,
    TornTailJson,
};
use crate::{Failure, Out, ReportFormat};

/// Describe a log: its segments with their seq ranges and sizes, and whether a writer has
/// it open now.
///
/// Exit 1 when the log is corrupt (see `applog verify` for the details).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// How to print the description.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    /// Sizes in exact bytes, not rounded to KiB, MiB, GiB (the JSON form is always exact).
    #[arg(long)]
    bytes: bool,
}

/// What `info` tells of the log besides its segments.
struct About<'a> {
    log: &'a Path,
    /// Whether a writer holds the lock now.
    locked: bool,
    /// The log's identity, if it has one yet.
    id: Option<&'a str>,
    meta: &'a applog::Meta,
}

/// A segment's report with what its header adds.
struct Segment<'a> {
    report: &'a applog::SegmentReport,
    /// Page size and pages from the header; `None` when it was blank.
    header: Option<Header>,
}

/// What `info` shows of a segment header.
#[derive(Clone, Copy)]
struct Header {
    page_size: u32,
    segment_pages: u32,
}

impl Segment<'_> {
    fn name(&self) -> String {
        self.report.path.file_name().map_or_else(
            || self.report.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    fn next_seq(&self) -> u64 {
        self.report.base_seq + self.report.records
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    // verify first: it tells "not a log" apart from other errors.
    let report = applog::verify(&args.log)?;
    let locked = applog::is_locked(&args.log)?;
    let id = applog::existing_log_id(&args.log)?;
    let meta = applog::read_meta(&args.log)?;
    let segments: Vec<Segment<'_>> = report
        .segments
        .iter()
        .map(|report| Segment {
            report,
            header: (report.page_size != 0).then_some(Header {
                page_size: report.page_size,
                segment_pages: report.segment_pages,
            }),
        })
        .collect();
    let page_size = segments
        .iter()
        .rev()
        .find_map(|s| s.header.map(|h| h.page_size));
    let print = match args.format {
        ReportFormat::Text => print_text,
        ReportFormat::Json => print_json,
    };
    let size = if args.bytes { exact } else { human };
    let about = About {
        log: &args.log,
        locked,
        id: id.as_deref(),
        meta: &meta,
    };
    let printed = print(size, &about, &report, &segments, page_size);
    if !report.is_clean() {
        return Err(corrupt_failure(&args.log, &report));
    }
    printed
}

/// A size as a number of bytes.
fn exact(n: u64) -> String {
    n.to_string()
}

/// A size for people: bytes below 1 KiB, else one decimal in the largest binary unit that
/// keeps it at 1 or more (`4.0 MiB`).
pub(crate) fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn print_text(
    size: fn(u64) -> String,
    about: &About<'_>,
    r: &applog::VerifyReport,
    segments: &[Segment<'_>],
    page_size: Option<u32>,
) -> Result<(), Failure> {
    let About {
        log,
        locked,
        id,
        meta,
    } = *about;
    let mut out = Out::new();
    writeln!(out, "log        {}", log.display())?;
    writeln!(
        out,
        "identity   {}",
        id.unwrap_or("none yet (the next writer creates it)")
    )?;
    let writer = if locked {
        "yes (a writer has the log open)"
    } else {
        "no"
    };
    writeln!(out, "locked     {writer}")?;
    match page_size {
        Some(p) => writeln!(out, "page size  {p} bytes")?,
        None => writeln!(out, "page size  unknown (no readable segment header)")?,
    }
    writeln!(out, "segments   {}", segments.len())?;
    writeln!(out, "records    {}", r.records)?;
    writeln!(out, "first seq  {}", r.first_seq)?;
    writeln!(out, "next seq   {}", r.next_seq)?;
    writeln!(out, "bytes      {}", size(r.bytes))?;
    let (first, last) = time_range(r);
    let time = |t: Option<u64>| {
        t.map_or_else(
            || "none (no record with a time)".to_string(),
            crate::times::rfc3339_nanos,
        )
    };
    writeln!(out, "first time {}", time(first))?;
    writeln!(out, "last time  {}", time(last))?;
    writeln!(out, "format     {}", format_text(&versions(r)))?;
    let status = match (&r.torn_tail, r.is_clean()) {
        (_, false) => format!(
            "CORRUPT ({} problems; see applog verify)",
            r.corruptions.len()
        ),
        (Some(t), true) => format!("torn tail in {}", torn_tail_text(t)),
        (None, true) => "clean".into(),
    };
    writeln!(out, "status     {status}")?;
    writeln!(out, "metadata   {}", meta_text(size, meta))?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<24} {:>10} {:>10} {:>9} {:>11} {:>11} {:>7}  sealed",
        "segment", "first seq", "next seq", "records", "size", "reservation", "pages"
    )?;
    for s in segments {
        let pages = s
            .header
            .map_or("-".to_string(), |h| h.segment_pages.to_string());
        writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>9} {:>11} {:>11} {:>7}  {}",
            s.name(),
            s.report.base_seq,
            s.next_seq(),
            s.report.records,
            size(s.report.file_size),
            size(s.report.reservation),
            pages,
            if s.report.sealed { "yes" } else { "no" }
        )?;
    }
    out.finish()
}

/// The metadata line of `info`: each name (quoted, escaped) and its value's size.
fn meta_text(size: fn(u64) -> String, meta: &applog::Meta) -> String {
    if meta.is_empty() {
        return "none".into();
    }
    let names: Vec<String> = meta
        .iter()
        .map(|(name, value)| format!("{name:?} ({})", size(value.len() as u64)))
        .collect();
    let values = if meta.len() == 1 { "value" } else { "values" };
    format!("{} {values}: {}", meta.len(), names.join(", "))
}

/// The times of the log's oldest and newest records that have one.
fn time_range(r: &applog::VerifyReport) -> (Option<u64>, Option<u64>) {
    (
        r.segments.iter().find_map(|s| s.first_time),
        r.segments.iter().rev().find_map(|s| s.last_time),
    )
}

/// The format versions of the log's segments, in ascending order (blank headers left out).
fn versions(r: &applog::VerifyReport) -> Vec<u32> {
    let mut v: Vec<u32> = r
        .segments
        .iter()
        .map(|s| s.format_version)
        .filter(|&v| v != 0)
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The format line of `info`: which versions, and what version 1 means for the reader.
fn format_text(versions: &[u32]) -> String {
    match versions {
        [] => "unknown (no readable segment header)".into(),
        [2] => "version 2".into(),
        [1] => "version 1: records have no time (applog copy makes an upgraded copy)".into(),
        _ => {
            let list: Vec<String> = versions.iter().map(u32::to_string).collect();
            format!(
                "versions {}: records in version-1 segments have no time (applog copy makes an \
                 upgraded copy)",
                list.join(", ")
            )
        }
    }
}

/// `info --format json`.
#[derive(Serialize)]
struct InfoJson<'a> {
    log: String,
    locked: bool,
    page_size: Option<u32>,
    first_seq: u64,
    next_seq: u64,
    records: u64,
    bytes: u64,
    clean: bool,
    torn_tail: Option<TornTailJson>,
    corruptions: Vec<CorruptionJson>,
    segments: Vec<SegmentJson>,
    log_id: Option<&'a str>,
    first_time: Option<String>,
    last_time: Option<String>,
    format_versions: Vec<u32>,
    meta: Vec<MetaJson<'a>>,
}

/// A metadata value in `info --format json`: its name and size (not the value).
#[derive(Serialize)]
struct MetaJson<'a> {
    name: &'a str,
    value_bytes: usize,
}

/// A segment in `info --format json`.
#[derive(Serialize)]
struct SegmentJson {
    file: String,
    first_seq: u64,
    next_seq: u64,
    records: u64,
    data_end: u64,
    file_size: u64,
    reservation: u64,
    pages: Option<u32>,
    page_size: Option<u32>,
    sealed: bool,
    synced_mark: u64,
    format_version: Option<u32>,
    first_time: Option<String>,
    last_time: Option<String>,
}

fn print_json(
    _size: fn(u64) -> String,
    about: &About<'_>,
    r: &applog::VerifyReport,
    segments: &[Segment<'_>],
    page_size: Option<u32>,
) -> Result<(), Failure> {
    let About {
        log,
        locked,
        id,
        meta,
    } = *about;
    let segments = segments
        .iter()
        .map(|s| SegmentJson {
            file: s.name(),
            first_seq: s.report.base_seq,
            next_seq: s.next_seq(),
            records: s.report.records,
            data_end: s.report.data_end,
            file_size: s.report.file_size,
            reservation: s.report.reservation,
            pages: s.header.map(|h| h.segment_pages),
            page_size: s.header.map(|h| h.page_size),
            sealed: s.report.sealed,
            synced_mark: s.report.synced_mark,
            format_version: (s.report.format_version != 0).then_some(s.report.format_version),
            first_time: s.report.first_time.map(crate::times::rfc3339_nanos),
            last_time: s.report.last_time.map(crate::times::rfc3339_nanos),
        })
        .collect();
    let (first_time, last_time) = time_range(r);
    let mut out = Out::new();
    out.json(&InfoJson {
        first_time: first_time.map(crate::times::rfc3339_nanos),
        last_time: last_time.map(crate::times::rfc3339_nanos),
        format_versions: versions(r),
        log: json_path(log),
        locked,
        page_size,
        first_seq: r.first_seq,
        next_seq: r.next_seq,
        records: r.records,
        bytes: r.bytes,
        clean: r.is_clean(),
        torn_tail: torn_tail_json(r.torn_tail.as_ref()),
        corruptions: corruptions_json(&r.corruptions),
        segments,
        log_id: id,
        meta: meta
            .iter()
            .map(|(name, value)| MetaJson {
                name,
                value_bytes: value.len(),
            })
            .collect(),
    })?;
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_sizes_are_binary_units_with_one_decimal() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1024), "1.0 KiB");
        assert_eq!(human(4096), "4.0 KiB");
        assert_eq!(human(4 << 20), "4.0 MiB");
        assert_eq!(human(4_096_000), "3.9 MiB");
        assert_eq!(human(3 << 30 | 1 << 29), "3.5 GiB");
        assert_eq!(human(u64::MAX), "16.0 EiB");
    }
}
