//! Scanning: what is on disk. Walks every frame of a segment, checking each CRC, and sums it
//! up in a [`Scanned`], which holds no file open: a log of any length is scanned with one
//! segment open at a time.

use std::path::{Path, PathBuf};

use crate::dir::{self, Entry};
use crate::error::{Error, Result};
use crate::format::{self, BadFrame, Frame, HEADER_LEN};
use crate::segment::{run_end, Opened, ReadSegment, Run, RunBreak, Segment, WriteSegment};

/// How a segment's frames end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// An empty header word (or the end of the file) at `end`.
    Clean,
    /// A valid seal at `end`.
    Sealed,
    /// `end` is the end of the reservation: full, no room for a seal.
    Full,
    /// `end` is where the log's end was cut (the segment's cut word): the frames from there
    /// on are dead. Like `Full`, the segment ends there and its successor, if any, starts at
    /// `next_seq`.
    Cut,
    /// A bad frame at `end`.
    Bad(BadFrame),
    /// A torn batch from `end`: `records` frames with the batch bit (`MORE`), whose frames
    /// stop at `at` (for `why`) before the batch's last frame. Cut whole, from `end`.
    TornBatch {
        at: u64,
        records: u64,
        why: RunBreak,
    },
}

/// One segment, scanned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // independent facts about one file
pub(crate) struct Scanned {
    pub entry: Entry,
    /// The header was never completed (a crashed creation: see `segment::probe`), or it has
    /// no magic and something follows it (`headless`).
    pub blank: bool,
    /// No magic, yet something follows the header: a crash before a rolled-over segment's
    /// first checkpoint, or damage (`analyze` decides).
    pub headless: bool,
    /// Offset after the last good record frame.
    pub end: u64,
    /// Seq after the last good record.
    pub next_seq: u64,
    pub records: u64,
    pub stop: Stop,
    /// The synced mark (0 when none, or when it is damaged).
    pub mark: u64,
    /// The synced mark fails its check.
    pub mark_damaged: bool,
    /// Whether any byte after `end` (after the seal, when sealed) is non-zero.
    pub garbage_after: bool,
    /// File size and reservation (0 when blank).
    pub size: u64,
    pub reservation: u64,
    /// The header's page size and segment pages (0 when blank).
    pub page_size: u32,
    pub segment_pages: u32,
    /// The header's format version (0 when blank).
    pub version: u32,
    /// Append times of the first and the last good record (0: none, or a version-1 segment).
    pub first_time: u64,
    pub last_time: u64,
}

impl Scanned {
    /// A blank segment (see `segment::probe`).
    pub(crate) fn blank(entry: Entry) -> Scanned {
        Scanned {
            next_seq: entry.base,
            entry,
            blank: true,
            headless: false,
            end: 0,
            records: 0,
            stop: Stop::Clean,
            mark: 0,
            mark_damaged: false,
            garbage_after: false,
            size: 0,
            reservation: 0,
            page_size: 0,
            segment_pages: 0,
            version: 0,
            first_time: 0,
            last_time: 0,
        }
    }

    /// A segment without its magic but with something after the header (see `headless`).
    pub(crate) fn headless(entry: Entry) -> Scanned {
        Scanned {
            headless: true,
            ..Scanned::blank(entry)
        }
    }

    /// Offset after the segment's last frame, its seal included.
    pub(crate) fn sealed_end(&self) -> u64 {
        match self.stop {
            Stop::Sealed => self.end + format::FRAME_HEADER_LEN,
            _ => self.end,
        }
    }

    pub(crate) fn is_sealed(&self) -> bool {
        matches!(self.stop, Stop::Sealed | Stop::Full | Stop::Cut)
    }
}

/// Walks every frame of an open segment. `live` says a writer may be appending (a read-only
/// scan): the file size is then looked at again before a frame is judged missing.
///
/// # Errors
/// `Corrupt` when the header's base seq disagrees with the file name; `Io`.
pub(crate) fn scan<S: Segment>(seg: &mut S, entry: Entry, live: bool) -> Result<Scanned> {
    let header = *seg.header();
    if header.base_seq != entry.base {
        return Err(Error::Corrupt {
            segment: entry.path,
            offset: 24,
            reason: format!(
                "header says the segment starts at seq {}, its name says {}",
                header.base_seq, entry.base
            ),
        });
    }
    // The mark first: a live writer stores it after the frames below it were published (and
    // the file grown to hold them), so a scan that starts after this load sees all of them.
    let checked = seg.synced_mark_checked();
    let mark = checked.unwrap_or(0);
    // A segment wholly after a cut (0) holds no live frame either.
    let cut = seg.cut()?.map(|c| c.max(HEADER_LEN));
    let mut off = HEADER_LEN;
    let mut seq = entry.base;
    let reservation = seg.reservation();
    let (mut first_time, mut last_time) = (0, 0);
    let stop = loop {
        if cut == Some(off) {
            break Stop::Cut;
        }
        if off >= reservation {
            break Stop::Full;
        }
        // The verdict alone: frames are kept (frozen, in a writable segment) only once the
        // walk is over, since the frames of a torn batch validate and yet are cut.
        let mut frame = seg.check_at(off, seq);
        let past_size = off + format::FRAME_HEADER_LEN > seg.size();
        if live
            && (matches!(frame, Frame::Bad(BadFrame::LengthOutOfBounds { .. }))
                || (frame == Frame::Empty && past_size))
        {
            // A live writer grows the file before it publishes: look at the size again.
            seg.refresh_size()?;
            frame = seg.check_at(off, seq);
        }
        match frame {
            Frame::Record { len, time, more } => {
                // A batch counts only whole: walk to its last frame first.
                let (end, records, time) = if more {
                    let run = run_end(seg, off, seq, len, live)?;
                    match (run, cut.filter(|&c| c > off)) {
                        // A cut of the log's end inside the batch ends it there.
                        (Run::Whole { end, .. }, Some(c)) if end > c => {
                            (c, frames_to_cut(seg, off, seq, c, &entry.path)?, time)
                        }
                        (Run::Torn { at, .. }, Some(c)) if at >= c => {
                            (c, frames_to_cut(seg, off, seq, c, &entry.path)?, time)
                        }
                        (Run::Whole { end, records, time }, _) => (end, records, time),
                        (Run::Torn { at, records, why }, _) => {
                            break Stop::TornBatch { at, records, why }
                        }
                    }
                } else {
                    (off + header.layout.frame_len(u64::from(len)), 1, time)
                };
                if matches!(cut, Some(c) if off < c && end > c) {
                    return Err(Error::Corrupt {
                        segment: entry.path,
                        offset: format::CUT_WORD_OFFSET,
                        reason: format!(
                            "the cut word says offset {c}, inside the frame at {off}",
                            c = cut.unwrap_or(0)
                        ),
                    });
                }
                if seq == entry.base {
                    first_time = time;
                }
                last_time = time;
                off = end;
                seq = seq
                    .checked_add(records)
                    .ok_or_else(|| seq_overflow(&entry.path, off))?;
            }
            Frame::Seal => break Stop::Sealed,
            Frame::Empty => break Stop::Clean,
            Frame::Bad(b) => break Stop::Bad(b),
        }
    };
    let mut s = Scanned {
        records: seq - entry.base,
        mark,
        mark_damaged: checked.is_none(),
        entry,
        blank: false,
        headless: false,
        end: off,
        next_seq: seq,
        stop,
        garbage_after: false,
        size: seg.size(),
        reservation,
        page_size: header.page_size,
        segment_pages: header.segment_pages,
        version: header.layout.version(),
        first_time,
        last_time,
    };
    // Bytes after a cut are dead frames, not garbage.
    s.garbage_after = s.stop != Stop::Cut && !seg.view().is_zero_from(s.sealed_end());
    seg.keep(s.end);
    Ok(s)
}

/// How many frames lie between `off` (the frame of `seq`) and a cut at `cut` inside their
/// batch: the batch's part before the cut, which the walk to its end found whole.
///
/// # Errors
/// `Corrupt` when the frames do not end exactly at the cut.
fn frames_to_cut<S: Segment>(
    seg: &S,
    mut off: u64,
    seq: u64,
    cut: u64,
    path: &Path,
) -> Result<u64> {
    let mut n = 0;
    while off < cut {
        match seg.check_at(off, seq + n) {
            Frame::Record { len, .. } => {
                off += seg.frame_len(u64::from(len));
                n += 1;
            }
            _ => break,
        }
    }
    if off != cut {
        return Err(Error::Corrupt {
            segment: path.to_owned(),
            offset: format::CUT_WORD_OFFSET,
            reason: format!("the cut word says offset {cut}, inside the frame that ends at {off}"),
        });
    }
    Ok(n)
}

/// The error for a segment whose seqs would pass `u64::MAX`.
pub(crate) fn seq_overflow(path: &Path, offset: u64) -> Error {
    Error::Corrupt {
        segment: path.to_owned(),
        offset,
        reason: "sequence numbers would pass u64::MAX".into(),
    }
}

/// Opens and scans one segment read-only.
///
/// # Errors
/// As [`scan`], and those of opening it.
pub(crate) fn scan_read(entry: Entry) -> Result<Scanned> {
    match ReadSegment::open(&entry.path)? {
        Opened::Blank => Ok(Scanned::blank(entry)),
        Opened::Headless => Ok(Scanned::headless(entry)),
        Opened::Ready(mut seg) => scan(&mut seg, entry, true),
    }
}

/// Opens and scans one segment read-write (under the lock); returns the segment too, its valid
/// frames frozen (see `mapping`).
///
/// # Errors
/// As [`scan`], and those of opening it.
pub(crate) fn scan_write(
    entry: Entry,
    fs: &std::sync::Arc<dyn crate::io::FileSystem>,
) -> Result<(Scanned, Option<WriteSegment>)> {
    match WriteSegment::open(&entry.path, fs)? {
        Opened::Blank => Ok((Scanned::blank(entry), None)),
        Opened::Headless => Ok((Scanned::headless(entry), None)),
        Opened::Ready(mut seg) => {
            let s = scan(&mut seg, entry, false)?;
            Ok((s, Some(seg)))
        }
    }
}

/// A problem found in a log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Corruption {
    /// The segment file.
    pub segment: PathBuf,
    /// Byte offset in that file.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
}

impl Corruption {
    pub(crate) fn new(segment: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Corruption {
            segment: segment.into(),
            offset,
            reason: reason.into(),
        }
    }

    pub(crate) fn into_error(self) -> Error {
        Error::Corrupt {
            segment: self.segment,
            offset: self.offset,
            reason: self.reason,
        }
    }
}

/// Scans `entries` in order, read-only, one segment open at a time. After a sealed segment,
/// the next one is looked up by name (the seal's seq) even when `entries` lacks it: a directory
/// listing taken while a writer rolls over is not a snapshot (ext4 lists in hash order), so a
/// new segment can be missing from it while a newer one is present. Segments whose header is
/// damaged are reported in `corruptions` and left out.
///
/// # Errors
/// `NotALog`, `Io`.
pub(crate) fn scan_all(
    dir: &Path,
    mut entries: Vec<Entry>,
    corruptions: &mut Vec<Corruption>,
) -> Result<Vec<Scanned>> {
    let mut scans = Vec::with_capacity(entries.len());
    let mut i = 0;
    while let Some(e) = entries.get(i).cloned() {
        i += 1;
        match scan_read(e) {
            Ok(s) => {
                if s.is_sealed() {
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
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                scans.clear();
                corruptions.clear();
            }
            Err(other) => return Err(other),
        }
    }
    Ok(scans)
}
