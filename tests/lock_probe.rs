//! `applog::is_locked` tells whether a writer holds a log without disturbing one that opens it.
//!
//! In a file of its own: other test files spawn child processes, and between `fork` and
//! `exec` a child holds a copy of every open descriptor, lock files included, so a writer
//! reopened in that window would see `Locked` for a moment (see `Writer::open`).

use std::path::Path;
use std::process::Command;

use applog::{Options, Writer};

/// Serialises this file's tests: the btrfs one spawns `mount`, and a child holds copies of
/// the other test's lock descriptors between `fork` and `exec`.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn is_locked_tells_without_disturbing_a_writer() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    probing_never_locks_a_writer_out(d.path());
}

/// On btrfs `/proc/locks` cannot tell a subvolume's file from another's with the same inode
/// number, so `is_locked` confirms what it finds there with a shared-lock probe: a writer
/// opening the log meanwhile must wait the probe out rather than report `Locked`.
#[test]
fn is_locked_probes_on_btrfs_without_disturbing_a_writer() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(256 << 20))
        .unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?} (needs root)");
    ok(Command::new("mkfs.btrfs").args(["-q", "-f"]).arg(&img));
    ok(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt));
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&mnt);
    let log = mnt.join("log");
    std::fs::create_dir(&log).unwrap();
    probing_never_locks_a_writer_out(&log);
}

fn probing_never_locks_a_writer_out(dir: &Path) {
    assert!(!applog::is_locked(dir).unwrap(), "no lock file: not locked");
    drop(Writer::open(dir, Options::new()).unwrap());
    assert!(!applog::is_locked(dir).unwrap());
    // Probing in a loop never makes a writer's open fail.
    let dir = dir.to_owned();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                applog::is_locked(&dir).unwrap();
                n += 1;
            }
            n
        })
    };
    for _ in 0..300 {
        let w = Writer::open(&dir, Options::new()).expect("a probe must not lock a writer out");
        assert!(applog::is_locked(&dir).unwrap());
        drop(w);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(prober.join().unwrap() > 0);
}
