//! Lines for a torn tail and for corruptions, shared by `verify`, `info` and `recover`.

use serde::Serialize;

/// A path in JSON output (lossy when it is not UTF-8).
pub fn json_path(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

pub fn torn_tail_text(t: &applog::TornTail) -> String {
    let mut s = format!(
        "{} at byte offset {}: {} (not corruption: the next writer cuts it)",
        t.segment.display(),
        t.offset,
        t.reason
    );
    for later in &t.later_segments {
        s.push_str(&format!("; it also removes {}", later.display()));
    }
    s
}

/// A torn tail in the JSON reports.
#[derive(Serialize)]
pub struct TornTailJson {
    segment: String,
    offset: u64,
    reason: String,
    later_segments: Vec<String>,
}

pub fn torn_tail_json(t: Option<&applog::TornTail>) -> Option<TornTailJson> {
    t.map(|t| TornTailJson {
        segment: json_path(&t.segment),
        offset: t.offset,
        reason: t.reason.clone(),
        later_segments: t.later_segments.iter().map(|p| json_path(p)).collect(),
    })
}

pub fn corruption_text(c: &applog::Corruption) -> String {
    format!(
        "{} at byte offset {}: {}",
        c.segment.display(),
        c.offset,
        c.reason
    )
}

/// A corruption in the JSON reports.
#[derive(Serialize)]
pub struct CorruptionJson {
    segment: String,
    offset: u64,
    reason: String,
}

pub fn corruptions_json(cs: &[applog::Corruption]) -> Vec<CorruptionJson> {
    cs.iter()
        .map(|c| CorruptionJson {
            segment: json_path(&c.segment),
            offset: c.offset,
            reason: c.reason.clone(),
        })
        .collect()
}

/// The exit-1 failure for a corrupt log.
pub fn corrupt_failure(log: &std::path::Path, report: &applog::VerifyReport) -> crate::Failure {
    let n = report.corruptions.len();
    let first = report
        .corruptions
        .first()
        .map(corruption_text)
        .unwrap_or_default();
    crate::Failure::Msg(format!(
        "the log {} is corrupt: {n} problem{}, the first in {first}",
        log.display(),
        if n == 1 { "" } else { "s" }
    ))
}
