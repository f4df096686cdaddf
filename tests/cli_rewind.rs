//! `applog cut` and `applog reset`: an operator removes a log's end or starts it again at a
//! seq; without `--yes` nothing changes; a locked log, a seq outside the log and bad values
//! are refused.
#![cfg(unix)]

mod common;

use applog::{Options, Writer};
use common::cli::*;

fn ten_records() -> (tempfile::TempDir, std::path::PathBuf) {
    let records = numbered(10);
    log_with(&slices(&records))
}

#[test]
fn cut_without_yes_says_what_it_would_remove_and_changes_nothing() {
    let (_tmp, log) = ten_records();
    let out = run(&[s("cut"), log_arg(&log), s("--from"), s("6")]);
    assert!(
        out.ok().contains("would remove 4 records (6..10)"),
        "{}",
        out.ok()
    );
    assert_eq!(read_all(&log).len(), 10);
}

#[test]
fn cut_with_yes_removes_the_end_and_the_next_append_reuses_the_seq() {
    let (_tmp, log) = ten_records();
    let out = run(&[s("cut"), log_arg(&log), s("--from"), s("6"), s("--yes")]);
    assert!(
        out.ok().contains("removed 4 records (6..10)"),
        "{}",
        out.ok()
    );
    assert_eq!(read_all(&log), numbered(6));
    let mut w = Writer::open(&log, Options::new()).unwrap();
    assert_eq!(w.append(b"new").unwrap(), 6);
}

#[test]
fn cut_outside_the_log_fails_naming_the_bound_and_changes_nothing() {
    let (_tmp, log) = ten_records();
    let out = run(&[s("cut"), log_arg(&log), s("--from"), s("11"), s("--yes")]);
    assert!(out.failed().contains("11"), "{}", out.failed());
    assert_eq!(read_all(&log).len(), 10);
}

#[test]
fn cut_of_a_log_held_by_a_writer_is_refused() {
    let (_tmp, log) = ten_records();
    let _w = Writer::open(&log, Options::new()).unwrap();
    let out = run(&[s("cut"), log_arg(&log), s("--from"), s("2"), s("--yes")]);
    assert!(out.failed().contains("locked"), "{}", out.failed());
    drop(_w);
    assert_eq!(read_all(&log).len(), 10);
}

#[test]
fn cut_and_reset_of_a_directory_that_is_not_a_log_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let out = run(&[s("cut"), log_arg(&missing), s("--from"), s("0"), s("--yes")]);
    out.failed();
    let out = run(&[s("reset"), log_arg(&missing), s("--at"), s("5"), s("--yes")]);
    out.failed();
    assert!(!missing.exists());
}

#[test]
fn reset_past_the_end_empties_the_log_and_continues_at_the_seq() {
    let (_tmp, log) = ten_records();
    let dry = run(&[s("reset"), log_arg(&log), s("--at"), s("100")]);
    assert!(
        dry.ok().contains("would remove every record (0..10)"),
        "{}",
        dry.ok()
    );
    assert_eq!(read_all(&log).len(), 10);
    let out = run(&[s("reset"), log_arg(&log), s("--at"), s("100"), s("--yes")]);
    assert!(
        out.ok().contains("the log now holds seqs 100..100"),
        "{}",
        out.ok()
    );
    assert!(read_all(&log).is_empty());
    let mut w = Writer::open(&log, Options::new()).unwrap();
    assert_eq!(w.append(b"new").unwrap(), 100);
}

#[test]
fn bad_values_are_usage_errors() {
    let (_tmp, log) = ten_records();
    run(&[s("cut"), log_arg(&log), s("--from"), s("x")]).usage_error();
    run(&[s("cut"), log_arg(&log)]).usage_error();
    run(&[s("reset"), log_arg(&log), s("--at"), s("-1")]).usage_error();
}

fn s(x: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(x)
}

#[test]
fn verify_names_segments_a_crash_left_before_a_reset_and_the_next_writer_removes_them() {
    // What a crash between a reset's commit point and the removal of the older files
    // leaves: the old segments beside the new one that starts the log.
    let (_old_tmp, old) = ten_records();
    let (_tmp, log) = new_log();
    let mut w = Writer::open(&log, Options::new()).unwrap();
    w.reset(1000).unwrap();
    w.append(b"after").unwrap();
    w.close().unwrap();
    let old_seg = old.join(SEG0);
    std::fs::copy(&old_seg, log.join(SEG0)).unwrap();
    let out = run(&[s("verify"), log_arg(&log)]);
    let text = out.ok();
    assert!(
        text.contains("before reset") && text.contains(SEG0),
        "{text}"
    );
    // Readers see only the reset log; the next writer removes the old file.
    let mut r = applog::Reader::open(&log).unwrap();
    assert_eq!(
        r.next().unwrap().map(|x| (x.seq(), x.data().to_vec())),
        Some((1000, b"after".to_vec()))
    );
    assert!(r.next().unwrap().is_none());
    drop(Writer::open(&log, Options::new()).unwrap());
    assert!(!log.join(SEG0).exists());
    let out = run(&[s("verify"), log_arg(&log)]);
    assert!(!out.ok().contains("before reset"));
}
