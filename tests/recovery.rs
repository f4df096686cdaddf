//! Recovery when a writer opens a damaged log.
//!
//! Fault model: the files a crash or a power cut can leave: a segment cut short at any byte,
//! a tail of zeros or garbage after the last complete record, and (for corruption) a flipped
//! bit inside data that had been synced.
//! Pass criterion: reopening yields exactly the complete records before the damage, appending
//! works afterwards, and `verify` is clean; damage inside synced data is `Error::Corrupt`
//! naming the segment and the frame's byte offset, and every file stays byte-for-byte
//! unchanged. The file is never shrunk by recovery.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use applog::{Error, Options, Writer};
use common::*;

const SEG_PAGES: u32 = 4;

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    lens: Vec<usize>,
    synced: usize,
}

/// A log with `synced` records made durable, then more records appended and not synced.
fn fixture(lens: &[usize], synced: usize) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = Writer::open(&dir, Options::new().segment_pages(SEG_PAGES)).unwrap();
    for (i, &l) in lens.iter().enumerate() {
        if i == synced {
            w.sync().unwrap();
        }
        w.append(&payload(i as u64, l)).unwrap();
    }
    drop(w); // no sync: the tail after `synced` is unsynced
    Fixture {
        _tmp: tmp,
        dir,
        lens: lens.to_vec(),
        synced,
    }
}

fn expect_prefix(dir: &Path, lens: &[usize], n: usize) {
    let got = read_all(dir);
    assert_eq!(got.len(), n, "records after recovery");
    for (i, (seq, data)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(data, &payload(i as u64, lens[i]));
    }
}

fn reopen_and_append(dir: &Path, expected_next: usize) {
    let mut w = Writer::open(dir, Options::new().segment_pages(SEG_PAGES)).unwrap();
    assert_eq!(w.next_seq(), expected_next as u64);
    assert_eq!(w.append(b"after recovery").unwrap(), expected_next as u64);
    w.sync().unwrap();
    drop(w);
    let report = applog::verify(dir).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.torn_tail.is_none(), "{report:?}");
    assert_eq!(report.next_seq, expected_next as u64 + 1);
}

/// How many records survive damage to segment `seg`, whose bytes were `orig` and are now
/// `damaged`: a record survives when its header and payload bytes are unchanged (padding is
/// not data) and every record before it survives.
fn survivors(placed: &[Placed], seg: u64, orig: &[u8], damaged: &[u8]) -> usize {
    let byte = |b: &[u8], i: usize| b.get(i).copied().unwrap_or(0);
    placed
        .iter()
        .take_while(|p| {
            p.segment < seg
                || (p.segment == seg
                    && (p.offset as usize..(p.offset + 8) as usize + p.len)
                        .all(|i| byte(orig, i) == byte(damaged, i)))
        })
        .count()
}

/// Offset after the last surviving record's frame in its segment.
fn end_of(placed: &[Placed], n: usize) -> u64 {
    n.checked_sub(1)
        .map_or(HEADER, |i| placed[i].offset + frame_len(placed[i].len))
}

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
    // recovery would then trust without a scan. Clear the sealed segments' marks (a mark that
    // fails its check counts as 0): the active segment alone says its records were synced.
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
    // A crash right after a segment file was created, before its header reached the disk.
    let lens = vec![4000; 10];
    let f = fixture(&lens, 12);
    let placed = place(&lens, page() * u64::from(SEG_PAGES));
    let last = placed.last().unwrap().segment;
    let seg = seg_path(&f.dir, last);
    let size = std::fs::metadata(&seg).unwrap().len();
    write_at(&seg, 0, &vec![0; size as usize]);
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
