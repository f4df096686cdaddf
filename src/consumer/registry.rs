//! The consumers of a log: the `consumers/` directory, its lock, and the operations on a
//! consumer that do not read records (create, hold, list, reset, delete).
//!
//! The registry lock is an exclusive `flock` on the `consumers/` directory. Whatever can move
//! a consumer's position backwards, or add one, takes it: registering a consumer (it starts at
//! the log's first record), resetting one, and retention, which reads every position and then
//! removes segments. A commit only moves a position forward, so it takes no lock: retention
//! that read an older position removes less, never more.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::state::{self, Mapped, Slot, Snapshot, NO_HINT};
use crate::dir;
use crate::error::{Error, Result};
use crate::reader::Reader;

/// The directory, inside a log directory, that holds its consumers.
pub const CONSUMERS_DIR: &str = "consumers";

/// The longest consumer name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a consumer name: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `.`.
///
/// # Errors
/// [`Error::InvalidConsumerName`].
pub(crate) fn validate_name(name: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidConsumerName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("it is longer than 64 characters");
    }
    if name.starts_with('.') {
        return bad("it starts with '.'");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(&format!(
            "it holds {c:?}; a name is letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

pub(crate) fn consumers_dir(log: &Path) -> PathBuf {
    log.join(CONSUMERS_DIR)
}

pub(crate) fn consumer_path(log: &Path, name: &str) -> PathBuf {
    consumers_dir(log).join(name)
}

/// The registry lock, held until dropped.
pub(crate) struct RegistryLock {
    _dir: File,
}

/// Takes the registry lock, waiting for it; creates `consumers/` first (and makes its entry
/// durable) when it is missing. `NotALog` for a directory that holds no log.
pub(crate) fn lock(log: &Path) -> Result<RegistryLock> {
    // Never make a `consumers/` directory in something that is not a log.
    dir::list_log(log)?;
    let cdir = consumers_dir(log);
    match std::fs::create_dir(&cdir) {
        Ok(()) => crate::io::real()
            .sync_dir(log)
            .map_err(|e| Error::io("could not sync log directory", log, e))?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::create("could not create", &cdir, e)),
    }
    let file = dir::open_dir(&cdir).map_err(|e| Error::io("could not open", &cdir, e))?;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => return Ok(RegistryLock { _dir: file }),
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) => return Err(Error::io("could not lock", &cdir, e.into())),
        }
    }
}

/// The names of the log's consumers, sorted. None when `consumers/` does not exist.
pub(crate) fn names(log: &Path) -> Result<Vec<String>> {
    let cdir = consumers_dir(log);
    let rd = match std::fs::read_dir(&cdir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("could not list", &cdir, e)),
    };
    let mut names = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("could not list", &cdir, e))?;
        let Some(name) = ent.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        // Files being created are dot files (see `create`).
        if validate_name(&name).is_ok() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Creates the consumer `name` at `position` unless it exists: the whole file is written and
/// made durable under a temporary name, then renamed into place (never replacing), and the
/// directory fsynced. Call with the registry lock held.
pub(crate) fn create(log: &Path, name: &str, position: Slot) -> Result<()> {
    let cdir = consumers_dir(log);
    let path = consumer_path(log, name);
    if path.exists() {
        return Ok(());
    }
    let tmp = cdir.join(format!(".{name}.new-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let fs = crate::io::real();
        let file = fs
            .create_new(&tmp)
            .map_err(|e| Error::create("could not create", &tmp, e))?;
        // Overwritten in place on btrfs too, so that a commit on a full file system needs no
        // new space.
        crate::cow::prepare_new_file(&file, &tmp)?;
        let bytes = state::encode_new(position, state::now_coarse());
        fs.write_at(&file, &tmp, &bytes, 0)
            .map_err(|e| Error::create("could not write", &tmp, e))?;
        fs.set_len(&file, &tmp, crate::segment::page_size())
            .map_err(|e| Error::create("could not size", &tmp, e))?;
        file.sync_all()
            .map_err(|e| Error::io("could not sync", &tmp, e))?;
        match fs.rename(&tmp, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("could not rename into place", &path, e)),
        }
        fs.sync_dir(&cdir)
            .map_err(|e| Error::io("could not sync", &cdir, e))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// A consumer this process holds: its file, locked, and mapped read-write.
pub(crate) struct Held {
    pub name: String,
    pub path: PathBuf,
    pub map: Mapped,
    pub snapshot: Snapshot,
    /// Device and inode of the file held.
    id: (u64, u64),
    _file: File,
}

impl Held {
    /// Checks that the file at the path is still the one held: a consumer file removed by
    /// hand (or replaced) while in use would let another process in under the same name.
    ///
    /// Asks `statx` for the inode number alone: a query of the file's timestamps (a full
    /// `stat`) makes the kernel (6.13 and later, multigrain timestamps) give the next commit
    /// a fine-grained modification time, and the `msync` after it then writes the inode too.
    pub(crate) fn check_still_there(&self) -> Result<()> {
        match identity(&self.path) {
            Ok(id) if id == self.id => Ok(()),
            _ => Err(Error::UnknownConsumer {
                name: self.name.clone(),
                path: self.path.clone(),
            }),
        }
    }
}

/// The device and inode number of the file at `path`, without querying its timestamps.
fn identity(path: &Path) -> io::Result<(u64, u64)> {
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::empty(),
        rustix::fs::StatxFlags::INO,
    )?;
    Ok((
        rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
        st.stx_ino,
    ))
}

impl Held {
    /// Where the held consumer's committed position lies, when its commit said so.
    pub(crate) fn hint(&self) -> Option<(u64, u64)> {
        let p = self.snapshot.position;
        (p.base != NO_HINT && p.off != NO_HINT).then_some((p.base, p.off))
    }
}

/// Opens the consumer `name` and takes its exclusive lock without waiting.
///
/// # Errors
/// [`Error::UnknownConsumer`]; [`Error::ConsumerBusy`] when another process (or another
/// `Consumer` in this one) holds it; [`Error::ConsumerCorrupt`].
pub(crate) fn hold(log: &Path, name: &str) -> Result<Held> {
    let path = consumer_path(log, name);
    let file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::UnknownConsumer {
                name: name.to_owned(),
                path,
            })
        }
        Err(e) => return Err(Error::io("could not open consumer file", &path, e)),
    };
    if !file
        .metadata()
        .map_err(|e| Error::io("could not stat", &path, e))?
        .is_file()
    {
        return Err(Error::ConsumerCorrupt {
            name: name.to_owned(),
            path,
            offset: 0,
            reason: "not a regular file".into(),
        });
    }
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                return Err(busy(name, &path, &file));
            }
            Err(e) => return Err(Error::io("could not lock consumer file", &path, e.into())),
        }
    }
    // Deleted (and perhaps made anew) between the open and the lock: the lock on an unlinked
    // file would exclude nobody.
    let now = identity(&path).ok();
    let ours = file
        .metadata()
        .map_err(|e| Error::io("could not stat", &path, e))?;
    if now != Some((ours.dev(), ours.ino())) {
        return Err(Error::UnknownConsumer {
            name: name.to_owned(),
            path,
        });
    }
    let snapshot = state::read(name, &path, &file)?;
    let len = ours.len();
    if len < state::USED as u64 {
        return Err(Error::ConsumerCorrupt {
            name: name.to_owned(),
            path,
            offset: len,
            reason: "the file is shorter than a consumer file".into(),
        });
    }
    let map = Mapped::new(&file, state::USED as u64, snapshot.slot)
        .map_err(|e| Error::io("could not map consumer file", &path, e))?;
    Ok(Held {
        name: name.to_owned(),
        path,
        map,
        snapshot,
        id: (ours.dev(), ours.ino()),
        _file: file,
    })
}

fn busy(name: &str, path: &Path, file: &File) -> Error {
    let pid = match dir::exclusive_holders(file).as_deref() {
        Some([pid]) => Some(*pid),
        _ => state::read(name, path, file)
            .ok()
            .and_then(|s| u32::try_from(s.holder).ok())
            .filter(|&p| p != 0),
    };
    Error::ConsumerBusy {
        name: name.to_owned(),
        path: path.to_owned(),
        pid,
    }
}

/// Whether a process holds the consumer file right now: `/proc/locks`, or where that cannot
/// tell, a shared lock taken and let go at once.
fn is_held(file: &File) -> bool {
    match dir::exclusive_holders(file) {
        Some(pids) => !pids.is_empty(),
        None => match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            Ok(()) => {
                let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock);
                false
            }
            Err(_) => true,
        },
    }
}

/// Where a log ends, and the sizes of its segment files, for lag.
pub(crate) struct End {
    pub first_seq: u64,
    pub next_seq: u64,
    /// Base seq and byte offset of the end (where the next record goes).
    pub at: (u64, u64),
    /// Base seq and size of every segment file, oldest first.
    pub sizes: Vec<(u64, u64)>,
}

impl End {
    /// Bytes of frames between `(base, off)` and the end: whole files for the segments in
    /// between (so within the unused space at the end of each, at most one growth step).
    pub(crate) fn bytes_after(&self, base: u64, off: u64) -> u64 {
        if base == NO_HINT || self.next_seq == 0 {
            return 0;
        }
        let (end_base, end_off) = self.at;
        if base >= end_base {
            return end_off.saturating_sub(off);
        }
        let middle: u64 = self
            .sizes
            .iter()
            .filter(|(b, _)| *b >= base && *b < end_base)
            .map(|(_, s)| *s)
            .sum();
        (middle + end_off).saturating_sub(off)
    }
}

/// Reads where the log ends: the segments' names and sizes, and the records of the newest
/// segment (at most one segment's worth of frames).
pub(crate) fn log_end(log: &Path) -> Result<End> {
    log_end_reader(log).map(|(end, _)| end)
}

/// As [`log_end`], with the reader that found the end, positioned there.
pub(crate) fn log_end_reader(log: &Path) -> Result<(End, Reader)> {
    let listing = dir::list_log(log)?;
    let mut sizes = Vec::with_capacity(listing.segments.len());
    for e in &listing.segments {
        if let Ok(m) = std::fs::metadata(&e.path) {
            sizes.push((e.base, m.len()));
        }
    }
    let mut reader = Reader::open(log)?;
    let first_seq = reader.position();
    if let Some(last) = listing.segments.last() {
        if last.base > reader.position() {
            reader.seek(last.base)?;
        }
    }
    while reader.advance()?.is_some() {}
    let next_seq = reader.position();
    let at = reader.cursor();
    Ok((
        End {
            first_seq,
            next_seq,
            at,
            sizes,
        },
        reader,
    ))
}

/// Where `seq` lies in the log (segment base and offset), found by a reader.
pub(crate) fn locate(log: &Path, seq: u64) -> Result<(u64, u64)> {
    let mut reader = Reader::open(log)?;
    reader.seek(seq)?;
    Ok(reader.cursor())
}

/// What a consumer looks like to anyone: see [`consumers`](crate::consumers).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsumerInfo {
    /// Its name.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The first seq it has not committed: where it resumes.
    pub next_seq: u64,
    /// Records between `next_seq` and the end of the log.
    pub lag: u64,
    /// Bytes of the log between `next_seq` and its end (whole segment files for the segments
    /// in between, so it can overstate by the unused end of each).
    pub lag_bytes: u64,
    /// When it last committed (or was created or reset).
    pub last_commit: std::time::SystemTime,
    /// Whether it is in use, idle or parked.
    pub state: ConsumerState,
}

/// The state of a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConsumerState {
    /// A process holds it (and reads with it) now.
    Active {
        /// That process, when `/proc/locks` shows it.
        pid: Option<u32>,
    },
    /// Nobody holds it.
    Idle,
    /// Retention stopped waiting for it: it fell too far behind. Reading with it fails with
    /// [`Error::ConsumerParked`] until it is reset ([`reset_consumer`](crate::reset_consumer)).
    Parked {
        /// Its position when it was parked.
        seq: u64,
        /// How many bytes it lagged then.
        lag_bytes: u64,
        /// When.
        at: std::time::SystemTime,
    },
}

impl ConsumerState {
    /// `active`, `idle` or `parked`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConsumerState::Active { .. } => "active",
            ConsumerState::Idle => "idle",
            ConsumerState::Parked { .. } => "parked",
        }
    }
}

pub(crate) fn unix_nanos(t: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(t)
}

/// Reads one consumer's file (without locking anything) and says how it stands.
pub(crate) fn info(log: &Path, name: &str, end: &End) -> Result<ConsumerInfo> {
    let path = consumer_path(log, name);
    let file = File::open(&path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::UnknownConsumer {
                name: name.to_owned(),
                path: path.clone(),
            }
        } else {
            Error::io("could not open consumer file", &path, e)
        }
    })?;
    let snap = state::read(name, &path, &file)?;
    let pos = snap.position;
    let (base, off) = if pos.base == NO_HINT || pos.seq < end.first_seq || pos.seq > end.next_seq {
        locate(log, pos.seq.clamp(end.first_seq, end.next_seq)).unwrap_or((NO_HINT, 0))
    } else {
        (pos.base, pos.off)
    };
    let state = match snap.parked {
        Some(p) => ConsumerState::Parked {
            seq: p.seq,
            lag_bytes: p.lag_bytes,
            at: unix_nanos(p.at),
        },
        None if is_held(&file) => ConsumerState::Active {
            pid: match dir::exclusive_holders(&file).as_deref() {
                Some([pid]) => Some(*pid),
                _ => None,
            },
        },
        None => ConsumerState::Idle,
    };
    Ok(ConsumerInfo {
        name: name.to_owned(),
        path,
        next_seq: pos.seq,
        lag: end.next_seq.saturating_sub(pos.seq),
        lag_bytes: end.bytes_after(base, off),
        last_commit: unix_nanos(pos.time),
        state,
    })
}

/// Resets consumer `name` to `seq` (clearing a parked state), which must lie within the log.
/// Takes the registry lock and the consumer's own: a consumer in use is refused.
pub(crate) fn reset(log: &Path, name: &str, seq: u64) -> Result<()> {
    validate_name(name)?;
    let _registry = lock(log)?;
    let mut held = hold(log, name)?;
    let end = log_end(log)?;
    if seq < end.first_seq || seq > end.next_seq {
        return Err(Error::ConsumerPosition {
            name: name.to_owned(),
            path: held.path.clone(),
            seq,
            first_seq: end.first_seq,
            next_seq: end.next_seq,
        });
    }
    let (base, off) = locate(log, seq)?;
    held.map
        .reset(Slot {
            seq,
            time: state::now_coarse(),
            base,
            off,
        })
        .map_err(|e| Error::io("could not write consumer file", &held.path, e))?;
    held.map
        .sync()
        .map_err(|e| Error::io("could not sync consumer file", &held.path, e))?;
    tracing::info!(consumer = name, seq, "consumer reset");
    Ok(())
}

/// Deletes consumer `name`; one in use is refused.
pub(crate) fn delete(log: &Path, name: &str) -> Result<()> {
    validate_name(name)?;
    let _registry = lock(log)?;
    let held = hold(log, name)?;
    let fs = crate::io::real();
    fs.remove_file(&held.path)
        .map_err(|e| Error::io("could not remove", &held.path, e))?;
    let cdir = consumers_dir(log);
    fs.sync_dir(&cdir)
        .map_err(|e| Error::io("could not sync", &cdir, e))?;
    tracing::info!(consumer = name, "consumer deleted");
    Ok(())
}
