//! Copy-on-write file systems (btrfs): stores into a mapped segment must never need new space.
//!
//! The log writes through a shared mapping, and the processes that map a segment store into
//! pages that already hold data: the writer (the next frame in a partly filled page, the
//! synced mark, the wake word), recovery (zeroing a torn tail) and a `Block` tailer (its bit
//! in the wake word). On a copy-on-write file system a store into a page that was written
//! out before needs a new block at fault time; `fallocate` does not reserve it (it only
//! preallocates blocks that the first write of each page fills in place). On a full btrfs
//! that fault fails, and the kernel raises SIGBUS in the process that stored.
//!
//! The cure is btrfs' no-copy-on-write attribute (`FS_NOCOW_FL`, `chattr +C`): blocks of a
//! NOCOW file are overwritten in place, so a store into a written page needs no new data
//! space (Linux 6.17 and later also let such a fault go ahead when no data space is left;
//! older kernels could still fail it on a full file system). btrfs accepts the attribute only
//! on an empty file (on a file with data it is silently ignored), so it is set right after a
//! segment file is created, before anything is written, and read back to check it took.
//!
//! What NOCOW does not cover:
//! - A segment created without it (by an older version of applog, or copied with `cp`, which
//!   gives the copy no attribute): [`stores_are_safe`] says so, and callers refuse to store.
//! - Snapshots and reflinks: a NOCOW extent shared with a snapshot (or a reflinked copy) is
//!   copied once on the next write of each block after the snapshot, like a COW file, even
//!   though the file keeps the attribute. A log in a subvolume that is snapshotted can still
//!   hit that copy on a full file system; keep free space, or keep logs out of snapshotted
//!   subvolumes. The attribute cannot tell, so [`stores_are_safe`] cannot either.
//! - Data checksums and compression: btrfs keeps neither for NOCOW files.
//!
//! NOCOW is not enough on its own either: a store into a written-out page faults into
//! `btrfs_page_mkwrite`, which reserves data space *before* it considers the attribute, and on
//! a full btrfs (Linux 6.18) that reservation can wait forever for space the kernel's reclaim
//! never frees (the writer hung in `__reserve_bytes` while the async data reclaim worker kept
//! committing transactions). `pwrite` into the same page of a NOCOW file goes ahead in place or
//! fails with `ENOSPC`. So on a copy-on-write file system ([`writes_by_pwrite`]) the writer
//! and recovery write every byte of a segment with `pwrite` through the I/O seam, never with
//! a store through the mapping, and do not prefault pages writable (see
//! `segment::WriteSegment`). Readers still read through the mapping. A `Block` tailer's
//! announcement in the wake word is still an atomic store through its own mapping.

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fs::IFlags;

use crate::error::{Error, Result};

/// `BTRFS_SUPER_MAGIC`, the `f_type` of a btrfs in `statfs`.
const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;

/// The copy-on-write file system a file lives on, by name, or `None` when it overwrites in
/// place (or cannot be told: treated as not copy-on-write).
fn cow_file_system(file: &File) -> Option<&'static str> {
    let st = rustix::fs::fstatfs(file).ok()?;
    // f_type is a signed word on some targets: compare its low 32 bits.
    (st.f_type as i64 & 0xFFFF_FFFF == BTRFS_SUPER_MAGIC).then_some("btrfs")
}

/// Readies a segment file right after it was created empty (before anything is written):
/// where the file system is copy-on-write, sets the no-copy-on-write attribute and checks
/// that it took. Errors, naming the file and the file system, where it cannot be set. On
/// other file systems it does nothing (one `fstatfs`).
pub(crate) fn prepare_new_file(file: &File, path: &Path) -> Result<()> {
    let Some(fs) = cow_file_system(file) else {
        return Ok(());
    };
    // The op names the file system; the source says what failed and why it matters.
    let op = "could not make file no-copy-on-write on btrfs";
    let refuse = |why: String| {
        Error::io(
            op,
            path,
            io::Error::other(format!(
                "{why}; without it a store into a written page of the mapped file needs new \
             space, and on a full {fs} the process that stores gets SIGBUS"
            )),
        )
    };
    let flags = rustix::fs::ioctl_getflags(file)
        .map_err(|e| refuse(format!("reading its attributes failed: {e}")))?;
    if !flags.contains(IFlags::NOCOW) {
        rustix::fs::ioctl_setflags(file, flags | IFlags::NOCOW)
            .map_err(|e| refuse(format!("setting FS_NOCOW_FL failed: {e}")))?;
    }
    let after = rustix::fs::ioctl_getflags(file)
        .map_err(|e| refuse(format!("reading its attributes failed: {e}")))?;
    if after.contains(IFlags::NOCOW) {
        Ok(())
    } else {
        Err(refuse(format!(
            "{fs} did not keep FS_NOCOW_FL (it takes it only on an empty file)"
        )))
    }
}

/// True unless `file` lives on a copy-on-write file system without the no-copy-on-write
/// attribute (a segment made by an older version, or copied): then a store into one of its
/// written pages can need new space, and on a full file system fail with SIGBUS. Writers
/// refuse to append to such a segment; readers wait by polling rather than store into its
/// wake word. Attributes that cannot be read count as copy-on-write on a copy-on-write file system.
pub(crate) fn stores_are_safe(file: &File) -> bool {
    if cow_file_system(file).is_none() {
        return true;
    }
    matches!(rustix::fs::ioctl_getflags(file), Ok(f) if f.contains(IFlags::NOCOW))
}

/// True where a segment must be written with `pwrite` rather than with stores through its
/// mapping: on a copy-on-write file system. There, every store into a page that was written
/// out before faults into `page_mkwrite`, which reserves data space before it looks at the
/// no-copy-on-write attribute; on a full btrfs that reservation can wait forever for space
/// the kernel's reclaim never frees (seen on Linux 6.18). A `pwrite` into the same page of a
/// no-copy-on-write file goes ahead, or fails with `ENOSPC`.
pub(crate) fn writes_by_pwrite(file: &File) -> bool {
    cow_file_system(file).is_some()
}

/// The error for a segment that [`stores_are_safe`] refuses, naming the file and the way
/// out.
pub(crate) fn refuse_stores(path: &Path) -> Error {
    Error::io(
        "refusing to write to a copy-on-write segment",
        path,
        io::Error::other(
            "it lives on btrfs without the no-copy-on-write attribute (made by an older \
             version, or copied), so a store into it could need new space and, on a full file \
             system, kill the process with SIGBUS; reading it is safe. To write, copy the log \
             into a directory given `chattr +C` first (files created there inherit the \
             attribute)",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_on_a_file_system_that_overwrites_in_place_needs_nothing() -> std::io::Result<()> {
        // The temporary directory is not on btrfs on the machines the tests run on; where
        // it is, the file gets the attribute, and either way stores are then safe.
        let d = tempfile::tempdir()?;
        let path = d.path().join("seg");
        let file = std::fs::File::create(&path)?;
        assert!(prepare_new_file(&file, &path).is_ok());
        assert!(stores_are_safe(&file));
        Ok(())
    }
}
