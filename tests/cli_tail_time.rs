//! `applog tail --since TIME` and `--until TIME`: records chosen by their append time.
//!
//! Pass criteria: `--since` starts at the first record appended at or after TIME and
//! `--until` stops before the first one appended after it, given as RFC 3339 or as "that long
//! ago"; both combine with `--from`, `--max` and `-f` (which then ends by itself once past
//! `--until`); times before the first record or after the last select all or nothing, with
//! exit 0; an unparseable time, `--since` after `--until`, and `--since` with `-n` or a named
//! consumer are usage errors (exit 2).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use common::cli::*;

/// A log of three groups of records (`a0..a3`, `b0..b3`, `c0..c3`), a few milliseconds
/// apart, with each record's time.
fn three_groups() -> (tempfile::TempDir, std::path::PathBuf, Vec<u64>) {
    let (tmp, log) = new_log();
    let mut w = applog::Writer::open(&log, applog::Options::new().segment_pages(1)).unwrap();
    for group in ["a", "b", "c"] {
        for i in 0..4 {
            w.append(format!("{group}{i}").as_bytes()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    w.close().unwrap();
    let times = record_times(&log).into_iter().map(Option::unwrap).collect();
    (tmp, log, times)
}

fn tail(log: &Path, args: &[&str]) -> Run {
    let mut all = vec!["tail", log.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all)
}

fn lines(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

#[test]
fn since_and_until_select_records_by_their_append_time() {
    let (_tmp, log, t) = three_groups();
    let at = |i: usize| rfc3339_nanos(t[i]);
    let b = ["b0", "b1", "b2", "b3"];
    let c = ["c0", "c1", "c2", "c3"];
    let a = ["a0", "a1", "a2", "a3"];

    // --since: from the first record at or after the time (exactly a record's time).
    let out = tail(&log, &["--since", &at(4)]);
    assert_eq!(out.ok(), lines(&[&b[..], &c[..]].concat()));
    // Just after b3's time: the c group.
    let out = tail(&log, &["--since", &rfc3339_nanos(t[7] + 1)]);
    assert_eq!(out.ok(), lines(&c));
    // --until: up to the last record at or before the time.
    let out = tail(&log, &["--from", "0", "--until", &at(7)]);
    assert_eq!(out.ok(), lines(&[&a[..], &b[..]].concat()));
    // Both: the b group.
    let out = tail(&log, &["--since", &at(4), "--until", &at(7)]);
    assert_eq!(out.ok(), lines(&b));
    // With --from: the later start; with --max: at most that many.
    let out = tail(&log, &["--since", &at(4), "--from", "6"]);
    assert_eq!(out.ok(), lines(&["b2", "b3", "c0", "c1", "c2", "c3"]));
    let out = tail(&log, &["--since", &at(4), "--from", "2", "--max", "2"]);
    assert_eq!(out.ok(), lines(&["b0", "b1"]));
    // Another offset, the same instant.
    let plus_one = {
        let s = rfc3339_nanos(t[4] + 3_600_000_000_000);
        s.replace('Z', "+01:00")
    };
    let out = tail(&log, &["--since", &plus_one, "--max", "1"]);
    assert_eq!(out.ok(), lines(&["b0"]));
}

#[test]
fn times_before_the_first_record_or_after_the_last_select_all_or_nothing() {
    let (_tmp, log, _) = three_groups();
    let all = read_all(&log).len();
    let count = |args: &[&str]| tail(&log, args).ok().lines().count();
    assert_eq!(count(&["--since", "2000-01-01T00:00:00Z"]), all);
    assert_eq!(count(&["--since", "1h"]), all, "appended within the hour");
    assert_eq!(count(&["--since", "2999-01-01T00:00:00Z"]), 0);
    assert_eq!(
        count(&["--from", "0", "--until", "2000-01-01T00:00:00Z"]),
        0
    );
    assert_eq!(count(&["--from", "0", "--until", "1h"]), 0);
    assert_eq!(
        count(&["--from", "0", "--until", "2999-01-01T00:00:00Z"]),
        all
    );
    assert_eq!(count(&["--since", "1d", "--until", "0s"]), all);
}

#[test]
fn a_log_without_times_counts_as_older_than_any_time() {
    let (_tmp, log) = new_log();
    common::v1::write_log(&log, &[b"old".to_vec()], 4);
    let mut w = applog::Writer::open(&log, applog::Options::new()).unwrap();
    w.append(b"new").unwrap(); // in the version-1 segment: no time either
    drop(w);
    assert_eq!(tail(&log, &["--since", "1h"]).ok(), "");
    assert_eq!(
        tail(&log, &["--from", "0", "--until", "1h"]).ok(),
        "old\nnew\n"
    );
}

#[test]
fn bad_times_and_times_that_do_not_go_together_are_usage_errors() {
    let (_tmp, log, _) = three_groups();
    for bad in ["yesterday", "10", "2026-13-01T00:00:00Z", "-5m", ""] {
        let err = tail(&log, &[&format!("--since={bad}")])
            .usage_error()
            .to_owned();
        assert!(err.contains("--since"), "{bad:?}: {err}");
        tail(&log, &[&format!("--until={bad}")]).usage_error();
    }
    let err = tail(&log, &["--since", "1m", "--until", "2h"])
        .usage_error()
        .to_owned();
    assert!(
        err.contains("--since") && err.contains("after --until"),
        "{err}"
    );
    tail(&log, &["--since", "1m", "-n", "5"]).usage_error();
    tail(&log, &["--since", "1m", "--name", "reader"]).usage_error();
}

#[test]
fn follow_until_a_past_time_prints_up_to_it_and_ends_by_itself() {
    let (_tmp, log, t) = three_groups();
    // The first record after the bound ends it.
    let child = spawn(&[
        "tail",
        log.to_str().unwrap(),
        "-f",
        "--from",
        "0",
        "--until",
        &rfc3339_nanos(t[3]),
    ]);
    let out = wait_for_exit(child);
    assert_eq!(out.ok(), lines(&["a0", "a1", "a2", "a3"]));
    // No record after the bound, and the clock is past it: ends while idle.
    let child = spawn(&[
        "tail",
        log.to_str().unwrap(),
        "-f",
        "--since",
        &rfc3339_nanos(t[8]),
        "--until",
        "0s",
    ]);
    let out = wait_for_exit(child);
    assert_eq!(out.ok(), lines(&["c0", "c1", "c2", "c3"]));
    // A named consumer too: it commits what it printed.
    let child = spawn(&[
        "tail",
        log.to_str().unwrap(),
        "-f",
        "--name",
        "r",
        "--until",
        "0s",
    ]);
    assert_eq!(wait_for_exit(child).ok().lines().count(), 12);
}

#[test]
fn follow_since_a_time_prints_from_there_and_then_new_records() {
    let (_tmp, log, t) = three_groups();
    let mut child = spawn(&[
        "tail",
        log.to_str().unwrap(),
        "-f",
        "--since",
        &rfc3339_nanos(t[8]),
    ]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut got = Vec::new();
    for _ in 0..4 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        got.push(line);
    }
    assert_eq!(got.concat(), lines(&["c0", "c1", "c2", "c3"]));
    let mut w = applog::Writer::open(&log, applog::Options::new()).unwrap();
    w.append(b"d0").unwrap();
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "d0\n");
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let out = wait_for_exit(child);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
}
