//! Lines for a torn tail and for corruptions, shared by `verify`, `info` and `recover`.

use crate::encode::{json_path, json_str};

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

pub fn torn_tail_json(t: Option<&applog::TornTail>) -> String {
    let Some(t) = t else {
        return "null".into();
    };
    let later: Vec<String> = t.later_segments.iter().map(|p| json_path(p)).collect();
    format!(
        r#"{{"segment":{},"offset":{},"reason":{},"later_segments":[{}]}}"#,
        json_path(&t.segment),
        t.offset,
        json_str(&t.reason),
        later.join(",")
    )
}

pub fn corruption_text(c: &applog::Corruption) -> String {
    format!(
        "{} at byte offset {}: {}",
        c.segment.display(),
        c.offset,
        c.reason
    )
}

pub fn corruptions_json(cs: &[applog::Corruption]) -> String {
    let items: Vec<String> = cs
        .iter()
        .map(|c| {
            format!(
                r#"{{"segment":{},"offset":{},"reason":{}}}"#,
                json_path(&c.segment),
                c.offset,
                json_str(&c.reason)
            )
        })
        .collect();
    format!("[{}]", items.join(","))
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
