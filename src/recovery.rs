//! Scanning segments, telling a torn tail from corruption, cutting torn tails, `verify`.
//!
//! # Torn tail or corruption?
//!
//! A checksum alone cannot tell a tail torn by a crash from bit rot in data that had been made
//! durable. Each segment header carries a *synced mark*: after an msync that made the frames
//! below offset `m` durable returns Ok, the writer stores `m` in the header, and the next msync
//! writes it out. The mark therefore never claims more than what was durable (it can lag by
//! one sync). So:
//!
//! - a bad or missing frame **below the mark** is corruption: reported with file and offset,
//!   nothing is modified;
//! - a bad frame, zeros, or garbage **at or after the mark**, after the last good frame, is a
//!   torn tail: recovery zeroes it in place (never shrinking the file) and makes that durable.
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
use crate::segment::{Opened, Segment};

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
    let mut off = HEADER_LEN;
    let mut seq = entry.base;
    let reservation = seg.reservation();
    let stop = loop {
        if off >= reservation {
            break Stop::Full;
        }
        let mut frame = seg.frame_at(off, seq).0;
        if matches!(frame, Frame::Bad(BadFrame::LengthOutOfBounds { .. })) && !writable {
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
        mark: seg.synced_mark(),
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
    let listing = dir::list(dir)?;
    if listing.is_foreign() || (listing.segments.is_empty() && !listing.has_lock_file) {
        return Err(Error::NotALog {
            path: dir.to_owned(),
            reason: "no applog segments or lock file in the directory".into(),
        });
    }
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
}

/// Recovers the log for a writer that holds the lock: finds the last good record, cuts a torn
/// tail, refuses corruption.
pub(crate) fn recover(dir: &Path, entries: Vec<Entry>, segment_pages: u32) -> Result<Recovered> {
    let first_seq = entries.first().map_or(0, |e| e.base);
    if entries.is_empty() {
        return Ok(Recovered {
            active: None,
            next_seq: 0,
            first_seq,
        });
    }
    // Segments whose synced mark covers their seal were complete and durable: start the scan
    // after the newest of them. The others are scanned, oldest first.
    let start = trusted_prefix(&entries)?;
    let mut corruptions = Vec::new();
    let mut scans = scan_all(dir, entries[start..].to_vec(), true, &mut corruptions)?;
    let verdict = analyze(&scans);
    corruptions.extend(verdict.corruptions);
    if let Some(c) = corruptions.into_iter().next() {
        return Err(c.into_error());
    }
    for &i in &verdict.reseal {
        let s = &mut scans[i];
        if let Some(seg) = s.seg.as_mut() {
            seg.grow_to(s.end + format::FRAME_HEADER_LEN)?;
            seg.store_head(
                s.end,
                format::seal_word(seg.seed, s.next_seq),
                std::sync::atomic::Ordering::Release,
            )?;
            seg.flush(s.end + format::FRAME_HEADER_LEN)
                .map_err(|e| Error::io("could not sync repaired seal of", &seg.path, e))?;
            tracing::warn!(segment = %seg.path.display(), offset = s.end, next_seq = s.next_seq, "rewrote a seal lost in a crash");
        }
    }
    let keep = match &verdict.torn {
        Some((i, tail)) => {
            cut(dir, &scans[*i], tail)?;
            *i + 1
        }
        None => scans.len(),
    };
    scans.truncate(keep);
    let Some(last) = scans.pop() else {
        return Ok(Recovered {
            active: None,
            next_seq: first_seq,
            first_seq,
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
/// and makes both durable before anything new is written.
fn cut(dir: &Path, s: &Scanned, tail: &TornTail) -> Result<()> {
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
    }
    Ok(())
}
