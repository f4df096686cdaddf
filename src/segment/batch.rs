//! Batches on disk: a run of record frames with the `MORE` bit (version 2) is one batch, or
//! one segment's part of it, and ends with the first frame without the bit. A run that is not
//! ended so (its frames stop at an empty header, a bad frame, a seal or the end of the
//! segment) is a **torn batch**: its end never reached the disk. Recovery cuts it whole, from
//! its first frame, and readers yield none of it (see `docs/format.md`, "Frames").
//!
//! The writer publishes a batch's part of a segment at once (its first header last) and never
//! syncs in the middle of one, so a live writer never shows a reader an unended run, and a
//! synced mark never lies inside one.

use super::Segment;
use crate::error::Result;
use crate::format::{BadFrame, FRAME_HEADER_LEN};
pub(crate) use crate::format::{Run, RunBreak};

/// Looks at the rest of the batch whose frame at `off` (of `seq`, `len` bytes of payload) is
/// a valid record with `MORE` set: walks the frames after it, checking each one's CRC but
/// lending and freezing nothing, up to the first without `MORE` (see
/// `mapping::View::check_run`, which remembers a whole batch so that reading its frames
/// costs no second CRC). `live` says a writer may be appending (a reader): when the frames
/// stop past the file size known, the size is looked at again and the batch walked again,
/// since the writer grows the file before it publishes.
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
    let run = walk(seg, off, seq, len)?;
    let past_size = match run {
        Run::Torn {
            why: RunBreak::Bad(BadFrame::LengthOutOfBounds { .. }),
            ..
        } => true,
        Run::Torn {
            at,
            why: RunBreak::Empty,
            ..
        } => at + FRAME_HEADER_LEN > seg.size(),
        _ => false,
    };
    if live && past_size {
        seg.refresh_size()?;
        return walk(seg, off, seq, len);
    }
    Ok(run)
}

fn walk<S: Segment>(seg: &S, off: u64, seq: u64, len: u32) -> Result<Run> {
    let header = seg.header();
    seg.view()
        .check_run(off, seq, len, header.crc_seed(), header.layout)
        .ok_or_else(|| crate::recovery::seq_overflow(seg.path(), off))
}
