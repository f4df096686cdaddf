//! Scanning segments, telling a torn tail from corruption, cutting torn tails, `verify`.
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
//!   torn tail: recovery zeroes it in place (never shrinking the file) and makes that durable.
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

use std::path::{Path, PathBuf};

use crate::dir::{self, Entry};
use crate::error::{Error, Result};
use crate::format::{self, BadFrame, Frame, HEADER_LEN};
use crate::segment::{Opened, Segment, SegmentSync};

/// How a segment's frames end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// An empty header word (or the end of the file) at `end`.
    Clean,
    /// A valid seal at `end`.
    Sealed,
    /// `end` is the end of the reservation: full, no room for a seal.
    Full,
    /// A bad frame at `end`.
    Bad(BadFrame),
}

/// One segment, scanned.
pub(crate) struct Scanned {
    pub entry: Entry,
    /// `None` when the segment's header is blank (never completed).
    pub seg: Option<Segment>,
    /// Offset after the last good record frame.
    pub end: u64,
    /// Seq after the last good record.
    pub next_seq: u64,
    pub records: u64,
    pub stop: Stop,
    /// The synced mark.
    pub mark: u64,
    /// Whether any byte after `end` (after the seal, when sealed) is non-zero.
    pub garbage_after: bool,
}

/// Walks every frame of a segment, checking each CRC.
pub(crate) fn scan(entry: Entry, writable: bool) -> Result<Scanned> {
    let mut seg = match Segment::open(&entry.path, writable)? {
        Opened::Blank => {
            return Ok(Scanned {
                next_seq: entry.base,
                entry,
                seg: None,
                end: 0,
                records: 0,
                stop: Stop::Clean,
                mark: 0,
                garbage_after: false,
            })
        }
        Opened::Ready(seg) => seg,
    };
    if seg.header.base_seq != entry.base {
        return Err(Error::Corrupt {
            segment: entry.path,
            offset: 24,
            reason: format!(
                "header says the segment starts at seq {}, its name says {}",
                seg.header.base_seq, entry.base
            ),
        });
    }
    // The mark first: a live writer stores it after the frames below it were published (and
    // the file grown to hold them), so a scan that starts after this load sees all of them.
    if let Some(word) = seg.map.load(format::SYNCED_MARK_OFFSET) {
        if seg.header.decode_synced_mark(word).is_none() {
            // Not a torn write (the mark is one aligned 8-byte store): damage. Ignoring it
            // would take synced data for an unsynced tail.
            return Err(Error::Corrupt {
                segment: entry.path,
                offset: format::SYNCED_MARK_OFFSET,
                reason: "synced mark fails its check".into(),
            });
        }
    }
    let mark = seg.synced_mark();
    let mut off = HEADER_LEN;
    let mut seq = entry.base;
    let reservation = seg.reservation();
    let stop = loop {
        if off >= reservation {
            break Stop::Full;
        }
        let mut frame = seg.frame_at(off, seq).0;
        let past_size = off + format::FRAME_HEADER_LEN > seg.size();
        if !writable
            && (matches!(frame, Frame::Bad(BadFrame::LengthOutOfBounds { .. }))
                || (frame == Frame::Empty && past_size))
        {
            // A live writer grows the file before it publishes: look at the size again.
            seg.refresh_size()?;
            frame = seg.frame_at(off, seq).0;
        }
        match frame {
            Frame::Record { len } => {
                off += format::frame_len(u64::from(len));
                seq += 1;
            }
            Frame::Seal => break Stop::Sealed,
            Frame::Empty => break Stop::Clean,
            Frame::Bad(b) => break Stop::Bad(b),
        }
    };
    let after = match stop {
        Stop::Sealed => off + format::FRAME_HEADER_LEN,
        _ => off,
    };
    let limit = seg.map.limit();
    let garbage_after = after < limit
        && seg
            .map
            .bytes(after, limit - after)
            .is_some_and(|b| b.iter().any(|&x| x != 0));
    Ok(Scanned {
        records: seq - entry.base,
        mark,
        entry,
        seg: Some(seg),
        end: off,
        next_seq: seq,
        stop,
        garbage_after,
    })
}

/// A problem found in a log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte offset in that file.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl Corruption {
    fn into_error(self) -> Error {
        Error::Corrupt {
            segment: self.segment,
            offset: self.offset,
            reason: self.reason,
        }
    }
}

/// A torn tail: bytes after the last good record that recovery cuts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// The segment where the tail starts.
    pub segment: PathBuf,
    /// Byte offset of the first byte cut.
    pub offset: u64,
    /// Why it is cut (the bad frame, or non-zero bytes after the last record).
    pub reason: String,
    /// Later segment files that lie wholly in the torn tail (removed by recovery).
    pub later_segments: Vec<PathBuf>,
}

/// What [`analyze`] decided.
struct Verdict {
    corruptions: Vec<Corruption>,
    /// Index of the segment holding the tail, and the tail.
    torn: Option<(usize, TornTail)>,
    /// Non-last segments whose seal was lost but whose successor continues them.
    reseal: Vec<usize>,
}

fn corrupt(s: &Scanned, offset: u64, reason: impl Into<String>) -> Corruption {
    Corruption {
        segment: s.entry.path.clone(),
        offset,
        reason: reason.into(),
    }
}

fn stop_reason(s: &Scanned) -> String {
    match s.stop {
        Stop::Bad(b) => b.to_string(),
        Stop::Clean if s.seg.is_none() => "segment header was never completed".into(),
        Stop::Clean => "records end before the synced mark".into(),
        Stop::Sealed | Stop::Full => "non-zero bytes after the last record".into(),
    }
}

/// Classifies the scanned segments (a contiguous run ending at the newest segment; the first
/// one's predecessors are trusted).
fn analyze(scans: &[Scanned]) -> Verdict {
    let mut v = Verdict {
        corruptions: Vec::new(),
        torn: None,
        reseal: Vec::new(),
    };
    let n = scans.len();
    for (i, s) in scans.iter().enumerate() {
        let last = i + 1 == n;
        // A frame missing or bad inside synced data is corruption.
        if !matches!(s.stop, Stop::Sealed | Stop::Full) && s.end < s.mark {
            v.corruptions.push(corrupt(s, s.end, stop_reason(s)));
            continue;
        }
        if let Some(next) = scans.get(i + 1) {
            let continues = next.entry.base == s.next_seq;
            match s.stop {
                // Bytes after a seal hold no records and are never read: nothing to report.
                Stop::Sealed | Stop::Full if continues => continue,
                Stop::Sealed | Stop::Full => {
                    v.corruptions.push(corrupt(
                        next,
                        0,
                        format!(
                            "segment starts at seq {}, but the one before ends at seq {}",
                            next.entry.base, s.next_seq
                        ),
                    ));
                    continue;
                }
                // The seal was lost (power cut), the successor continues: keep, reseal.
                Stop::Clean if continues && !s.garbage_after && s.seg.is_some() => {
                    v.reseal.push(i);
                    continue;
                }
                _ => {}
            }
            // The tail of segment i is torn and later segments follow a gap: they hold only
            // unsynced records, unless one has a synced mark (then records were lost from
            // synced data: corruption).
            if let Some(synced) = scans[i + 1..].iter().find(|l| l.mark > HEADER_LEN) {
                v.corruptions.push(corrupt(
                    s,
                    s.end,
                    format!(
                        "{}; a later segment ({}) holds synced records",
                        stop_reason(s),
                        synced.entry.path.display()
                    ),
                ));
                continue;
            }
            if next.entry.base < s.next_seq {
                v.corruptions.push(corrupt(
                    next,
                    0,
                    format!(
                        "segment starts at seq {}, inside the segment before (which ends at seq {})",
                        next.entry.base, s.next_seq
                    ),
                ));
                continue;
            }
            if v.corruptions.is_empty() {
                v.torn = Some((
                    i,
                    TornTail {
                        segment: s.entry.path.clone(),
                        offset: s.end,
                        reason: match s.stop {
                            Stop::Clean => format!(
                                "records stop at seq {} but a later segment starts at seq {}",
                                s.next_seq, next.entry.base
                            ),
                            _ => stop_reason(s),
                        },
                        later_segments: scans[i + 1..]
                            .iter()
                            .map(|l| l.entry.path.clone())
                            .collect(),
                    },
                ));
            }
            return v;
        }
        debug_assert!(last);
        let torn = match s.stop {
            Stop::Bad(b) => Some(b.to_string()),
            _ if s.garbage_after => Some("non-zero bytes after the last record".into()),
            _ => None,
        };
        if let (Some(reason), true) = (torn, v.corruptions.is_empty()) {
            v.torn = Some((
                i,
                TornTail {
                    segment: s.entry.path.clone(),
                    offset: s.end,
                    reason,
                    later_segments: Vec::new(),
                },
            ));
        }
    }
    v
}

/// A segment's line in a [`VerifyReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Damage inside synced data, each with its file and offset.
    pub corruptions: Vec<Corruption>,
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

/// Scans `entries` in order. After a sealed segment, the next one is looked up by name (the
/// seal's seq) even when `entries` lacks it: a directory listing taken while a writer rolls
/// over is not a snapshot (ext4 lists in hash order), so a new segment can be missing from it
/// while a newer one is present.
fn scan_all(
    dir: &Path,
    mut entries: Vec<Entry>,
    writable: bool,
    corruptions: &mut Vec<Corruption>,
) -> Result<Vec<Scanned>> {
    let mut scans = Vec::with_capacity(entries.len());
    let mut i = 0;
    while let Some(e) = entries.get(i).cloned() {
        i += 1;
        match scan(e, writable) {
            Ok(s) => {
                if matches!(s.stop, Stop::Sealed | Stop::Full) {
                    let next = s.next_seq;
                    let at = entries.partition_point(|e| e.base < next);
                    let path = dir.join(dir::segment_name(next));
                    if at >= i && entries.get(at).map(|e| e.base) != Some(next) && path.exists() {
                        entries.insert(at, Entry { base: next, path });
                    }
                }
                scans.push(s);
            }
            Err(Error::Corrupt {
                segment,
                offset,
                reason,
            }) => corruptions.push(Corruption {
                segment,
                offset,
                reason,
            }),
            // A read-only scan races retention (`truncate_front`), which removes the oldest
            // segments first: one that is gone by the time it is opened is no longer in the
            // log, nor is any segment before it.
            Err(Error::Io { source, .. })
                if !writable && source.kind() == std::io::ErrorKind::NotFound =>
            {
                scans.clear();
            }
            Err(other) => return Err(other),
        }
    }
    Ok(scans)
}

/// Checks every frame of every segment of the log in `dir`, without modifying anything and
/// without taking the lock (a writer may be appending meanwhile).
///
/// # Errors
/// `NotALog` for a directory or file that is not applog's, `Io` when a file cannot be read.
/// Corruption is not an error here: it is in the report.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    let listing = dir::list_log(dir)?;
    let writer_active = dir::Lock::is_held(dir)?;
    let mut corruptions = Vec::new();
    let mut scans = scan_all(dir, listing.segments, false, &mut corruptions)?;
    if let (true, Some(last)) = (writer_active, scans.last_mut()) {
        // A live writer copies a payload in before it publishes the frame's header: non-zero
        // bytes after the newest frame are that record in flight, not a torn tail.
        last.garbage_after = false;
    }
    let verdict = analyze(&scans);
    corruptions.extend(verdict.corruptions);
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
            file_size: s.seg.as_ref().map_or(0, |g| g.size()),
            reservation: s.seg.as_ref().map_or(0, |g| g.reservation()),
            sealed: matches!(s.stop, Stop::Sealed | Stop::Full),
            synced_mark: s.mark,
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
        writer_active,
    })
}

/// The writer's position after recovery.
pub(crate) struct Recovered {
    /// The segment to append to, with the offset and seq of the next frame, or `None` when a
    /// new segment must be created at `next_seq` (empty log, or the newest one is sealed).
    pub active: Option<(Segment, u64)>,
    pub next_seq: u64,
    pub first_seq: u64,
    /// The torn tail that was cut, with the number of bytes zeroed.
    pub cut: Option<(TornTail, u64)>,
    /// Segments whose lost seal was rewritten.
    pub resealed: Vec<PathBuf>,
    /// Sealed segments whose synced mark is below their seal: a writer that crashed before it
    /// synced them may have left their pages dirty in the page cache. The new writer's first
    /// sync flushes them, so that it never reports as durable what only the cache holds.
    pub unsynced: Vec<SegmentSync>,
}

/// Recovers the log for a writer that holds the lock: finds the last good record, cuts a torn
/// tail, refuses corruption.
pub(crate) fn recover_locked(
    dir: &Path,
    entries: Vec<Entry>,
    segment_pages: u32,
) -> Result<Recovered> {
    let first_seq = entries.first().map_or(0, |e| e.base);
    if entries.is_empty() {
        return Ok(Recovered {
            active: None,
            next_seq: 0,
            first_seq,
            cut: None,
            resealed: Vec::new(),
            unsynced: Vec::new(),
        });
    }
    // Segments whose synced mark covers their seal were complete and durable: start the scan
    // after the newest of them. The others are scanned, oldest first.
    let start = trusted_prefix(&entries)?;
    let mut corruptions = Vec::new();
    let mut scans = scan_all(dir, entries[start..].to_vec(), true, &mut corruptions)?;
    for s in &scans {
        tracing::debug!(segment = %s.entry.path.display(), records = s.records, data_end = s.end, synced_mark = s.mark, stop = ?s.stop, "scanned segment");
    }
    let verdict = analyze(&scans);
    corruptions.extend(verdict.corruptions);
    if let Some(c) = corruptions.into_iter().next() {
        return Err(c.into_error());
    }
    let mut resealed = Vec::new();
    for &i in &verdict.reseal {
        let s = &mut scans[i];
        if let Some(seg) = s.seg.as_mut() {
            seg.grow_to(s.end + format::FRAME_HEADER_LEN)?;
            seg.store_head(
                s.end,
                format::seal_word(seg.seed, s.next_seq),
                std::sync::atomic::Ordering::Release,
            )?;
            // Readers waiting at the end of this segment can move on now.
            if let Some(word) = seg.wake_word() {
                crate::notify::published(word);
            }
            seg.flush(s.end + format::FRAME_HEADER_LEN)
                .map_err(|e| Error::io("could not sync repaired seal of", &seg.path, e))?;
            tracing::warn!(segment = %seg.path.display(), offset = s.end, next_seq = s.next_seq, "rewrote a seal lost in a crash");
            resealed.push(seg.path.clone());
        }
    }
    let (keep, cut_tail) = match verdict.torn {
        Some((i, tail)) => {
            let bytes = cut(dir, &scans[i], &tail)?;
            (i + 1, Some((tail, bytes)))
        }
        None => (scans.len(), None),
    };
    scans.truncate(keep);
    let unsynced = scans
        .iter()
        .filter_map(|s| {
            let seal_end = match s.stop {
                Stop::Sealed => s.end + format::FRAME_HEADER_LEN,
                Stop::Full => s.end,
                _ => return None,
            };
            let seg = s.seg.as_ref()?;
            (s.mark < seal_end).then(|| seg.sync_handle(s.mark, seal_end, true))
        })
        .collect();
    let Some(last) = scans.pop() else {
        return Ok(Recovered {
            active: None,
            next_seq: first_seq,
            first_seq,
            cut: cut_tail,
            resealed,
            unsynced,
        });
    };
    let next_seq = last.next_seq;
    let active = match (last.seg, last.stop) {
        (Some(seg), Stop::Clean | Stop::Bad(_)) => Some((seg, last.end)),
        (Some(_), Stop::Sealed | Stop::Full) => None,
        (None, _) => Some((
            Segment::init_blank(&last.entry.path, last.entry.base, segment_pages)?,
            HEADER_LEN,
        )),
    };
    Ok(Recovered {
        active,
        next_seq,
        first_seq,
        cut: cut_tail,
        resealed,
        unsynced,
    })
}

/// Index of the first segment that needs a scan: the one after the newest segment whose synced
/// mark sits right after a valid seal.
fn trusted_prefix(entries: &[Entry]) -> Result<usize> {
    for i in (0..entries.len().saturating_sub(1)).rev() {
        let (Some(e), Some(next)) = (entries.get(i), entries.get(i + 1)) else {
            break;
        };
        if let Opened::Ready(seg) = Segment::open(&e.path, false)? {
            let mark = seg.synced_mark();
            if mark >= HEADER_LEN + format::FRAME_HEADER_LEN
                && seg.frame_at(mark - format::FRAME_HEADER_LEN, next.base).0 == Frame::Seal
            {
                return Ok(i + 1);
            }
        }
    }
    Ok(0)
}

/// Cuts a torn tail: zeroes `[offset, size)` of the segment in place, removes later segments,
/// and makes both durable before anything new is written. Returns the bytes zeroed.
fn cut(dir: &Path, s: &Scanned, tail: &TornTail) -> Result<u64> {
    for path in &tail.later_segments {
        std::fs::remove_file(path)
            .map_err(|e| Error::io("could not remove torn segment", path, e))?;
        tracing::warn!(segment = %path.display(), "removed a segment that lay wholly in a torn tail");
    }
    if !tail.later_segments.is_empty() {
        dir::sync_dir(dir).map_err(|e| Error::io("could not sync log directory", dir, e))?;
    }
    if let Some(seg) = &s.seg {
        let size = seg.size();
        let from = match s.stop {
            Stop::Sealed => s.end + format::FRAME_HEADER_LEN,
            _ => s.end,
        };
        seg.zero_from(from)?;
        seg.flush(size)
            .map_err(|e| Error::io("could not sync cut tail of", &seg.path, e))?;
        tracing::warn!(
            segment = %seg.path.display(),
            offset = from,
            bytes = size.saturating_sub(from),
            next_seq = s.next_seq,
            reason = %tail.reason,
            "cut a torn tail"
        );
        return Ok(size.saturating_sub(from));
    }
    Ok(0)
}

/// What [`recover`] does about damage inside data that had been made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryMode {
    /// Cut a torn tail, as [`Writer::open`](crate::Writer::open) does, and refuse corruption
    /// with [`Error::Corrupt`], modifying nothing. Default.
    #[default]
    CutTornTail,
    /// Keep every record before the first damaged frame and remove the rest: the frames after
    /// it are zeroed in place and later segment files are removed. Records are lost: use it
    /// only when the damaged log must become writable again, and keep a copy of it first.
    TruncateAtCorruption,
}

/// What [`RecoveryMode::TruncateAtCorruption`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The first problem found.
    pub corruption: Corruption,
    /// The segment that now ends the log.
    pub segment: PathBuf,
    /// Byte offset in `segment` from which everything was zeroed (just after its seal when
    /// the log now ends with a sealed segment).
    pub offset: u64,
    /// Seq of the first record removed: the log's next seq now.
    pub seq: u64,
    /// Records removed. When `exact` is false, frames after the damage could not be walked
    /// and this is a lower bound.
    pub records_dropped: u64,
    /// Whether `records_dropped` is the exact count.
    pub exact: bool,
    /// Segment files removed whole.
    pub removed_segments: Vec<PathBuf>,
}

/// What [`recover`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The torn tail that was cut (zeroed in place; later segment files in it removed).
    pub torn_tail: Option<TornTail>,
    /// Bytes zeroed by cutting the torn tail.
    pub torn_bytes: u64,
    /// What was removed at a corruption ([`RecoveryMode::TruncateAtCorruption`] only).
    pub truncation: Option<Truncation>,
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
/// - [`Error::Corrupt`] for damage inside synced data with [`RecoveryMode::CutTornTail`]
///   (nothing is changed);
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
    let dir = dir.as_ref();
    let listing = dir::list_log(dir)?;
    if !listing.has_lock_file {
        // Taking the lock creates the lock file: make sure first that the segments are
        // applog's (a damaged header is for the scan below to judge).
        for entry in &listing.segments {
            match Segment::open(&entry.path, false) {
                Ok(_) | Err(Error::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    let _lock = dir::Lock::acquire(dir)?;
    let entries = dir::list(dir)?.segments;
    let segment_pages = entries
        .iter()
        .rev()
        .find_map(|e| match Segment::open(&e.path, false) {
            Ok(Opened::Ready(seg)) => Some(seg.header.segment_pages),
            _ => None,
        })
        .unwrap_or(crate::Options::default().segment_pages);

    // Every segment, not only the untrusted tail a writer scans.
    let mut corruptions = Vec::new();
    let scans = scan_all(dir, entries.clone(), false, &mut corruptions)?;
    corruptions.extend(analyze(&scans).corruptions);
    corruptions.sort_by(|a, b| (&a.segment, a.offset).cmp(&(&b.segment, b.offset)));
    let truncation = match (corruptions.into_iter().next(), mode) {
        (None, _) => None,
        (Some(c), RecoveryMode::CutTornTail) => return Err(c.into_error()),
        (Some(c), RecoveryMode::TruncateAtCorruption) => Some(truncate(dir, &entries, &scans, c)?),
    };
    // Where each sealed segment's data ends (after its seal), to make it durable below; and
    // where the records end in the others, in case their lost seal is rewritten.
    let mut sealed: Vec<(PathBuf, u64)> = scans
        .iter()
        .filter(|s| matches!(s.stop, Stop::Sealed | Stop::Full) && s.seg.is_some())
        .filter(|s| s.mark < sealed_end(s))
        .map(|s| (s.entry.path.clone(), sealed_end(s)))
        .collect();
    let unsealed: Vec<(PathBuf, u64)> = scans
        .iter()
        .filter(|s| s.stop == Stop::Clean)
        .map(|s| (s.entry.path.clone(), s.end))
        .collect();
    drop(scans);

    let rec = recover_locked(dir, dir::list(dir)?.segments, segment_pages)?;
    for path in &rec.resealed {
        if let Some((_, end)) = unsealed.iter().find(|(p, _)| p == path) {
            sealed.push((path.clone(), end + format::FRAME_HEADER_LEN));
        }
    }
    for (path, end) in sealed {
        if !path.exists() {
            continue; // removed by the truncation or the cut
        }
        if let Opened::Ready(seg) = Segment::open(&path, true)? {
            make_durable(&seg, end)?;
        }
    }
    if let Some((seg, end)) = &rec.active {
        make_durable(seg, *end)?;
    }
    dir::sync_dir(dir).map_err(|e| Error::io("could not sync log directory", dir, e))?;
    let (torn_tail, torn_bytes) = match rec.cut {
        Some((t, bytes)) => (Some(t), bytes),
        None => (None, 0),
    };
    Ok(RecoveryReport {
        torn_tail,
        torn_bytes,
        truncation,
        resealed: rec.resealed,
        first_seq: rec.first_seq.min(rec.next_seq),
        next_seq: rec.next_seq,
    })
}

/// Offset after a segment's last frame, its seal included.
fn sealed_end(s: &Scanned) -> u64 {
    match s.stop {
        Stop::Sealed => s.end + format::FRAME_HEADER_LEN,
        _ => s.end,
    }
}

/// msync of `[0, end)`, then the synced mark `end`, then msync of the header that holds it.
fn make_durable(seg: &Segment, end: u64) -> Result<()> {
    let io = |e| Error::io("could not sync segment", &seg.path, e);
    seg.flush(end).map_err(io)?;
    if seg.synced_mark() < end {
        seg.sync_handle(end, end, true).mark_synced()?;
    }
    Ok(())
}

/// Cuts the log at its first problem: follows the chain of segments from the oldest (by the
/// seq each seal names) to the first place a record cannot be read, zeroes everything from
/// there, lowers that segment's synced mark, and removes every segment file after it.
fn truncate(
    dir: &Path,
    entries: &[Entry],
    scans: &[Scanned],
    corruption: Corruption,
) -> Result<Truncation> {
    let find = |base: u64| {
        scans
            .iter()
            .find(|s| s.entry.base == base && s.seg.is_some())
    };
    let exists = |base: u64| entries.iter().any(|e| e.base == base);
    // The segment the log now ends in, the offset to zero from, and the seq cut at.
    let mut end: Option<(&Scanned, u64)> = None;
    let mut chain = Vec::new();
    let mut seq = entries.first().map_or(0, |e| e.base);
    while let Some(s) = find(seq) {
        chain.push(s.entry.base);
        let continues = exists(s.next_seq) && s.next_seq > s.entry.base;
        match s.stop {
            Stop::Sealed | Stop::Full if continues => {}
            // A seal lost in a crash before the successor: recovery rewrites it.
            Stop::Clean if continues && !s.garbage_after && s.end >= s.mark => {}
            Stop::Sealed | Stop::Full => {
                end = Some((s, sealed_end(s)));
                seq = s.next_seq;
                break;
            }
            Stop::Clean | Stop::Bad(_) => {
                end = Some((s, s.end));
                seq = s.next_seq;
                break;
            }
        }
        end = Some((s, sealed_end(s)));
        seq = s.next_seq;
    }
    // Every segment off the chain goes: those after its end, and strays inside it.
    let removed: Vec<&Entry> = entries
        .iter()
        .filter(|e| !chain.contains(&e.base))
        .collect();

    // Count what goes: seqs are dense, so the newest readable segment tells how far the log
    // went, unless its own records end at damage that cannot be walked.
    let mut last_seq = seq;
    let mut exact = true;
    if let Some(newest) = entries.last() {
        match scans.iter().find(|s| s.entry.base == newest.base) {
            Some(s) if s.seg.is_some() => {
                let tail = match s.stop {
                    Stop::Bad(_) => count_past_damage(s),
                    Stop::Clean if s.end < s.mark => None,
                    _ => Some(0),
                };
                last_seq = last_seq.max(s.next_seq + tail.unwrap_or(0));
                exact &= tail.is_some();
            }
            Some(_) => last_seq = last_seq.max(newest.base),
            None => {
                last_seq = last_seq.max(newest.base);
                exact = false;
            }
        }
    }

    for e in removed.iter().rev() {
        std::fs::remove_file(&e.path)
            .map_err(|err| Error::io("could not remove segment", &e.path, err))?;
        tracing::warn!(segment = %e.path.display(), "removed a segment after the corruption");
    }
    if !removed.is_empty() {
        dir::sync_dir(dir).map_err(|e| Error::io("could not sync log directory", dir, e))?;
    }
    let (segment, offset) = match end {
        Some((s, offset)) => {
            if let Opened::Ready(seg) = Segment::open(&s.entry.path, true)? {
                let io = |e| Error::io("could not sync truncated segment", &seg.path, e);
                seg.zero_from(offset)?;
                seg.flush(seg.size()).map_err(io)?;
                if seg.synced_mark() > offset {
                    seg.sync_handle(offset, offset, true).mark_synced()?;
                }
            }
            (s.entry.path.clone(), offset)
        }
        None => (dir.join(dir::segment_name(seq)), 0),
    };
    let records_dropped = last_seq.saturating_sub(seq);
    tracing::warn!(segment = %segment.display(), offset, seq, records_dropped, exact, corruption = %corruption.reason, "truncated the log at a corruption");
    Ok(Truncation {
        corruption,
        segment,
        offset,
        seq,
        records_dropped,
        exact,
        removed_segments: removed.into_iter().map(|e| e.path.clone()).collect(),
    })
}

/// Records at and after the bad frame that ends a scan, when they can be walked: the bad
/// frame's length is used to step over it, and every following frame must check out until
/// an empty header at or after the synced mark with only zeros after it, a seal, or the end
/// of the reservation. `None` when the damage cannot be walked.
fn count_past_damage(s: &Scanned) -> Option<u64> {
    let seg = s.seg.as_ref()?;
    let format::Head::Record { len, .. } = format::decode_head(seg.map.load(s.end)?) else {
        return None;
    };
    let mut off = s.end + format::frame_len(u64::from(len));
    let mut n = 1;
    loop {
        if off >= seg.reservation() {
            return Some(n);
        }
        match seg.frame_at(off, s.next_seq + n).0 {
            Frame::Record { len } => {
                off += format::frame_len(u64::from(len));
                n += 1;
            }
            Frame::Seal => return Some(n),
            Frame::Empty => {
                let limit = seg.map.limit();
                let zeros = off >= limit
                    || seg
                        .map
                        .bytes(off, limit - off)
                        .is_some_and(|b| b.iter().all(|&x| x == 0));
                return (off >= s.mark && zeros).then_some(n);
            }
            Frame::Bad(_) => return None,
        }
    }
}
