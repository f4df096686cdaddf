//! A nearly full file system: less free space than one block reservation chunk.
//!
//! Fault model: the file system has tens of KiB free, but less than the 64 KiB the writer
//! reserves ahead (with `fallocate`) when a segment grows. Reserving the whole chunk fails
//! with ENOSPC; the writer must then reserve only the page it needs, so that `NoSpace` comes
//! when the space is really used up, not while tens of KiB are still free.
//!
//! Pass criterion: on a tmpfs filled until less than 64 KiB (and at least 40 KiB) is free,
//! either before the writer creates the log or under a writer half-way through a segment of
//! 1,000 pages, 128-byte records are appended until `NoSpace`: at least (free pages - 1)
//! pages' worth of records go in (a new segment's first page holds its header), less than
//! two pages are left free, every record is readable and the log clean. Needs root to mount
//! the tmpfs; elsewhere the tests skip through `common::skip` (a failure in CI).

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use applog::{Options, Writer};
use common::*;

/// Bytes the unprivileged may still allocate on the file system of `path`.
fn free_bytes(path: &Path) -> u64 {
    let st = rustix::fs::statvfs(path).unwrap();
    st.f_bavail * st.f_frsize
}

/// Writes page-sized blocks into a new file `filler` until less than `below` bytes are free.
fn fill_until(filler: &Path, below: u64) {
    let mut f = std::fs::File::create(filler).unwrap();
    let block = vec![0x5au8; page() as usize];
    while free_bytes(filler) >= below {
        f.write_all(&block).unwrap();
        f.flush().unwrap();
    }
}

const CHUNK: u64 = 64 * 1024;
const LEN: usize = 128;

/// Appends `LEN`-byte records from seq `from` until an error, which must be `NoSpace`, and
/// checks that the space was used up: at least (free pages - 1) pages' worth of records went
/// in, where `free` is what the file system had free before (the writer's own reservation
/// not counted), and less than two pages are left. Returns the next seq.
fn append_until_no_space(w: &mut Writer, fs: &Path, from: u64, free: u64) -> u64 {
    let free_pages = free / page();
    let mut next = from;
    let err = loop {
        match w.append(&payload(next, LEN)) {
            Ok(seq) => {
                assert_eq!(seq, next);
                next += 1;
            }
            Err(e) => break e,
        }
        assert!(next - from < 1_000_000, "the file system never filled up");
    };
    assert!(err.is_no_space(), "expected NoSpace, got {err:?}");
    let appended = next - from;
    let pages_of_records = appended * frame_len(LEN) / page();
    let left = free_bytes(fs);
    assert!(
        pages_of_records + 1 >= free_pages && left < 2 * page(),
        "NoSpace after {appended} records ({pages_of_records} pages' worth) with {free} bytes \
         ({free_pages} pages) free before them; {left} bytes are still free: {err}"
    );
    next
}

/// Everything appended is there, and the log is clean.
fn check_log(log: &Path, next: u64) {
    let got = read_all(log);
    assert_eq!(got.len() as u64, next);
    for (seq, data) in &got {
        assert_eq!(data, &payload(*seq, LEN));
    }
    let report = applog::verify(log).unwrap();
    assert!(
        report.is_clean() && report.torn_tail.is_none(),
        "{report:?}"
    );
    assert_eq!(report.next_seq, next);
}

/// Fills the tmpfs at `dir` until less than a chunk but at least 40 KiB is free; returns the
/// bytes free.
fn leave_less_than_a_chunk(dir: &Path) -> u64 {
    fill_until(&dir.join("filler"), CHUNK);
    let free = free_bytes(dir);
    assert!(
        (40 * 1024..CHUNK).contains(&free),
        "{free} bytes free after filling"
    );
    free
}

/// The file system has less than a chunk free when the writer opens (and creates) the log.
#[test]
fn new_log_on_nearly_full_tmpfs_uses_every_free_page() {
    let mount = match mount::tmpfs(1 << 20) {
        Ok(m) => m,
        Err(e) => return skip(format!("cannot mount a tmpfs: {e}")),
    };
    let log = mount.dir.join("log");
    std::fs::create_dir(&log).unwrap();
    let free = leave_less_than_a_chunk(&mount.dir);
    let mut w = Writer::open(&log, Options::new().segment_pages(1000)).unwrap_or_else(|e| {
        panic!("opening a writer with {free} bytes free: {e:?}");
    });
    // Creating the log also wrote its identity file and the writer's stats file, which take
    // a page each (a pretoucher growing the new segment at once may leave no room for the
    // stats file, which the writer then does without).
    let own: u64 = [applog::LOG_ID_FILE, applog::STATS_FILE]
        .iter()
        .filter_map(|f| std::fs::metadata(log.join(f)).ok())
        .map(|m| m.blocks() * 512)
        .sum();
    let next = append_until_no_space(&mut w, &mount.dir, 0, free - own);
    w.sync().unwrap();
    drop(w);
    check_log(&log, next);
}

/// The file system fills up under a writer that is half-way through a segment, past its
/// first reservation chunk.
#[test]
fn growing_segment_on_nearly_full_tmpfs_uses_every_free_page() {
    let mount = match mount::tmpfs(2 << 20) {
        Ok(m) => m,
        Err(e) => return skip(format!("cannot mount a tmpfs: {e}")),
    };
    let log = mount.dir.join("log");
    let mut w = Writer::open(&log, Options::new().segment_pages(1000)).unwrap();
    // About 100 KiB of records: the segment is past its first chunk.
    let mut next = 0;
    while next * frame_len(LEN) < 100 * 1024 {
        assert_eq!(w.append(&payload(next, LEN)).unwrap(), next);
        next += 1;
    }
    w.sync().unwrap();
    let free = leave_less_than_a_chunk(&mount.dir);
    let next = append_until_no_space(&mut w, &mount.dir, next, free);
    w.sync().unwrap();
    drop(w);
    check_log(&log, next);
}
