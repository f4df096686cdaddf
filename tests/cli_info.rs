//! `applog info`'s sizes: rounded to binary units for people, exact with `--bytes` and in
//! JSON.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;

use applog::{Options, Writer};
use common::cli::*;

fn info(log: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec![OsStr::new("info"), log_arg(log)];
    args.extend(extra.iter().map(OsStr::new));
    run(&args)
}

/// A log of one segment with a reservation of 1024 pages (4 MiB with 4 KiB pages).
fn log_of_1024_pages() -> (tempfile::TempDir, std::path::PathBuf, applog::VerifyReport) {
    let (tmp, log) = new_log();
    let mut w = Writer::open(&log, Options::new().segment_pages(1024)).expect("open writer");
    w.append(b"hello").expect("append");
    w.close().expect("close");
    let report = applog::verify(&log).expect("verify");
    (tmp, log, report)
}

/// The segment table's row for the first segment, split on whitespace.
fn first_row(text: &str) -> Vec<String> {
    let row = text
        .lines()
        .find(|l| l.starts_with(SEG0))
        .unwrap_or_else(|| panic!("no segment row in:\n{text}"));
    row.split_whitespace().map(String::from).collect()
}

/// `n` bytes as `info` rounds them.
fn human(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1048576 => format!("{:.1} KiB", n as f64 / 1024.0),
        1048576..1073741824 => format!("{:.1} MiB", n as f64 / 1048576.0),
        _ => format!("{:.1} GiB", n as f64 / 1073741824.0),
    }
}

#[test]
fn info_rounds_sizes_to_binary_units() {
    let (_tmp, log, report) = log_of_1024_pages();
    let seg = &report.segments[0];
    let text = info(&log, &[]).ok().to_string();
    assert!(
        text.contains(&format!("bytes      {}\n", human(report.bytes))),
        "{text}"
    );
    let row = first_row(&text);
    // name, first, next, records, size (2 words), reservation (2 words), pages, sealed
    let want_size: Vec<String> = human(seg.file_size).split(' ').map(String::from).collect();
    let want_reservation: Vec<String> = human(seg.reservation)
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(row[4..6], want_size[..], "{text}");
    assert_eq!(row[6..8], want_reservation[..], "{text}");
    if seg.page_size == 4096 {
        assert_eq!(human(seg.reservation), "4.0 MiB");
        assert_eq!(row[6..8], ["4.0", "MiB"], "{text}");
    }
}

#[test]
fn info_bytes_prints_exact_sizes() {
    let (_tmp, log, report) = log_of_1024_pages();
    let seg = &report.segments[0];
    let text = info(&log, &["--bytes"]).ok().to_string();
    assert!(
        text.contains(&format!("bytes      {}\n", report.bytes)),
        "{text}"
    );
    let row = first_row(&text);
    assert_eq!(
        row[4..6],
        [seg.file_size.to_string(), seg.reservation.to_string()],
        "{text}"
    );
}

#[test]
fn info_json_sizes_are_exact_with_or_without_bytes() {
    let (_tmp, log, report) = log_of_1024_pages();
    let seg = &report.segments[0];
    for extra in [&["--format", "json"][..], &["--format", "json", "--bytes"]] {
        let json: serde_json::Value = serde_json::from_str(info(&log, extra).ok()).expect("JSON");
        assert_eq!(json["bytes"], report.bytes, "{json}");
        assert_eq!(json["segments"][0]["file_size"], seg.file_size, "{json}");
        assert_eq!(
            json["segments"][0]["reservation"], seg.reservation,
            "{json}"
        );
    }
}

#[test]
fn info_bytes_takes_no_value() {
    let (_tmp, log, _) = log_of_1024_pages();
    let out = info(&log, &["--bytes=yes"]);
    assert!(out.usage_error().starts_with("applog: error: "), "{out:?}");
}
