//! The I/O seam: every system call that changes what a crash leaves behind goes through one
//! small trait, [`FileSystem`]: creating files and directories, reserving and sizing blocks,
//! `pwrite`, `msync`, `fdatasync`, directory `fsync`, unlink, rename and locking.
//!
//! The log uses [`RealFs`], which makes the system calls directly; a writer holds it as an
//! `Arc<dyn FileSystem>` and calls it only on growth steps (one call per page grown) and
//! checkpoints, never per record, so the indirection costs nothing measurable (see the append
//! bench). Tests (with the `internals` feature) substitute a file system that fails the Nth call,
//! lies about a sync, or keeps the image a crash would leave apart from the live one
//! (`applog::internals::FaultFs`).
//!
//! Stores through the mapping are not system calls and do not pass here: they change only
//! the page cache, which an `msync` (through the seam) makes durable.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use crate::mapping::WriteMap;

/// What an msync covers: a byte range of one mapped segment file.
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub struct Msync<'a> {
    pub(crate) path: &'a Path,
    pub(crate) map: &'a WriteMap,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
impl Msync<'_> {
    /// The segment file.
    pub fn path(&self) -> &Path {
        self.path
    }

    /// First byte of the range (page-aligned).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Length of the range.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file size the writer knows (bytes past it do not exist).
    pub fn file_size(&self) -> u64 {
        self.map.size()
    }

    /// Runs the real `msync(MS_SYNC)` of the range.
    ///
    /// # Errors
    /// The operating system's error.
    pub fn run(&self) -> io::Result<()> {
        self.map.msync(self.offset, self.len)
    }

    /// Copies the bytes at `offset` out of the mapping (atomically: a writer may be appending
    /// past the range meanwhile). False when they lie outside the file.
    pub fn read(&self, offset: u64, out: &mut [u8]) -> bool {
        self.map.read_atomic(offset, out)
    }
}

/// The system calls that change durable state. See the module docs.
///
/// Every method takes the path of the file concerned, so an implementation can keep its own
/// model of the files, and returns the operating system's error unchanged.
#[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates a new, empty file for reading and writing; fails if it exists.
    ///
    /// # Errors
    /// The operating system's error (`AlreadyExists`, `StorageFull`, ...).
    fn create_new(&self, path: &Path) -> io::Result<File>;

    /// Creates a directory (its parent must exist).
    ///
    /// # Errors
    /// The operating system's error.
    fn create_dir(&self, path: &Path) -> io::Result<()>;

    /// `fallocate(2)`: reserves `[offset, offset + len)`; with `keep_size`, without changing
    /// the file size (`FALLOC_FL_KEEP_SIZE`), else extending it.
    ///
    /// # Errors
    /// The operating system's error; `Unsupported`-like errors (`EOPNOTSUPP`) make the caller
    /// fall back to `set_len` and `write_at`.
    fn allocate(
        &self,
        file: &File,
        path: &Path,
        offset: u64,
        len: u64,
        keep_size: bool,
    ) -> io::Result<()>;

    /// `ftruncate(2)` to `len` (the log only ever extends).
    ///
    /// # Errors
    /// The operating system's error.
    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()>;

    /// `pwrite(2)` of all of `bytes` at `offset`.
    ///
    /// # Errors
    /// The operating system's error.
    fn write_at(&self, file: &File, path: &Path, bytes: &[u8], offset: u64) -> io::Result<()>;

    /// `msync(MS_SYNC)` of a mapped range: the durability checkpoint of its bytes and of the
    /// file size.
    ///
    /// # Errors
    /// The operating system's error.
    fn msync(&self, range: &Msync<'_>) -> io::Result<()>;

    /// `fdatasync(2)` of a file written with [`write_at`](Self::write_at): makes its bytes and
    /// size durable (the log's metadata file is written this way, not through a mapping).
    ///
    /// # Errors
    /// The operating system's error.
    fn sync_data(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_data()
    }

    /// `fsync(2)` of a directory: makes entries created, removed or renamed in it durable.
    ///
    /// # Errors
    /// The operating system's error.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// `unlink(2)`.
    ///
    /// # Errors
    /// The operating system's error.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// `rename(2)` that never replaces `to` (`RENAME_NOREPLACE`, or a check first where the
    /// file system lacks it).
    ///
    /// # Errors
    /// `AlreadyExists` when `to` exists; else the operating system's error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// `rename(2)` that atomically replaces `to` when it exists (a segment cut at its first
    /// record is replaced by a new, empty one).
    ///
    /// # Errors
    /// The operating system's error.
    fn rename_over(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Takes an exclusive `flock(2)` on `file` without waiting.
    ///
    /// # Errors
    /// `WouldBlock` when another open file description holds it; else the operating system's
    /// error.
    fn try_lock(&self, file: &File, path: &Path) -> io::Result<()>;
}

/// The real file system: each method is the system call it names.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl FileSystem for RealFs {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn allocate(
        &self,
        file: &File,
        _path: &Path,
        offset: u64,
        len: u64,
        keep_size: bool,
    ) -> io::Result<()> {
        let flags = if keep_size {
            rustix::fs::FallocateFlags::KEEP_SIZE
        } else {
            rustix::fs::FallocateFlags::empty()
        };
        rustix::fs::fallocate(file, flags, offset, len).map_err(io::Error::from)
    }

    fn set_len(&self, file: &File, _path: &Path, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn write_at(&self, file: &File, _path: &Path, bytes: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(file, bytes, offset)
    }

    fn msync(&self, range: &Msync<'_>) -> io::Result<()> {
        range.run()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
            Ok(()) => Ok(()),
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
                // No RENAME_NOREPLACE on this file system: check, then rename.
                if to.symlink_metadata().is_ok() {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                std::fs::rename(from, to)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn rename_over(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn try_lock(&self, file: &File, _path: &Path) -> io::Result<()> {
        rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(io::Error::from)
    }
}

/// The file system a log uses unless told otherwise.
pub(crate) fn real() -> std::sync::Arc<dyn FileSystem> {
    static REAL: std::sync::OnceLock<std::sync::Arc<dyn FileSystem>> = std::sync::OnceLock::new();
    std::sync::Arc::clone(REAL.get_or_init(|| std::sync::Arc::new(RealFs)))
}
