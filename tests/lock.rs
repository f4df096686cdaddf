//! The writer lock against what operators and file systems do to it.
//!
//! Fault model: an operator deletes the lock file ("stale") while a writer runs, or recreates
//! it; a log on btrfs, whose `stat` device differs from the one `/proc/locks` prints and whose
//! subvolumes (snapshots above all) share inode numbers; on tmpfs, ext4 and xfs; a reader
//! (another user) allowed to read the segments but not the lock file; an older applog that
//! locks only the lock file.
//! Pass criterion: a second writer, in another process or this one, gets `Error::Locked`
//! (exit 1 and "locked" from the tool) as long as the first holds the log, and the first
//! writer's records stay intact; `is_locked` and `verify`'s `writer_active` are true exactly
//! while a writer holds that log; the reader can `verify`, `info` and `tail`.
//!
//! Every test takes `common::serial()`: they spawn processes (the tool, `mount`), and a child
//! holds copies of this process's lock descriptors between `fork` and `exec`.

mod common;

use std::ffi::OsStr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use applog::{Error, Options, Writer};
use common::cli::{self, log_arg, Run};
use common::mount::{self, Mount};

/// The user the reader runs as: it owns nothing in the log.
const NOBODY: u32 = 65534;

fn writer_with(log: &Path, records: &[&[u8]]) -> Writer {
    let mut w = Writer::open(log, Options::new()).unwrap();
    w.append_batch(records).unwrap();
    w.sync().unwrap();
    w
}

/// `applog append <log> <record>` in another process.
fn append_elsewhere(log: &Path, record: &str) -> Run {
    cli::run(&[OsStr::new("append"), log_arg(log), OsStr::new(record)])
}

#[track_caller]
fn assert_locked_out(log: &Path) {
    let out = append_elsewhere(log, "intruder");
    let err = out.failed();
    assert!(err.contains("locked by another writer"), "{err}");
    assert!(
        err.contains(&format!("held by process {}", std::process::id())),
        "{err}"
    );
    // And in this process (flock conflicts between open file descriptions, even within one).
    match Writer::open(log, Options::new()) {
        Err(Error::Locked { lock_file, pid }) => {
            assert_eq!(lock_file, log.join(applog::LOCK_FILE));
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(applog::is_locked(log).unwrap());
    assert!(applog::verify(log).unwrap().writer_active);
}

#[test]
fn deleting_the_lock_file_does_not_let_a_second_writer_in() {
    let _serial = common::serial();
    let (_tmp, log) = cli::new_log();
    let mut w = writer_with(&log, &[b"a0", b"a1"]);
    let lock_file = log.join(applog::LOCK_FILE);

    // The operator removes the "stale" lock file.
    std::fs::remove_file(&lock_file).unwrap();
    assert_locked_out(&log);
    assert!(
        !lock_file.exists(),
        "a refused writer must not recreate the lock file"
    );

    // ... or removes it and creates it anew.
    std::fs::write(&lock_file, b"").unwrap();
    assert_locked_out(&log);

    // The first writer's acknowledged records are all there, nobody else's.
    w.append(b"a2").unwrap();
    w.sync().unwrap();
    assert_eq!(cli::read_all(&log), [&b"a0"[..], b"a1", b"a2"]);
    drop(w);
    assert!(!applog::is_locked(&log).unwrap());
    append_elsewhere(&log, "b0").ok();
    assert_eq!(cli::read_all(&log), [&b"a0"[..], b"a1", b"a2", b"b0"]);
}

#[test]
fn a_lock_file_held_alone_as_older_versions_do_still_locks_the_log() {
    let _serial = common::serial();
    let (_tmp, log) = cli::log_with(&[b"a"]);
    // An older applog flocks only the lock file.
    let old = std::fs::File::open(log.join(applog::LOCK_FILE)).unwrap();
    rustix::fs::flock(&old, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    assert_locked_out(&log);
    drop(old);
    assert!(!applog::is_locked(&log).unwrap());
    append_elsewhere(&log, "b").ok();
}

// ------------------------------------------------- is_locked on each file system

/// `is_locked` and `verify` follow a writer of the log `log`, in this process and (`applog
/// info`) in another.
#[track_caller]
fn is_locked_follows_the_writer(fs: &str, log: &Path) {
    let w = writer_with(log, &[b"x"]);
    assert!(applog::is_locked(log).unwrap(), "{fs}: writer not seen");
    assert!(applog::verify(log).unwrap().writer_active, "{fs}");
    let info = cli::run(&[OsStr::new("info"), log_arg(log)]);
    assert!(info.ok().contains("locked     yes"), "{fs}: {info:?}");
    drop(w);
    assert!(!applog::is_locked(log).unwrap(), "{fs}: lock not released");
    assert!(!applog::verify(log).unwrap().writer_active, "{fs}");
    let info = cli::run(&[OsStr::new("info"), log_arg(log)]);
    assert!(info.ok().contains("locked     no"), "{fs}: {info:?}");
    // A missing log is no unlocked log.
    let missing = log.with_file_name("missing");
    let err = applog::is_locked(&missing).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, path, .. } if source.kind() == std::io::ErrorKind::NotFound && *path == missing),
        "{fs}: {err:?}"
    );
    assert!(err.to_string().contains("missing"), "{err}");
}

/// Makes a file system with `mkfs` (program and arguments) in a sparse image of `size` bytes
/// and mounts it on a loop device. Panics (the test fails) when that is impossible: these
/// tests need root and the mkfs tools (btrfs-progs, xfsprogs, e2fsprogs).
fn loop_fs(mkfs: &[&str], size: u64) -> Mount {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    std::fs::File::create(&img)
        .and_then(|f| f.set_len(size))
        .unwrap();
    mount::run(Command::new(mkfs[0]).args(&mkfs[1..]).arg(&img))
        .unwrap_or_else(|e| panic!("{e} (this test needs root and {})", mkfs[0]));
    let dir = mount::mount_image(&img, &tmp.path().join("mnt")).unwrap();
    Mount {
        dir,
        image: Some(img),
        tmp,
    }
}

fn btrfs() -> Mount {
    loop_fs(&["mkfs.btrfs", "-q", "-f"], 256 << 20)
}

#[test]
fn is_locked_sees_a_writer_on_btrfs() {
    let _serial = common::serial();
    let m = btrfs();
    is_locked_follows_the_writer("btrfs", &m.dir.join("log"));
}

#[test]
fn is_locked_sees_a_writer_on_tmpfs_ext4_and_xfs() {
    let _serial = common::serial();
    let m = mount::tmpfs(64 << 20).unwrap();
    is_locked_follows_the_writer("tmpfs", &m.dir.join("log"));
    let m = loop_fs(&["mkfs.ext4", "-q", "-F"], 64 << 20);
    is_locked_follows_the_writer("ext4", &m.dir.join("log"));
    let m = loop_fs(&["mkfs.xfs", "-q", "-f"], 320 << 20);
    is_locked_follows_the_writer("xfs", &m.dir.join("log"));
}

/// A snapshot holds the same inode numbers as its source, on the same btrfs device: a writer
/// of the one must not make the other look locked, nor lock a writer of it out.
#[test]
fn a_writer_in_a_btrfs_snapshot_does_not_lock_its_twin() {
    let _serial = common::serial();
    let m = btrfs();
    let (a, b) = (m.dir.join("a"), m.dir.join("b"));
    mount::run(Command::new("btrfs").args(["subvolume", "create"]).arg(&a)).unwrap();
    let (log_a, log_b) = (a.join("log"), b.join("log"));
    drop(writer_with(&log_a, &[b"a"]));
    mount::run(
        Command::new("btrfs")
            .args(["subvolume", "snapshot"])
            .arg(&a)
            .arg(&b),
    )
    .unwrap();
    for name in ["", applog::LOCK_FILE] {
        let (ma, mb) = (
            std::fs::metadata(log_a.join(name)).unwrap(),
            std::fs::metadata(log_b.join(name)).unwrap(),
        );
        assert_eq!(ma.ino(), mb.ino(), "the twins share inode numbers");
        assert_ne!(ma.dev(), mb.dev(), "each subvolume has its own stat device");
    }

    let wa = Writer::open(&log_a, Options::new()).unwrap();
    assert!(applog::is_locked(&log_a).unwrap());
    assert!(
        !applog::is_locked(&log_b).unwrap(),
        "the snapshot's log is free"
    );
    assert!(!applog::verify(&log_b).unwrap().writer_active);
    let wb = Writer::open(&log_b, Options::new()).expect("the snapshot's log is free");
    drop(wa);
    assert!(!applog::is_locked(&log_a).unwrap(), "a's writer is gone");
    assert!(applog::is_locked(&log_b).unwrap());
    match Writer::open(&log_b, Options::new()) {
        Err(Error::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(wb);
}

// ------------------------------------------------- a reader who may not open the lock file

fn run_as_nobody(args: &[&OsStr]) -> Run {
    // Nobody may not reach the checkout: it runs a copy of the binary.
    cli::BinaryForAnyone::new()
        .command_as(Some(NOBODY))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_reader_who_may_not_open_the_lock_file_can_verify_info_and_tail() {
    let _serial = common::serial();
    let (tmp, log) = cli::log_with(&[b"r0", b"r1"]);
    // The segments are 0644 and root's; the reader may reach them, but not the lock file.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let lock_file: PathBuf = log.join(applog::LOCK_FILE);
    std::fs::set_permissions(&lock_file, std::fs::Permissions::from_mode(0o000)).unwrap();
    let check = |locked: &str| {
        let verify = run_as_nobody(&[OsStr::new("verify"), log_arg(&log)]);
        verify.ok();
        let info = run_as_nobody(&[OsStr::new("info"), log_arg(&log)]);
        assert!(
            info.ok().contains(&format!("locked     {locked}")),
            "{info:?}"
        );
        let tail = run_as_nobody(&[OsStr::new("tail"), log_arg(&log)]);
        assert_eq!(tail.ok(), "r0\nr1\n");
    };
    check("no");
    let w = Writer::open(&log, Options::new()).unwrap();
    check("yes");
    drop(w);
}
