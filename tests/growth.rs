//! How segment files grow, on the file systems growth takes different paths on.
//!
//! Fault model: none. The subject is the growth rule itself. Each segment file grows one
//! page at a time, just before the write that needs the page, and is never longer than its
//! data. The size is set by `fallocate` where the file system has it (ext4, tmpfs), and by
//! writing zeros where it has none (ramfs). Records of every shape are appended: empty, small,
//! exactly a page, several pages (faulted in with one `MADV_POPULATE_WRITE`), and up to a
//! whole segment, so that the log rolls often. And one segment that something else cut to a
//! length that is not a page multiple, which grows from there with `ftruncate` (the path for
//! an unaligned size).
//!
//! Pass criterion: after every append, every segment file is exactly as long as the smallest
//! page multiple holding its frames (P4: no store ever lands past the end of the file, so no
//! SIGBUS); after a sync and a reopen, every record reads back in order and byte for byte
//! (P1, P3) and `verify` is clean. Needs root to mount a tmpfs and a ramfs; where mounting is
//! not permitted, those cases print a SKIPPED line and pass without checking, except in CI,
//! where they fail (`common::skip`).

mod common;

use std::path::Path;

use applog::{Options, Writer};
use common::*;

const SEGMENT_PAGES: u32 = 8;

/// The system's page size, asked of the system (not learned from a log, as `common::page`
/// does: this test checks the growth that helper relies on).
fn sys_page() -> u64 {
    rustix::param::page_size() as u64
}

/// The record lengths appended, in order: every shape growth handles.
fn lens() -> Vec<usize> {
    let page = sys_page() as usize;
    // The largest record of a segment: all but its header and one frame header (header word
    // and time).
    let max = page * SEGMENT_PAGES as usize - 80;
    let mut lens = Vec::new();
    for i in 0..60usize {
        lens.push(match i % 10 {
            0 => 0,
            1 => 1 + i,
            2 => page - 8,
            3 => page,
            4 => page + 1,
            5 => 3 * page + 100,
            6 => 5 * page,
            7 => max,
            8 => 128,
            _ => 2000 + i * 7,
        });
    }
    lens
}

/// Appends every record of [`lens`] and checks the file sizes after each append.
fn grow_and_check(log: &Path) {
    let page = sys_page();
    let lens = lens();
    // Without a pretoucher (the default on tmpfs): the exact rule. tests/pretouch.rs checks
    // the rule with one (never more than its lead past the data).
    let opts = Options::new().segment_pages(SEGMENT_PAGES).pretouch(0);
    let mut w = Writer::open(log, opts).unwrap();
    for (seq, &len) in lens.iter().enumerate() {
        assert_eq!(w.append(&payload(seq as u64, len)).unwrap(), seq as u64);
        let report = applog::verify(log).unwrap();
        for s in &report.segments {
            assert_eq!(
                s.file_size,
                s.data_end.next_multiple_of(page),
                "after record {seq} ({len} bytes): {} is {} bytes long for {} bytes of frames",
                s.path.display(),
                s.file_size,
                s.data_end
            );
        }
    }
    assert!(
        applog::verify(log).unwrap().segments.len() > 10,
        "the log should have rolled over many times"
    );
    w.sync().unwrap();
    drop(w);

    let got = read_all(log);
    assert_eq!(got.len(), lens.len());
    for (i, (seq, data)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(data, &payload(i as u64, lens[i]), "record {i}");
    }
    let report = applog::verify(log).unwrap();
    assert!(
        report.is_clean() && report.torn_tail.is_none(),
        "{report:?}"
    );
    // The log reopens and appends after the last record.
    let mut w = Writer::open(log, Options::new().segment_pages(SEGMENT_PAGES)).unwrap();
    assert_eq!(w.append(b"after").unwrap(), lens.len() as u64);
}

/// Whether `fallocate` works on the file system that holds `dir`.
fn has_fallocate(dir: &Path) -> bool {
    let f = std::fs::File::create(dir.join("probe")).unwrap();
    let ok = rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, 4096).is_ok();
    drop(f);
    std::fs::remove_file(dir.join("probe")).unwrap();
    ok
}

#[test]
fn segments_grow_page_by_page_on_the_default_file_system() {
    // The other tests fork `mount`; a forked child holds this test's lock until it execs.
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    grow_and_check(&d.path().join("log"));
}

#[test]
fn segments_grow_page_by_page_on_tmpfs() {
    let _serial = serial();
    match mount::tmpfs(64 << 20) {
        Ok(m) => {
            assert!(has_fallocate(&m.dir), "tmpfs has fallocate");
            grow_and_check(&m.dir.join("log"));
        }
        Err(why) => skip(format_args!("cannot mount a tmpfs here: {why}")),
    }
}

#[test]
fn segments_grow_page_by_page_on_a_file_system_without_fallocate() {
    let _serial = serial();
    match mount::ramfs() {
        Ok(m) => {
            assert!(
                !has_fallocate(&m.dir),
                "ramfs was expected to have no fallocate"
            );
            grow_and_check(&m.dir.join("log"));
        }
        Err(why) => skip(format_args!("cannot mount a ramfs here: {why}")),
    }
}

/// A segment file that something else cut to a length that is not a page multiple (right
/// after its last frame: no record lost) grows from there back to page multiples, and keeps
/// every record.
#[test]
fn a_segment_cut_to_an_odd_length_grows_back_to_page_multiples() {
    let _serial = serial();
    let page = sys_page();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let opts = || Options::new().segment_pages(64).pretouch(0);
    let mut w = Writer::open(&log, opts()).unwrap();
    for seq in 0..5u64 {
        w.append(&payload(seq, 1000)).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    let seg = &applog::verify(&log).unwrap().segments[0];
    assert_ne!(
        seg.data_end % page,
        0,
        "the cut must not be a page multiple"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .unwrap()
        .set_len(seg.data_end)
        .unwrap();

    let mut w = Writer::open(&log, opts()).unwrap();
    assert_eq!(w.next_seq(), 5);
    for seq in 5..20u64 {
        assert_eq!(w.append(&payload(seq, 1000 + seq as usize)).unwrap(), seq);
        let s = &applog::verify(&log).unwrap().segments[0];
        assert_eq!(
            s.file_size,
            s.data_end.next_multiple_of(page),
            "after {seq}"
        );
    }
    w.sync().unwrap();
    drop(w);
    let got = read_all(&log);
    assert_eq!(got.len(), 20);
    for (seq, data) in &got {
        let len = if *seq < 5 { 1000 } else { 1000 + *seq as usize };
        assert_eq!(data, &payload(*seq, len), "record {seq}");
    }
    assert!(applog::verify(&log).unwrap().is_clean());
}
