//! The segment size is a property of the log.
//!
//! Fault model: a log created with one segment size is reopened without saying a size (the
//! library's default, or the CLI without `--segment-pages`), or with a different one. Pass
//! criterion: without a size, new segments keep the log's size and the record-size limit is
//! the log's; with a different size, new segments get it from the next segment on, on
//! purpose, and the limit follows; never a silent mix-up.

mod common;

use std::path::Path;

use applog::{Options, Writer};
use common::cli::*;

fn reservations(dir: &Path) -> Vec<u64> {
    applog::verify(dir)
        .unwrap()
        .segments
        .iter()
        .map(|s| s.reservation)
        .collect()
}

#[test]
fn a_reopened_writer_keeps_the_logs_segment_size_unless_told_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let page = common::page();
    let mut w = Writer::open(&dir, Options::new().segment_pages(2)).unwrap();
    w.append(&[1u8; 100]).unwrap();
    w.close().unwrap();

    // No size given: the log's own (2 pages), not the library default (1000).
    let mut w = Writer::open(&dir, Options::new()).unwrap();
    assert_eq!(w.segment_pages(), 2);
    assert_eq!(w.max_record_len(), 2 * page - 80);
    assert!(
        w.append(&vec![2u8; (3 * page) as usize]).is_err(),
        "the limit is the log's"
    );
    for _ in 0..40 {
        w.append(&[3u8; 500]).unwrap();
    }
    w.close().unwrap();
    assert!(
        reservations(&dir).iter().all(|&r| r == 2 * page),
        "{:?}",
        reservations(&dir)
    );

    // A different size, on purpose: from the next segment on.
    let mut w = Writer::open(&dir, Options::new().segment_pages(4)).unwrap();
    assert_eq!(w.segment_pages(), 4);
    assert_eq!(w.max_record_len(), 4 * page - 80);
    w.append(&vec![4u8; (3 * page) as usize]).unwrap();
    w.close().unwrap();
    let r = reservations(&dir);
    assert_eq!(*r.last().unwrap(), 4 * page, "{r:?}");
    // ...and it sticks: the next writer without a size keeps 4.
    let w = Writer::open(&dir, Options::new()).unwrap();
    assert_eq!(w.segment_pages(), 4);
}

#[test]
fn the_cli_appends_with_the_logs_segment_size() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let page = common::page();
    run_with_stdin(
        &[
            std::ffi::OsStr::new("append"),
            dir.as_os_str(),
            std::ffi::OsStr::new("--segment-pages"),
            std::ffi::OsStr::new("1"),
        ],
        b"a\n",
    )
    .ok();
    let many = "x".repeat(1000) + "\n";
    run_with_stdin(
        &[std::ffi::OsStr::new("append"), dir.as_os_str()],
        many.repeat(20).as_bytes(),
    )
    .ok();
    let r = reservations(&dir);
    assert!(r.len() > 3, "{r:?}");
    assert!(r.iter().all(|&x| x == page), "{r:?}");
}
