//! A reader meets a cut of the log's end (`Writer::truncate_back`; see "Cutting the log's
//! end" in the format documentation).

use super::Reader;
use crate::error::{Error, Result};
use crate::format::HEADER_LEN;
use crate::segment::Segment;

/// What a cut in the reader's segment means for its next frame.
pub(super) enum AtCut {
    /// No cut at or before the reader's position: read on.
    No,
    /// The segment ended at the cut and the reader moved to the next one.
    Moved,
    /// The segment ended at the cut and the next one is not there yet.
    Wait,
}

impl Reader {
    /// Looks at the cut word of the reader's segment (one atomic load). Frames from the cut on
    /// are dead: a reader at the cut goes on in the segment named by its position (for a cut
    /// at a segment's first record, a new file of the same name); a reader past it, or in a
    /// segment wholly after a cut (a cut word of 0), yielded records that are gone now.
    ///
    /// # Errors
    /// `Rewound`; `Corrupt` for a damaged cut word; `Io`.
    pub(super) fn meet_cut(&mut self) -> Result<AtCut> {
        let Some(seg) = self.seg.as_ref() else {
            return Ok(AtCut::No);
        };
        let Some(cut) = seg.cut()? else {
            return Ok(AtCut::No);
        };
        if cut == 0 || self.off > cut {
            return Err(Error::Rewound {
                segment: seg.path().to_owned(),
                seq: self.next_seq,
            });
        }
        if self.off < cut {
            return Ok(AtCut::No);
        }
        let next = self.next_seq;
        if cut == HEADER_LEN && seg.is_file_at(seg.path()) {
            // Cut at its first record: the new file of the same name is not in place yet.
            return Ok(AtCut::Wait);
        }
        // Not `next_segment`: until the writer has removed the segments past the cut and
        // created the next one, a missing successor is no damage.
        let (old, old_off) = (self.seg.take(), self.off);
        if self.open_segment(next)? {
            return Ok(AtCut::Moved);
        }
        (self.seg, self.off, self.next_seq) = (old, old_off, next);
        Ok(AtCut::Wait)
    }
}
