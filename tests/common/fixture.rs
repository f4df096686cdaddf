//! A log with synced and unsynced records, and what recovery must make of it: shared by the
//! recovery, truncation and bit-flip tests.

use std::path::Path;

use applog::{Options, Writer};

use super::*;

pub const SEG_PAGES: u32 = 4;

pub struct Fixture {
    pub _tmp: tempfile::TempDir,
    pub dir: std::path::PathBuf,
    pub lens: Vec<usize>,
    pub synced: usize,
}

/// A log with `synced` records made durable, then more records appended and not synced.
pub fn fixture(lens: &[usize], synced: usize) -> Fixture {
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

pub fn expect_prefix(dir: &Path, lens: &[usize], n: usize) {
    let got = read_all(dir);
    assert_eq!(got.len(), n, "records after recovery");
    for (i, (seq, data)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(data, &payload(i as u64, lens[i]));
    }
}

pub fn reopen_and_append(dir: &Path, expected_next: usize) {
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
/// `damaged`: a record survives when its header, time and payload bytes are unchanged
/// (padding is not data) and every record before it survives.
pub fn survivors(placed: &[Placed], seg: u64, orig: &[u8], damaged: &[u8]) -> usize {
    let byte = |b: &[u8], i: usize| b.get(i).copied().unwrap_or(0);
    placed
        .iter()
        .take_while(|p| {
            p.segment < seg
                || (p.segment == seg
                    && (p.offset as usize..(p.offset + 16) as usize + p.len)
                        .all(|i| byte(orig, i) == byte(damaged, i)))
        })
        .count()
}

/// Offset after the last surviving record's frame in its segment.
pub fn end_of(placed: &[Placed], n: usize) -> u64 {
    n.checked_sub(1)
        .map_or(HEADER, |i| placed[i].offset + frame_len(placed[i].len))
}
