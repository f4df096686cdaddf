//! What a durable append writes to the device.
//!
//! A sync msyncs only the pages written since the last one: a small durable append writes its
//! data page, not also the header page that holds the synced mark (that page is written out
//! at most about once a second, and at `close`). Counted on a real block device: ext4 on a
//! loop device, whose `/sys/block/<dev>/stat` gives the sectors written.
//!
//! Pass criterion: 400 durable appends of 128 B (each `append` then `sync`) write less than
//! 1.5 pages per append on average (two pages per append is the behaviour this pins out; the
//! file system's own metadata, as the file grows a page every 30 appends, stays well under
//! half a page per append). (That `close` leaves the exact mark on the device is checked in
//! `power_cut_ext4.rs`.)
//!
//! Needs root (mount, loop devices); where mounting is not permitted the test prints a
//! SKIPPED line and passes without checking, except in CI, where it fails (`common::skip`).

mod common;

use applog::{Options, Writer};
use common::*;

#[test]
fn a_small_durable_append_writes_one_page() {
    // Inode tables and journal initialised by mkfs, so that no background thread of the
    // kernel writes to the device during the count.
    let m = match mount::ext4_with(16 << 20, &["-E", "lazy_itable_init=0,lazy_journal_init=0"]) {
        Ok(m) => m,
        Err(why) => {
            skip(format_args!("cannot mount an ext4 loop image here: {why}"));
            return;
        }
    };
    let dev = mount::loop_device(m.image.as_ref().unwrap()).unwrap();
    let log = m.dir.join("log");
    let mut w = Writer::open(&log, Options::new()).unwrap();
    // Warm up: the first syncs also write the new file, its directory entry and header.
    for i in 0..10u64 {
        w.append(&payload(i, 128)).unwrap();
        w.sync().unwrap();
    }
    let appends = 400u64;
    let before = mount::block_stat(&dev)[6];
    for i in 0..appends {
        w.append(&payload(i, 128)).unwrap();
        w.sync().unwrap();
    }
    let sectors = mount::block_stat(&dev)[6] - before;
    let per_append = sectors as f64 * 512.0 / appends as f64;
    println!(
        "{appends} durable appends of 128 B wrote {} KiB, {:.2} KiB per append",
        sectors / 2,
        per_append / 1024.0
    );
    let page = page() as f64;
    assert!(
        per_append < 1.5 * page,
        "{per_append:.0} bytes written per durable append: more than one page each"
    );
    w.close().unwrap();
}
