//! A consistent, verified, durable copy of a log, even while a writer appends.
//!
//! The copy is made record by record, not by copying files: the source's segment files change
//! under a live writer (frames appended, files grown, a segment sealed and the next created,
//! a synced mark raised after data already copied), and a byte copy would have to patch each
//! of those up to be a consistent log. Instead the end of the source is fixed first (`verify`,
//! which also checks every frame), every record below it is read with a `Reader` (which checks
//! each CRC and follows rollovers) and appended by a `Writer` into a hidden staging directory
//! beside the destination, with the same seqs, and the log's metadata (as read at the start)
//! stored there. The copy is synced, checked with `verify`, read back and compared with what
//! was read from the source (a CRC of every seq and payload, and the metadata), its directory
//! fsynced, and only then renamed to the destination (never replacing anything that
//! appeared there meanwhile) and the parent directory fsynced. Every change to durable state
//! goes through the I/O seam, so a crash at any point leaves either no destination or the
//! whole verified copy (`tests/crash_points.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::options::{Fs, Options};
use crate::{Reader, Writer};

/// What [`copy`] made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Seq of the copy's first record (the source's first seq).
    pub first_seq: u64,
    /// Seq after the copy's last record.
    pub next_seq: u64,
    /// The staging directory the copy was built in (renamed to the destination).
    pub staging: PathBuf,
}

/// Copies the log in `log` into a new log `dest`: every record published when the copy
/// starts, with the same seqs, verified and made durable. A writer may append to `log`
/// meanwhile; records it appends after the start are not copied.
///
/// `dest` must not exist (its parent must). Nothing appears at `dest` until the copy is
/// complete and verified: it is built in a hidden directory beside it
/// (`.<name>.applog-copy-<pid>`), which is removed on an error, and renamed into place. The
/// copy's segments have the largest reservation of the source's segments (a page more when
/// the source has version-1 segments).
///
/// The log's metadata ([`Writer::set_meta`]), as stored when the copy starts, is copied too.
///
/// The copy is written in the current format: copying a log made by an older version of
/// applog upgrades it. Each record keeps its time; one from a version-1 segment has none.
///
/// # Errors
/// [`Error::Corrupt`] when the source is damaged, [`Error::MetaCorrupt`] when its metadata
/// file is (nothing is made); [`Error::Copy`] when the
/// source changed under the copy, the copy did not verify, or `dest` appeared meanwhile;
/// [`Error::Io`] (`AlreadyExists` when `dest` exists), [`Error::NoSpace`].
///
/// # Example
/// ```
/// use applog::{Options, Reader, Writer};
/// # fn main() -> applog::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// let (log_dir, backup) = (tmp.path().join("events"), tmp.path().join("backup"));
/// let mut log = Writer::open(&log_dir, Options::default())?;
/// log.append_batch(&[&b"a"[..], b"b"])?;
///
/// let report = applog::copy(&log_dir, &backup)?; // while the writer goes on
/// assert_eq!(report.next_seq, 2);
/// log.append(b"c")?; // not in the copy
///
/// let mut copied = Reader::open(&backup)?; // a log of its own, durable and verified
/// assert_eq!(copied.next()?.unwrap().data(), b"a");
/// assert!(applog::copy(&log_dir, &backup).is_err()); // never over an existing directory
/// # Ok(()) }
/// ```
pub fn copy(log: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<CopyReport> {
    copy_cancellable(log, dest, &AtomicBool::new(false))
}

/// [`copy`], stopping with [`Error::Interrupted`] (and removing what it made) soon after
/// `cancel` becomes true: between two records, or two steps.
///
/// # Errors
/// As [`copy`], and [`Error::Interrupted`].
pub fn copy_cancellable(
    log: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    cancel: &AtomicBool,
) -> Result<CopyReport> {
    copy_with(log.as_ref(), dest.as_ref(), &crate::io::real(), cancel)
}

/// [`copy_cancellable`], telling `progress(done, total)` how far it is: `done` of the `total`
/// records to copy have been copied. It is called with `(0, total)` once the source is
/// verified, then every 4096 records or 4 MiB of records (whichever comes first), and with
/// `(total, total)` when every record is copied, before the copy is checked. `progress` runs
/// on the copying thread: keep it quick (a progress bar's position).
///
/// # Errors
/// As [`copy_cancellable`].
pub fn copy_with_progress(
    log: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    cancel: &AtomicBool,
    progress: &dyn Fn(u64, u64),
) -> Result<CopyReport> {
    copy_reporting(
        log.as_ref(),
        dest.as_ref(),
        &crate::io::real(),
        cancel,
        progress,
    )
}

/// [`copy_with_progress`] calls its `progress` at least every this many records...
const PROGRESS_RECORDS: u64 = 4096;

/// ...and every this many bytes of records.
const PROGRESS_BYTES: u64 = 4 << 20;

/// `.<name>.applog-copy-<pid>` beside `dest`.
///
/// # Errors
/// `InvalidOptions` when `dest` has no file name.
pub fn staging_dir(dest: &Path) -> Result<PathBuf> {
    let Some(name) = dest.file_name() else {
        return Err(Error::InvalidOptions(format!(
            "{} does not name a new directory",
            dest.display()
        )));
    };
    let mut staged = std::ffi::OsString::from(".");
    staged.push(name);
    staged.push(format!("{STAGING_MARK}{}", std::process::id()));
    Ok(dest.with_file_name(staged))
}

/// The part of a staging directory's name after `.<name>`, before the pid.
pub const STAGING_MARK: &str = ".applog-copy-";

/// [`copy_cancellable`] through the file system `fs` (the I/O seam).
pub(crate) fn copy_with(
    log: &Path,
    dest: &Path,
    fs: &Arc<dyn FileSystem>,
    cancel: &AtomicBool,
) -> Result<CopyReport> {
    copy_reporting(log, dest, fs, cancel, &|_, _| {})
}

/// [`copy_with_progress`] through the file system `fs`.
fn copy_reporting(
    log: &Path,
    dest: &Path,
    fs: &Arc<dyn FileSystem>,
    cancel: &AtomicBool,
    progress: &dyn Fn(u64, u64),
) -> Result<CopyReport> {
    if dest.symlink_metadata().is_ok() {
        return Err(Error::io(
            "could not copy to",
            dest,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "it exists already; copy makes a new log",
            ),
        ));
    }
    let report = crate::verify(log)?;
    if let Some(c) = report.corruptions.into_iter().next() {
        return Err(c.into_error());
    }
    // The log's metadata as stored when the copy starts: the copy gets the same.
    let meta = crate::read_meta(log)?;
    let (first, end) = (report.first_seq, report.next_seq);
    let page = crate::segment::page_size();
    let pages = report
        .segments
        .iter()
        // A record that filled a version-1 segment needs 8 bytes more in the copy (its time):
        // a page more.
        .map(|s| s.reservation.div_ceil(page) + u64::from(s.format_version == 1))
        .max()
        .filter(|&p| p > 0)
        .map_or(crate::options::DEFAULT_SEGMENT_PAGES, |p| {
            u32::try_from(p).unwrap_or(u32::MAX)
        });
    let staging = staging_dir(dest)?;
    interrupted(cancel)?;
    fs.create_dir(&staging)
        .map_err(|e| Error::create("could not create the copy's directory", &staging, e))?;
    let range = Range {
        first,
        end,
        pages,
        meta: &meta,
        progress,
    };
    let made = copy_into(log, &staging, &range, fs, cancel).and_then(|()| {
        fs.sync_dir(&staging)
            .map_err(|e| Error::io("could not sync directory", &staging, e))?;
        interrupted(cancel)?;
        publish(&staging, dest, fs)
    });
    if let Err(e) = made {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(CopyReport {
        first_seq: first,
        next_seq: end,
        staging,
    })
}

fn interrupted(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }
    Ok(())
}

/// CRC-32 of every seq, length and payload, in order.
#[derive(Default)]
struct Digest(crc32fast::Hasher);

impl Digest {
    fn add(&mut self, seq: u64, time: Option<u64>, data: &[u8]) {
        self.0.update(&seq.to_le_bytes());
        self.0.update(&time.unwrap_or(0).to_le_bytes());
        self.0.update(&(data.len() as u64).to_le_bytes());
        self.0.update(data);
    }
}

/// What [`copy_into`] copies, and whom it tells.
struct Range<'a> {
    /// The records `first..end`.
    first: u64,
    end: u64,
    /// The copy's segment reservation.
    pages: u32,
    /// The log's metadata.
    meta: &'a crate::Meta,
    progress: &'a dyn Fn(u64, u64),
}

/// Copies records `first..end` of `log` into a new log in `dir` and checks the result.
fn copy_into(
    log: &Path,
    dir: &Path,
    range: &Range<'_>,
    fs: &Arc<dyn FileSystem>,
    cancel: &AtomicBool,
) -> Result<()> {
    let (first, end, pages) = (range.first, range.end, range.pages);
    if first > 0 {
        // An empty segment file named by the first seq: the writer starts the log there (it
        // takes the file for a segment whose creation a crash cut short).
        let path = dir.join(crate::dir::segment_name(first));
        fs.create_new(&path)
            .map_err(|e| Error::create("could not create the copy's first segment", &path, e))?;
    }
    // The copy is flushed in bulk, whole segments at a time: a long flush is its nature, not
    // a sign of an overloaded device, so it is not reported as a slow sync.
    let mut opts = Options::new().segment_pages(pages).slow_sync(Duration::MAX);
    opts.fs = Fs(Arc::clone(fs));
    let mut writer = Writer::open(dir, opts)?;
    if writer.next_seq() != first {
        return Err(Error::Copy {
            reason: format!(
                "the copy starts at seq {} instead of {first}",
                writer.next_seq()
            ),
        });
    }
    let mut reader = Reader::open(log)?;
    if first > reader.position() {
        reader.seek(first)?;
    }
    let mut digest = Digest::default();
    let total = end - first;
    (range.progress)(0, total);
    let (mut told_seq, mut bytes) = (first, 0u64);
    for seq in first..end {
        interrupted(cancel)?;
        if seq - told_seq >= PROGRESS_RECORDS || bytes >= PROGRESS_BYTES {
            (range.progress)(seq - first, total);
            (told_seq, bytes) = (seq, 0);
        }
        let Some(record) = reader.next()? else {
            return Err(Error::Copy {
                reason: format!(
                    "the log {} ended at seq {seq} while copying up to seq {end} (was it truncated meanwhile?)",
                    log.display()
                ),
            });
        };
        if record.seq() != seq {
            return Err(Error::Copy {
                reason: format!(
                    "the log {} gave seq {} where seq {seq} was expected",
                    log.display(),
                    record.seq()
                ),
            });
        }
        digest.add(seq, record.time_ns(), record.data());
        bytes += record.data().len() as u64;
        // The record keeps its time (none for one from a version-1 segment).
        writer.append_at(record.data(), record.time_ns().unwrap_or(0))?;
    }
    (range.progress)(total, total);
    if !range.meta.is_empty() {
        let changes: Vec<_> = range.meta.iter().map(|(n, v)| (n, Some(v))).collect();
        writer.set_meta_many(&changes)?;
    }
    writer.close()?;
    interrupted(cancel)?;

    // Check the copy: every frame, the seq range, and the content read back.
    let check = crate::verify(dir)?;
    if !check.is_clean()
        || check.torn_tail.is_some()
        || (check.first_seq, check.next_seq, check.records) != (first, end, end - first)
    {
        return Err(Error::Copy {
            reason: format!(
                "the copy does not verify: seqs {}..{} ({} records, {} corruptions, torn tail: {}), expected {first}..{end}",
                check.first_seq,
                check.next_seq,
                check.records,
                check.corruptions.len(),
                check.torn_tail.is_some()
            ),
        });
    }
    if crate::read_meta(dir)? != *range.meta {
        return Err(Error::Copy {
            reason: "the copy's metadata read back differs from the log's".into(),
        });
    }
    let mut again = Digest::default();
    let mut reader = Reader::open(dir)?;
    while let Some(record) = reader.next()? {
        interrupted(cancel)?;
        again.add(record.seq(), record.time_ns(), record.data());
    }
    if again.0.finalize() != digest.0.finalize() {
        return Err(Error::Copy {
            reason: "the copy read back differs from the records read from the log".into(),
        });
    }
    Ok(())
}

/// Renames the finished copy to `dest`, never replacing anything there, and makes the new
/// name durable.
fn publish(staging: &Path, dest: &Path, fs: &Arc<dyn FileSystem>) -> Result<()> {
    match fs.rename(staging, dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Copy {
                reason: format!(
                    "{} appeared while copying; the copy was not put there",
                    dest.display()
                ),
            })
        }
        Err(e) => return Err(Error::io("could not rename the copy to", dest, e)),
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs.sync_dir(parent)
        .map_err(|e| Error::io("could not sync directory", parent, e))
}
