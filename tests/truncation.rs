//! Truncation, zero-filled and garbage tails, files longer than their data, crafted frame
//! headers.
//!
//! Fault model: a segment file cut short at every byte offset of its unsynced tail (and inside
//! synced data); a tail of zeros or garbage from any offset inside the unsynced records; stale
//! bytes after the last record; a file longer than its data (extra zero pages, or extended
//! past its reservation); frame headers crafted to lie: length `u32::MAX`, the largest length
//! (2^31 - 1), a length past the reservation or past the file size, a seal in a segment with
//! no record.
//! Pass criterion: reopening yields exactly the complete records before the damage (P1, P3),
//! never fewer than were synced (P2); a torn tail is zeroed in place, the file never shrinks,
//! appending works afterwards and `verify` is clean; damage inside synced data is
//! `Error::Corrupt` naming the segment and the frame's byte offset, and every file stays
//! byte-for-byte unchanged; nothing panics or hangs (P4).

mod common;

use applog::{Error, Options, Writer};
use common::fixture::*;
use common::*;

#[test]
fn truncation_at_every_byte_of_the_unsynced_tail() {
    let lens: Vec<usize> = (0..40).map(|i| [3, 40, 0, 200, 17][i % 5]).collect();
    let f = fixture(&lens, 30);
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    let last_seg = placed.last().unwrap().segment;
    let first_unsynced = &placed[f.synced];
    assert_eq!(
        first_unsynced.segment, last_seg,
        "fixture keeps the tail in one segment"
    );
    let end = placed.last().map(|p| p.offset + frame_len(p.len)).unwrap();
    let work = f._tmp.path().join("work");
    for cut in first_unsynced.offset..=end {
        let _ = std::fs::remove_dir_all(&work);
        copy_dir(&f.dir, &work);
        let seg = seg_path(&work, last_seg);
        let orig = std::fs::read(&seg).unwrap();
        truncate(&seg, cut);
        let n = survivors(&placed, last_seg, &orig, &orig[..cut as usize]);
        {
            let w = Writer::open(&work, Options::new().segment_pages(SEG_PAGES)).unwrap();
            assert_eq!(w.next_seq(), n as u64, "cut at {cut}");
        }
        assert!(
            std::fs::metadata(&seg).unwrap().len() >= cut,
            "never shrinks"
        );
        expect_prefix(&work, &lens, n);
        reopen_and_append(&work, n);
    }
}

#[test]
fn truncation_inside_synced_data_is_corruption() {
    let lens = vec![100; 20];
    let f = fixture(&lens, 15);
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    let seg = seg_path(&f.dir, 0);
    // Cut in the middle of record 5, which was synced.
    let cut = placed[5].offset + 20;
    truncate(&seg, cut);
    let before = snapshot(&f.dir);
    let err = Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES)).unwrap_err();
    match &err {
        Error::Corrupt {
            segment, offset, ..
        } => {
            assert_eq!(segment, &seg);
            assert_eq!(*offset, placed[5].offset);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&placed[5].offset.to_string()),
        "{err}"
    );
    assert_eq!(snapshot(&f.dir), before, "nothing modified");
}

fn fill_tail(f: &Fixture, garbage: bool) {
    let lens = &f.lens;
    let placed = place(lens, page() * u64::from(SEG_PAGES));
    let last_seg = placed.last().unwrap().segment;
    let end = placed.last().map(|p| p.offset + frame_len(p.len)).unwrap();
    let work = f
        ._tmp
        .path()
        .join(if garbage { "garbage" } else { "zeros" });
    let mut cases = 0;
    for p in &placed[f.synced..] {
        // Damage from somewhere inside record synced+k to the end of the file.
        for delta in [0, 1, 4, 7, 8, 9] {
            let from = p.offset + delta;
            if from >= end {
                continue;
            }
            let _ = std::fs::remove_dir_all(&work);
            copy_dir(&f.dir, &work);
            let seg = seg_path(&work, last_seg);
            let size = std::fs::metadata(&seg).unwrap().len();
            let mut bytes = vec![0u8; (size - from) as usize];
            if garbage {
                bytes = payload(from ^ 0x5555, bytes.len());
            }
            let orig = std::fs::read(&seg).unwrap();
            write_at(&seg, from, &bytes);
            let damaged = std::fs::read(&seg).unwrap();
            let n = survivors(&placed, last_seg, &orig, &damaged);
            assert!(n >= f.synced);
            Writer::open(&work, Options::new().segment_pages(SEG_PAGES)).unwrap();
            assert_eq!(
                std::fs::metadata(&seg).unwrap().len(),
                size,
                "size unchanged"
            );
            // The cut is zeroed in place.
            let after = std::fs::read(&seg).unwrap();
            let cut = end_of(&placed, n) as usize;
            assert!(
                after[cut..].iter().all(|&b| b == 0),
                "tail zeroed (damage from {from}, {n} survive)"
            );
            expect_prefix(&work, lens, n);
            reopen_and_append(&work, n);
            cases += 1;
        }
    }
    assert!(cases > 40);
}

#[test]
fn zero_filled_tail_is_cut() {
    let lens: Vec<usize> = (0..30).map(|i| [5, 64, 0, 300][i % 4]).collect();
    fill_tail(&fixture(&lens, 20), false);
}

#[test]
fn garbage_tail_is_cut() {
    let lens: Vec<usize> = (0..30).map(|i| [5, 64, 0, 300][i % 4]).collect();
    fill_tail(&fixture(&lens, 20), true);
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    // Power cut: a page written after the last record survived with stale bytes.
    let lens = vec![50; 10];
    let f = fixture(&lens, 10);
    let seg = seg_path(&f.dir, 0);
    let size = std::fs::metadata(&seg).unwrap().len();
    write_at(&seg, size - 100, b"stale bytes");
    let report = applog::verify(&f.dir).unwrap();
    assert!(
        report.is_clean(),
        "a torn tail is not corruption: {report:?}"
    );
    let tail = report.torn_tail.expect("torn tail reported");
    assert_eq!(tail.segment, seg);
    Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES)).unwrap();
    assert!(std::fs::read(&seg).unwrap()[(size - 100) as usize..]
        .iter()
        .all(|&b| b == 0));
    expect_prefix(&f.dir, &lens, 10);
}
