//! Every crash point of a reset past the log's end (`Writer::reset`), enumerated through the
//! I/O seam (`FaultFs` writes out the durable image after every call that changes it).
//!
//! Pass criterion: every image recovers, and holds either the whole log before the reset or
//! the reset log (starting at the reset's seq), never a mix; once an image shows the reset,
//! every later one does (no removed record comes back); after `reset` returned, no removed
//! record is seen again; records synced after the reset are there.

mod common;

use std::path::Path;
use std::sync::Arc;

use applog::internals::FaultFs;
use applog::{Options, Reader, Writer};
use common::crash_images;

const OLD: u64 = 120;
const AT: u64 = 10_000;
const NEW: u64 = 20;

fn old(seq: u64) -> Vec<u8> {
    format!("old{seq}-")
        .repeat((seq % 15 + 1) as usize)
        .into_bytes()
}

fn new(seq: u64) -> Vec<u8> {
    format!("new{seq}").into_bytes()
}

fn read_all(log: &Path, call: u64) -> Vec<(u64, Vec<u8>)> {
    let mut r = Reader::open(log).unwrap_or_else(|e| panic!("image {call}: {e}"));
    let mut out = Vec::new();
    while let Some(rec) = r.next().unwrap_or_else(|e| panic!("image {call}: {e}")) {
        out.push((rec.seq(), rec.data().to_vec()));
    }
    out
}

#[test]
fn every_crash_point_of_a_reset_leaves_the_old_log_or_the_reset_one() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let images = tmp.path().join("images");
    std::fs::create_dir(&root).unwrap();
    let fs = Arc::new(FaultFs::new(&root).unwrap());
    let log = root.join("log");
    let mut w = Writer::open(
        &log,
        Options::new().segment_pages(1).file_system(fs.clone()),
    )
    .unwrap();
    for seq in 0..OLD {
        w.append(&old(seq)).unwrap();
    }
    w.sync().unwrap();
    let start = fs.calls();
    fs.crash_image(images.join(start.to_string())).unwrap();
    fs.snapshot_each_call(&images);
    w.reset(AT).unwrap();
    let done = fs.calls();
    for seq in AT..AT + NEW {
        assert_eq!(w.append(&new(seq)).unwrap(), seq);
    }
    w.sync().unwrap();
    let synced = fs.calls();
    w.close().unwrap();

    let dirs = crash_images(&images);
    let (mut befores, mut afters, mut leftovers) = (0, 0, 0);
    let mut seen_reset = false;
    for (call, image) in &dirs {
        let log = image.join("log");
        let v = applog::verify(&log).unwrap();
        assert!(
            v.is_clean(),
            "image {call} (before reopening): {:?}",
            v.corruptions
        );
        if !v.removed_by_reset.is_empty() {
            leftovers += 1;
            // Readers already see the reset log: nothing of the old one.
            assert!(
                read_all(&log, *call).iter().all(|(seq, _)| *seq >= AT),
                "image {call}"
            );
        }
        let w = Writer::open(&log, Options::new().segment_pages(1))
            .unwrap_or_else(|e| panic!("image {call}: recovery refused a crash image: {e}"));
        let (first, next) = (w.first_seq(), w.next_seq());
        drop(w);
        let records = read_all(&log, *call);
        if first < AT {
            // Before the commit point: the old log, whole (every record was synced before
            // the reset's first change).
            assert!(!seen_reset, "image {call}: removed records came back");
            assert!(
                *call < done,
                "image {call}: old records after reset returned"
            );
            let want: Vec<_> = (0..OLD).map(|s| (s, old(s))).collect();
            assert!(records == want, "image {call}: the old log is not whole");
            befores += 1;
        } else {
            seen_reset = true;
            assert_eq!(first, AT, "image {call}");
            for (i, (seq, data)) in records.iter().enumerate() {
                assert_eq!(*seq, AT + i as u64, "image {call}");
                assert_eq!(data, &new(*seq), "image {call}");
            }
            if *call >= synced {
                assert_eq!(
                    records.len() as u64,
                    NEW,
                    "image {call}: synced records lost"
                );
            }
            afters += 1;
        }
        let expected_next = records.last().map_or(first, |r| r.0 + 1);
        assert_eq!(next, expected_next, "image {call}");
        let v = applog::verify(&log).unwrap();
        assert!(
            v.is_clean() && v.removed_by_reset.is_empty(),
            "image {call}: {v:?}"
        );
    }
    assert!(
        befores > 0 && afters > 0,
        "{befores} images before, {afters} after"
    );
    println!(
        "{} crash points; {leftovers} with files left before the reset",
        dirs.len()
    );
}
