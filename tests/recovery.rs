//! Recovery of what a crash leaves across segments, and how recovery reports its repairs.
//!
//! Fault model: a power cut during rollovers: a torn record in a sealed segment followed by
//! newer segments that hold only unsynced records; a seal that never reached the disk while
//! the next segment did; a newest segment created but whose header never reached the disk.
//! Pass criterion: the log reopens with exactly the records before the damage (P1, P3), no
//! synced record lost (P2); later segments lying wholly in the torn tail are removed, a lost
//! seal is rewritten, a blank segment is reinitialised; appending works and `verify` is clean
//! afterwards. Each cut is logged with `tracing::warn!` naming file, offset and bytes.

mod common;

use std::os::unix::fs::FileExt;

use applog::{Options, Writer};
use common::fixture::*;
use common::*;

#[test]
fn torn_tail_spanning_segments_is_cut_and_later_segments_removed() {
    // Small segments: the unsynced tail spans several. Damage a record in an earlier one: the
    // later segments hold only unsynced records after a gap, so they are part of the torn tail.
    let lens = vec![900; 30];
    let f = fixture(&lens, 3);
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    let victim = &placed[8];
    let later: Vec<u64> = placed
        .iter()
        .map(|p| p.segment)
        .filter(|&s| s > victim.segment)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(!later.is_empty());
    let seg = seg_path(&f.dir, victim.segment);
    write_at(&seg, victim.offset + 20, &[0xFF; 16]);
    let report = applog::verify(&f.dir).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let tail = report.torn_tail.clone().unwrap();
    assert_eq!(
        (tail.segment.clone(), tail.offset),
        (seg.clone(), victim.offset)
    );
    assert_eq!(tail.later_segments.len(), later.len());
    assert_eq!(report.next_seq, 8);
    Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES)).unwrap();
    for s in &later {
        assert!(!seg_path(&f.dir, *s).exists(), "segment {s} removed");
    }
    expect_prefix(&f.dir, &lens, 8);
    reopen_and_append(&f.dir, 8);
}

#[test]
fn lost_seal_is_rewritten_when_the_next_segment_continues() {
    let lens = vec![4000; 12];
    let f = fixture(&lens, 12);
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    let first_seg_last = placed.iter().rfind(|p| p.segment == 0).unwrap();
    let seal_at = first_seg_last.offset + frame_len(first_seg_last.len);
    let seg = seg_path(&f.dir, 0);
    write_at(&seg, seal_at, &[0; 8]);
    Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES)).unwrap();
    let mut b = [0u8; 8];
    std::fs::File::open(&seg)
        .unwrap()
        .read_exact_at(&mut b, seal_at)
        .unwrap();
    assert_ne!(b, [0; 8], "seal rewritten");
    expect_prefix(&f.dir, &lens, 12);
}

#[test]
fn blank_last_segment_is_reinitialised() {
    // A crash while a segment file was being created, before its header was complete and
    // durable: one page, no magic, nothing after the header (`docs/format.md`).
    let lens = vec![4000; 10];
    let f = fixture(&lens, 12);
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    let last = placed.last().unwrap().segment;
    let seg = seg_path(&f.dir, last);
    let header = std::fs::read(&seg).unwrap()[..40].to_vec();
    let mut crashed = vec![0u8; page() as usize];
    crashed[8..40].copy_from_slice(&header[8..40]); // the fields' pwrite, not the magic
    std::fs::write(&seg, &crashed).unwrap();
    // The segment before is sealed only once its successor is complete: no seal yet.
    let prev = placed.iter().rfind(|p| p.segment < last).unwrap();
    write_at(
        &seg_path(&f.dir, prev.segment),
        prev.offset + frame_len(prev.len),
        &[0; 8],
    );
    let n = placed.iter().filter(|p| p.segment < last).count();
    assert!(n >= 8, "fixture spans segments");
    let report = applog::verify(&f.dir).unwrap();
    assert!(report.is_clean(), "{report:?}");
    Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES)).unwrap();
    expect_prefix(&f.dir, &lens, n);
    reopen_and_append(&f.dir, n);
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn cutting_a_torn_tail_is_logged_with_file_offset_and_bytes() {
    let lens = vec![50; 10];
    let f = fixture(&lens, 5);
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    let seg = seg_path(&f.dir, 0);
    let at = placed[7].offset;
    write_at(&seg, at + 3, &[0xEE; 8]);
    let out = Captured::default();
    let sink = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES)).unwrap();
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("WARN") && text.contains("cut a torn tail"),
        "{text}"
    );
    assert!(text.contains("00000000000000000000.seg"), "{text}");
    assert!(text.contains(&format!("offset={at}")), "{text}");
    let size = std::fs::metadata(&seg).unwrap().len();
    assert!(text.contains(&format!("bytes={}", size - at)), "{text}");
    assert!(text.contains("next_seq=7"), "{text}");
    expect_prefix(&f.dir, &lens, 7);
}

#[test]
fn a_zeroed_header_with_records_after_it_is_corruption_not_a_blank_segment() {
    // The newest segment's magic (or its first bytes) zeroed while synced records follow:
    // reported with file and offset, nothing modified, no append; before, this log verified
    // clean with the records gone and the next writer re-initialised the file.
    for zeroed in [8usize, 24] {
        let lens = vec![4000; 10];
        let f = fixture(&lens, 12);
        let placed = place(&lens, page() * u64::from(SEG_PAGES));
        let last = placed.last().unwrap().segment;
        let seg = seg_path(&f.dir, last);
        write_at(&seg, 0, &vec![0; zeroed]);
        let before = snapshot(&f.dir);
        let report = applog::verify(&f.dir).unwrap();
        assert!(
            report
                .corruptions
                .iter()
                .any(|c| c.segment == seg && c.offset == 0),
            "{report:?}"
        );
        let err = Writer::open(&f.dir, Options::new().segment_pages(SEG_PAGES)).unwrap_err();
        assert!(
            matches!(&err, applog::Error::Corrupt { segment, offset: 0, .. } if *segment == seg),
            "{err:?}"
        );
        assert!(applog::recover(&f.dir, applog::RecoveryMode::CutTornTail).is_err());
        assert_eq!(snapshot(&f.dir), before, "nothing may be modified");
        // A reader stops with the same error instead of presenting a shorter log: it checks
        // every segment's header when it opens.
        let err = applog::Reader::open(&f.dir).unwrap_err();
        assert!(
            matches!(&err, applog::Error::Corrupt { segment, offset: 0, .. } if *segment == seg),
            "{err:?}"
        );
    }
}

#[test]
fn a_rolled_segment_whose_header_never_reached_the_disk_is_a_torn_tail_until_a_checkpoint() {
    // A rollover creates the next segment without an msync of its own: the checkpoint that
    // makes the seal before it durable flushes its header first. A power cut before that
    // checkpoint can leave the segment's first sector unwritten while later bytes made it.
    for checkpointed in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let mut w = Writer::open(&dir, Options::new().segment_pages(1)).unwrap();
        w.append(&[1u8; 300]).unwrap();
        w.sync().unwrap();
        let mut n = 1;
        let segments = |dir: &std::path::Path| {
            std::fs::read_dir(dir)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref()))
                .count()
        };
        while segments(&dir) < 2 {
            w.append(&[7u8; 300]).unwrap(); // fills segment 0, then rolls
            n += 1;
        }
        for _ in 0..3 {
            w.append(&[8u8; 300]).unwrap();
        }
        if checkpointed {
            w.sync().unwrap();
        }
        drop(w); // no sync
        let newest = seg_path(&dir, n - 1);
        assert!(newest.exists(), "segment {} holds the last records", n - 1);
        write_at(&newest, 0, &[0; 512]);
        let report = applog::verify(&dir).unwrap();
        if checkpointed {
            // Its header had been durable: damage, reported and refused.
            assert!(
                report
                    .corruptions
                    .iter()
                    .any(|c| c.segment == newest && c.offset == 0),
                "{report:?}"
            );
            assert!(matches!(
                Writer::open(&dir, Options::new()),
                Err(applog::Error::Corrupt { offset: 0, .. })
            ));
            assert!(applog::Reader::open(&dir).is_err());
        } else {
            // Nothing in it was ever synced: a torn tail from its start.
            assert!(report.is_clean(), "{report:?}");
            let torn = report.torn_tail.expect("a torn tail");
            assert_eq!((torn.segment, torn.offset), (newest.clone(), 0));
            let mut w = Writer::open(&dir, Options::new()).unwrap();
            assert_eq!(w.next_seq(), n - 1, "the segment starts again, empty");
            w.append(b"after").unwrap();
            w.close().unwrap();
            let report = applog::verify(&dir).unwrap();
            assert!(
                report.is_clean() && report.torn_tail.is_none(),
                "{report:?}"
            );
            assert_eq!(report.next_seq, n);
        }
    }
}
