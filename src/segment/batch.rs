//! Batches on disk: a run of record frames with the `MORE` bit (version 2) is one batch, or
//! one segment's part of it, and ends with the first frame without the bit. A run that is not
//! ended so (its frames stop at an empty header, a bad frame, a seal or the end of the
//! segment) is a **torn batch**: its end never reached the disk. Recovery cuts it whole, from
//! its first frame, and readers yield none of it (see `docs/format.md`, "Frames").
//!
//! The writer publishes a batch's part of a segment at once (its first header last) and never
//! syncs in the middle of one, so a live writer never shows a reader an unended run, and a
//! synced mark never lies inside one.

use std::fmt;

use super::Segment;
use crate::error::Result;
use crate::format::{BadFrame, Frame, FRAME_HEADER_LEN};

/// How a run of batch frames ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Run {
    /// The run is whole: its last frame (without `MORE`) ends at `end`; it holds `records`
    /// frames from the one it was looked at from, and its last one was appended at `time`.
    Whole { end: u64, records: u64, time: u64 },
    /// The run is torn: its frames stop at `at`, for `why`, before a frame without `MORE`;
    /// `records` valid frames lie before `at`.
    Torn {
        at: u64,
        records: u64,
        why: RunBreak,
    },
}

/// Where the frames of a torn batch stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunBreak {
    /// An empty header word (or the end of the file).
    Empty,
    /// A seal: the writer never seals in the middle of a batch.
    Seal,
    /// The end of the segment's reservation.
    Full,
    /// A bad frame.
    Bad(BadFrame),
}

impl fmt::Display for RunBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunBreak::Empty => write!(f, "nothing was written there"),
            RunBreak::Seal => write!(f, "a seal"),
            RunBreak::Full => write!(f, "the end of the segment"),
            RunBreak::Bad(b) => write!(f, "{b}"),
        }
    }
}

/// Looks at the rest of the batch whose frame at `off` (of `seq`, `len` bytes of payload) is
/// a valid record with `MORE` set: walks the frames after it, checking each one's CRC but
/// lending and freezing nothing ([`Segment::check_at`]), up to the first without `MORE`.
/// `live` says a writer may be appending (a reader): the file size is looked at again before
/// a frame is judged missing, since the writer grows the file before it publishes.
///
/// # Errors
/// `Io` when the file size cannot be read; `Corrupt` when seqs would pass `u64::MAX`.
pub(crate) fn run_end<S: Segment>(
    seg: &mut S,
    off: u64,
    seq: u64,
    len: u32,
    live: bool,
) -> Result<Run> {
    let reservation = seg.reservation();
    let mut at = off + seg.frame_len(u64::from(len));
    let mut seq = seq;
    let mut records = 1;
    loop {
        seq = seq
            .checked_add(1)
            .ok_or_else(|| crate::recovery::seq_overflow(seg.path(), at))?;
        if at + FRAME_HEADER_LEN > reservation {
            return Ok(Run::Torn {
                at,
                records,
                why: RunBreak::Full,
            });
        }
        let mut frame = seg.check_at(at, seq);
        let past_size = at + FRAME_HEADER_LEN > seg.size();
        if live
            && (matches!(frame, Frame::Bad(BadFrame::LengthOutOfBounds { .. }))
                || (frame == Frame::Empty && past_size))
        {
            seg.refresh_size()?;
            frame = seg.check_at(at, seq);
        }
        match frame {
            Frame::Record { len, time, more } => {
                at += seg.frame_len(u64::from(len));
                records += 1;
                if !more {
                    return Ok(Run::Whole {
                        end: at,
                        records,
                        time,
                    });
                }
            }
            Frame::Empty => {
                return Ok(Run::Torn {
                    at,
                    records,
                    why: RunBreak::Empty,
                })
            }
            Frame::Seal => {
                return Ok(Run::Torn {
                    at,
                    records,
                    why: RunBreak::Seal,
                })
            }
            Frame::Bad(b) => {
                return Ok(Run::Torn {
                    at,
                    records,
                    why: RunBreak::Bad(b),
                })
            }
        }
    }
}
