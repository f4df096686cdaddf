//! A file system for fault-injection and crash tests (the `fault-injection` feature): it makes
//! the real system calls, fails the Nth call of a kind on purpose, lies about a sync, and keeps
//! a model of the *durable image* (what a power cut would leave) apart from the live files.
//!
//! The model, per the Linux semantics the log relies on:
//! - a file's bytes and size become durable only through an `msync` that covers them, or an
//!   `fdatasync` of the file (stores through the mapping and `pwrite` reach the page cache
//!   only);
//! - a directory entry (created, removed or renamed) becomes durable only through an fsync of
//!   its directory; a file whose entry is durable but whose bytes never were is empty;
//! - after a failed `msync` (or `fdatasync`), the kernel may have marked the pages clean without writing them:
//!   a later `msync` of those pages persists nothing until they are written again (`pwrite`).
//!   Stores through the mapping cannot be seen here, so they do not count as writing again;
//! - a *lying* `msync`, `fdatasync` or directory fsync returns Ok and persists nothing.
//!
//! [`FaultFs::crash_image`] writes the durable image into a directory, to be opened as the log
//! a crash at that moment would leave; [`FaultFs::snapshot_each_call`] does it after every
//! call, so a test can enumerate every crash point of a workload in one run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::io::{FileSystem, Msync, RealFs};

/// A kind of call through the seam.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Call {
    /// `FileSystem::create_new`.
    CreateNew,
    /// `FileSystem::create_dir`.
    CreateDir,
    /// `FileSystem::allocate`.
    Allocate,
    /// `FileSystem::set_len`.
    SetLen,
    /// `FileSystem::write_at`.
    WriteAt,
    /// `FileSystem::msync`.
    Msync,
    /// `FileSystem::sync_data`.
    SyncData,
    /// `FileSystem::sync_dir`.
    SyncDir,
    /// `FileSystem::remove_file`.
    RemoveFile,
    /// `FileSystem::rename`.
    Rename,
    /// `FileSystem::try_lock`.
    TryLock,
}

/// What to do at a chosen call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Fail with this OS error number (for example 5, EIO, or 28, ENOSPC) and do nothing. A
    /// failed `msync` also leaves its pages "clean but not written" (see the module docs).
    Fail(i32),
    /// Return Ok and persist nothing (`msync`, `sync_data` and `sync_dir`; other calls run
    /// normally).
    Lie,
    /// Sleep this long, then run the call normally (a slow device).
    Delay(std::time::Duration),
}

#[derive(Debug, Default)]
struct State {
    calls: u64,
    per_kind: BTreeMap<Call, u64>,
    /// (kind, first and last call of that kind it applies to, counted from 1, fault).
    plan: Vec<(Call, u64, u64, Fault)>,
    /// Durable bytes (and so size) of each file, by inode number.
    content: HashMap<u64, Vec<u8>>,
    /// The root's inode number.
    root_ino: u64,
    /// Durable entries of each directory, by the directory's inode number (so that renaming
    /// a directory keeps them): name -> (inode number, is a directory).
    entries: HashMap<u64, BTreeMap<OsString, (u64, bool)>>,
    /// Pages of a file (by inode) that a failed msync left clean but unwritten.
    lost: HashMap<u64, BTreeSet<u64>>,
    snapshots: Option<PathBuf>,
}

/// The fault-injecting, crash-modelling file system. See the module docs.
#[derive(Debug, Default)]
pub struct FaultFs {
    state: Mutex<State>,
}

const PAGE: u64 = 4096;

impl FaultFs {
    /// A file system whose durable image starts as everything now under `root` (which must
    /// exist): the files the test works in must lie below it.
    ///
    /// # Errors
    /// When `root` cannot be read.
    pub fn new(root: impl AsRef<Path>) -> io::Result<FaultFs> {
        let root = root.as_ref().to_owned();
        let mut st = State {
            root_ino: ino_of(&root).map_or(0, |(i, _)| i),
            ..State::default()
        };
        snapshot_tree(&mut st, &root)?;
        Ok(FaultFs {
            state: Mutex::new(st),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the `nth` call (from 1) of `kind` do `fault`.
    pub fn inject(&self, kind: Call, nth: u64, fault: Fault) {
        self.lock().plan.push((kind, nth, nth, fault));
    }

    /// Makes every call of `kind` from now on do `fault`.
    pub fn inject_all(&self, kind: Call, fault: Fault) {
        let mut st = self.lock();
        let next = st.per_kind.get(&kind).copied().unwrap_or(0) + 1;
        st.plan.push((kind, next, u64::MAX, fault));
    }

    /// Removes every planned fault.
    pub fn clear_faults(&self) {
        self.lock().plan.clear();
    }

    /// Calls made so far, of every kind.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Calls of `kind` made so far.
    pub fn calls_of(&self, kind: Call) -> u64 {
        self.lock().per_kind.get(&kind).copied().unwrap_or(0)
    }

    /// After every call from now on, writes the crash image into `dir/<call number>` (from 1,
    /// zero-padded to 6 digits): the log a power cut right after that call would leave.
    pub fn snapshot_each_call(&self, dir: impl AsRef<Path>) {
        self.lock().snapshots = Some(dir.as_ref().to_owned());
    }

    /// Writes the durable image of everything under the root into `dest` (created), at the
    /// same relative paths.
    ///
    /// # Errors
    /// When `dest` cannot be written.
    pub fn crash_image(&self, dest: impl AsRef<Path>) -> io::Result<()> {
        write_image(&self.lock(), dest.as_ref())
    }

    /// Counts the call and returns the fault planned for it, if any.
    fn begin(&self, kind: Call) -> Option<Fault> {
        let mut st = self.lock();
        st.calls += 1;
        let n = {
            let c = st.per_kind.entry(kind).or_insert(0);
            *c += 1;
            *c
        };
        let fault = st
            .plan
            .iter()
            .rev()
            .find(|&&(k, from, to, _)| k == kind && from <= n && n <= to)
            .map(|&(.., f)| f);
        drop(st);
        if let Some(Fault::Delay(d)) = fault {
            std::thread::sleep(d);
            return None;
        }
        fault
    }

    fn end(&self) {
        let st = self.lock();
        if let Some(dir) = &st.snapshots {
            let dest = dir.join(format!("{:06}", st.calls));
            if let Err(e) = write_image(&st, &dest) {
                tracing::error!(error = %e, dest = %dest.display(), "could not write a crash image");
            }
        }
    }

    fn run<T>(
        &self,
        kind: Call,
        real: impl FnOnce(Option<Fault>) -> io::Result<T>,
    ) -> io::Result<T> {
        let fault = self.begin(kind);
        let r = match fault {
            Some(Fault::Fail(errno)) => Err(io::Error::from_raw_os_error(errno)),
            other => real(other),
        };
        self.end();
        r
    }
}

fn ino_of(path: &Path) -> Option<(u64, bool)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.ino(), m.is_dir()))
}

/// Takes everything under `dir` as durable (the starting state).
fn snapshot_tree(st: &mut State, dir: &Path) -> io::Result<()> {
    let mut names = BTreeMap::new();
    for ent in std::fs::read_dir(dir)? {
        let ent = ent?;
        let meta = ent.metadata()?;
        names.insert(ent.file_name(), (meta.ino(), meta.is_dir()));
        if meta.is_dir() {
            snapshot_tree(st, &ent.path())?;
        } else if meta.is_file() {
            st.content.insert(meta.ino(), std::fs::read(ent.path())?);
        }
    }
    if let Some((ino, _)) = ino_of(dir) {
        st.entries.insert(ino, names);
    }
    Ok(())
}

fn write_image(st: &State, dest: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dest)?;
    write_dir(st, st.root_ino, dest)
}

fn write_dir(st: &State, dir: u64, dest: &Path) -> io::Result<()> {
    let Some(names) = st.entries.get(&dir) else {
        return Ok(());
    };
    for (name, &(ino, is_dir)) in names {
        let to = dest.join(name);
        if is_dir {
            std::fs::create_dir_all(&to)?;
            write_dir(st, ino, &to)?;
        } else {
            let bytes = st.content.get(&ino).map_or(&[][..], Vec::as_slice);
            std::fs::write(&to, bytes)?;
        }
    }
    Ok(())
}

impl FileSystem for FaultFs {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        self.run(Call::CreateNew, |_| RealFs.create_new(path))
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.run(Call::CreateDir, |_| RealFs.create_dir(path))
    }

    fn allocate(
        &self,
        file: &File,
        path: &Path,
        offset: u64,
        len: u64,
        keep_size: bool,
    ) -> io::Result<()> {
        self.run(Call::Allocate, |_| {
            RealFs.allocate(file, path, offset, len, keep_size)
        })
    }

    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.run(Call::SetLen, |_| RealFs.set_len(file, path, len))
    }

    fn write_at(&self, file: &File, path: &Path, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.run(Call::WriteAt, |_| {
            RealFs.write_at(file, path, bytes, offset)?;
            // Written again: those pages are dirty, and the next msync persists them.
            if let Ok(meta) = file.metadata() {
                let end = offset + bytes.len() as u64;
                if let Some(lost) = self.lock().lost.get_mut(&meta.ino()) {
                    lost.retain(|&p| p * PAGE + PAGE <= offset || p * PAGE >= end);
                }
            }
            Ok(())
        })
    }

    fn msync(&self, range: &Msync<'_>) -> io::Result<()> {
        let fault = self.begin(Call::Msync);
        let ino = ino_of(range.path()).map(|(i, _)| i);
        let first = range.offset() / PAGE;
        let last = (range.offset() + range.len()).div_ceil(PAGE);
        let r = match fault {
            Some(Fault::Fail(errno)) => {
                if let Some(ino) = ino {
                    self.lock().lost.entry(ino).or_default().extend(first..last);
                }
                Err(io::Error::from_raw_os_error(errno))
            }
            Some(Fault::Lie) => Ok(()),
            // `begin` has slept a delay out and passes the call on.
            Some(Fault::Delay(_)) | None => range.run().map(|()| {
                let Some(ino) = ino else { return };
                let mut st = self.lock();
                let unwritten = st.lost.get(&ino).cloned().unwrap_or_default();
                let size = range.file_size();
                let content = st.content.entry(ino).or_default();
                content.resize(usize::try_from(size).unwrap_or(0), 0);
                for page in first..last {
                    if unwritten.contains(&page) {
                        continue;
                    }
                    let at = page * PAGE;
                    let n = PAGE.min(size.saturating_sub(at));
                    let (Ok(a), Ok(b)) = (usize::try_from(at), usize::try_from(at + n)) else {
                        continue;
                    };
                    if let Some(dst) = content.get_mut(a..b) {
                        range.read(at, dst);
                    }
                }
            }),
        };
        self.end();
        r
    }

    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        let fault = self.begin(Call::SyncData);
        let ino = file.metadata().ok().map(|m| m.ino());
        let r = match fault {
            Some(Fault::Fail(errno)) => {
                if let (Some(ino), Ok(m)) = (ino, file.metadata()) {
                    let pages = m.len().div_ceil(PAGE);
                    self.lock().lost.entry(ino).or_default().extend(0..pages);
                }
                Err(io::Error::from_raw_os_error(errno))
            }
            Some(Fault::Lie) => Ok(()),
            Some(Fault::Delay(_)) | None => RealFs.sync_data(file, path).and_then(|()| {
                let Some(ino) = ino else { return Ok(()) };
                let mut live = Vec::new();
                let len = file.metadata()?.len();
                live.resize(usize::try_from(len).unwrap_or(0), 0);
                std::os::unix::fs::FileExt::read_exact_at(file, &mut live, 0)?;
                let mut st = self.lock();
                let unwritten = st.lost.get(&ino).cloned().unwrap_or_default();
                let content = st.content.entry(ino).or_default();
                let old = std::mem::take(content);
                *content = live;
                // Pages a failed sync left clean but unwritten keep what was durable before.
                for page in unwritten {
                    let (Ok(a), Ok(b)) = (
                        usize::try_from(page * PAGE),
                        usize::try_from(page * PAGE + PAGE),
                    ) else {
                        continue;
                    };
                    let b = b.min(content.len());
                    if a >= b {
                        continue;
                    }
                    let keep = old.get(a..b.min(old.len())).unwrap_or(&[]);
                    content[a..b].fill(0);
                    content[a..a + keep.len()].copy_from_slice(keep);
                }
                Ok(())
            }),
        };
        self.end();
        r
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.run(Call::SyncDir, |fault| {
            RealFs.sync_dir(dir)?;
            if fault == Some(Fault::Lie) {
                return Ok(());
            }
            let mut names = BTreeMap::new();
            for ent in std::fs::read_dir(dir)? {
                let ent = ent?;
                if let Some(id) = ino_of(&ent.path()) {
                    names.insert(ent.file_name(), id);
                }
            }
            if let Some((ino, _)) = ino_of(dir) {
                self.lock().entries.insert(ino, names);
            }
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.run(Call::RemoveFile, |_| RealFs.remove_file(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.run(Call::Rename, |_| RealFs.rename(from, to))
    }

    fn rename_over(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.run(Call::Rename, |_| RealFs.rename_over(from, to))
    }

    fn try_lock(&self, file: &File, path: &Path) -> io::Result<()> {
        self.run(Call::TryLock, |_| RealFs.try_lock(file, path))
    }
}
