//! Seqs never wrap past `u64::MAX`.
//!
//! Fault model: a segment whose name (and header) puts its seqs at the very top of the `u64`
//! range, as a damaged or crafted log can: a real segment whose header base seq is rewritten
//! (with its header CRC) to `u64::MAX - 1` and renamed to match, empty or holding records
//! whose seqs reach `u64::MAX`. The seq after `u64::MAX` does not exist: the writer must
//! refuse to hand it out, and readers, `verify`, recovery and the tool must report the
//! overflow as corruption naming the segment, never wrap to seq 0 (nor panic).

mod common;

use std::path::{Path, PathBuf};

use applog::format::{self, SegmentHeader, HEADER_LEN};
use applog::{segment_name, Error, Options, Reader, RecoveryMode, Writer};
use common::cli::{new_log, run, run_with_stdin};
use common::page;

const NEAR_MAX: u64 = u64::MAX - 1;

/// A log whose only segment starts at `base`, holding `records` (valid frames, their seqs from
/// `base` on, covered by the synced mark). Made from a real segment: a log written normally,
/// its header's base seq rewritten (and the header CRC with it), the file renamed. Returns the
/// temporary directory, the log and the segment.
fn log_at(base: u64, records: &[&[u8]]) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (tmp, log) = new_log();
    Writer::open(&log, Options::new().segment_pages(4))
        .unwrap()
        .close()
        .unwrap();
    let made = log.join(segment_name(0));
    let mut bytes = std::fs::read(&made).unwrap();
    let mut header = SegmentHeader::decode(&bytes).unwrap();
    header.base_seq = base;
    // Frames are written here in the version-1 layout (no time): a version-1 segment.
    header.layout = format::Layout::V1;
    bytes[..HEADER_LEN as usize].copy_from_slice(&header.encode());
    let seed = header.crc_seed();
    let mut off = HEADER_LEN as usize;
    for (i, data) in records.iter().enumerate() {
        let seq = base + i as u64; // records.len() <= u64::MAX - base + 1
        let frame = format::frame_len(data.len() as u64) as usize;
        if bytes.len() < off + frame {
            bytes.resize(off + frame, 0);
        }
        bytes[off..off + 8].copy_from_slice(&format::record_word(seed, seq, data).to_le_bytes());
        bytes[off + 8..off + 8 + data.len()].copy_from_slice(data);
        off += frame;
    }
    if !records.is_empty() {
        let mark = header.encode_synced_mark(off as u64);
        let at = format::SYNCED_MARK_OFFSET as usize;
        bytes[at..at + 8].copy_from_slice(&mark.to_le_bytes());
    }
    let pages = (bytes.len() as u64).div_ceil(page()) * page();
    bytes.resize(pages as usize, 0);
    std::fs::write(&made, &bytes).unwrap();
    let seg = log.join(segment_name(base));
    std::fs::rename(&made, &seg).unwrap();
    (tmp, log, seg)
}

/// Offset after the last frame of a segment made by [`log_at`] (the synced mark).
fn end_of_frames(seg: &Path) -> u64 {
    let bytes = std::fs::read(seg).unwrap();
    let header = SegmentHeader::decode(&bytes).unwrap();
    let at = format::SYNCED_MARK_OFFSET as usize;
    let word = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    header.decode_synced_mark(word).unwrap()
}

/// Whether `e` is the seq overflow, reported as corruption of `seg`.
fn is_overflow(e: &Error, seg: &Path) -> bool {
    matches!(e, Error::Corrupt { segment, reason, .. } if segment == seg && reason.contains("u64::MAX"))
}

#[test]
fn writer_refuses_the_seq_after_u64_max() {
    let (_tmp, log, seg) = log_at(NEAR_MAX, &[]);
    let mut w = Writer::open(&log, Options::new()).unwrap();
    assert_eq!(w.next_seq(), NEAR_MAX);
    assert_eq!(w.append(b"last").unwrap(), NEAR_MAX);
    // The next record would be u64::MAX, after which no seq exists: refused.
    let err = w.append(b"one too many").unwrap_err();
    assert!(is_overflow(&err, &seg), "{err:?}");
    let err = w.append_batch(&[&b"batch"[..]]).unwrap_err();
    assert!(is_overflow(&err, &seg), "{err:?}");
    assert_eq!(w.next_seq(), u64::MAX);
    w.close().unwrap();

    // Nothing wrapped: the log holds the one record, and ends at u64::MAX.
    let report = applog::verify(&log).unwrap();
    assert!(report.is_clean(), "{:?}", report.corruptions);
    assert_eq!(
        (report.first_seq, report.next_seq, report.records),
        (NEAR_MAX, u64::MAX, 1)
    );
    let mut r = Reader::open(&log).unwrap();
    let rec = r.next().unwrap().map(|r| (r.seq(), r.data().to_vec()));
    assert_eq!(rec, Some((NEAR_MAX, b"last".to_vec())));
    assert_eq!(r.next().unwrap(), None);
    // A writer opened again is at the same place, and refuses the same way.
    let mut w = Writer::open(&log, Options::new()).unwrap();
    assert_eq!(w.next_seq(), u64::MAX);
    let err = w.append(b"again").unwrap_err();
    assert!(is_overflow(&err, &seg), "{err:?}");
}

#[test]
fn tool_append_exits_1_at_the_seq_after_u64_max() {
    let (_tmp, log, seg) = log_at(NEAR_MAX, &[]);
    let r = run_with_stdin(
        &[std::ffi::OsStr::new("append"), log.as_os_str()],
        b"last\nover\n",
    );
    assert_eq!(r.code, 1, "{r:?}");
    let error = r
        .stderr
        .lines()
        .find(|l| l.starts_with("applog: error: "))
        .unwrap_or_else(|| panic!("no error line: {r:?}"));
    assert!(
        error.contains(&seg.display().to_string()) && error.contains("u64::MAX"),
        "{r:?}"
    );
    // The record before it is kept and durable.
    let report = applog::verify(&log).unwrap();
    assert!(report.is_clean(), "{:?}", report.corruptions);
    assert_eq!((report.records, report.next_seq), (1, u64::MAX));
    // Arguments too: the first of them would get u64::MAX... and the second none.
    let r = run(&[
        std::ffi::OsStr::new("append"),
        log.as_os_str(),
        "x".as_ref(),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("u64::MAX"), "{r:?}");
}

/// Segments whose records reach `u64::MAX`, so that the seq after the last would pass it: a
/// segment named `u64::MAX - 1` with two records, and one named `u64::MAX` with one.
fn crafted_logs() -> Vec<(tempfile::TempDir, PathBuf, PathBuf)> {
    vec![
        log_at(NEAR_MAX, &[b"near", b"max"]),
        log_at(u64::MAX, &[b"max"]),
    ]
}

#[test]
fn reader_reports_seq_overflow_instead_of_wrapping() {
    for (_tmp, log, seg) in crafted_logs() {
        let base = if seg.ends_with(segment_name(NEAR_MAX)) {
            NEAR_MAX
        } else {
            u64::MAX
        };
        let mut r = Reader::open(&log).unwrap();
        // Every record below u64::MAX is read; the one at u64::MAX would need a next seq.
        for seq in base..u64::MAX {
            assert_eq!(r.next().unwrap().map(|r| r.seq()), Some(seq));
        }
        match r.next() {
            Err(e) => assert!(is_overflow(&e, &seg), "{e:?}"),
            Ok(rec) => panic!("{}: read {rec:?} past u64::MAX", seg.display()),
        }
    }
}

#[test]
fn verify_and_recovery_report_seq_overflow_instead_of_wrapping() {
    for (_tmp, log, seg) in crafted_logs() {
        let report = applog::verify(&log).unwrap();
        assert!(
            report
                .corruptions
                .iter()
                .any(|c| c.segment == seg && c.reason.contains("u64::MAX")),
            "{report:?}"
        );
        // The overflow is placed where the seq after u64::MAX would go: after the last frame.
        let at = report
            .corruptions
            .iter()
            .find(|c| c.segment == seg)
            .unwrap();
        assert_eq!(at.offset, end_of_frames(&seg), "{report:?}");
        let err = Writer::open(&log, Options::new()).unwrap_err();
        assert!(is_overflow(&err, &seg), "{err:?}");
        let err = applog::recover(&log, RecoveryMode::CutTornTail).unwrap_err();
        assert!(is_overflow(&err, &seg), "{err:?}");

        let r = run(&[std::ffi::OsStr::new("verify"), log.as_os_str()]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stdout.contains("u64::MAX") || r.stderr.contains("u64::MAX"),
            "{r:?}"
        );
        let r = run(&[
            std::ffi::OsStr::new("append"),
            log.as_os_str(),
            "x".as_ref(),
        ]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stderr.contains(&seg.display().to_string()) && r.stderr.contains("u64::MAX"),
            "{r:?}"
        );
    }
}
