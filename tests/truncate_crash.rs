//! Every crash point of a cut of the log's end (`Writer::truncate_back`), enumerated through
//! the I/O seam (`FaultFs` writes out the durable image after every call that changes it).
//!
//! Pass criterion: every image recovers; it holds either the log before the cut or the log
//! after it, never a mix; every record acknowledged durable is there; once an image shows
//! the cut, every later one does (no removed record comes back); after `truncate_back`
//! returned, no record it removed is ever seen again.

mod common;

use std::path::Path;
use std::sync::Arc;

use applog::internals::FaultFs;
use applog::{Options, Reader, Writer};
use common::crash_images;

const OLD: u64 = 200;
const NEW: u64 = 30;

fn old(seq: u64) -> Vec<u8> {
    format!("old{seq}-")
        .repeat((seq % 20 + 1) as usize)
        .into_bytes()
}

fn new(seq: u64) -> Vec<u8> {
    format!("new{seq}").into_bytes()
}

/// Runs a cut at `cut` (after `OLD` synced records, appended in batches of `batch`) and `NEW`
/// appends after it, snapshotting every call, then checks every image. Returns the number of
/// images checked.
fn run(batch: usize, cut_at: impl Fn(&Path) -> u64) -> usize {
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
    let records: Vec<Vec<u8>> = (0..OLD).map(old).collect();
    for chunk in records.chunks(batch) {
        w.append_batch(chunk).unwrap();
    }
    w.sync().unwrap();
    let cut = cut_at(&log);
    let start = fs.calls();
    // A crash before the first call of the cut: the image of now.
    fs.crash_image(images.join(start.to_string())).unwrap();
    fs.snapshot_each_call(&images);
    w.truncate_back(cut).unwrap();
    let done = fs.calls();
    for seq in cut..cut + NEW {
        assert_eq!(w.append(&new(seq)).unwrap(), seq);
    }
    w.sync().unwrap();
    let synced = fs.calls();
    w.close().unwrap();
    check(&images, cut, done, synced)
}

fn check(images: &Path, cut: u64, done: u64, synced: u64) -> usize {
    let dirs = crash_images(images);
    let mut seen_cut = false;
    let (mut befores, mut afters, mut dead_files) = (0, 0, 0);
    for (call, image) in &dirs {
        let log = image.join("log");
        // A crash image is never corruption; files a crash left past the cut are reported.
        let v = applog::verify(&log).unwrap();
        assert!(
            v.is_clean(),
            "image {call} (before reopening): {:?}",
            v.corruptions
        );
        if !v.removed_by_cut.is_empty() {
            assert!(v.next_seq == cut, "image {call}: {v:?}");
            dead_files += 1;
            // A reader, as one that meets the cut while the writer is still removing those
            // files: the records before the cut, then nothing (no error, no removed record).
            let mut r = Reader::open(&log).unwrap();
            let mut n = 0;
            while let Some(rec) = r.next().unwrap_or_else(|e| panic!("image {call}: {e}")) {
                assert_eq!(rec.data(), old(rec.seq()), "image {call}");
                n += 1;
            }
            assert_eq!(n, cut, "image {call}");
        }
        let w = Writer::open(&log, Options::new().segment_pages(1))
            .unwrap_or_else(|e| panic!("image {call}: recovery refused a crash image: {e}"));
        let next = w.next_seq();
        drop(w);
        // Twice: what the first open finished (a cut a crash interrupted) stays so.
        for round in 0..2 {
            let mut r = Reader::open(&log).unwrap();
            let mut records = Vec::new();
            while let Some(rec) = r.next().unwrap_or_else(|e| panic!("image {call}: {e}")) {
                records.push((rec.seq(), rec.data().to_vec()));
            }
            for (i, (seq, data)) in records.iter().enumerate() {
                assert_eq!(*seq, i as u64, "image {call}: seqs");
                if *seq < cut {
                    assert_eq!(data, &old(*seq), "image {call}: record {seq}");
                }
            }
            assert!(
                records.len() as u64 >= cut,
                "image {call}: lost records before the cut"
            );
            let after: Vec<_> = records[cut as usize..].iter().collect();
            let is_cut = after.iter().all(|(seq, d)| *d == new(*seq));
            let is_old = after.iter().all(|(seq, d)| *d == old(*seq));
            assert!(
                is_cut || is_old,
                "image {call}: a mix of old and new records after the cut"
            );
            if is_old && !after.is_empty() {
                // The log before the cut: whole.
                assert!(!seen_cut, "image {call}: removed records came back");
                assert!(
                    *call < done,
                    "image {call}: removed records after truncate_back returned"
                );
                assert_eq!(
                    records.len() as u64,
                    OLD,
                    "image {call}: synced records lost"
                );
                befores += 1;
            } else {
                seen_cut = true;
                afters += 1;
            }
            if *call >= synced {
                assert_eq!(
                    records.len() as u64,
                    cut + NEW,
                    "image {call}: synced new records lost"
                );
            }
            assert_eq!(
                records.len() as u64,
                next,
                "image {call} (round {round}): reader and writer disagree"
            );
            let v = applog::verify(&log).unwrap();
            assert!(v.is_clean(), "image {call}: {:?}", v.corruptions);
        }
    }
    // Both sides of the commit point were crashed at.
    assert!(
        befores > 0 && afters > 0,
        "{befores} images before the cut, {afters} after"
    );
    println!("images with files left past the cut: {dead_files}");
    dirs.len()
}

#[test]
fn every_crash_point_of_a_cut_inside_a_segment_leaves_the_log_before_or_after_it() {
    let n = run(1, |log| {
        let v = applog::verify(log).unwrap();
        // Inside the third segment, so that later segments are removed.
        let s = &v.segments[2];
        assert!(s.records > 2);
        s.base_seq + s.records / 2
    });
    assert!(n > 5, "only {n} crash points");
    println!("crash points checked: {n}");
}

#[test]
fn every_crash_point_of_a_cut_at_a_segment_base_leaves_the_log_before_or_after_it() {
    let n = run(1, |log| applog::verify(log).unwrap().segments[2].base_seq);
    assert!(n > 5, "only {n} crash points");
    println!("crash points checked: {n}");
}

#[test]
fn every_crash_point_of_a_cut_of_every_record_leaves_the_log_before_or_after_it() {
    let n = run(1, |_| 0);
    assert!(n > 5, "only {n} crash points");
    println!("crash points checked: {n}");
}

#[test]
fn every_crash_point_of_a_cut_inside_a_batch_leaves_the_log_before_or_after_it() {
    const BATCH: u64 = 7;
    let n = run(BATCH as usize, |log| {
        let v = applog::verify(log).unwrap();
        let s = &v.segments[2];
        assert!(s.records > 2);
        // Not a batch's first record: the cut ends the batch.
        let cut = s.base_seq + s.records / 2;
        let cut = if cut % BATCH == 0 { cut + 1 } else { cut };
        assert!(cut < s.base_seq + s.records);
        cut
    });
    assert!(n > 5, "only {n} crash points");
    println!("crash points checked: {n}");
}
