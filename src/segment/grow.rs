//! Growing a segment file: the system calls that reserve blocks and set the size, shared by
//! the writer (growth inline, before the write that needs the room) and its pretoucher (one
//! page at a time ahead of the data: see `crate::pretouch`).
//!
//! The two never grow a file at the same time: [`Growth`] holds the file's growth state under
//! a mutex, and publishes the size grown to in an atomic that the writer reads without the
//! lock. The file never shrinks, so a size once published stays valid for every mapping.

use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::page_size;
use crate::error::{is_enospc, Error, Result};
use crate::format;
use crate::io::FileSystem;

/// Blocks are reserved with `fallocate` this many bytes at a time (capped at the
/// reservation), ahead of the file size, so that growing by a page is one call that only sets
/// the size. When a whole chunk does not fit on the disk, only what the write needs is
/// reserved.
const ALLOCATE_CHUNK: u64 = 64 * 1024;

pub(super) fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == rustix::io::Errno::OPNOTSUPP.raw_os_error() || c == rustix::io::Errno::NOSYS.raw_os_error())
}

/// The growth state of one segment file, shared by its writer and the pretoucher.
pub(crate) struct Growth {
    grower: Mutex<Grower>,
    /// The file size grown to (by either side), stored with `Release` after the growth.
    grown: AtomicU64,
    /// The writer's data end when it last asked the pretoucher for pages.
    pub(crate) want: AtomicU64,
    /// A pretoucher's growth failed (a full disk, say): it grows nothing more until the
    /// writer has grown the file itself again.
    pub(crate) stalled: AtomicBool,
}

impl Growth {
    pub(super) fn new(
        file: Arc<File>,
        path: PathBuf,
        fs: Arc<dyn FileSystem>,
        size: u64,
        reservation: u64,
    ) -> Arc<Growth> {
        Arc::new(Growth {
            grower: Mutex::new(Grower {
                file,
                path,
                fs,
                reservation,
                size,
                allocated: size,
                fallocate_extends: true,
            }),
            grown: AtomicU64::new(size),
            want: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
        })
    }

    /// The file size grown to so far.
    pub(crate) fn grown(&self) -> u64 {
        self.grown.load(Ordering::Acquire)
    }

    /// Grows the file so that bytes `[0, end)` exist, plus `extra` bytes (capped at the
    /// reservation); returns the file size, which may be larger (grown by the other side).
    ///
    /// # Errors
    /// `NoSpace` when the file system is full; `Io`.
    pub(crate) fn grow_to(&self, end: u64, extra: u64) -> Result<u64> {
        let mut g = self.lock();
        let grown = g.grow_to(end, extra);
        // Even after an error: a fallback write may have set the size.
        self.grown.store(g.size, Ordering::Release);
        grown.map(|()| g.size)
    }

    fn lock(&self) -> MutexGuard<'_, Grower> {
        // A panic while growing cannot leave the state inconsistent in a way that matters:
        // sizes only grow, and each is set after the system call that made it so.
        self.grower
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The growth state proper (see [`Growth`]).
struct Grower {
    file: Arc<File>,
    path: PathBuf,
    fs: Arc<dyn FileSystem>,
    reservation: u64,
    /// The file size.
    size: u64,
    /// Bytes of the file reserved with fallocate.
    allocated: u64,
    /// Whether `fallocate` can extend this file (cleared at its first "not supported").
    fallocate_extends: bool,
}

impl Grower {
    /// To the smallest page multiple that holds `end`, plus `extra`, capped at the
    /// reservation. Blocks are reserved first with fallocate, so a full file system is an
    /// error here rather than a SIGBUS at the first store.
    fn grow_to(&mut self, end: u64, extra: u64) -> Result<()> {
        if end <= self.size {
            return Ok(());
        }
        let new_size = (format::round_up(end, page_size()) + extra).min(self.reservation);
        if new_size > self.allocated {
            self.reserve_blocks(new_size)?;
        }
        if new_size > self.size {
            self.extend(new_size)?;
        }
        Ok(())
    }

    /// Sets the file size to `new_size` (larger than the current one): with `fallocate` (mode
    /// 0: the blocks, already reserved, and the new size in one call) where the file system
    /// has it, else with `ftruncate`. `fallocate` skips ext4's `truncate_pagecache`, which
    /// walks the page tables of every mapping on each page grown (128 B appends ~25% faster).
    fn extend(&mut self, new_size: u64) -> Result<()> {
        let old_size = self.size;
        // Only from a page boundary (always so for files this crate grew).
        if self.fallocate_extends && old_size % page_size() == 0 {
            match self
                .fs
                .allocate(&self.file, &self.path, old_size, new_size - old_size, false)
            {
                Ok(()) => {
                    self.size = new_size;
                    return Ok(());
                }
                Err(e) if is_unsupported(&e) => self.fallocate_extends = false,
                Err(e) => return Err(self.grow_error(e)),
            }
        }
        self.fs
            .set_len(&self.file, &self.path, new_size)
            .map_err(|e| self.grow_error(e))?;
        self.size = new_size;
        Ok(())
    }

    /// Reserves blocks up to at least `new_size`: a chunk ahead when the disk has room, else
    /// exactly what is needed.
    fn reserve_blocks(&mut self, new_size: u64) -> Result<()> {
        let from = self.allocated;
        let chunk_end = (from + ALLOCATE_CHUNK).max(new_size).min(self.reservation);
        let attempt = |to: u64| {
            self.fs
                .allocate(&self.file, &self.path, from, to - from, true)
        };
        let result = match attempt(chunk_end) {
            Err(e) if is_enospc(&e) && chunk_end > new_size => attempt(new_size).map(|()| new_size),
            other => other.map(|()| chunk_end),
        };
        match result {
            Ok(to) => {
                self.allocated = to;
                Ok(())
            }
            Err(e) if is_unsupported(&e) => {
                // No fallocate on this file system: make the blocks of the new pages exist by
                // writing zeros through write(), which reports a full disk as an error. Only up
                // to the new size: the file must never be longer than its growth rule.
                let old = self.size;
                let zeros = vec![0u8; usize::try_from(new_size - old).unwrap_or(0)];
                self.fs
                    .write_at(&self.file, &self.path, &zeros, old)
                    .map_err(|e| self.grow_error(e))?;
                self.size = new_size;
                self.allocated = new_size;
                Ok(())
            }
            Err(e) => Err(self.grow_error(e)),
        }
    }

    fn grow_error(&self, e: io::Error) -> Error {
        if is_enospc(&e) {
            Error::NoSpace {
                op: "grow segment",
                path: self.path.clone(),
                source: e,
            }
        } else {
            Error::io("could not grow segment", &self.path, e)
        }
    }
}
