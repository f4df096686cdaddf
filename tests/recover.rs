//! `applog::recover`: explicit recovery without opening a writer.
//!
//! Fault model: what a crash leaves (a torn tail of garbage after the last record, records
//! appended but not synced) and damage inside synced data (a flipped payload byte, a garbage
//! frame header, a damaged segment header), in one segment and across many small segments.
//! Pass criterion: a torn tail is cut and reported with its file and offset; everything left
//! is durable afterwards (each synced mark covers its data); corruption is refused with
//! `Error::Corrupt` and every file stays byte-for-byte unchanged, unless
//! `RecoveryMode::TruncateAtCorruption` is asked for, which keeps exactly the records before
//! the first damaged frame, reports how many it dropped, and leaves a log that verifies clean
//! and takes appends at the cut seq. A locked or missing log is an error and nothing changes.

mod common;

use std::path::{Path, PathBuf};

use applog::{recover, Error, Options, RecoveryMode, Writer};
use common::*;

/// A log of `n` records of `len` bytes in segments of `pages` pages, all synced.
fn synced_log(n: u64, len: usize, pages: u32) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = Writer::open(&dir, Options::new().segment_pages(pages)).unwrap();
    for seq in 0..n {
        w.append(&payload(seq, len)).unwrap();
    }
    w.close().unwrap();
    (tmp, dir)
}

fn expect_records(dir: &Path, n: u64, len: usize) {
    let got = read_all(dir);
    assert_eq!(got.len() as u64, n);
    for (seq, data) in got {
        assert_eq!(data, payload(seq, len), "seq {seq}");
    }
}

/// Every segment's synced mark covers its data (its seal included).
fn assert_all_durable(dir: &Path) {
    let report = applog::verify(dir).unwrap();
    assert!(
        report.is_clean() && report.torn_tail.is_none(),
        "{report:?}"
    );
    for s in &report.segments {
        let end = s.data_end + if s.sealed { 8 } else { 0 };
        assert!(
            s.synced_mark >= end.min(s.reservation),
            "not durable: {s:?}"
        );
    }
}

fn reopen_and_append(dir: &Path, next: u64) {
    let mut w = Writer::open(dir, Options::new()).unwrap();
    assert_eq!(w.next_seq(), next);
    assert_eq!(w.append(b"after").unwrap(), next);
    w.close().unwrap();
    assert!(applog::verify(dir).unwrap().is_clean());
}

#[test]
fn a_clean_log_is_left_as_it_is() {
    let (_tmp, dir) = synced_log(10, 50, 4);
    let before = snapshot(&dir);
    let report = recover(&dir, RecoveryMode::CutTornTail).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.truncation, None);
    assert_eq!((report.first_seq, report.next_seq), (0, 10));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn a_torn_tail_is_cut_and_the_unsynced_records_made_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = Writer::open(&dir, Options::new().segment_pages(1)).unwrap();
    for seq in 0..20 {
        w.append(&payload(seq, 300)).unwrap();
    }
    w.sync().unwrap();
    for seq in 20..40 {
        w.append(&payload(seq, 300)).unwrap();
    }
    drop(w); // a crash: 20 records appended after the last sync, across rollovers
    let last = applog::verify(&dir).unwrap().segments.pop().unwrap();
    write_at(&last.path, last.data_end, &[0xA5; 16]);

    let report = recover(&dir, RecoveryMode::CutTornTail).unwrap();
    let tail = report.torn_tail.expect("a torn tail");
    assert_eq!(
        (tail.segment, tail.offset),
        (last.path.clone(), last.data_end)
    );
    assert_eq!(report.torn_bytes, last.file_size - last.data_end);
    assert_eq!(report.next_seq, 40);
    assert!(std::fs::read(&last.path).unwrap()[last.data_end as usize..]
        .iter()
        .all(|&b| b == 0));
    assert_all_durable(&dir);
    expect_records(&dir, 40, 300);
    reopen_and_append(&dir, 40);
}

#[test]
fn corruption_is_refused_and_nothing_changes() {
    let (_tmp, dir) = synced_log(10, 50, 4);
    let seg = seg_path(&dir, 0);
    let third = HEADER + 2 * frame_len(50);
    flip(&seg, third + 8 + 10, 0x01);
    let before = snapshot(&dir);
    match recover(&dir, RecoveryMode::CutTornTail) {
        Err(Error::Corrupt {
            segment, offset, ..
        }) => assert_eq!((segment, offset), (seg, third)),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn truncation_keeps_the_records_before_a_bad_frame() {
    let (_tmp, dir) = synced_log(10, 50, 4);
    let seg = seg_path(&dir, 0);
    let fourth = HEADER + 3 * frame_len(50);
    flip(&seg, fourth + 8 + 49, 0x80);
    let size = std::fs::metadata(&seg).unwrap().len();

    let report = recover(&dir, RecoveryMode::TruncateAtCorruption).unwrap();
    let t = report.truncation.expect("a truncation");
    assert_eq!(
        (t.corruption.segment.clone(), t.corruption.offset),
        (seg.clone(), fourth)
    );
    assert_eq!((t.segment, t.offset, t.seq), (seg.clone(), fourth, 3));
    assert_eq!((t.records_dropped, t.exact), (7, true));
    assert!(t.removed_segments.is_empty());
    assert_eq!(report.next_seq, 3);
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        size,
        "never shrinks"
    );
    assert!(std::fs::read(&seg).unwrap()[fourth as usize..]
        .iter()
        .all(|&b| b == 0));
    assert_all_durable(&dir);
    expect_records(&dir, 3, 50);
    reopen_and_append(&dir, 3);
}

#[test]
fn truncation_removes_the_later_segments() {
    // About 3 records of 1000 bytes per 4 KiB segment: many segments.
    let (_tmp, dir) = synced_log(60, 1000, 1);
    let before = applog::verify(&dir).unwrap();
    let n = before.segments.len();
    assert!(n > 10);
    let victim = &before.segments[n / 2];
    flip(&victim.path, HEADER + 8 + 5, 0x10); // the victim's first record
    let report = recover(&dir, RecoveryMode::TruncateAtCorruption).unwrap();
    let t = report.truncation.expect("a truncation");
    assert_eq!((t.seq, t.offset), (victim.base_seq, HEADER));
    assert_eq!((t.records_dropped, t.exact), (60 - victim.base_seq, true));
    let later: Vec<PathBuf> = before.segments[n / 2 + 1..]
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(t.removed_segments, later);
    assert!(later.iter().all(|p| !p.exists()));
    assert_all_durable(&dir);
    expect_records(&dir, victim.base_seq, 1000);
    reopen_and_append(&dir, victim.base_seq);
}

#[test]
fn truncation_at_a_damaged_segment_header_removes_that_segment() {
    // Records of 992 bytes: four 1008-byte frames fill a 4 KiB segment to its last byte, so
    // the segment before the damaged one has no seal to cut.
    let (_tmp, dir) = synced_log(30, 992, 1);
    let before = applog::verify(&dir).unwrap();
    let victim = &before.segments[3];
    flip(&victim.path, 30, 0x01); // inside the salt: the header CRC fails
    assert!(matches!(
        recover(&dir, RecoveryMode::CutTornTail),
        Err(Error::Corrupt { .. })
    ));
    let report = recover(&dir, RecoveryMode::TruncateAtCorruption).unwrap();
    let t = report.truncation.expect("a truncation");
    assert_eq!(t.seq, victim.base_seq);
    assert_eq!(t.corruption.segment, victim.path);
    assert_eq!(
        t.segment, before.segments[2].path,
        "the log ends in the one before"
    );
    assert!(
        t.removed_segments.contains(&victim.path) && !victim.path.exists(),
        "{t:?}"
    );
    assert_eq!((t.records_dropped, t.exact), (30 - victim.base_seq, true));
    assert_all_durable(&dir);
    expect_records(&dir, victim.base_seq, 992);
    reopen_and_append(&dir, victim.base_seq);
}

#[test]
fn damage_that_cannot_be_walked_gives_a_lower_bound() {
    let (_tmp, dir) = synced_log(10, 50, 4);
    let seg = seg_path(&dir, 0);
    let sixth = HEADER + 5 * frame_len(50);
    // Two header words in a row that are no frame at all: nothing after the first damaged
    // frame can be tied to its seq.
    write_at(&seg, sixth, &[0x11; 8]);
    write_at(&seg, sixth + frame_len(50), &[0x11; 8]);
    let report = recover(&dir, RecoveryMode::TruncateAtCorruption).unwrap();
    let t = report.truncation.expect("a truncation");
    assert_eq!((t.seq, t.offset, t.exact), (5, sixth, false));
    assert_eq!(
        t.records_dropped, 0,
        "nothing after the damage could be counted"
    );
    expect_records(&dir, 5, 50);
    reopen_and_append(&dir, 5);
}

#[test]
fn a_locked_missing_or_foreign_log_is_refused() {
    let (tmp, dir) = synced_log(3, 10, 4);
    flip(&seg_path(&dir, 0), HEADER + 8, 0x01);
    let before = snapshot(&dir);
    {
        // A writer cannot open the corrupt log, so hold the lock file directly.
        let lock = std::fs::File::open(dir.join(applog::LOCK_FILE)).unwrap();
        fs2::FileExt::lock_exclusive(&lock).unwrap();
        assert!(matches!(
            recover(&dir, RecoveryMode::TruncateAtCorruption),
            Err(Error::Locked { .. })
        ));
    }
    assert_eq!(snapshot(&dir), before);

    let missing = tmp.path().join("missing");
    assert!(matches!(
        recover(&missing, RecoveryMode::CutTornTail),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound
    ));
    assert!(!missing.exists());
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        recover(&empty, RecoveryMode::CutTornTail),
        Err(Error::NotALog { .. })
    ));
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn a_lost_seal_is_rewritten_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = Writer::open(&dir, Options::new().segment_pages(1)).unwrap();
    for seq in 0..12 {
        w.append(&payload(seq, 900)).unwrap();
    }
    drop(w); // no sync: no segment's seal is covered by a synced mark
    let before = applog::verify(&dir).unwrap();
    let first = &before.segments[0];
    assert!(first.sealed && first.data_end + 8 <= first.reservation);
    assert!(before.segments.len() > 2);
    // A crash between creating the successor and sealing this segment.
    write_at(&first.path, first.data_end, &[0; 8]);

    let report = recover(&dir, RecoveryMode::CutTornTail).unwrap();
    assert_eq!(report.resealed, vec![first.path.clone()]);
    assert_eq!((report.torn_tail, report.next_seq), (None, 12));
    assert_all_durable(&dir);
    expect_records(&dir, 12, 900);
}

#[test]
fn a_flipped_bit_in_a_synced_mark_loses_no_record() {
    // The mark is damaged, no frame is: every reader still sees every record.
    let (_tmp, dir) = synced_log(15, 50, 4);
    let seg = seg_path(&dir, 0);
    let mut word = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(&seg).unwrap(), &mut word, 48)
        .unwrap();
    word[6] ^= 0x01; // one bit of the mark's check
    write_at(&seg, 48, &word);
    assert_eq!(read_all(&dir).len(), 15, "readers see every record");
    let v = applog::verify(&dir).unwrap();
    assert!(
        v.corruptions
            .iter()
            .any(|c| c.offset == 48 && c.segment == seg),
        "{v:?}"
    );
    assert_eq!(v.next_seq, 15);
    assert!(matches!(
        recover(&dir, RecoveryMode::CutTornTail),
        Err(Error::Corrupt { offset: 48, .. })
    ));
    // The command line says what it did, and that nothing was dropped.
    let copy = dir.with_extension("copy");
    copy_dir(&dir, &copy);
    let out = common::cli::run(&[
        std::ffi::OsStr::new("recover"),
        copy.as_os_str(),
        std::ffi::OsStr::new("--truncate-at-corruption"),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("remarked") && out.stdout.contains("no record was dropped"),
        "{out:?}"
    );
    let report = recover(&dir, RecoveryMode::TruncateAtCorruption).unwrap();
    assert!(report.truncation.is_none(), "{report:?}");
    assert_eq!(report.repaired_marks, vec![seg.clone()]);
    assert_eq!(report.next_seq, 15);
    assert_all_durable(&dir);
    expect_records(&dir, 15, 50);
    reopen_and_append(&dir, 15);
}

#[test]
fn a_damaged_length_is_not_trusted_to_count_what_is_dropped() {
    // A flipped bit in the length field of the 3rd of 15 frames: stepping over the frame by
    // that length lands in the middle of the next ones. The count must still be exact.
    let (_tmp, dir) = synced_log(15, 50, 4);
    let seg = seg_path(&dir, 0);
    let third = HEADER + 2 * frame_len(50);
    let mut word = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(
        &std::fs::File::open(&seg).unwrap(),
        &mut word,
        third,
    )
    .unwrap();
    word[1] ^= 0x02; // length 50 + 512
    write_at(&seg, third, &word);
    let report = recover(&dir, RecoveryMode::TruncateAtCorruption).unwrap();
    let t = report.truncation.expect("a truncation");
    assert_eq!((t.seq, t.offset), (2, third));
    assert_eq!((t.records_dropped, t.exact), (13, true), "{t:?}");
    expect_records(&dir, 2, 50);
    reopen_and_append(&dir, 2);
}
