//! `applog info`: sizes rounded to binary units for people, exact with `--bytes` and in
//! JSON; the times of the first and last records and the format version, saying when records
//! have no time.
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

/// The value of a line `label  value` of info's text.
fn line<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
        .trim()
}

#[test]
fn info_shows_the_first_and_last_record_times_and_the_format() {
    let (_tmp, log) = log_with(&[b"one", b"two", b"three"]);
    let times: Vec<u64> = record_times(&log).into_iter().map(Option::unwrap).collect();
    let out = info(&log, &[]);
    let text = out.ok();
    assert_eq!(line(text, "first time"), rfc3339_nanos(times[0]));
    assert_eq!(line(text, "last time"), rfc3339_nanos(times[2]));
    assert_eq!(line(text, "format"), "version 2");

    let out = info(&log, &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(out.ok()).expect("JSON");
    assert_eq!(v["first_time"], rfc3339_nanos(times[0]).as_str());
    assert_eq!(v["last_time"], rfc3339_nanos(times[2]).as_str());
    assert_eq!(v["format_versions"], serde_json::json!([2]));
    assert_eq!(v["segments"][0]["format_version"], 2);
    assert_eq!(
        v["segments"][0]["last_time"],
        rfc3339_nanos(times[2]).as_str()
    );
}

#[test]
fn info_says_when_records_have_no_time() {
    let (_tmp, log) = new_log();
    common::v1::write_log(&log, &[b"old".to_vec(), b"older".to_vec()], 1);
    let out = info(&log, &[]);
    let text = out.ok();
    assert_eq!(line(text, "first time"), "none (no record with a time)");
    assert!(
        line(text, "format").starts_with("version 1: records have no time"),
        "{text}"
    );
    // A newer segment after them: both versions, and the times there are.
    let mut w = Writer::open(&log, Options::new().segment_pages(1)).expect("open writer");
    while w.next_seq() < 40 {
        w.append(&[7u8; 500]).expect("append");
    }
    drop(w);
    let out = info(&log, &["--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(out.ok()).expect("JSON");
    assert_eq!(v["format_versions"], serde_json::json!([1, 2]));
    assert_eq!(v["segments"][0]["first_time"], serde_json::Value::Null);
    let first_timed = record_times(&log).into_iter().flatten().next().unwrap();
    assert_eq!(v["first_time"], rfc3339_nanos(first_timed).as_str());
    let text = info(&log, &[]).ok().to_owned();
    assert!(line(&text, "format").starts_with("versions 1, 2: records in version-1"));
}

#[test]
fn info_lists_the_metadata_names_and_value_sizes() {
    let (_tmp, log, _) = log_of_1024_pages();
    let text = info(&log, &[]).ok().to_owned();
    assert!(text.contains("metadata   none\n"), "{text}");

    let mut w = Writer::open(&log, Options::default()).expect("open writer");
    w.set_meta_many(&[
        ("vote", Some(&[7u8; 14][..])),
        ("purged id", Some(&[0u8; 2000][..])),
    ])
    .expect("set meta");
    drop(w);
    let text = info(&log, &[]).ok().to_owned();
    assert!(
        text.contains("metadata   2 values: \"purged id\" (2.0 KiB), \"vote\" (14 B)\n"),
        "{text}"
    );
    let text = info(&log, &["--bytes"]).ok().to_owned();
    assert!(text.contains("\"purged id\" (2000)"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(info(&log, &["--format", "json"]).ok()).expect("JSON");
    assert_eq!(
        json["meta"],
        serde_json::json!([
            {"name": "purged id", "value_bytes": 2000},
            {"name": "vote", "value_bytes": 14}
        ]),
        "{json}"
    );
}

#[test]
fn info_fails_naming_a_damaged_metadata_file() {
    let (_tmp, log, _) = log_of_1024_pages();
    let mut w = Writer::open(&log, Options::default()).expect("open writer");
    w.set_meta("vote", Some(b"x")).expect("set meta");
    drop(w);
    let path = log.join(applog::META_FILE);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.truncate(5000);
    std::fs::write(&path, bytes).expect("damage");
    let stderr = info(&log, &[]).failed().to_owned();
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("byte offset 5000"), "{stderr}");
}
