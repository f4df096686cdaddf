//! Reader, `verify` and recovery (`Writer::open`) of a segment file built from arbitrary
//! bytes: valid frames with damage, or raw bytes after a valid header. The checks (P1-P4) are
//! shared with the proptest twin in `tests/fuzz_twins.rs`. Files go to a tmpfs when there is
//! one (`/dev/shm`), since recovery syncs what it changes.
#![no_main]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

#[path = "../../tests/common/harness.rs"]
#[allow(dead_code)]
mod harness;

fn scratch() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let n = N.fetch_add(1, Ordering::Relaxed);
    base.join(format!("applog-fuzz-{}-{n}", std::process::id()))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    std::fs::create_dir(&dir).unwrap();
    harness::check_recovery(&dir, data);
    std::fs::remove_dir_all(&dir).unwrap();
});
