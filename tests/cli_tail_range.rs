//! `applog tail`'s start and stop: `-n +K` (from the K-th record), `--until-seq`, `--max`,
//! each start combined with each bound, with and without `-f` and `--name`; bad values are
//! usage errors.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::path::Path;

use applog::{Options, Writer};
use common::cli::*;

/// `applog tail LOG <extra>`.
fn tail(log: &Path, extra: &[&str]) -> Run {
    let mut args = vec![OsStr::new("tail"), log_arg(log)];
    args.extend(extra.iter().map(OsStr::new));
    run(&args)
}

/// Starts `applog tail LOG <extra>` (to end by itself).
fn spawn_tail(log: &Path, extra: &[&str]) -> std::process::Child {
    let mut args = vec![OsStr::new("tail"), log_arg(log)];
    args.extend(extra.iter().map(OsStr::new));
    spawn(&args)
}

#[test]
fn tail_n_plus_k_starts_at_the_kth_record() {
    let (_tmp, log) = log_with(&slices(&numbered(10)));
    assert_eq!(tail(&log, &["-n", "+1"]).ok(), numbered_lines(0, 10));
    assert_eq!(tail(&log, &["-n", "+3"]).ok(), numbered_lines(2, 10));
    assert_eq!(tail(&log, &["--count", "+10"]).ok(), "r9\n");
    assert_eq!(tail(&log, &["-n", "+11"]).ok(), "");
    assert_eq!(tail(&log, &["-n", "+1000"]).ok(), "");
    // As coreutils: +0 is the first record too.
    assert_eq!(tail(&log, &["-n", "+0"]).ok(), numbered_lines(0, 10));
    // Without +: the last N, as before.
    assert_eq!(tail(&log, &["-n", "3"]).ok(), numbered_lines(7, 10));
}

#[test]
fn tail_n_plus_k_counts_from_the_first_record_left_after_trim() {
    // About 4 records a segment: trimming below seq 10 leaves the log starting at seq 8.
    let (_tmp, log) = one_page_segments('x', 20);
    run(&[
        OsStr::new("trim"),
        log_arg(&log),
        OsStr::new("--before"),
        OsStr::new("10"),
    ])
    .ok();
    let first = applog::Reader::open(&log).expect("open").position();
    assert!(first > 0, "the trim removed nothing");
    let out = tail(&log, &["-n", "+2", "--template", "%s\\n"]);
    let want: String = (first + 1..20).map(|s| format!("{s}\n")).collect();
    assert_eq!(out.ok(), want);
}

#[test]
fn tail_until_seq_stops_before_that_seq_with_any_start() {
    let (_tmp, log) = log_with(&slices(&numbered(10)));
    assert_eq!(
        tail(&log, &["--from", "2", "--until-seq", "5"]).ok(),
        numbered_lines(2, 5)
    );
    // The last 5 (r5..r9), cut at 7.
    assert_eq!(
        tail(&log, &["-n", "5", "--until-seq", "7"]).ok(),
        numbered_lines(5, 7)
    );
    assert_eq!(
        tail(&log, &["-n", "+2", "--until-seq", "4"]).ok(),
        numbered_lines(1, 4)
    );
    assert_eq!(tail(&log, &["--until-seq", "3"]).ok(), numbered_lines(0, 3));
    // Past the end: the end of the log ends it.
    assert_eq!(
        tail(&log, &["--from", "8", "--until-seq", "100"]).ok(),
        numbered_lines(8, 10)
    );
    // At or before the start: nothing, and that is no error.
    assert_eq!(tail(&log, &["--until-seq", "0"]).ok(), "");
    assert_eq!(tail(&log, &["--from", "6", "--until-seq", "6"]).ok(), "");
    assert_eq!(tail(&log, &["--from", "6", "--until-seq", "2"]).ok(), "");
}

#[test]
fn tail_max_and_until_seq_stop_at_whichever_comes_first() {
    let (_tmp, log) = log_with(&slices(&numbered(10)));
    assert_eq!(
        tail(&log, &["--from", "0", "--until-seq", "3", "--max", "2"]).ok(),
        numbered_lines(0, 2)
    );
    assert_eq!(
        tail(&log, &["--from", "0", "--until-seq", "2", "--max", "5"]).ok(),
        numbered_lines(0, 2)
    );
    assert_eq!(
        tail(&log, &["-n", "+4", "--max", "2"]).ok(),
        numbered_lines(3, 5)
    );
    // --max 0 prints nothing (as `head -n 0`).
    assert_eq!(tail(&log, &["--max", "0", "--until-seq", "5"]).ok(), "");
}

#[test]
fn tail_bad_counts_and_bounds_are_usage_errors() {
    let (_tmp, log) = log_with(&slices(&numbered(3)));
    for extra in [
        &["-n", "-3"][..],
        &["-n", "+"],
        &["-n", "++3"],
        &["-n", "3x"],
        &["-n", "+-1"],
        &["-n", "99999999999999999999"],
        &["--until-seq", "-1"],
        &["--until-seq", "x"],
        &["--until-seq", ""],
        &["--max", "ten"],
        &["--max", "-1"],
        &["--name", "c", "-n", "+2"],
        &["--from", "1", "-n", "+2"],
    ] {
        let out = tail(&log, extra);
        assert!(
            out.usage_error().starts_with("applog: error: "),
            "{extra:?}: {out:?}"
        );
    }
    let out = tail(&log, &["-n", "3x"]);
    assert!(out.stderr.contains("\"3x\" is no count"), "{out:?}");
}

#[test]
fn tail_named_until_seq_commits_up_to_the_bound_not_past_it() {
    let (_tmp, log) = log_with(&slices(&numbered(10)));
    assert_eq!(
        tail(&log, &["--name", "c", "--until-seq", "3"]).ok(),
        numbered_lines(0, 3)
    );
    // Resumes at the bound: the record read past it was not committed.
    assert_eq!(
        tail(&log, &["--name", "c", "--max", "2"]).ok(),
        numbered_lines(3, 5)
    );
    // A bound at or before the position: nothing.
    assert_eq!(tail(&log, &["--name", "c", "--until-seq", "4"]).ok(), "");
    assert_eq!(
        tail(&log, &["--name", "c", "--until-seq", "7", "--max", "5"]).ok(),
        numbered_lines(5, 7)
    );
    assert_eq!(tail(&log, &["--name", "c"]).ok(), numbered_lines(7, 10));
}

/// Appends `r<from>` .. `r<to-1>` to `log`.
fn append_numbered(log: &Path, from: u64, to: u64) {
    let mut w = Writer::open(log, Options::new()).expect("open writer");
    assert_eq!(w.next_seq(), from);
    for i in from..to {
        w.append(format!("r{i}").as_bytes()).expect("append");
    }
    w.close().expect("close");
}

#[test]
fn tail_follow_until_seq_exits_0_once_the_record_before_it_is_printed() {
    let (_tmp, log) = log_with(&slices(&numbered(3)));
    let child = spawn_tail(&log, &["-f", "--from", "1", "--until-seq", "6"]);
    // It waits for r3..r5; r6 and later are never printed.
    append_numbered(&log, 3, 10);
    let out = wait_for_exit(child);
    assert_eq!(out.ok(), numbered_lines(1, 6));
}

#[test]
fn tail_follow_with_a_bound_already_reached_exits_at_once() {
    let (_tmp, log) = log_with(&slices(&numbered(3)));
    // Nothing below seq 2 from seq 5 on: no waiting.
    let out = wait_for_exit(spawn_tail(&log, &["-f", "--from", "5", "--until-seq", "2"]));
    assert_eq!(out.ok(), "");
    let out = wait_for_exit(spawn_tail(&log, &["-f", "--max", "0"]));
    assert_eq!(out.ok(), "");
}

#[test]
fn tail_follow_n_plus_k_with_max() {
    let (_tmp, log) = log_with(&slices(&numbered(3)));
    let child = spawn_tail(&log, &["-f", "-n", "+2", "--max", "4"]);
    append_numbered(&log, 3, 8);
    assert_eq!(wait_for_exit(child).ok(), numbered_lines(1, 5));
}

#[test]
fn tail_follow_named_until_seq_commits_up_to_the_bound() {
    let (_tmp, log) = log_with(&slices(&numbered(2)));
    let child = spawn_tail(&log, &["-f", "--name", "c", "--until-seq", "4"]);
    append_numbered(&log, 2, 8);
    assert_eq!(wait_for_exit(child).ok(), numbered_lines(0, 4));
    assert_eq!(tail(&log, &["--name", "c"]).ok(), numbered_lines(4, 8));
}
