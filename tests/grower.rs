//! The background grower (`Options::grow_ahead`).
//!
//! Fault model: a thread grows the segment file while the writer appends into it, so a bug
//! would show as a SIGBUS (a store past the end of the file kills this test process), a record
//! that reads back wrong, a file that grew past its rule, or a thread left running after the
//! writer is gone. Pass criterion: every record reads back in order across many rollovers and
//! record sizes, while a reader follows; `verify` is clean; a file is never more than `ahead`
//! pages longer than the page holding its data, and does reach that once the grower caught up;
//! dropping the writer stops every grower thread. (Full disks with a grower: tests/full_disk.rs.)

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use applog::{Options, Reader, Writer};
use common::*;

/// The tests count this process's grower threads: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Threads of this process named like the grower.
fn grower_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == "applog-grow")
        })
        .count()
}

/// Waits (up to 10 s) until the process has `n` grower threads: a new thread names itself
/// once it runs.
fn expect_grower_threads(n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while grower_threads() != n {
        assert!(
            Instant::now() < deadline,
            "{what}: {} grower threads, expected {n}",
            grower_threads()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Each segment file of `dir` with its size, by name.
fn segment_sizes(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn records_read_back_across_rollovers_with_a_grower() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for ahead in [1u32, 16] {
        let d = tempfile::tempdir().unwrap();
        let seg_pages = 8u32;
        let opts = Options::new().segment_pages(seg_pages).grow_ahead(ahead);
        let mut w = Writer::open(d.path(), opts).unwrap();
        let mut reader = Reader::open(d.path()).unwrap();
        let max = w.max_record_len() as usize;
        let mut lens = Vec::new();
        let mut read = 0u64;
        for i in 0..1200u64 {
            let seq = lens.len() as u64;
            let len = match i % 7 {
                0 => 0,
                1 => (i as usize * 13) % 200,
                2 => page() as usize - 8,
                3 => page() as usize * 2 + 5,
                4 => max,
                _ => (i as usize * 31) % 1000,
            };
            assert_eq!(w.append(&payload(seq, len)).unwrap(), seq);
            lens.push(len);
            if i % 5 == 0 {
                let n = lens.len();
                let batch: Vec<Vec<u8>> = (0..3).map(|k| payload((n + k) as u64, 100)).collect();
                assert_eq!(w.append_batch(&batch).unwrap(), n as u64..n as u64 + 3);
                lens.extend([100, 100, 100]);
            }
            // A reader follows while the file grows under it.
            while let Some(rec) = reader.next().unwrap() {
                assert_eq!(rec.seq(), read);
                assert_eq!(rec.data(), &payload(read, lens[read as usize])[..]);
                read += 1;
            }
            if w.next_seq() > 2000 {
                break;
            }
        }
        assert_eq!(read, w.next_seq(), "ahead {ahead}");
        w.sync().unwrap();
        let got = read_all(d.path());
        assert_eq!(got.len(), lens.len());
        for (i, (seq, data)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            assert_eq!(data, &payload(i as u64, lens[i]));
        }
        let report = applog::verify(d.path()).unwrap();
        assert!(
            report.is_clean() && report.torn_tail.is_none(),
            "{report:?}"
        );
        assert!(report.segments.len() > 100, "{}", report.segments.len());
        drop(w);
        assert_eq!(grower_threads(), 0, "ahead {ahead}: grower left running");
        // Reopening recovers the longer files as any other: nothing is cut but zeros.
        let w = Writer::open(d.path(), Options::new().segment_pages(seg_pages)).unwrap();
        assert_eq!(w.next_seq(), lens.len() as u64);
    }
}

#[test]
fn the_file_stays_at_most_ahead_pages_past_the_data_and_gets_there() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let ahead = 4u64;
    let d = tempfile::tempdir().unwrap();
    let opts = Options::new().segment_pages(1000).grow_ahead(ahead as u32);
    let mut w = Writer::open(d.path(), opts).unwrap();
    let p = page();
    let mut end = HEADER;
    for i in 0..200u64 {
        w.append(&payload(i, 120)).unwrap();
        end += frame_len(120);
        let (_, size) = segment_sizes(d.path())[0].clone();
        let data_page_end = end.div_ceil(p) * p;
        assert!(
            size >= data_page_end,
            "record {i}: file {size} < data {end}"
        );
        assert!(
            size <= data_page_end + ahead * p,
            "record {i}: file {size} more than {ahead} pages past the data ({end})"
        );
    }
    // The grower catches up: the file reaches `ahead` pages past the page holding the data.
    let want = end.div_ceil(p) * p + ahead * p;
    let deadline = Instant::now() + Duration::from_secs(20);
    while segment_sizes(d.path())[0].1 < want {
        assert!(
            Instant::now() < deadline,
            "grower never caught up: {:?}, want {want}",
            segment_sizes(d.path())
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(segment_sizes(d.path())[0].1, want);
    drop(w);
}

#[test]
fn dropping_the_writer_stops_the_grower() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(grower_threads(), 0);
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(4).grow_ahead(2)).unwrap();
    expect_grower_threads(1, "one grower for the active segment");
    for i in 0..500u64 {
        w.append(&payload(i, 700)).unwrap();
    }
    // Rollovers replaced the segment many times: still one grower, the old ones joined.
    assert!(applog::verify(d.path()).unwrap().segments.len() > 15);
    expect_grower_threads(1, "after rollovers");
    w.close().unwrap();
    assert_eq!(grower_threads(), 0);
    // Without the option there is none.
    let w = Writer::open(d.path(), Options::new().segment_pages(4)).unwrap();
    assert_eq!(grower_threads(), 0);
    drop(w);
}
