//! `Writer::truncate_back`: cutting the log's end (for a Raft node's storage).

mod common;

use applog::{Error, Options, Reader, Writer};
use std::path::Path;

use common::read_all;

const SEG_PAGES: u32 = 1;

fn opts() -> Options {
    Options::new().segment_pages(SEG_PAGES)
}

fn record(i: u64) -> Vec<u8> {
    format!("record {i:04}").into_bytes()
}

/// A log with `n` records of 100 bytes each (several per 4 KiB segment).
fn log_with(dir: &Path, n: u64) -> Writer {
    let mut w = Writer::open(dir, opts()).unwrap();
    for i in 0..n {
        let mut r = record(i);
        r.resize(100, b'.');
        assert_eq!(w.append(&r).unwrap(), i);
    }
    w
}

fn seqs(dir: &Path) -> Vec<u64> {
    read_all(dir).into_iter().map(|(s, _)| s).collect()
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn records_after_the_cut_are_gone_and_appending_continues_at_the_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    assert!(segment_names(dir).len() > 3, "{:?}", segment_names(dir));
    w.truncate_back(42).unwrap();
    assert_eq!(w.next_seq(), 42);
    assert_eq!(seqs(dir), (0..42).collect::<Vec<_>>());
    // The records before the cut are durable; the removed ones do not count.
    assert_eq!(applog::durable_seq(dir).unwrap(), 42);
    assert_eq!(w.append(b"new 42").unwrap(), 42);
    assert_eq!(w.append(b"new 43").unwrap(), 43);
    let all = read_all(dir);
    assert_eq!(all.len(), 44);
    assert_eq!(all[42].1, b"new 42");
    assert_eq!(&all[41].1[..11], &record(41)[..]);
    w.close().unwrap();

    // Reopened: the same log, and it goes on where it was.
    let mut w = Writer::open(dir, opts()).unwrap();
    assert_eq!(w.next_seq(), 44);
    assert_eq!(w.append(b"new 44").unwrap(), 44);
    drop(w);
    let all = read_all(dir);
    assert_eq!(all.len(), 45);
    assert_eq!(all[43].1, b"new 43");
    let v = applog::verify(dir).unwrap();
    assert!(v.is_clean(), "{:?}", v.corruptions);
    assert_eq!(v.next_seq, 45);
}

#[test]
fn a_cut_survives_a_writer_dropped_without_close() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 30);
    w.truncate_back(10).unwrap();
    drop(w);
    let w = Writer::open(dir, opts()).unwrap();
    assert_eq!(w.next_seq(), 10);
    drop(w);
    assert_eq!(seqs(dir), (0..10).collect::<Vec<_>>());
}

#[test]
fn cutting_at_a_segment_base_replaces_that_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    let names = segment_names(dir);
    let base: u64 = names[2].trim_end_matches(".seg").parse().unwrap();
    w.truncate_back(base).unwrap();
    assert_eq!(w.next_seq(), base);
    assert_eq!(segment_names(dir), names[..3].to_vec());
    assert_eq!(w.append(b"again").unwrap(), base);
    drop(w);
    let all = read_all(dir);
    assert_eq!(all.len() as u64, base + 1);
    assert_eq!(all[base as usize].1, b"again");
    let w = Writer::open(dir, opts()).unwrap();
    assert_eq!(w.next_seq(), base + 1);
}

#[test]
fn cutting_every_record_keeps_the_first_seq() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    let names = segment_names(dir);
    w.truncate_front(50).unwrap();
    let first = w.first_seq();
    assert!(first > 0);
    w.truncate_back(first).unwrap();
    assert_eq!((w.first_seq(), w.next_seq()), (first, first));
    assert!(read_all(dir).is_empty());
    assert_eq!(w.append(b"x").unwrap(), first);
    drop(w);
    assert_eq!(seqs(dir), vec![first]);
    assert!(segment_names(dir).len() < names.len());
}

#[test]
fn cutting_at_next_seq_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 20);
    let names = segment_names(dir);
    w.truncate_back(20).unwrap();
    assert_eq!(w.next_seq(), 20);
    assert_eq!(segment_names(dir), names);
    assert_eq!(w.append(b"x").unwrap(), 20);
}

#[test]
fn cutting_outside_the_log_is_an_error_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    w.truncate_front(50).unwrap();
    let first = w.first_seq();
    let err = w.truncate_back(101).unwrap_err();
    assert!(
        matches!(
            err,
            Error::SeqNotAppended {
                seq: 101,
                next_seq: 100
            }
        ),
        "{err:?}"
    );
    let err = w.truncate_back(first - 1).unwrap_err();
    assert!(
        matches!(err, Error::SeqBeforeStart { seq, first_seq } if seq == first - 1 && first_seq == first),
        "{err:?}"
    );
    assert_eq!(w.append(b"x").unwrap(), 100);
}

#[test]
fn a_cut_inside_a_batch_keeps_the_batch_records_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = Writer::open(dir, opts()).unwrap();
    w.append(b"a").unwrap();
    assert_eq!(w.append_batch(&[b"b", b"c", b"d"]).unwrap(), 1..4);
    w.append(b"e").unwrap();
    // A reader that read into the batch before the cut.
    let mut early = Reader::open(dir).unwrap();
    assert_eq!(early.next().unwrap().map(|r| r.seq()), Some(0));
    assert_eq!(early.next().unwrap().map(|r| r.seq()), Some(1));
    w.truncate_back(2).unwrap();
    assert_eq!(w.next_seq(), 2);
    // The batch ends at the cut: "b" stays, for the writer, a new reader and recovery.
    assert_eq!(w.append_batch(&[b"C", b"D"]).unwrap(), 2..4);
    let mut late = Reader::open(dir).unwrap();
    let mut got = Vec::new();
    while let Some(r) = late.next().unwrap() {
        got.push(r.data().to_vec());
    }
    assert_eq!(
        got,
        vec![b"a".to_vec(), b"b".to_vec(), b"C".to_vec(), b"D".to_vec()]
    );
    // The reader that stood inside the batch goes on at the cut, in the new segment.
    assert_eq!(
        early.next().unwrap().map(|r| r.data().to_vec()),
        Some(b"C".to_vec())
    );
    drop(w);
    assert_eq!(seqs(dir), vec![0, 1, 2, 3]);
    let report = applog::verify(dir).unwrap();
    assert!(report.is_clean(), "{report:?}");
    // Cutting inside the batch again, at its second record, after a reopen.
    let mut w = Writer::open(dir, opts()).unwrap();
    w.truncate_back(3).unwrap();
    drop(w);
    assert_eq!(read_all(dir).len(), 3);
}

#[test]
fn cutting_twice_in_the_same_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    w.truncate_back(60).unwrap();
    w.append(b"60").unwrap();
    w.append(b"61").unwrap();
    w.truncate_back(55).unwrap();
    assert_eq!(w.append(b"55").unwrap(), 55);
    drop(w);
    let all = read_all(dir);
    assert_eq!(all.len(), 56);
    assert_eq!(all[55].1, b"55");
    let v = applog::verify(dir).unwrap();
    assert!(v.is_clean(), "{:?}", v.corruptions);
    assert_eq!(Writer::open(dir, opts()).unwrap().next_seq(), 56);
}

#[test]
fn recover_keeps_a_cut_log_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    w.truncate_back(42).unwrap();
    w.append(b"new 42").unwrap();
    w.close().unwrap();
    for mode in [
        applog::RecoveryMode::CutTornTail,
        applog::RecoveryMode::TruncateAtCorruption,
    ] {
        let report = applog::recover(dir, mode).unwrap();
        assert_eq!(report.next_seq, 43);
        assert!(report.truncation.is_none() && report.torn_tail.is_none());
        let all = read_all(dir);
        assert_eq!(all.len(), 43);
        assert_eq!(all[42].1, b"new 42");
    }
}

#[test]
fn a_named_consumer_past_the_cut_is_moved_back_to_it_and_reads_the_new_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 20);
    let mut c = applog::Consumer::open(dir, "indexer").unwrap();
    while c.try_next().unwrap().is_some() {}
    c.commit().unwrap();
    drop(c);
    let mut before = applog::Consumer::open(dir, "early").unwrap();
    for _ in 0..5 {
        before.try_next().unwrap();
    }
    before.commit().unwrap();
    drop(before);
    w.truncate_back(10).unwrap();
    w.append(b"new 10").unwrap();
    let positions: Vec<_> = applog::consumers(dir)
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.next_seq))
        .collect();
    assert_eq!(
        positions,
        vec![("early".to_string(), 5), ("indexer".to_string(), 10)]
    );
    let mut c = applog::Consumer::open(dir, "indexer").unwrap();
    assert_eq!(
        c.try_next().unwrap().map(|r| r.data().to_vec()),
        Some(b"new 10".to_vec())
    );
}
