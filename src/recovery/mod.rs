//! Recovery in four steps: [`scan`] (what is on disk), [`analyze`] (a pure verdict: clean,
//! torn tail to cut, corruption at a file and offset, crashed creation), [`repair`] (cut,
//! reseal, truncate, make durable) and [`verify`] (the read-only report).
//!
//! # Torn tail or corruption?
//!
//! A checksum alone cannot tell a tail torn by a crash from bit rot in data that had been made
//! durable. Each segment header carries a *synced mark*: after an msync that made the frames
//! below offset `m` durable returns Ok, the writer stores `m` in the header. The mark
//! therefore never claims more than what was durable, but on disk it can lag: a checkpoint
//! msyncs the header page of the active segment only when it was last written out a second
//! or more before (and `close` does), so that a durable append writes one page, not two; a
//! sealed segment's final mark is made durable by the checkpoint that covers its seal. So:
//!
//! - a bad or missing frame **below the mark** is corruption: reported with file and offset,
//!   nothing is modified;
//! - a bad frame, zeros, or garbage **at or after the mark**, after the last good frame, is a
//!   torn tail: recovery zeroes it in place (never shrinking the file) and makes that durable;
//! - a mark that fails its own check is corruption of the mark alone: every frame stays
//!   readable, but damage after the last record can no longer be told from a torn tail;
//! - a batch counts whole or not at all: a run of frames with `MORE` whose frames stop before
//!   the batch's last frame (a **torn batch**, see `segment::batch`) ends the segment's
//!   records at the batch's first frame. It is a torn tail from there, or corruption (where
//!   its frames stop) when that first frame lies below the mark: the writer never syncs in
//!   the middle of a batch.
//!
//! The price of the lag: after a power cut, bit rot in the newest second or so of synced data
//! of the active segment (past its mark on disk) is taken for a torn tail and cut. The page
//! cache holds the exact mark, so this needs the data to rot on the device just before the
//! cut; a kill or a crash of the process alone never hits it.
//!
//! A torn tail can span segments after a power cut (a sealed segment whose tail was not yet
//! written back, followed by a newer segment). Every sync flushes sealed segments before the
//! active one, so when a segment's tail is torn, no later segment holds synced data; recovery
//! checks that (a later segment with a synced mark is corruption) and removes the later
//! segments with `unlink`, which never disturbs a reader that still maps them.

mod analyze;
mod cut;
mod repair;
mod reset;
mod scan;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use analyze::TornTail;
pub(crate) use cut::{finish as finish_cuts, offset_of};
pub use repair::Truncation;
pub(crate) use repair::{link, recover_locked, Link};
pub(crate) use reset::finish as finish_reset;
pub(crate) use scan::seq_overflow;
pub use scan::Corruption;
pub use verify::{verify, SegmentReport, VerifyReport};

use crate::dir;
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::segment::{Opened, ReadSegment, Segment};

/// What [`recover`] does about damage inside data that had been made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Cut a torn tail, as [`Writer::open`](crate::Writer::open) does, and refuse corruption
    /// with [`Error::Corrupt`], modifying nothing. Default.
    #[default]
    CutTornTail,
    /// Keep every record before the first damaged frame and remove the rest: the frames after
    /// it are zeroed in place and later segment files are removed. A damaged synced mark alone
    /// loses nothing: it is rewritten. Records are lost only at a damaged frame or a broken
    /// chain of segments: use it only when the damaged log must become writable again, and
    /// keep a copy of it first.
    TruncateAtCorruption,
}

/// What [`recover`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryReport {
    /// The torn tail that was cut (zeroed in place; later segment files in it removed).
    pub torn_tail: Option<TornTail>,
    /// Bytes zeroed by cutting the torn tail.
    pub torn_bytes: u64,
    /// What was removed at a corruption ([`RecoveryMode::TruncateAtCorruption`] only).
    pub truncation: Option<Truncation>,
    /// Segments whose damaged synced mark was rewritten
    /// ([`RecoveryMode::TruncateAtCorruption`] only; no record is lost by it).
    pub repaired_marks: Vec<PathBuf>,
    /// Segments whose seal, lost in a crash, was rewritten.
    pub resealed: Vec<PathBuf>,
    /// Seq of the first record.
    pub first_seq: u64,
    /// Seq the next appended record will get.
    pub next_seq: u64,
}

/// Recovers the log in `dir` without opening a writer: takes the writer lock, checks every
/// frame of every segment, cuts a torn tail (zeroing it in place), handles corruption as
/// `mode` says, makes every segment durable (msync, synced marks, directory fsync), and
/// releases the lock. Unlike [`Writer::open`](crate::Writer::open), it never creates a log.
///
/// # Errors
/// - [`Error::Locked`] when a writer holds the log (nothing is changed);
/// - [`Error::Corrupt`] for damage inside synced data or in the log's structure with
///   [`RecoveryMode::CutTornTail`] (nothing is changed);
/// - [`Error::NotALog`] when `dir` is not a log or holds a segment file that is not applog's;
///   [`Error::Io`] (`NotFound` when `dir` does not exist).
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # applog::Writer::open(dir.path(), applog::Options::default())?.append(b"a")?;
/// let report = applog::recover(dir.path(), applog::RecoveryMode::CutTornTail)?;
/// assert!(report.torn_tail.is_none() && report.truncation.is_none());
/// assert_eq!(report.next_seq, 1);
/// # Ok(()) }
/// ```
pub fn recover(dir: impl AsRef<Path>, mode: RecoveryMode) -> Result<RecoveryReport> {
    recover_with(dir.as_ref(), mode, &crate::io::real())
}

/// [`recover`] through the file system `fs` (the I/O seam).
pub(crate) fn recover_with(
    dir: &Path,
    mode: RecoveryMode,
    fs: &Arc<dyn FileSystem>,
) -> Result<RecoveryReport> {
    let listing = dir::list_log(dir)?;
    if !listing.has_lock_file {
        // Taking the lock creates the lock file: make sure first that the segments are
        // applog's (a damaged header is for the scan below to judge).
        for entry in &listing.segments {
            match ReadSegment::open(&entry.path) {
                Ok(_) | Err(Error::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let _lock = dir::Lock::acquire(dir, &**fs)?;
    // Every segment's directory entry durable before any mark below says a seal is: a
    // durable seal says the segment it names is durable (see `analyze`).
    fs.sync_dir(dir)
        .map_err(|e| Error::io("could not sync log directory", dir, e))?;
    let listing = dir::list(dir)?;
    // A reset that a crash interrupted is finished first, as a writer does.
    reset::finish(dir, &listing.reset_dead, fs)?;
    let entries = listing.segments;
    let segment_pages = entries
        .iter()
        .rev()
        .find_map(|e| match ReadSegment::open(&e.path) {
            Ok(Opened::Ready(seg)) => Some(seg.header().segment_pages),
            _ => None,
        })
        .unwrap_or(crate::options::DEFAULT_SEGMENT_PAGES);
    // A cut of the log's end that a crash interrupted is finished first, as a writer does.
    let entries = cut::finish(dir, entries, segment_pages, fs)?;

    // Every segment, not only the untrusted tail a writer scans.
    let mut corruptions = Vec::new();
    let scans = scan::scan_all(dir, entries.clone(), &mut corruptions)?;
    corruptions.extend(analyze::analyze(&scans).corruptions);
    corruptions.sort_by(|a, b| (&a.segment, a.offset).cmp(&(&b.segment, b.offset)));
    let mut truncation = None;
    let mut repaired_marks = Vec::new();
    if let Some(first) = corruptions.into_iter().next() {
        if mode == RecoveryMode::CutTornTail {
            return Err(first.into_error());
        }
        truncation = repair::truncate(dir, &entries, &scans, first, fs)?;
        // Damaged marks on what is left: every frame below is readable; make them durable and
        // write the mark again.
        for s in scans
            .iter()
            .filter(|s| s.mark_damaged && s.entry.path.exists())
        {
            let end = match &truncation {
                Some(t) if t.segment == s.entry.path => t.offset,
                _ => s.sealed_end(),
            };
            repair::make_durable(&s.entry, end, fs)?;
            tracing::warn!(segment = %s.entry.path.display(), mark = end, "rewrote a damaged synced mark");
            repaired_marks.push(s.entry.path.clone());
        }
    }
    // Where each sealed segment's data ends (after its seal), to make it durable below.
    let sealed: Vec<(dir::Entry, u64)> = scans
        .iter()
        .filter(|s| s.is_sealed() && !s.blank && s.mark < s.sealed_end() && !s.mark_damaged)
        .map(|s| (s.entry.clone(), s.sealed_end()))
        .collect();
    drop(scans);

    let rec = recover_locked(dir, &dir::list(dir)?.segments, segment_pages, fs)?;
    let mut durable = sealed;
    for path in &rec.resealed {
        if let Some(e) = dir::list(dir)?
            .segments
            .into_iter()
            .find(|e| &e.path == path)
        {
            // The rewritten seal ends the segment: make its mark cover it.
            let (s, _) = scan::scan_write(e.clone(), fs)?;
            durable.push((e, s.sealed_end()));
        }
    }
    for (entry, end) in durable {
        if entry.path.exists() {
            repair::make_durable(&entry, end, fs)?;
        }
    }
    if let Some((seg, end)) = &rec.active {
        seg.flush(*end)?;
        if seg.synced_mark() < *end {
            seg.sync_handle(*end, *end, true).mark_synced()?;
        }
    }
    fs.sync_dir(dir)
        .map_err(|e| Error::io("could not sync log directory", dir, e))?;
    let (torn_tail, torn_bytes) = match rec.cut {
        Some((t, bytes)) => (Some(t), bytes),
        None => (None, 0),
    };
    Ok(RecoveryReport {
        torn_tail,
        torn_bytes,
        truncation,
        repaired_marks,
        resealed: rec.resealed,
        first_seq: rec.first_seq.min(rec.next_seq),
        next_seq: rec.next_seq,
    })
}
