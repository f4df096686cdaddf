//! The log directory: segment file names, listing, the writer lock, directory fsync.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the lock file a writer holds an exclusive lock on.
pub const LOCK_FILE: &str = "applog.lock";
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_DIGITS: usize = 20;

/// File name of the segment whose first record is `base`: 20 digits, so names sort.
pub fn segment_name(base: u64) -> String {
    format!("{base:0SEGMENT_DIGITS$}{SEGMENT_SUFFIX}")
}

/// The base seq of a segment file name, or `None` when the name is not one.
fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != SEGMENT_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A segment file found in the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub base: u64,
    pub path: PathBuf,
}

/// What a directory holds.
pub(crate) struct Listing {
    /// Segment files, sorted by base seq.
    pub segments: Vec<Entry>,
    /// Segment files a reset removed (the newest segment starts the log anew: see
    /// `Writer::reset`) that a crash left behind: not part of the log. The next writer (or
    /// `recover`) removes them.
    pub reset_dead: Vec<Entry>,
    /// Whether the lock file exists.
    pub has_lock_file: bool,
    /// Whether anything else is there.
    pub has_other: bool,
}

impl Listing {
    /// True when the directory holds no trace of a log.
    pub fn is_foreign(&self) -> bool {
        self.segments.is_empty() && !self.has_lock_file && self.has_other
    }
}

/// Lists the directory of an existing log: as [`list`], and `NotALog` when it holds neither a
/// segment nor a lock file (readers, `verify` and explicit recovery never create a log).
pub(crate) fn list_log(dir: &Path) -> Result<Listing> {
    let listing = list(dir)?;
    if listing.segments.is_empty() && !listing.has_lock_file {
        return Err(Error::NotALog {
            path: dir.to_owned(),
            reason: "no applog segments or lock file in the directory".into(),
        });
    }
    Ok(listing)
}

/// Lists a log directory. A missing directory is an `Io` error with `NotFound`; a path that is
/// not a directory, or a file named like a segment that is not a regular file, is `NotALog`.
pub(crate) fn list(dir: &Path) -> Result<Listing> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io("could not open log", dir, e))?;
    if !meta.is_dir() {
        return Err(Error::NotALog {
            path: dir.to_owned(),
            reason: "not a directory".into(),
        });
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("could not list log", dir, e))?;
    let mut listing = Listing {
        segments: Vec::new(),
        reset_dead: Vec::new(),
        has_lock_file: false,
        has_other: false,
    };
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("could not list log", dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else {
            listing.has_other = true;
            continue;
        };
        if name == LOCK_FILE {
            listing.has_lock_file = true;
        } else if let Some(base) = parse_segment_name(name) {
            let path = ent.path();
            let ft = ent
                .file_type()
                .map_err(|e| Error::io("could not stat", &path, e))?;
            if !ft.is_file() {
                return Err(Error::NotALog {
                    path,
                    reason: "named like a segment but not a regular file".into(),
                });
            }
            listing.segments.push(Entry { base, path });
        } else if name.ends_with(SEGMENT_SUFFIX) {
            return Err(Error::NotALog {
                path: ent.path(),
                reason: "a .seg file whose name is not a 20-digit sequence number".into(),
            });
        } else {
            listing.has_other = true;
        }
    }
    listing.segments.sort_by_key(|e| e.base);
    if listing.segments.len() > 1 && listing.segments.last().is_some_and(starts_log) {
        // A reset's new segment is the newest until the segments before it are removed.
        let newest = listing.segments.pop();
        listing.reset_dead = std::mem::take(&mut listing.segments);
        listing.segments.extend(newest);
    }
    Ok(listing)
}

/// Whether the segment file's header says that it starts the log anew (a reset). A header
/// that cannot be read or decoded says no: the scan reports it.
fn starts_log(entry: &Entry) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(file) = File::open(&entry.path) else {
        return false;
    };
    let mut b = [0u8; crate::format::HEADER_BYTES];
    matches!(file.read_at(&mut b, 0), Ok(n) if n == b.len())
        && crate::format::SegmentHeader::decode(&b).is_ok_and(|h| h.starts_log)
}

/// The exclusive writer lock, held until dropped: an `flock` on the log directory itself and
/// one on the lock file.
///
/// The directory lock is what makes the lock survive an operator deleting a "stale" lock
/// file: a directory that holds segments cannot be removed, and a lock file created anew is a
/// different file, whose lock would exclude nobody. The lock file is still locked so that
/// older versions of applog, which lock only it, see the log as locked.
#[derive(Debug)]
pub(crate) struct Lock {
    /// `None` where the file system cannot `flock` a directory (NFS emulates `flock` with
    /// byte-range locks, which need a file open for writing).
    _dir: Option<File>,
    _file: File,
    /// The locked files, as listed in [`HELD_HERE`].
    keys: Vec<(u64, u64)>,
}

/// The files (device, inode) this process holds a writer lock on now. A lock that
/// `/proc/locks` shows this process holding but that is not listed here is a copy a child
/// inherited between `fork` and `exec` (`Command::spawn` in any thread): it goes away at the
/// child's `exec`, so it is waited out rather than reported as a second writer.
static HELD_HERE: std::sync::Mutex<Vec<(u64, u64)>> = std::sync::Mutex::new(Vec::new());

/// How long `acquire` waits out a copy of a lock this process let go, held by a child between
/// `fork` and `exec`.
const FORK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

fn file_key(file: &File) -> Option<(u64, u64)> {
    rustix::fs::fstat(file)
        .ok()
        .map(|st| (st.st_dev, st.st_ino))
}

fn held_here(key: Option<(u64, u64)>) -> bool {
    key.is_some_and(|k| {
        HELD_HERE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&k)
    })
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Before the files close: from now on a lock seen here is no longer this one.
        HELD_HERE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|k| !self.keys.contains(k));
    }
}

/// How long `acquire` keeps trying while it sees no exclusive holder of a lock it cannot
/// take: the holder is then an `is_locked` probe, which lets go within microseconds (or a
/// writer in another pid namespace, which `/proc/locks` does not show).
const PROBE_PATIENCE: std::time::Duration = std::time::Duration::from_millis(200);

impl Lock {
    /// Takes the lock without waiting (beyond the moment a concurrent [`is_held`] probe may
    /// hold it). Creating the lock file (the first time) is the only change this makes.
    ///
    /// [`is_held`]: Lock::is_held
    pub(crate) fn acquire(dir: &Path, fs: &dyn crate::io::FileSystem) -> Result<Lock> {
        let path = dir.join(LOCK_FILE);
        let dir_file =
            open_dir(dir).map_err(|e| Error::io("could not open log directory", dir, e))?;
        let dir_lock = match lock_exclusive(&dir_file, &path, fs)? {
            Ok(()) => Some(dir_file),
            Err(e) => {
                tracing::warn!(
                    dir = %dir.display(),
                    error = %e,
                    "could not flock the log directory; relying on the lock file alone"
                );
                None
            }
        };
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::create("could not open lock file", &path, e))?;
        lock_exclusive(&file, &path, fs)?.map_err(|e| Error::io("could not lock", &path, e))?;
        if !existed {
            fs.sync_dir(dir)
                .map_err(|e| Error::io("could not sync log directory", dir, e))?;
        }
        let keys: Vec<(u64, u64)> = [dir_lock.as_ref(), Some(&file)]
            .into_iter()
            .flatten()
            .filter_map(file_key)
            .collect();
        HELD_HERE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(keys.iter().copied());
        Ok(Lock {
            _dir: dir_lock,
            _file: file,
            keys,
        })
    }

    /// Whether some process holds the lock right now (on the directory, or, for older
    /// versions of applog, on the lock file). Reads `/proc/locks`, which disturbs nobody, and
    /// opens nothing but the directory: a reader allowed to read the segments but not the lock
    /// file can ask. Where `/proc/locks` cannot tell for sure (it is unavailable, or the file
    /// system's inode numbers are not unique across it, as on btrfs, whose subvolumes number
    /// their inodes each from 256), it probes with a shared lock, which a writer opening the
    /// log meanwhile waits out.
    ///
    /// `/proc/locks` does not list the locks of processes in other pid namespaces: a writer in
    /// another container is not seen unless the probe runs.
    pub(crate) fn is_held(dir: &Path) -> Result<bool> {
        let dir_id = FileId::of(dir).map_err(|e| Error::io("could not open log", dir, e))?;
        if !dir_id.is_dir {
            return Err(Error::NotALog {
                path: dir.to_owned(),
                reason: "not a directory".into(),
            });
        }
        let path = dir.join(LOCK_FILE);
        // A lock file that cannot even be looked at (or is missing) is left out: the directory
        // lock alone tells about writers of this version.
        let file_id = FileId::of(&path).ok();
        let Some(table) = proc_locks() else {
            // No /proc/locks: probe the directory, then the lock file if it can be opened.
            if probe(dir, true).map_err(|e| Error::io("could not probe lock", dir, e))? {
                return Ok(true);
            }
            return Ok(file_id.is_some() && probe(&path, false).unwrap_or(false));
        };
        for (id, p, is_dir) in [(Some(dir_id), dir, true), (file_id, &path, false)] {
            let Some(id) = id else { continue };
            if !table.iter().any(|l| l.write && id.matches(l)) {
                continue;
            }
            if id.unique {
                return Ok(true);
            }
            // The same device and inode number may be another subvolume's file: ask the lock
            // itself. A lock file this process may not open is taken at /proc/locks' word.
            match probe(p, is_dir) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(_) if !is_dir => return Ok(true),
                Err(e) => return Err(Error::io("could not probe lock", p, e)),
            }
        }
        Ok(false)
    }
}

/// The processes `/proc/locks` shows holding an exclusive `flock` on `file`: `None` when the
/// table cannot be read or cannot tell for sure (btrfs: inode numbers repeat across
/// subvolumes), an empty list when nobody does.
pub(crate) fn exclusive_holders(file: &File) -> Option<Vec<u32>> {
    let id = FileId::of_file(file).ok()?;
    if !id.unique {
        return None;
    }
    let mut pids: Vec<u32> = proc_locks()?
        .into_iter()
        .filter(|l| l.write && id.matches(l))
        .map(|l| l.pid)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    Some(pids)
}

/// Opens a directory for reading (and locking), failing if `path` is not one.
pub(crate) fn open_dir(path: &Path) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(File::from(fd))
}

/// Takes an exclusive `flock` on `file` without blocking: `Ok(Ok(()))` when taken,
/// `Err(Locked)` when another holds it, `Ok(Err(_))` when `flock` fails otherwise (the caller
/// decides). While `/proc/locks` shows no exclusive holder (only `is_locked` probes, which
/// hold a shared lock for a moment), it tries again for up to [`PROBE_PATIENCE`].
fn lock_exclusive(
    file: &File,
    lock_file: &Path,
    fs: &dyn crate::io::FileSystem,
) -> Result<io::Result<()>> {
    // When a moment of patience began: each kind of wait counts from the first time it is
    // seen, so that a holder that lets go between the attempt and the look at /proc/locks
    // (nobody seen) always gets one more attempt, however long an earlier wait took.
    let mut no_writer_since = None;
    let mut fork_since = None;
    loop {
        let err = match fs.try_lock(file, lock_file) {
            Ok(()) => return Ok(Ok(())),
            Err(e) => e,
        };
        if err.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if err.kind() != io::ErrorKind::WouldBlock {
            return Ok(Err(err));
        }
        let holders = FileId::of_file(file)
            .ok()
            .and_then(|id| Some((proc_locks()?, id)))
            .map(|(table, id)| {
                table
                    .into_iter()
                    .filter(|l| id.matches(l))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        // No exclusive holder to be seen: a probe (gone already, perhaps), or a holder in
        // another pid namespace, which /proc/locks does not show. Try again for a moment.
        let no_writer_seen = holders.iter().all(|l| !l.write);
        if no_writer_seen
            && no_writer_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                < PROBE_PATIENCE
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        // Held in this process's name but not by this process: a child's copy, between its
        // fork and its exec. Wait for the exec.
        let me = std::process::id();
        let only_this_process = holders.iter().any(|l| l.write)
            && holders.iter().filter(|l| l.write).all(|l| l.pid == me);
        if only_this_process
            && !held_here(file_key(file))
            && fork_since
                .get_or_insert_with(std::time::Instant::now)
                .elapsed()
                < FORK_PATIENCE
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
            continue;
        }
        // Several processes listed (on btrfs, another subvolume's file may have the same
        // numbers) or none (the holder is in another pid namespace): no pid is named.
        let mut pids: Vec<u32> = holders
            .iter()
            .filter(|l| l.write && l.pid != 0)
            .map(|l| l.pid)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        return Err(Error::Locked {
            lock_file: lock_file.to_owned(),
            pid: match pids[..] {
                [pid] => Some(pid),
                _ => None,
            },
        });
    }
}

/// Whether another process holds an exclusive lock on `path` (a directory when `is_dir`):
/// takes a shared lock and lets it go at once. A writer opening the log meanwhile waits it
/// out (see [`lock_exclusive`]).
fn probe(path: &Path, is_dir: bool) -> io::Result<bool> {
    use rustix::fs::FlockOperation;
    let file = if is_dir {
        open_dir(path)?
    } else {
        File::open(path)?
    };
    loop {
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockShared) {
            Ok(()) => {
                let _ = rustix::fs::flock(&file, FlockOperation::Unlock);
                return Ok(false);
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A file as `/proc/locks` names it: the device number of its super block and its inode
/// number.
#[derive(Clone, Copy, Debug)]
struct FileId {
    major: u32,
    minor: u32,
    ino: u64,
    /// Whether the device and inode number name this file alone. Not so on btrfs: `stat`
    /// reports each subvolume's own anonymous device, `/proc/locks` the file system's, and
    /// subvolumes (snapshots above all) share inode numbers.
    unique: bool,
    is_dir: bool,
}

impl FileId {
    fn of(path: &Path) -> io::Result<FileId> {
        Self::statx(rustix::fs::CWD, path, rustix::fs::AtFlags::empty())
    }

    fn of_file(file: &File) -> io::Result<FileId> {
        Self::statx(file, "", rustix::fs::AtFlags::EMPTY_PATH)
    }

    fn statx<Fd: std::os::fd::AsFd, P: rustix::path::Arg>(
        at: Fd,
        path: P,
        flags: rustix::fs::AtFlags,
    ) -> io::Result<FileId> {
        use rustix::fs::StatxFlags;
        let st = rustix::fs::statx(
            at,
            path,
            flags,
            StatxFlags::TYPE | StatxFlags::INO | StatxFlags::MNT_ID,
        )?;
        let is_dir = rustix::fs::FileType::from_raw_mode(st.stx_mode.into())
            == rustix::fs::FileType::Directory;
        let stat_dev = (st.stx_dev_major, st.stx_dev_minor);
        let sb_dev = if st.stx_mask & StatxFlags::MNT_ID.bits() != 0 {
            mount_dev(st.stx_mnt_id)
        } else {
            None
        };
        let ((major, minor), unique) = match sb_dev {
            Some(dev) => (dev, dev == stat_dev),
            // Without the mount's device, stat's is right but for btrfs-like file systems:
            // have every match confirmed.
            None => (stat_dev, false),
        };
        Ok(FileId {
            major,
            minor,
            ino: st.stx_ino,
            unique,
            is_dir,
        })
    }

    fn matches(&self, l: &ProcLock) -> bool {
        (l.major, l.minor, l.ino) == (self.major, self.minor, self.ino)
    }
}

/// The device number (`major:minor`, as `/proc/locks` prints it) of the super block of the
/// mount with id `mnt_id`, from `/proc/self/mountinfo`.
fn mount_dev(mnt_id: u64) -> Option<(u32, u32)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let mut f = line.split(' ');
        if f.next()?.parse::<u64>().ok()? != mnt_id {
            return None;
        }
        let (major, minor) = f.nth(1)?.split_once(':')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    })
}

/// One `flock` held, from `/proc/locks`.
#[derive(Clone, Copy, Debug)]
struct ProcLock {
    write: bool,
    pid: u32,
    major: u32,
    minor: u32,
    ino: u64,
}

/// The `flock`s held (not waited for) listed in `/proc/locks`: lines such as
/// `1: FLOCK  ADVISORY  WRITE 25118 fe:00:10010772 0 EOF`, device numbers in hex. `None` when
/// the table cannot be read.
fn proc_locks() -> Option<Vec<ProcLock>> {
    // One read() call: the kernel builds /proc/locks afresh for each call, and entries that
    // move while a reader comes back for the next chunk can be skipped. A table larger than
    // the buffer counts as unreadable.
    let mut buf = vec![0u8; 1 << 20];
    let n = std::io::Read::read(&mut File::open("/proc/locks").ok()?, &mut buf).ok()?;
    if n == buf.len() {
        return None;
    }
    let table = String::from_utf8_lossy(&buf[..n]);
    Some(
        table
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                // Waiters are listed as `1: -> FLOCK ...`: field 1 is then "->".
                if f.get(1) != Some(&"FLOCK") {
                    return None;
                }
                let write = match *f.get(3)? {
                    "WRITE" => true,
                    "READ" => false,
                    _ => return None,
                };
                let mut id = f.get(5)?.split(':');
                let hex = |s: Option<&str>| s.and_then(|s| u32::from_str_radix(s, 16).ok());
                Some(ProcLock {
                    write,
                    pid: f.get(4)?.parse().ok()?,
                    major: hex(id.next())?,
                    minor: hex(id.next())?,
                    ino: id.next()?.parse().ok()?,
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(segment_name(0), "00000000000000000000.seg");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert!(segment_name(9) < segment_name(10));
        assert_eq!(parse_segment_name("1.seg"), None);
        assert_eq!(parse_segment_name("0000000000000000000a.seg"), None);
        assert_eq!(parse_segment_name("00000000000000000000.log"), None);
    }
}
