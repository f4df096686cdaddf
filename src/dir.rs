//! The log directory: segment file names, listing, the writer lock, directory fsync.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use fs2::FileExt;

use crate::error::{Error, Result};

/// Name of the lock file a writer holds an exclusive lock on.
pub const LOCK_FILE: &str = "applog.lock";
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_DIGITS: usize = 20;

/// File name of the segment whose first record is `base`: 20 digits, so names sort.
pub fn segment_name(base: u64) -> String {
    format!("{base:0width$}{SEGMENT_SUFFIX}", width = SEGMENT_DIGITS)
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
    Ok(listing)
}

/// fsync of a directory, so that entries created or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The exclusive writer lock, held until dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock without waiting. Creating the lock file (the first time) is the only
    /// change this makes.
    pub(crate) fn acquire(dir: &Path) -> Result<Lock> {
        let path = dir.join(LOCK_FILE);
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("could not open lock file", &path, e))?;
        match FileExt::try_lock_exclusive(&file) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => {
                return Err(Error::Locked { lock_file: path })
            }
            Err(e) => return Err(Error::io("could not lock", &path, e)),
        }
        if !existed {
            sync_dir(dir).map_err(|e| Error::io("could not sync log directory", dir, e))?;
        }
        Ok(Lock { _file: file })
    }

    /// Whether some process holds the lock right now. Reads `/proc/locks`, which disturbs
    /// nobody; only where that is unavailable does it probe with a shared lock (during which
    /// a writer opening the log would see `Locked`).
    pub(crate) fn is_held(dir: &Path) -> Result<bool> {
        let path = dir.join(LOCK_FILE);
        let file = match OpenOptions::new().read(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("could not open lock file", &path, e)),
        };
        if let Some(held) = held_per_proc_locks(&file) {
            return Ok(held);
        }
        match FileExt::try_lock_shared(&file) {
            Ok(()) => {
                let _ = FileExt::unlock(&file);
                Ok(false)
            }
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(true),
            Err(e) => Err(Error::io("could not probe lock", &path, e)),
        }
    }
}

/// Looks for an exclusive flock on `file` in `/proc/locks` (lines such as
/// `1: FLOCK  ADVISORY  WRITE 25118 fe:00:10010772 0 EOF`, device numbers in hex). `None` when
/// the table cannot be read.
fn held_per_proc_locks(file: &File) -> Option<bool> {
    let st = rustix::fs::fstat(file).ok()?;
    let (major, minor) = (rustix::fs::major(st.st_dev), rustix::fs::minor(st.st_dev));
    // One read() call: the kernel builds /proc/locks afresh for each call, and entries that
    // move while a reader comes back for the next chunk can be skipped. A table larger than
    // the buffer falls back to the probe.
    let mut buf = vec![0u8; 1 << 20];
    let n = std::io::Read::read(&mut File::open("/proc/locks").ok()?, &mut buf).ok()?;
    if n == buf.len() {
        return None;
    }
    let table = String::from_utf8_lossy(&buf[..n]);
    Some(table.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // Waiters are listed as `1: -> FLOCK ...`: field 1 is then "->".
        if f.get(1) != Some(&"FLOCK") || f.get(3) != Some(&"WRITE") {
            return false;
        }
        let mut id = f.get(5).copied().unwrap_or("").split(':');
        let hex = |s: Option<&str>| s.and_then(|s| u32::from_str_radix(s, 16).ok());
        hex(id.next()) == Some(major)
            && hex(id.next()) == Some(minor)
            && id.next().and_then(|s| s.parse::<u64>().ok()) == Some(st.st_ino)
    }))
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
