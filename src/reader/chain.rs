//! Walking from one segment to the next: the checks that no segment between two is missing
//! and none overlaps another.

use super::Reader;
use crate::dir;
use crate::error::{Error, Result};
use crate::format;
use crate::segment::Segment;

impl Reader {
    /// Moves to the segment starting at `base`, keeping the current one if it is not there yet.
    /// After a seal its synced mark covers (`sealed`, durably), the next segment exists: the
    /// checkpoint that made the seal durable made it durable too; a missing one is damage.
    /// Otherwise the next may not exist yet (a segment full to its last byte rolls at the next
    /// append; a power cut can lose a directory entry never synced, and recovery starts the
    /// segment again), unless a later one exists. And no other segment may start between the
    /// two: it would overlap this one.
    pub(super) fn next_segment(&mut self, base: u64, sealed: bool) -> Result<bool> {
        let old = self.seg.take();
        let old_off = self.off;
        let old_base = old.as_ref().map(|s| s.header().base_seq);
        if self.open_segment(base)? {
            if let Some(from) = old_base {
                self.check_no_overlap(from, base)?;
            }
            return Ok(true);
        }
        self.seg = old;
        self.off = old_off;
        self.next_seq = base;
        self.check_not_removed(base)?;
        let durable_seal = sealed
            && self
                .seg
                .as_ref()
                .is_some_and(|s| s.synced_mark() >= old_off + format::FRAME_HEADER_LEN);
        if durable_seal && self.dir.join(dir::segment_name(base)).exists() {
            // There, but blank or headless, after a durable seal: its header had been durable.
            return Err(Error::Corrupt {
                segment: self.dir.join(dir::segment_name(base)),
                offset: 0,
                reason: "segment header is missing, though the seal of the segment before \
                         says the segment was complete"
                    .into(),
            });
        }
        // A later segment listed while this one is missing is a gap, unless this one was
        // created between the two looks (the writer creates segments in order): look again
        // after the listing.
        let missing = || !self.dir.join(dir::segment_name(base)).exists();
        if missing()
            && (durable_seal || dir::list(&self.dir)?.segments.iter().any(|e| e.base > base))
            && missing()
        {
            if let Some(from) = old_base {
                return Err(Error::Corrupt {
                    segment: self.dir.join(dir::segment_name(from)),
                    offset: old_off,
                    reason: format!(
                        "its records end at seq {base}, but segment {} is missing",
                        dir::segment_name(base)
                    ),
                });
            }
        }
        Ok(false)
    }

    /// Refuses a segment that starts between `from` and `to`: it overlaps the one at `from`,
    /// whose records run up to `to`.
    fn check_no_overlap(&self, from: u64, to: u64) -> Result<()> {
        let listing = dir::list(&self.dir)?;
        if let Some(stray) = listing
            .segments
            .iter()
            .find(|e| e.base > from && e.base < to)
        {
            return Err(Error::Corrupt {
                segment: stray.path.clone(),
                offset: 0,
                reason: format!(
                    "segment starts at seq {}, inside the segment before (which ends at seq {to}): two segments overlap",
                    stray.base
                ),
            });
        }
        Ok(())
    }

    /// When the segment starting at `base` does not exist, tells "not created yet" (fine: the
    /// writer creates it right after the seal) from "removed by retention" (the log's first
    /// segment is now a later one): the reader fell behind `truncate_front`.
    pub(super) fn check_not_removed(&self, base: u64) -> Result<()> {
        if self.dir.join(dir::segment_name(base)).exists() {
            return Ok(());
        }
        match dir::list(&self.dir)?.segments.first() {
            Some(first) if first.base > base => Err(Error::SeqBeforeStart {
                seq: base,
                first_seq: first.base,
            }),
            _ => Ok(()),
        }
    }
}
