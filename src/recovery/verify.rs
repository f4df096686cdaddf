//! `verify`: a read-only check of every frame of every segment, with a report.

use std::path::{Path, PathBuf};

use super::analyze::{analyze, TornTail};
use super::scan::{scan_all, Corruption, Stop};
use crate::dir;
use crate::error::Result;

/// A segment's line in a [`VerifyReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentReport {
    /// The segment file.
    pub path: PathBuf,
    /// Seq of its first record.
    pub base_seq: u64,
    /// Valid records in it.
    pub records: u64,
    /// Offset after its last valid record frame.
    pub data_end: u64,
    /// File size in bytes.
    pub file_size: u64,
    /// Reservation in bytes (0 when the header is blank).
    pub reservation: u64,
    /// Whether it ends with a seal (or is full).
    pub sealed: bool,
    /// The synced mark: frames below it had been made durable.
    pub synced_mark: u64,
    /// The page size its header names (0 when the header is blank).
    pub page_size: u32,
    /// Its reservation in pages, as its header names it (0 when the header is blank).
    pub segment_pages: u32,
    /// The format version its header names (0 when the header is blank). Records of a
    /// version-1 segment carry no time.
    pub format_version: u32,
    /// Append time of its first valid record, in nanoseconds since the Unix epoch (`None`
    /// without records, or in a version-1 segment).
    pub first_time: Option<u64>,
    /// Append time of its last valid record (as `first_time`).
    pub last_time: Option<u64>,
    /// Where the log's end was cut in it (`Writer::truncate_back`), when it was: its records
    /// end there (at `data_end`); the frames after it were removed.
    pub cut_at: Option<u64>,
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Every segment, oldest first.
    pub segments: Vec<SegmentReport>,
    /// Seq of the first record (or of the next one, when the log is empty).
    pub first_seq: u64,
    /// Seq the next appended record will get (after a torn tail is cut).
    pub next_seq: u64,
    /// Valid records.
    pub records: u64,
    /// Bytes of segment files.
    pub bytes: u64,
    /// A torn tail, if there is one: not corruption; the next writer cuts it.
    pub torn_tail: Option<TornTail>,
    /// Damage inside synced data or in the log's structure (a missing, overlapping or
    /// damaged segment), each with its file and offset.
    pub corruptions: Vec<Corruption>,
    /// Segment files wholly after a cut of the log's end (`Writer::truncate_back`) that a
    /// crash left in place: their records are removed (not corruption); the next writer
    /// deletes the files.
    pub removed_by_cut: Vec<PathBuf>,
    /// Segment files before a reset (`Writer::reset` past the log's end) that a crash left
    /// in place: not part of the log (not corruption); the next writer deletes the files.
    pub removed_by_reset: Vec<PathBuf>,
    /// Whether a writer held the log's lock when the check started (the newest records may
    /// then have been appended during the check).
    pub writer_active: bool,
}

impl VerifyReport {
    /// True when no corruption was found (a torn tail is not corruption).
    pub fn is_clean(&self) -> bool {
        self.corruptions.is_empty()
    }
}

/// Checks every frame of every segment of the log in `dir`, without modifying anything and
/// without taking the lock (a writer may be appending meanwhile). One segment is open at a
/// time, however long the log.
///
/// # Errors
/// `NotALog` for a directory or file that is not applog's, `Io` when a file cannot be read.
/// Corruption is not an error here: it is in the report.
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut log = applog::Writer::open(dir.path(), applog::Options::default())?;
/// log.append_batch(&[&b"a"[..], b"b"])?;
///
/// let report = applog::verify(dir.path())?; // no lock taken: the writer goes on
/// assert!(report.is_clean() && report.torn_tail.is_none());
/// assert_eq!((report.records, report.next_seq), (2, 2));
/// assert!(report.writer_active);
/// for c in &report.corruptions {
///     eprintln!("{} at byte {}: {}", c.segment.display(), c.offset, c.reason);
/// }
/// # Ok(()) }
/// ```
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    // While a writer runs, its rollovers and retention change the directory under the scan
    // (a segment sealed after the listing, the oldest removed mid-walk), which can look like
    // a missing segment. Damage stays where it is: look again, from a fresh listing, and
    // report what a whole pass still finds.
    let mut report = verify_once(dir)?;
    for _ in 0..RETRIES_WHILE_LIVE {
        if report.is_clean() || !report.writer_active {
            break;
        }
        tracing::debug!(dir = %dir.display(), corruptions = ?report.corruptions, "verify: the log changed under the scan? looking again");
        report = verify_once(dir)?;
    }
    Ok(report)
}

/// How many more times `verify` looks at a live log that seemed damaged.
const RETRIES_WHILE_LIVE: usize = 4;

fn verify_once(dir: &Path) -> Result<VerifyReport> {
    let listing = dir::list_log(dir)?;
    let writer_active = dir::Lock::is_held(dir)?;
    let mut corruptions = Vec::new();
    let removed_by_reset = listing.reset_dead.into_iter().map(|e| e.path).collect();
    let mut scans = scan_all(dir, listing.segments, &mut corruptions)?;
    if writer_active {
        // A live writer rolls over by creating the next segment before it seals this one:
        // a segment that ends without a seal before the newest may be in that window (its
        // seal can even land between the frame walk and the look at the bytes after it).
        // Look again.
        let n = scans.len();
        for s in scans.iter_mut().take(n.saturating_sub(1)) {
            if s.stop == Stop::Clean {
                *s = super::scan::scan_read(s.entry.clone())?;
            }
        }
        if let Some(last) = scans.last_mut() {
            // A live writer copies a payload in before it publishes the frame's header:
            // non-zero bytes after the newest frame are that record in flight, not a torn
            // tail.
            last.garbage_after = false;
        }
    }
    // Files after a cut that does not continue in the segment named by its seq are dead.
    let dead_from = scans.iter().enumerate().find_map(|(i, s)| {
        let continues = s.end > crate::format::HEADER_LEN
            && scans.get(i + 1).is_some_and(|n| n.entry.base == s.next_seq);
        (s.stop == Stop::Cut && !continues).then_some(i + 1)
    });
    let removed_by_cut = match dead_from {
        Some(i) => scans
            .split_off(i)
            .into_iter()
            .map(|s| s.entry.path)
            .collect(),
        None => Vec::new(),
    };
    corruptions.retain(|c| !removed_by_cut.contains(&c.segment));
    let verdict = analyze(&scans);
    corruptions.extend(verdict.corruptions);
    corruptions.sort_by(|a, b| (&a.segment, a.offset).cmp(&(&b.segment, b.offset)));
    corruptions.dedup();
    let first_seq = scans.first().map_or(0, |s| s.entry.base);
    let keep = verdict.torn.as_ref().map_or(scans.len(), |(i, _)| i + 1);
    let next_seq = scans[..keep].last().map_or(first_seq, |s| s.next_seq);
    let segments = scans
        .iter()
        .map(|s| SegmentReport {
            path: s.entry.path.clone(),
            base_seq: s.entry.base,
            records: s.records,
            data_end: s.end,
            file_size: s.size,
            reservation: s.reservation,
            sealed: s.is_sealed(),
            synced_mark: s.mark,
            page_size: s.page_size,
            segment_pages: s.segment_pages,
            format_version: s.version,
            first_time: (s.first_time != 0).then_some(s.first_time),
            last_time: (s.last_time != 0).then_some(s.last_time),
            cut_at: (s.stop == Stop::Cut).then_some(s.end),
        })
        .collect::<Vec<_>>();
    Ok(VerifyReport {
        records: scans[..keep].iter().map(|s| s.records).sum(),
        bytes: segments.iter().map(|s| s.file_size).sum(),
        segments,
        first_seq,
        next_seq,
        torn_tail: verdict.torn.map(|(_, t)| t),
        corruptions,
        removed_by_cut,
        removed_by_reset,
        writer_active,
    })
}
