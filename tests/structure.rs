//! Structural damage: a segment missing from the middle of a log, or two segments whose seq
//! ranges overlap.
//!
//! Fault model: another program (or an operator) deletes a segment file, or drops a segment of
//! another log into the directory. Pass criterion: `verify` reports it; every reader (`Reader`,
//! `Tailer`, `applog tail` with `--from`, `-n` and `-f`, `applog copy`) and `Writer::open` stop
//! there with a corruption error naming a file, never presenting a partial log as complete;
//! nothing is modified.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use applog::{Error, Options, Reader, Tailer, Writer};
use common::cli::*;
use common::*;

/// A log of `n` records of `len` bytes in one-page segments, synced; returns the segment
/// files, oldest first.
fn log_of(dir: &Path, n: u64, len: usize) -> Vec<PathBuf> {
    let mut w = Writer::open(dir, Options::new().segment_pages(1)).unwrap();
    for seq in 0..n {
        w.append(&payload(seq, len)).unwrap();
    }
    w.close().unwrap();
    segments(dir)
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// Reads until an error; panics if the reader ends (`Ok(None)`) instead.
fn read_to_error(dir: &Path) -> (u64, Error) {
    let mut r = Reader::open(dir).unwrap();
    let mut n = 0;
    loop {
        match r.next() {
            Ok(Some(rec)) => {
                assert_eq!(rec.data(), payload(rec.seq(), rec.data().len()));
                n += 1;
            }
            Ok(None) => panic!("the reader presented {n} records as the whole log"),
            Err(e) => return (n, e),
        }
    }
}

fn assert_stops_everywhere(dir: &Path, culprit: &str, seek_to: u64) {
    let before = snapshot(dir);
    let report = applog::verify(dir).unwrap();
    assert!(!report.is_clean(), "verify: {report:?}");
    let (_, e) = read_to_error(dir);
    assert!(matches!(e, Error::Corrupt { .. }), "reader: {e:?}");
    assert!(e.to_string().contains(culprit), "reader: {e}");
    // A tailer from the start stops too, rather than waiting forever.
    let mut t = Tailer::open(dir, 0).unwrap();
    let err = loop {
        match t.next_timeout(Duration::from_secs(5)) {
            Ok(Some(_)) => {}
            Ok(None) => panic!("the tailer waits at the damage"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Corrupt { .. }), "tailer: {err:?}");
    // Seeking past the damage must not land behind it as if nothing were wrong.
    let mut r = Reader::open(dir).unwrap();
    let seek = r.seek(seek_to);
    let read = seek.and_then(|()| r.next().map(|_| ()));
    assert!(matches!(read, Err(Error::Corrupt { .. })), "seek: {read:?}");
    let err = Writer::open(dir, Options::new()).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "writer: {err:?}");
    // The command line: each reading command fails with exit 1.
    for args in [
        vec!["tail", "--from", "0"],
        vec!["tail", "-n", "2"],
        vec!["verify"],
    ] {
        let mut full: Vec<std::ffi::OsString> = vec![args[0].into(), dir.as_os_str().into()];
        full.extend(args[1..].iter().map(|a| a.into()));
        let out = run(&full);
        assert_eq!(out.code, 1, "applog {args:?}: {out:?}");
    }
    let dest = dir.with_extension("copy");
    let out = run(&[
        std::ffi::OsStr::new("copy"),
        dir.as_os_str(),
        dest.as_os_str(),
    ]);
    assert_eq!(out.code, 1, "applog copy: {out:?}");
    assert!(!dest.exists());
    assert_eq!(snapshot(dir), before, "nothing may be modified");
}

#[test]
fn a_missing_middle_segment_stops_every_reader_and_the_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let segs = log_of(&dir, 300, 100);
    assert!(segs.len() >= 6, "{segs:?}");
    let gone = segs[2].clone();
    std::fs::remove_file(&gone).unwrap();
    let after: u64 = segs[3]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_stops_everywhere(&dir, "missing", after + 1);
}

#[test]
fn overlapping_segments_stop_every_reader_and_the_writer() {
    // A segment of another log whose first seq lies inside this log's first segment.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let segs = log_of(&dir, 300, 100);
    let other = tmp.path().join("other");
    // One record a segment: the other log has a segment starting at every seq.
    let theirs = log_of(&other, 20, 3000);
    let stray = &theirs[15];
    let name = stray.file_name().unwrap();
    assert!(dir.join(name) > segs[0] && dir.join(name) < segs[1]);
    std::fs::copy(stray, dir.join(name)).unwrap();
    assert_stops_everywhere(&dir, "overlap", 20);
}

#[test]
fn deleting_or_emptying_the_newest_segment_is_noticed() {
    for empty_it in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        // 200-byte records: no segment is full to its last byte, so each one ends in a seal.
        let segs = log_of(&dir, 100, 200);
        let newest = segs.last().unwrap().clone();
        if empty_it {
            std::fs::File::create(&newest).unwrap(); // truncated to zero bytes
        } else {
            std::fs::remove_file(&newest).unwrap();
        }
        let before = snapshot(&dir);
        let report = applog::verify(&dir).unwrap();
        assert!(!report.is_clean(), "verify: {report:?}");
        let err = Writer::open(&dir, Options::new()).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "writer: {err:?}");
        if !empty_it {
            let (_, e) = read_to_error(&dir);
            assert!(e.to_string().contains("missing"), "reader: {e}");
        }
        assert_eq!(snapshot(&dir), before, "nothing may be modified");
        // Explicit recovery makes the log writable again and says it cannot count the loss.
        let r = applog::recover(&dir, applog::RecoveryMode::TruncateAtCorruption).unwrap();
        let t = r.truncation.expect("a truncation");
        assert!(!t.exact, "{t:?}");
        let mut w = Writer::open(&dir, Options::new()).unwrap();
        let next = w.next_seq();
        assert_eq!(w.append(b"after").unwrap(), next);
        w.close().unwrap();
        assert!(applog::verify(&dir).unwrap().is_clean());
    }
}
