//! Bit flips in synced data.
//!
//! Fault model: one bit flipped (bit rot, a bad sector, a stray write) anywhere in data that
//! a `sync` had made durable: a frame's length, its CRC, its payload, the segment header
//! (every byte, synced mark and reserved fields included), or a record in an older segment
//! whose successors hold synced records.
//! Pass criterion: always detected, never returned as a record (P3): `Writer::open` returns
//! `Error::Corrupt` (or `Error::NotALog` for a damaged magic) naming the segment file and the
//! byte offset of the damaged frame or header field; `verify` reports the same place; a reader
//! yields the records before it and then the same error; no file is modified.

mod common;

use applog::{Error, Options, Writer};
use common::fixture::*;
use common::*;

#[test]
fn every_bit_flip_in_synced_data_is_reported_and_nothing_changes() {
    let lens = vec![0, 1, 13, 100, 7, 64];
    let f = fixture(&lens, lens.len());
    // Sync everything (fixture leaves the last batch unsynced when synced == len).
    Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES))
        .unwrap()
        .close()
        .unwrap();
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    let end = placed.last().map(|p| p.offset + frame_len(p.len)).unwrap();
    let work = f._tmp.path().join("flip");
    let mut checked = 0;
    for byte in HEADER..end {
        let p = placed
            .iter()
            .find(|p| byte >= p.offset && byte < p.offset + frame_len(p.len))
            .unwrap();
        if byte >= p.offset + 8 + p.len as u64 {
            continue; // padding: not covered by the CRC, and not data
        }
        for bit in [0u8, 3, 7] {
            let _ = std::fs::remove_dir_all(&work);
            copy_dir(&f.dir, &work);
            let wseg = seg_path(&work, 0);
            flip(&wseg, byte, 1 << bit);
            let before = snapshot(&work);
            let err = Writer::open(&work, Options::new().segment_pages(SEG_PAGES)).unwrap_err();
            assert!(
                matches!(&err, Error::Corrupt { segment, offset, .. } if *segment == wseg && *offset == p.offset),
                "flip at byte {byte} bit {bit}: {err:?} (frame at {})",
                p.offset
            );
            assert_eq!(snapshot(&work), before, "nothing modified");
            // verify reports the same place; a reader stops there with the same error.
            let report = applog::verify(&work).unwrap();
            assert!(!report.is_clean());
            assert_eq!(report.corruptions[0].offset, p.offset);
            let mut r = applog::Reader::open(&work).unwrap();
            let mut n = 0;
            let err = loop {
                match r.next() {
                    Ok(Some(_)) => n += 1,
                    Ok(None) => panic!("reader reached the end without reporting corruption"),
                    Err(e) => break e,
                }
            };
            assert_eq!(n, p.seq, "reader yields the records before the damage");
            assert!(matches!(err, Error::Corrupt { offset, .. } if offset == p.offset));
            checked += 1;
        }
    }
    assert!(checked > 100);
}

#[test]
fn header_damage_is_reported() {
    let f = fixture(&[10, 20], 2);
    for (byte, expect_not_a_log) in [
        (0u64, true),
        (5, true),
        (12, false),
        (30, false),
        (40, false),
    ] {
        let work = f._tmp.path().join(format!("hdr{byte}"));
        copy_dir(&f.dir, &work);
        let wseg = seg_path(&work, 0);
        flip(&wseg, byte, 0x10);
        let before = snapshot(&work);
        let err = Writer::open(&work, Options::new()).unwrap_err();
        if expect_not_a_log {
            assert!(
                matches!(&err, Error::NotALog { path, .. } if *path == wseg),
                "{err:?}"
            );
        } else {
            assert!(
                matches!(&err, Error::Corrupt { segment, offset: 0, .. } if *segment == wseg),
                "{err:?}"
            );
        }
        assert!(Writer::open(&work, Options::new()).is_err());
        assert!(applog::Reader::open(&work).is_err());
        assert_eq!(snapshot(&work), before);
    }
}

#[test]
fn a_gap_before_synced_segments_is_corruption() {
    // Everything synced, several segments: damage in an early one is corruption even though
    // it is past that segment's own mark, because later segments hold synced records.
    let lens = vec![900; 30];
    let f = fixture(&lens, 30);
    Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES))
        .unwrap()
        .close()
        .unwrap();
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    // That sync made every segment durable and marked the sealed ones up to their seal, which
    // recovery would then trust without a scan. Clear the sealed segments' marks (a zero mark
    // means "nothing synced"): the active segment alone says its records were synced.
    let last = placed.last().unwrap().segment;
    for p in placed.iter().filter(|p| p.segment != last) {
        write_at(&seg_path(&f.dir, p.segment), 48, &[0; 8]);
    }
    let victim = &placed[8];
    let seg = seg_path(&f.dir, victim.segment);
    write_at(&seg, victim.offset + 20, &[0xFF; 16]);
    let before = snapshot(&f.dir);
    let err = Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES)).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { segment, offset, .. } if *segment == seg && *offset == victim.offset),
        "{err:?}"
    );
    assert_eq!(snapshot(&f.dir), before);
}

#[test]
fn every_bit_of_a_synced_segment_header_is_checked() {
    // Bytes 0..40 are covered by the header CRC, 40..44 are that CRC, 44..48 are reserved
    // (must be zero), 48..56 is the synced mark and 60..64 the cut word, each with its own
    // check (one bit flipped in a zero cut word never makes a valid cut).
    // 56..60 is the wake word: readers and the writer change it while the log is in use and
    // it carries no data, so any value is valid there.
    let lens = vec![30; 8];
    let f = fixture(&lens, lens.len());
    Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES))
        .unwrap()
        .close()
        .unwrap();
    let work = f._tmp.path().join("hdr");
    for byte in 0..HEADER {
        for bit in 0..8 {
            let _ = std::fs::remove_dir_all(&work);
            copy_dir(&f.dir, &work);
            let wseg = seg_path(&work, 0);
            flip(&wseg, byte, 1 << bit);
            if (56..60).contains(&byte) {
                drop(Writer::open(&work, Options::new().segment_pages(SEG_PAGES)).unwrap());
                assert_eq!(read_all(&work).len(), lens.len(), "flip {byte}:{bit}");
                continue;
            }
            let before = snapshot(&work);
            let err = Writer::open(&work, Options::new().segment_pages(SEG_PAGES)).unwrap_err();
            let at = match &err {
                Error::Corrupt {
                    segment, offset, ..
                } if *segment == wseg => *offset,
                Error::NotALog { path, .. } if *path == wseg && byte < 8 => 0,
                other => panic!("flip {byte}:{bit}: {other:?}"),
            };
            let field = match byte {
                48..56 => 48,
                60..64 => 60,
                _ => 0,
            };
            assert_eq!(at, field, "flip {byte}:{bit}: {err}");
            assert_eq!(
                snapshot(&work),
                before,
                "flip {byte}:{bit}: nothing modified"
            );
            match applog::verify(&work) {
                Ok(report) => assert!(!report.is_clean(), "flip {byte}:{bit}"),
                Err(e) => assert!(matches!(e, Error::NotALog { .. }), "{e:?}"),
            }
        }
    }
}
