//! Repair: acting on a verdict, under the writer's lock. Cutting a torn tail (zeroing in
//! place, never shrinking a file), rewriting a lost seal, truncating at a corruption when the
//! user asks for it, and making the result durable. Every change goes through the I/O seam.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::analyze::{analyze, TornTail};
use super::scan::{scan_write, seq_overflow, Corruption, Scanned, Stop};
use crate::dir::{self, Entry};
use crate::error::{Error, Result};
use crate::format::{self, Frame, FRAME_HEADER_LEN, HEADER_LEN};
use crate::io::FileSystem;
use crate::segment::{Opened, ReadSegment, RunBreak, Segment, SegmentSync, WriteSegment};

/// The writer's position after recovery.
pub(crate) struct Recovered {
    /// The segment to append to, with the offset of the next frame, or `None` when a new
    /// segment must be created at `next_seq` (empty log, or the newest one is sealed).
    pub active: Option<(WriteSegment, u64)>,
    pub next_seq: u64,
    pub first_seq: u64,
    /// The torn tail that was cut, with the number of bytes zeroed.
    pub cut: Option<(TornTail, u64)>,
    /// Segments whose lost seal was rewritten.
    pub resealed: Vec<PathBuf>,
    /// Sealed segments whose synced mark is below their seal: a writer that crashed before it
    /// synced them may have left their pages dirty in the page cache (or, after a failed
    /// write-back, clean but never written). The new writer's first sync flushes them.
    pub unsynced: Vec<SegmentSync>,
    /// Append time of the last record in the log (0 when unknown: no record, or version 1).
    pub last_time: u64,
}

/// Recovers the log for a writer that holds the lock: checks the chain of trusted segments,
/// scans the rest, cuts a torn tail, rewrites lost seals, refuses corruption.
///
/// # Errors
/// `Corrupt` for damage inside synced data or in the log's structure (nothing is modified);
/// `NotALog`, `NoSpace`, `Io`.
pub(crate) fn recover_locked(
    dir: &Path,
    entries: &[Entry],
    segment_pages: u32,
    fs: &Arc<dyn FileSystem>,
) -> Result<Recovered> {
    let first_seq = entries.first().map_or(0, |e| e.base);
    let mut rec = Recovered {
        active: None,
        next_seq: first_seq,
        first_seq,
        cut: None,
        resealed: Vec::new(),
        unsynced: Vec::new(),
        last_time: 0,
    };
    if entries.is_empty() {
        return Ok(rec);
    }
    // Segments whose synced mark covers a seal naming the next segment were complete and
    // durable: start the scan after the newest of them. The others are scanned, oldest first,
    // one open at a time; the newest stays open to be appended to.
    let start = trusted_prefix(entries)?;
    let mut scans = Vec::with_capacity(entries.len() - start);
    let mut newest = None;
    for entry in &entries[start..] {
        let (s, seg) = scan_write(entry.clone(), fs)?;
        tracing::debug!(segment = %s.entry.path.display(), records = s.records, data_end = s.end, synced_mark = s.mark, stop = ?s.stop, "scanned segment");
        if let Some(seg) = &seg {
            // Bytes past the synced mark are of unknown durability: make the next sync write
            // them even if a failed write-back left their pages clean.
            if !s.mark_damaged && s.mark < s.sealed_end() {
                seg.redirty(s.mark, s.sealed_end())?;
            }
        }
        newest = seg;
        scans.push(s);
    }
    // The trusted segment before the scan counts too: a blank segment after a seal is damage.
    if let (Some(first), Some(prev)) = (scans.first(), start.checked_sub(1)) {
        // Headless after a proven link (a durable seal, or a durably full segment): its
        // header had been durable.
        if first.headless {
            return Err(Error::Corrupt {
                segment: first.entry.path.clone(),
                offset: 0,
                reason: "segment header is damaged (its magic is zeroed) while the file holds \
                         data: not a blank segment"
                    .into(),
            });
        }
        if first.blank && durably_sealed(&entries[prev], first.entry.base)? {
            return Err(Error::Corrupt {
                segment: first.entry.path.clone(),
                offset: 0,
                reason: "segment is blank, but the seal of the segment before says it was complete"
                    .into(),
            });
        }
    }
    let verdict = analyze(&scans);
    if let Some(c) = verdict.corruptions.into_iter().next() {
        return Err(c.into_error());
    }
    let keep = match verdict.torn {
        Some((i, tail)) => {
            if i + 1 < scans.len() {
                // The newest segment lies wholly in the tail: the cut one becomes the newest.
                newest = None;
            }
            let bytes = cut(dir, &scans[i], newest.as_ref(), &tail, fs)?;
            rec.cut = Some((tail, bytes));
            i + 1
        }
        None => scans.len(),
    };
    scans.truncate(keep);
    // A newest segment whose creation a crash cut short is made whole before the seal that
    // names it is rewritten: a seal always names a complete segment (see `analyze`).
    let blank = match scans.last() {
        Some(last) if last.blank => Some(WriteSegment::init_blank(
            &last.entry.path,
            last.entry.base,
            segment_pages,
            fs,
        )?),
        _ => None,
    };
    if !verdict.reseal.is_empty() {
        // A durable seal says the segment it names is durable, directory entry included.
        fs.sync_dir(dir)
            .map_err(|e| Error::io("could not sync log directory", dir, e))?;
    }
    for &i in &verdict.reseal {
        rec.resealed.push(reseal(&scans[i], fs)?);
    }
    rec.unsynced = scans
        .iter()
        .filter(|s| s.is_sealed() && s.mark < s.sealed_end())
        .map(|s| detached_sync(s, fs))
        .collect::<Result<_>>()?;
    let Some(last) = scans.last() else {
        return Ok(rec);
    };
    rec.next_seq = last.next_seq;
    rec.last_time = match scans.iter().rev().find(|s| s.records > 0) {
        Some(s) => s.last_time,
        // The scanned segments hold no record: the newest of those before them does.
        None => last_time_before(&entries[..start])?,
    };
    rec.active = match (blank, last.stop) {
        (Some(seg), _) => Some((seg, HEADER_LEN)),
        (None, Stop::Sealed | Stop::Full | Stop::Cut) => None,
        (None, Stop::Clean | Stop::Bad(_) | Stop::TornBatch { .. }) => {
            let seg = match newest {
                Some(seg) => seg,
                None => reopen(&last.entry, fs)?.1,
            };
            Some((seg, last.end))
        }
    };
    Ok(rec)
}

/// Append time of the last record in the newest of `entries` that holds one (each was proven
/// complete: see [`trusted_prefix`]), read-only; 0 when none does.
fn last_time_before(entries: &[Entry]) -> Result<u64> {
    for entry in entries.iter().rev() {
        let s = super::scan::scan_read(entry.clone())?;
        if s.records > 0 {
            return Ok(s.last_time);
        }
    }
    Ok(0)
}

/// A checkpoint handle for a sealed segment that a sync must make durable up to its seal.
fn detached_sync(s: &Scanned, fs: &Arc<dyn FileSystem>) -> Result<SegmentSync> {
    let (_, seg) = reopen(&s.entry, fs)?;
    Ok(seg.sync_handle(s.mark, s.sealed_end(), true).detached())
}

/// Opens a segment read-write again and walks its frames (which freezes them: see
/// `mapping`), for a repair.
fn reopen(entry: &Entry, fs: &Arc<dyn FileSystem>) -> Result<(Scanned, WriteSegment)> {
    match scan_write(entry.clone(), fs)? {
        (s, Some(seg)) => Ok((s, seg)),
        (_, None) => Err(Error::Corrupt {
            segment: entry.path.clone(),
            offset: 0,
            reason: "segment header was never completed".into(),
        }),
    }
}

/// Index of the first segment that needs a scan: the first whose synced mark does not sit
/// right after a valid seal naming the next segment (or, for a segment full to its last byte,
/// whose walk does not end at the next segment's first seq). The links before it are proven
/// complete and durable, each by one look at a segment header and one frame: opening a log
/// checks its whole chain of segments, one file open at a time, and a segment that is
/// missing or overlaps another makes its link unproven, so the scan that follows finds it.
///
/// # Errors
/// `Io`, `NotALog`, `Corrupt` (a damaged header).
fn trusted_prefix(entries: &[Entry]) -> Result<usize> {
    for (i, pair) in entries.windows(2).enumerate() {
        if link(&pair[0], pair[1].base, false)? != Link::Proven {
            return Ok(i);
        }
    }
    Ok(entries.len().saturating_sub(1))
}

/// Whether `e`'s durable synced mark sits right after a seal naming `next`.
fn durably_sealed(e: &Entry, next: u64) -> Result<bool> {
    let Opened::Ready(seg) = ReadSegment::open(&e.path)? else {
        return Ok(false);
    };
    if seg.cut()?.is_some() {
        // The seal lies past the cut, dead: the segment's successor is the one at the cut.
        return Ok(false);
    }
    let mark = seg.synced_mark();
    Ok(mark >= HEADER_LEN + FRAME_HEADER_LEN
        && seg.frame_at(mark - FRAME_HEADER_LEN, next).0 == Frame::Seal)
}

/// What a sealed segment says about the segment after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Link {
    /// Its durable synced mark sits right after a seal naming `next` (or it is full to the
    /// last byte, durably, and its seqs end at `next`).
    Proven,
    /// Its frames end (sealed or full) at this seq.
    Ends(u64),
    /// It does not end yet (no seal: a live writer, or a crash before the seal).
    Open,
}

/// Looks at how the segment `e` ends, as the predecessor of a segment starting at `next`:
/// first by its synced mark (one header and one frame), and, when that does not prove the
/// link and `walk` is set, by walking its frames.
///
/// # Errors
/// `Io`, `NotALog`, `Corrupt` (a damaged header).
pub(crate) fn link(e: &Entry, next: u64, walk: bool) -> Result<Link> {
    if durably_sealed(e, next)? {
        return Ok(Link::Proven);
    }
    let Opened::Ready(mut seg) = ReadSegment::open(&e.path)? else {
        return Ok(Link::Open);
    };
    let mark = seg.synced_mark();
    if !walk && mark != seg.reservation() {
        return Ok(Link::Open);
    }
    // Full to the last byte (no room for a seal), or asked to: only a walk tells where its
    // seqs end.
    let s = super::scan::scan(&mut seg, e.clone(), true)?;
    Ok(match (s.is_sealed(), mark == seg.reservation()) {
        (true, true) if s.next_seq == next => Link::Proven,
        (true, _) => Link::Ends(s.next_seq),
        (false, _) => Link::Open,
    })
}

/// Rewrites the seal a crash lost at the end of a segment whose successor continues it, and
/// makes it durable. Returns the segment's path.
fn reseal(s: &Scanned, fs: &Arc<dyn FileSystem>) -> Result<PathBuf> {
    let (_, mut seg) = reopen(&s.entry, fs)?;
    seg.grow_to(s.end + FRAME_HEADER_LEN)?;
    seg.seal(s.end, s.next_seq)?;
    // Readers waiting at the end of this segment can move on now.
    seg.wake_readers();
    // Every byte up to the seal is durable now: say so in the mark, so that the chain of
    // sealed segments stays provable (see `trusted_prefix`).
    let end = s.end + FRAME_HEADER_LEN;
    seg.flush(end)?;
    seg.sync_handle(end, end, true).mark_synced()?;
    tracing::warn!(segment = %s.entry.path.display(), offset = s.end, next_seq = s.next_seq, "rewrote a seal lost in a crash");
    Ok(s.entry.path.clone())
}

/// Cuts a torn tail: zeroes `[offset, size)` of the segment in place, removes later segments,
/// and makes both durable before anything new is written. Returns the bytes zeroed.
fn cut(
    dir: &Path,
    s: &Scanned,
    open: Option<&WriteSegment>,
    tail: &TornTail,
    fs: &Arc<dyn FileSystem>,
) -> Result<u64> {
    for path in &tail.later_segments {
        fs.remove_file(path)
            .map_err(|e| Error::io("could not remove torn segment", path, e))?;
        tracing::warn!(segment = %path.display(), "removed a segment that lay wholly in a torn tail");
    }
    if !tail.later_segments.is_empty() {
        fs.sync_dir(dir)
            .map_err(|e| Error::io("could not sync log directory", dir, e))?;
    }
    if s.blank {
        return Ok(0);
    }
    let reopened;
    let seg = if let Some(seg) = open {
        seg
    } else {
        reopened = reopen(&s.entry, fs)?.1;
        &reopened
    };
    let size = seg.size();
    let from = s.sealed_end();
    seg.zero_from(from)?;
    seg.flush(size)?;
    tracing::warn!(
        segment = %s.entry.path.display(),
        offset = from,
        bytes = size.saturating_sub(from),
        next_seq = s.next_seq,
        reason = %tail.reason,
        "cut a torn tail"
    );
    Ok(size.saturating_sub(from))
}

/// msync of `[0, end)`, then the synced mark `end` (rewritten when it is lower or damaged),
/// then msync of the header that holds it.
pub(crate) fn make_durable(entry: &Entry, end: u64, fs: &Arc<dyn FileSystem>) -> Result<()> {
    let (s, seg) = reopen(entry, fs)?;
    seg.flush(end)?;
    if s.mark_damaged || s.mark < end {
        seg.sync_handle(end, end, true).mark_synced()?;
    }
    Ok(())
}

/// What a truncation at the first corruption removed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

/// Cuts the log at its first unreadable record: follows the chain of segments from the oldest
/// (by the seq each seal names) to the first place a record cannot be read, zeroes everything
/// from there, lowers that segment's synced mark, and removes every segment file after it.
/// A damaged synced mark alone is not such a place: every record is still readable, and the
/// mark is rewritten by the caller. `None` when the chain holds every record.
///
/// # Errors
/// `Io`, `NoSpace`.
pub(crate) fn truncate(
    dir: &Path,
    entries: &[Entry],
    scans: &[Scanned],
    corruption: Corruption,
    fs: &Arc<dyn FileSystem>,
) -> Result<Option<Truncation>> {
    let find = |base: u64| scans.iter().find(|s| s.entry.base == base && !s.blank);
    let exists = |base: u64| entries.iter().any(|e| e.base == base);
    // The segment the log now ends in, the offset to zero from, and the seq cut at.
    let mut end: Option<(&Scanned, u64)> = None;
    let mut chain = Vec::new();
    let mut seq = entries.first().map_or(0, |e| e.base);
    let mut broken = false;
    while let Some(s) = find(seq) {
        chain.push(s.entry.base);
        let continues = exists(s.next_seq) && s.next_seq > s.entry.base;
        let readable_to_end = s.end >= s.mark || s.mark_damaged;
        match s.stop {
            Stop::Sealed | Stop::Full | Stop::Cut if continues => {}
            // A seal lost in a crash before the successor: recovery rewrites it.
            Stop::Clean if continues && !s.garbage_after && readable_to_end => {}
            Stop::Sealed | Stop::Full | Stop::Cut => {
                end = Some((s, s.sealed_end()));
                seq = s.next_seq;
                // A durable seal names a segment that must exist (see `analyze`).
                broken = (s.stop == Stop::Sealed && s.mark >= s.sealed_end())
                    || entries.last().is_some_and(|l| l.base > s.entry.base);
                break;
            }
            Stop::Clean | Stop::Bad(_) | Stop::TornBatch { .. } => {
                broken = matches!(s.stop, Stop::Bad(_) | Stop::TornBatch { .. })
                    || s.end < s.mark
                    || s.garbage_after
                    || entries.last().is_some_and(|l| l.base > s.entry.base);
                end = Some((s, s.end));
                seq = s.next_seq;
                break;
            }
        }
        end = Some((s, s.sealed_end()));
        seq = s.next_seq;
    }
    // Every segment off the chain goes: those after its end, and strays inside it.
    let removed: Vec<&Entry> = entries
        .iter()
        .filter(|e| !chain.contains(&e.base))
        .collect();
    if !broken && removed.is_empty() {
        return Ok(None);
    }

    // Count what goes: seqs are dense, so the newest readable segment tells how far the log
    // went, unless its own records end at damage that cannot be walked.
    let mut last_seq = seq;
    let mut exact = true;
    if let Some(newest) = entries.last() {
        match scans.iter().find(|s| s.entry.base == newest.base) {
            Some(s) if !s.blank => {
                let tail = match s.stop {
                    Stop::Bad(_) => count_past_damage(s)?,
                    // The batch's frames, then those from the bad one on, counted as after
                    // any bad frame.
                    Stop::TornBatch {
                        at,
                        records,
                        why: RunBreak::Bad(_),
                    } => {
                        let bad = Scanned {
                            end: at,
                            next_seq: s.next_seq + records,
                            ..s.clone()
                        };
                        count_past_damage(&bad)?.map(|n| n + records)
                    }
                    Stop::TornBatch { records, .. } => Some(records),
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
        fs.remove_file(&e.path)
            .map_err(|err| Error::io("could not remove segment", &e.path, err))?;
        tracing::warn!(segment = %e.path.display(), "removed a segment after the corruption");
    }
    if !removed.is_empty() {
        fs.sync_dir(dir)
            .map_err(|e| Error::io("could not sync log directory", dir, e))?;
    }
    let (segment, offset) = match end {
        Some((s, offset)) => {
            let (_, seg) = reopen(&s.entry, fs)?;
            seg.zero_from(offset)?;
            seg.flush(seg.size())?;
            if s.mark > offset || s.mark_damaged {
                seg.sync_handle(offset, offset, true).mark_synced()?;
            }
            if s.stop == Stop::Sealed && s.mark >= s.sealed_end() {
                // The segment its seal names is gone with whatever it held (the count is not
                // known): start it again, empty, so that the chain holds.
                exact = false;
                let path = dir.join(dir::segment_name(seq));
                if !path.exists() {
                    WriteSegment::create(&path, seq, s.segment_pages.max(1), fs, true)?;
                    fs.sync_dir(dir)
                        .map_err(|e| Error::io("could not sync log directory", dir, e))?;
                }
            }
            (s.entry.path.clone(), offset)
        }
        None => (dir.join(dir::segment_name(seq)), 0),
    };
    let records_dropped = last_seq.saturating_sub(seq);
    tracing::debug!(segment = %segment.display(), offset, seq, records_dropped, exact, corruption = %corruption.reason, "truncated the log at a corruption");
    Ok(Some(Truncation {
        corruption,
        segment,
        offset,
        seq,
        records_dropped,
        exact,
        removed_segments: removed.into_iter().map(|e| e.path.clone()).collect(),
    }))
}

/// Records at and after the bad frame that ends a scan, when they can be counted. The bad
/// frame's length is not trusted: the next record (seq + 1) is looked for at every 8-byte
/// boundary after it (its CRC pins its seq), and the frames from there must check out until a
/// clean end (a seal, the end of the reservation, or an empty header with only zeros after it,
/// at or after the synced mark). When no next record is found, the bad frame counts as the
/// last only if its length lands inside the file with only zeros after it, at or after the
/// mark. `None` when the count cannot be known.
///
/// # Errors
/// `Io` when the segment cannot be opened again.
fn count_past_damage(s: &Scanned) -> Result<Option<u64>> {
    let Opened::Ready(seg) = ReadSegment::open(&s.entry.path)? else {
        return Ok(None);
    };
    let Some(word) = seg.view().load(s.end) else {
        return Ok(None);
    };
    let seq = s
        .next_seq
        .checked_add(1)
        .ok_or_else(|| seq_overflow(&s.entry.path, s.end))?;
    let limit = seg.view().limit();
    let mut found = None;
    let mut at = s.end + FRAME_HEADER_LEN;
    while at + FRAME_HEADER_LEN <= limit {
        if matches!(seg.frame_at(at, seq).0, Frame::Record { .. } | Frame::Seal) {
            found = Some(at);
            break;
        }
        at += format::ALIGN;
    }
    let clean_end = |off: u64| off >= s.mark && (off >= limit || seg.view().is_zero_from(off));
    let Some(mut off) = found else {
        let claimed = match format::decode_head(seg.header().layout, word) {
            format::Head::Record { len, .. } => s.end + seg.frame_len(u64::from(len)),
            _ => return Ok(None),
        };
        return Ok((claimed <= limit && clean_end(claimed)).then_some(1));
    };
    let mut n = 1;
    let mut seq = seq;
    loop {
        if off >= seg.reservation() {
            return Ok(Some(n));
        }
        match seg.frame_at(off, seq).0 {
            Frame::Record { len, .. } => {
                off += seg.frame_len(u64::from(len));
                n += 1;
                seq += 1;
            }
            Frame::Seal => return Ok(Some(n)),
            Frame::Empty => return Ok(clean_end(off).then_some(n)),
            Frame::Bad(_) => return Ok(None),
        }
    }
}
