//! Batches after a power cut: a batch is there whole or not at all.
//!
//! Fault model: a power cut while a batch appended with `append_batch` was not yet synced. The
//! kernel writes dirty pages back in any order, so the image keeps the batch's first frames
//! and loses a later one: the page holding its last frame never reached the disk (zeros), or
//! one of its frames is torn (a byte of it differs). Crafted images, each frame placed by the
//! documented format. Two more shapes: the synced mark reaching into such a batch (damage: the
//! writer never syncs in the middle of a batch), and a batch larger than a segment, which is
//! written in one part per segment.
//!
//! Pass criterion: `verify` reports a torn tail ("torn batch") at the batch's first frame and
//! no corruption; a reader yields the records before the batch and none of it; `durable_seq`
//! stops before it; `Writer::open` cuts the whole batch (zeroed in place, the file keeps its
//! size) and appends at the batch's first seq. With the mark inside the batch: `verify`,
//! readers, `Writer::open` and `recover` report `Error::Corrupt` naming the segment file and
//! the batch's first frame, and nothing is changed. A batch that does not fit in what is left
//! of a segment is written whole in the next one.

mod common;

use std::path::{Path, PathBuf};

use applog::format::SegmentHeader;
use applog::{Error, Options, Reader, RecoveryMode, Writer};
use common::*;

const PAGES: u32 = 4;
/// Records synced before the batch, and their length.
const BEFORE: u64 = 3;
const SMALL: usize = 100;
/// The batch: records of this length.
const BATCH: u64 = 6;
const BIG: usize = 1500;

struct Log {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    seg: PathBuf,
    /// Offset of each batch frame.
    frames: Vec<u64>,
}

fn opts() -> Options {
    Options::new().segment_pages(PAGES)
}

fn record(seq: u64) -> Vec<u8> {
    payload(seq, if seq < BEFORE { SMALL } else { BIG })
}

/// `BEFORE` records synced, then a batch of `BATCH` records, not synced; the writer dropped
/// without a sync (the process goes on: the page cache keeps everything, which the test then
/// damages as a power cut would).
fn log_with_unsynced_batch() -> Log {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = Writer::open(&dir, opts()).unwrap();
    for seq in 0..BEFORE {
        w.append(&record(seq)).unwrap();
    }
    w.sync().unwrap();
    let batch: Vec<Vec<u8>> = (BEFORE..BEFORE + BATCH).map(record).collect();
    assert_eq!(w.append_batch(&batch).unwrap(), BEFORE..BEFORE + BATCH);
    drop(w);
    let first = HEADER + BEFORE * frame_len(SMALL);
    let frames = (0..BATCH).map(|k| first + k * frame_len(BIG)).collect();
    Log {
        _tmp: tmp,
        seg: seg_path(&dir, 0),
        dir,
        frames,
    }
}

fn synced_mark(seg: &Path) -> u64 {
    let bytes = std::fs::read(seg).unwrap();
    let h = SegmentHeader::decode(&bytes).unwrap();
    h.decode_synced_mark(u64::from_le_bytes(bytes[48..56].try_into().unwrap()))
        .unwrap()
}

fn set_synced_mark(seg: &Path, offset: u64) {
    let bytes = std::fs::read(seg).unwrap();
    let h = SegmentHeader::decode(&bytes).unwrap();
    write_at(seg, 48, &h.encode_synced_mark(offset).to_le_bytes());
}

/// The power cut's damage to the batch's later frames.
#[derive(Clone, Copy, Debug)]
enum Loss {
    /// The page that holds the batch's last frame reads as zeros (from the second frame on,
    /// where a page holds the whole batch).
    PageOfLastFrame,
    /// The frames from the fourth on never reached the disk.
    LaterFrames,
    /// One byte of the third frame's payload differs.
    TornFrame,
}

/// The bytes the power cut damages.
fn damaged_range(log: &Log, loss: Loss) -> (u64, u64) {
    let size = std::fs::metadata(&log.seg).unwrap().len();
    match loss {
        Loss::PageOfLastFrame => {
            let last = log.frames[BATCH as usize - 1];
            let page_start = last / page() * page();
            (
                page_start.max(log.frames[1]),
                (page_start + page()).min(size),
            )
        }
        Loss::LaterFrames => (log.frames[3], size),
        Loss::TornFrame => {
            let at = log.frames[2] + 16 + 700;
            (at, at + 1)
        }
    }
}

fn damage(log: &Log, loss: Loss) {
    let (from, to) = damaged_range(log, loss);
    match loss {
        Loss::TornFrame => flip(&log.seg, from, 0x5A),
        _ => write_at(&log.seg, from, &vec![0; (to - from) as usize]),
    }
}

/// Where the batch's frames stop: the first frame the damage reaches.
fn frames_stop(log: &Log, loss: Loss) -> u64 {
    let (from, _) = damaged_range(log, loss);
    *log.frames
        .iter()
        .find(|&&f| f + frame_len(BIG) > from)
        .unwrap()
}

const LOSSES: [Loss; 3] = [Loss::PageOfLastFrame, Loss::LaterFrames, Loss::TornFrame];

#[test]
fn unsynced_batch_missing_its_later_frames_is_cut_whole() {
    for loss in LOSSES {
        let log = log_with_unsynced_batch();
        assert_eq!(
            synced_mark(&log.seg),
            log.frames[0],
            "synced up to the batch"
        );
        damage(&log, loss);
        let size = std::fs::metadata(&log.seg).unwrap().len();

        let report = applog::verify(&log.dir).unwrap();
        assert!(report.is_clean(), "{loss:?}: {report:#?}");
        let tail = report.torn_tail.clone().expect("a torn tail");
        assert_eq!(
            (&tail.segment, tail.offset),
            (&log.seg, log.frames[0]),
            "{loss:?}: the tail starts at the batch's first frame"
        );
        assert!(tail.reason.contains("torn batch"), "{loss:?}: {tail:?}");
        assert_eq!(
            (report.next_seq, report.records),
            (BEFORE, BEFORE),
            "{loss:?}"
        );

        // Readers: the records before the batch, none of it, and "nothing yet" after.
        let mut r = Reader::open(&log.dir).unwrap();
        for seq in 0..BEFORE {
            let rec = r.next().unwrap().expect("a record before the batch");
            assert_eq!((rec.seq(), rec.data()), (seq, &record(seq)[..]));
        }
        assert!(
            r.next().unwrap().is_none(),
            "{loss:?}: a record of a torn batch"
        );
        assert!(r.next().unwrap().is_none(), "{loss:?}: asked again");
        let mut durable = Reader::open(&log.dir).unwrap().durable_only();
        let mut n = 0;
        while durable.next().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, BEFORE, "{loss:?}");
        assert_eq!(applog::durable_seq(&log.dir).unwrap(), BEFORE, "{loss:?}");

        // The writer cuts it whole: zeroed in place, the file keeps its size.
        let mut w = Writer::open(&log.dir, opts()).unwrap();
        assert_eq!(w.next_seq(), BEFORE, "{loss:?}");
        let bytes = std::fs::read(&log.seg).unwrap();
        assert_eq!(bytes.len() as u64, size, "{loss:?}: the file never shrinks");
        assert!(
            bytes[log.frames[0] as usize..].iter().all(|&b| b == 0),
            "{loss:?}: the batch is zeroed from its first frame"
        );
        // The reader that waited at the batch gets the records appended in its place.
        assert_eq!(w.append(b"instead").unwrap(), BEFORE);
        w.sync().unwrap();
        let rec = r
            .next()
            .unwrap()
            .expect("the record appended after recovery");
        assert_eq!((rec.seq(), rec.data()), (BEFORE, &b"instead"[..]));
        drop(w);
        let after = applog::verify(&log.dir).unwrap();
        assert!(after.is_clean() && after.torn_tail.is_none(), "{after:#?}");
        assert_eq!(after.next_seq, BEFORE + 1);
    }
}

#[test]
fn synced_mark_inside_a_torn_batch_is_corruption_naming_file_and_offset() {
    for loss in LOSSES {
        let log = log_with_unsynced_batch();
        damage(&log, loss);
        // The mark says the batch's first two frames were durable: the writer never syncs in
        // the middle of a batch, so this is damage, and the frames below it are synced data.
        set_synced_mark(&log.seg, log.frames[2]);
        let before = snapshot(&log.dir);
        // Reported where the batch's frames stop, naming where it starts.
        let stop = frames_stop(&log, loss);
        let starts = format!("batch that starts at offset {}", log.frames[0]);
        let is_ours = |e: &Error| {
            matches!(e, Error::Corrupt { segment, offset, reason }
                if segment == &log.seg && *offset == stop && reason.contains(&starts))
        };

        let report = applog::verify(&log.dir).unwrap();
        assert!(report.torn_tail.is_none(), "{loss:?}: {report:#?}");
        let c = report.corruptions.first().expect("a corruption");
        assert_eq!((&c.segment, c.offset), (&log.seg, stop), "{loss:?}");
        assert!(c.reason.contains("torn batch"), "{loss:?}: {c:?}");
        assert!(c.reason.contains(&starts), "{loss:?}: {c:?}");

        let mut r = Reader::open(&log.dir).unwrap();
        for _ in 0..BEFORE {
            r.next().unwrap().expect("a record before the batch");
        }
        let e = r.next().map(|o| o.map(|rec| rec.seq())).unwrap_err();
        assert!(is_ours(&e), "{loss:?}: reader: {e:?}");
        assert!(
            e.to_string().contains("seg"),
            "the error names the file: {e}"
        );

        let e = Writer::open(&log.dir, opts()).unwrap_err();
        assert!(is_ours(&e), "{loss:?}: writer: {e:?}");
        let e = applog::recover(&log.dir, RecoveryMode::CutTornTail).unwrap_err();
        assert!(is_ours(&e), "{loss:?}: recover: {e:?}");
        assert_eq!(snapshot(&log.dir), before, "{loss:?}: nothing changed");
        // `durable_seq` counts no record of a batch that is not whole below the mark.
        assert_eq!(applog::durable_seq(&log.dir).unwrap(), BEFORE, "{loss:?}");

        // Asked to, recovery truncates there: the whole batch goes, the records before stay.
        let report = applog::recover(&log.dir, RecoveryMode::TruncateAtCorruption).unwrap();
        let t = report.truncation.expect("a truncation");
        assert_eq!(
            (&t.segment, t.offset, t.seq),
            (&log.seg, log.frames[0], BEFORE),
            "{loss:?}"
        );
        assert_eq!(report.next_seq, BEFORE);
        let after = applog::verify(&log.dir).unwrap();
        assert!(after.is_clean() && after.torn_tail.is_none(), "{after:#?}");
        assert_eq!(read_all(&log.dir).len() as u64, BEFORE);
    }
}

#[test]
fn batch_that_does_not_fit_in_the_rest_of_a_segment_is_written_in_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = Writer::open(&dir, opts()).unwrap();
    let capacity = page() * u64::from(PAGES) - HEADER;
    // Fill the segment to within three big frames of its end.
    let mut seq = 0;
    let mut used = 0;
    while used + frame_len(SMALL) + 3 * frame_len(BIG) <= capacity {
        w.append(&payload(seq, SMALL)).unwrap();
        used += frame_len(SMALL);
        seq += 1;
    }
    // Four big records: they do not fit in what is left, but fit in a new segment.
    let batch: Vec<Vec<u8>> = (seq..seq + 4).map(|s| payload(s, BIG)).collect();
    assert_eq!(w.append_batch(&batch).unwrap(), seq..seq + 4);
    assert!(seg_path(&dir, seq).exists(), "the batch starts a segment");
    w.append(&payload(seq + 4, SMALL)).unwrap();
    drop(w);
    let got = read_all(&dir);
    assert_eq!(got.len() as u64, seq + 5);
    let segments = applog::verify(&dir).unwrap().segments;
    assert_eq!(
        segments.iter().map(|s| s.base_seq).collect::<Vec<_>>(),
        vec![0, seq]
    );
}

#[test]
fn batch_larger_than_a_segment_is_kept_part_by_part() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = Writer::open(&dir, opts()).unwrap();
    w.append(b"first").unwrap();
    w.sync().unwrap();
    // Each record takes 40% of a segment: a batch of five spans three segments, in parts
    // of two, two and one.
    let len = (page() * u64::from(PAGES) * 2 / 5) as usize;
    let batch: Vec<Vec<u8>> = (1..6).map(|s| payload(s, len)).collect();
    assert_eq!(w.append_batch(&batch).unwrap(), 1..6);
    drop(w);
    let bases: Vec<u64> = applog::verify(&dir)
        .unwrap()
        .segments
        .iter()
        .map(|s| s.base_seq)
        .collect();
    assert_eq!(bases, vec![0, 3, 5], "one part per segment");
    // The second part loses its last frame (a power cut): it is cut whole, the part before
    // it is kept, and the third part, after the gap, goes with the torn tail.
    let second = seg_path(&dir, 3);
    write_at(&second, HEADER + frame_len(len) + 20, &[0xFF; 8]);
    let report = applog::verify(&dir).unwrap();
    assert!(report.is_clean(), "{report:#?}");
    let tail = report.torn_tail.expect("a torn tail");
    assert_eq!((&tail.segment, tail.offset), (&second, HEADER));
    assert!(tail.reason.contains("torn batch"), "{tail:?}");
    let w = Writer::open(&dir, opts()).unwrap();
    assert_eq!(w.next_seq(), 3);
    drop(w);
    let got = read_all(&dir);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], (2, payload(2, len)));
}

#[test]
fn cli_verify_and_recover_name_a_torn_batch() {
    use std::ffi::OsStr;
    let log = log_with_unsynced_batch();
    damage(&log, Loss::LaterFrames);
    let at = format!(
        "{} at byte offset {}: torn batch",
        log.seg.display(),
        log.frames[0]
    );
    let out = cli::run(&[OsStr::new("verify"), log.dir.as_os_str()]);
    let text = out.ok();
    assert!(text.contains(&at), "{text}");
    assert!(text.contains("clean (with a torn tail)"), "{text}");
    let out = cli::run(&[OsStr::new("recover"), log.dir.as_os_str()]);
    let text = out.succeeded();
    assert!(
        text.contains(&format!(
            "at byte offset {} of {} (torn batch",
            log.frames[0],
            log.seg.display()
        )),
        "{text}"
    );
    assert_eq!(read_all(&log.dir).len() as u64, BEFORE);

    // The mark reaching into it: corruption, exit 1, naming the file and the offset.
    let log = log_with_unsynced_batch();
    damage(&log, Loss::LaterFrames);
    set_synced_mark(&log.seg, log.frames[2]);
    let out = cli::run(&[OsStr::new("verify"), log.dir.as_os_str()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "{} at byte offset {}: torn batch",
            log.seg.display(),
            frames_stop(&log, Loss::LaterFrames)
        )),
        "{out:?}"
    );
}
