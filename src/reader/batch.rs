//! Batches, as readers see them: a record of a batch is yielded only once the batch is known
//! whole (see `segment::batch`).

use super::Reader;
use crate::error::{Error, Result};
use crate::segment::{Run, Segment};

impl Reader {
    /// For a record with `MORE` at the reader's position (`len` bytes of payload): whether
    /// its batch is whole, walking to its last frame (then remembered in `run_end`). A batch
    /// whose frames stop before its last one is not yielded: a crash tore it, and the next
    /// writer cuts it whole, so its seqs will be given to other records. Below the synced
    /// mark, that is corruption where its frames stop (the writer never syncs in the middle of
    /// a batch); past it, the batch is "not yet written", as a torn tail is.
    ///
    /// # Errors
    /// `Corrupt` for a torn batch below the synced mark; `Io`.
    #[cold]
    pub(super) fn batch_is_whole(&mut self, len: u32) -> Result<bool> {
        let Some(seg) = self.seg.as_mut() else {
            return Ok(false);
        };
        let run = crate::segment::run_end(seg, self.off, self.next_seq, len, true)?;
        // A cut of the log's end inside the batch ends it there (`Writer::truncate_back`).
        let cut = seg.cut()?.filter(|&c| c > self.off);
        match run {
            Run::Whole { end, .. } => {
                self.run_end = cut.map_or(end, |c| end.min(c));
                Ok(true)
            }
            Run::Torn { at, .. } if cut.is_some_and(|c| at >= c) => {
                self.run_end = cut.unwrap_or(at);
                Ok(true)
            }
            Run::Torn { at, why, .. } => {
                if self.off < seg.synced_mark() {
                    return Err(Error::Corrupt {
                        segment: seg.path().to_owned(),
                        offset: at,
                        reason: format!(
                            "torn batch inside synced data: {why}, before the last frame of the \
                             batch that starts at offset {}",
                            self.off
                        ),
                    });
                }
                tracing::debug!(segment = %seg.path().display(), offset = self.off, stop = at, %why, "a batch without its last frame after the synced mark; waiting");
                Ok(false)
            }
        }
    }
}
