//! A file system out of inodes while the log needs a new file.
//!
//! Fault model: a tmpfs mounted with few inodes (`nr_inodes`), all of them used by other
//! files, while there is space left: creating a segment at a rollover, or a log directory,
//! fails with `ENOSPC`.
//! Pass criterion: the error is `Error::NoSpace` (`is_no_space()`), like a full disk, naming
//! the file and the operating system's reason; the records appended before are intact, and
//! appending works again once an inode is freed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use applog::{Error, Options, Writer};

struct Tmpfs {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

/// A 64 MiB tmpfs with room for `inodes` files and directories (its root included).
fn tmpfs_with_inodes(inodes: u32) -> Tmpfs {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mnt");
    std::fs::create_dir(&dir).unwrap();
    common::mount::run(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size=64m,nr_inodes={inodes}"))
            .arg("tmpfs")
            .arg(&dir),
    )
    .unwrap_or_else(|e| panic!("{e} (this test needs root)"));
    Tmpfs { dir, _tmp: tmp }
}

/// Creates empty files until the file system has no inode left; returns them.
fn use_up_inodes(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    loop {
        let f = dir.join(format!("filler{}", files.len()));
        match std::fs::File::create(&f) {
            Ok(_) => files.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "{e}");
                return files;
            }
        }
        assert!(files.len() < 10_000, "the tmpfs never ran out of inodes");
    }
}

#[track_caller]
fn assert_no_space(err: &Error, op: &str, path: &Path) {
    assert!(err.is_no_space(), "expected NoSpace, got {err:?}");
    match err {
        Error::NoSpace {
            path: p, source, ..
        } => {
            assert_eq!(p, path);
            assert_eq!(source.raw_os_error(), Some(28));
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "no space left to {op} {}: {}",
            path.display(),
            std::io::Error::from_raw_os_error(28)
        )
    );
}

#[test]
fn out_of_inodes_at_a_rollover_or_a_new_log_is_no_space() {
    let _serial = common::serial();
    let fs = tmpfs_with_inodes(32);
    let log = fs.dir.join("log");
    let mut w = Writer::open(&log, Options::new().segment_pages(1)).unwrap();
    let fillers = use_up_inodes(&fs.dir);

    // Records of 1000 bytes: a one-page segment holds 4, the fifth rolls to a new segment.
    let record = [7u8; 1000];
    let mut appended = 0u64;
    let err = loop {
        match w.append(&record) {
            Ok(seq) => {
                assert_eq!(seq, appended);
                appended += 1;
            }
            Err(e) => break e,
        }
        assert!(appended < 100, "the log never rolled over");
    };
    assert_no_space(
        &err,
        "create segment",
        &log.join(applog::segment_name(appended)),
    );
    w.sync().unwrap();
    assert_eq!(common::read_all(&log).len() as u64, appended);

    // Nor can a new log be made.
    let other = fs.dir.join("other");
    let err = Writer::open(&other, Options::new()).unwrap_err();
    assert_no_space(&err, "create log directory", &other);

    // Once an inode is free, appending goes on.
    std::fs::remove_file(&fillers[0]).unwrap();
    assert_eq!(w.append(&record).unwrap(), appended);
    w.sync().unwrap();
    assert_eq!(common::read_all(&log).len() as u64, appended + 1);
}
