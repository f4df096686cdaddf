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

#[test]
fn files_longer_than_their_data_lose_nothing() {
    // Extra zero pages after the data, or a file extended past its reservation (by another
    // program, or a file system that grew it): neither is data, neither is lost or read.
    let lens: Vec<usize> = (0..20).map(|i| [9, 300, 0, 1000][i % 4]).collect();
    let f = fixture(&lens, 10);
    let seg = seg_path(&f.dir, 0);
    let reservation = page() * u64::from(SEG_PAGES);
    for extra in [page(), 2 * page() + 17, reservation + 3 * page()] {
        let work = f._tmp.path().join(format!("long{extra}"));
        copy_dir(&f.dir, &work);
        let wseg = seg_path(&work, 0);
        let len = std::fs::metadata(&seg).unwrap().len();
        truncate(&wseg, len + extra);
        let report = applog::verify(&work).unwrap();
        assert!(
            report.is_clean() && report.torn_tail.is_none(),
            "{report:?}"
        );
        assert_eq!(report.next_seq, lens.len() as u64);
        expect_prefix(&work, &lens, lens.len());
        drop(Writer::open(&work, Options::new().segment_pages(SEG_PAGES)).unwrap());
        assert_eq!(
            std::fs::metadata(&wseg).unwrap().len(),
            len + extra,
            "never shrunk"
        );
        reopen_and_append(&work, lens.len());
    }
}

/// A frame header word with this length field and any CRC.
fn crafted(len_word: u32, crc: u32) -> [u8; 8] {
    ((u64::from(crc) << 32) | u64::from(len_word)).to_le_bytes()
}

#[test]
fn crafted_frame_headers_are_bounds_checked() {
    let lens = vec![100; 12];
    let f = fixture(&lens, 8);
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    let reservation = page() * u64::from(SEG_PAGES);
    let present = 1u32 << 31;
    let size = std::fs::metadata(seg_path(&f.dir, 0)).unwrap().len();
    let cases: [(&str, u32); 5] = [
        ("u32::MAX (a seal word with a bad CRC)", u32::MAX),
        ("the largest length", present | (u32::MAX >> 1)),
        ("past the reservation", present | reservation as u32),
        ("past the file size", present | (size as u32)),
        (
            "one byte past the file",
            present | (size - placed[10].offset - 8 + 1) as u32,
        ),
    ];
    for (victim, synced) in [(10usize, false), (3, true)] {
        for (name, word) in cases {
            let work = f._tmp.path().join(format!("crafted-{victim}-{word:x}"));
            copy_dir(&f.dir, &work);
            let wseg = seg_path(&work, 0);
            let at = placed[victim].offset;
            write_at(&wseg, at, &crafted(word, 0xDEAD_BEEF));
            let report = applog::verify(&work).unwrap();
            let mut r = applog::Reader::open(&work).unwrap();
            let mut n = 0;
            let read_err = loop {
                match r.next() {
                    Ok(Some(rec)) => {
                        assert_eq!(rec.data(), payload(n, 100), "{name}");
                        n += 1;
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            assert_eq!(
                n, victim as u64,
                "{name}: the reader stops at the crafted frame"
            );
            if synced {
                // Inside synced data: corruption, reported where it is, nothing changed.
                assert!(!report.is_clean(), "{name}");
                assert_eq!(report.corruptions[0].offset, at, "{name}");
                assert!(matches!(read_err, Some(Error::Corrupt { offset, .. }) if offset == at));
                let before = snapshot(&work);
                let err = Writer::open(&work, Options::new().segment_pages(SEG_PAGES)).unwrap_err();
                assert!(
                    matches!(&err, Error::Corrupt { segment, offset, .. } if *segment == wseg && *offset == at),
                    "{name}: {err:?}"
                );
                assert_eq!(snapshot(&work), before, "{name}: nothing modified");
            } else {
                // In the unsynced tail: a torn tail, cut.
                assert!(report.is_clean(), "{name}: {report:?}");
                assert_eq!(
                    report.torn_tail.as_ref().map(|t| t.offset),
                    Some(at),
                    "{name}"
                );
                assert!(read_err.is_none(), "{name}: {read_err:?}");
                drop(Writer::open(&work, Options::new().segment_pages(SEG_PAGES)).unwrap());
                expect_prefix(&work, &lens, victim);
                reopen_and_append(&work, victim);
            }
        }
    }
}

#[test]
fn a_seal_in_a_segment_without_records_is_not_followed() {
    // Found by the recovery fuzzer: a valid seal at the first frame of a segment names that
    // same segment as the next one. Readers used to follow it into the same file forever.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    drop(Writer::open(&dir, Options::new().segment_pages(SEG_PAGES)).unwrap());
    let seg = seg_path(&dir, 0);
    let bytes = std::fs::read(&seg).unwrap();
    let h = applog::format::SegmentHeader::decode(&bytes).unwrap();
    write_at(
        &seg,
        HEADER,
        &applog::format::seal_word(h.crc_seed(), 0).to_le_bytes(),
    );
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (dir, done) = (dir.clone(), done.clone());
        std::thread::spawn(move || {
            let mut r = applog::Reader::open(&dir).unwrap();
            let got = r.next().map(|o| o.map(|rec| rec.seq()));
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            format!("{got:?}")
        })
    };
    let t = std::time::Instant::now();
    while !done.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(t.elapsed().as_secs() < 60, "the reader loops on the seal");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(reader.join().unwrap(), "Ok(None)");
    let report = applog::verify(&dir).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.torn_tail.map(|t| t.offset), Some(HEADER));
    // Unsynced: a torn tail. The writer cuts it and appends.
    let mut w = Writer::open(&dir, Options::new().segment_pages(SEG_PAGES)).unwrap();
    assert_eq!(w.next_seq(), 0);
    w.append(b"first").unwrap();
    w.sync().unwrap();
    drop(w);
    assert_eq!(read_all(&dir), vec![(0, b"first".to_vec())]);
}
