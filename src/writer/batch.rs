//! Appending many records at once: `append_batch`, all or nothing.

use std::ops::Range;
use std::sync::atomic::Ordering;

use super::Writer;
use crate::checkpoint::PoisonCause;
use crate::error::{Error, Result};
use crate::format::{self, HEADER_LEN};
use crate::segment::{page_size, Segment};

impl Writer {
    /// Appends many records and returns their seqs, all or nothing: readers see none or all of
    /// them, and a crash or power cut leaves the whole batch or none of it.
    ///
    /// A batch is written in one segment: when it does not fit in what is left of the active
    /// one, the writer rolls to a new segment first. Its frames are written with one growth
    /// step and published together with one release store, each marked as belonging to the
    /// batch but the last.
    ///
    /// # Crashes and power cuts
    /// Until a sync covers it ([`sync`](Self::sync), the [`SyncPolicy`](crate::SyncPolicy),
    /// [`SharedWriter::wait_durable`](crate::SharedWriter::wait_durable)), a power cut or a
    /// kernel crash can lose the batch, but never keeps only part of it: the kernel writes
    /// dirty pages back in any order, and recovery cuts a batch whose last record did not
    /// reach the disk whole, from its first record (see `verify`'s "torn batch"), so its seqs
    /// go to the records appended next. Readers never return a record of such a batch. Once a
    /// sync returned Ok, the whole batch survives. A crash of this process (`kill -9`, a
    /// panic) after `append_batch` returned loses none of it, and during the call leaves all
    /// of it or none.
    ///
    /// This holds for a batch that fits in one segment: its records, each taking 16 bytes
    /// more rounded up to a multiple of 8, at most [`max_record_len`](Self::max_record_len)
    /// plus 16 bytes in all (a segment of the log's size, see [`Options::segment_pages`](crate::Options::segment_pages)). A
    /// larger batch is accepted and written in one part per segment: each part is kept or cut
    /// whole, so a power cut can keep the parts in the segments before the one it tore.
    ///
    /// # Errors
    /// As [`append`](Self::append). Sizes are checked before anything is written, and a batch
    /// that fits in one segment is appended whole or not at all. Only for a larger one, if
    /// growing or rolling fails midway, the parts before the failure are appended (see
    /// [`next_seq`](Self::next_seq)) and the rest are not.
    ///
    /// # Example
    /// ```
    /// use applog::{Options, Reader, Writer};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = Writer::open(dir.path(), Options::default())?;
    /// log.append(b"begin")?;
    /// let lines = vec!["one".to_string(), "two".into(), "three".into()]; // any AsRef<[u8]>
    /// let seqs = log.append_batch(&lines)?;
    /// assert_eq!(seqs, 1..4);
    /// log.sync()?; // the whole batch survives a power cut from here on
    ///
    /// let mut reader = Reader::open(dir.path())?;
    /// reader.seek(seqs.start)?;
    /// assert_eq!(reader.next()?.unwrap().data(), b"one");
    /// # Ok(()) }
    /// ```
    pub fn append_batch<B: AsRef<[u8]>>(&mut self, records: &[B]) -> Result<Range<u64>> {
        self.check_poisoned()?;
        for r in records {
            self.check_len(r.as_ref().len())?;
        }
        self.check_seqs(records.len() as u64)?;
        if records.len() > 1 {
            self.roll_for_batch(records)?;
        }
        let first = self.next_seq;
        let time = self.clock.now();
        let mut i = 0;
        while i < records.len() {
            let reservation = self.seg.reservation();
            let mut end = self.pos;
            let mut j = i;
            let mut payload = 0;
            while let Some(r) = records.get(j) {
                let flen = self.seg.frame_len(r.as_ref().len() as u64);
                if end + flen > reservation {
                    break;
                }
                end += flen;
                payload += r.as_ref().len() as u64;
                j += 1;
            }
            if j == i {
                self.roll()?;
                continue;
            }
            if self.seg.needs_growth(end) {
                let pos = self.pos;
                self.grow(pos, end)?;
            }
            let start = self.pos;
            if let Err(e) = self.write_frames(start, end, time, &records[i..j]) {
                return Err(self.take_back(start, end, e));
            }
            self.wake_readers();
            self.unsynced_bytes += end - start;
            self.metrics.appended((j - i) as u64, payload);
            self.pos = end;
            let before = self.next_seq;
            self.next_seq += (j - i) as u64;
            self.stats.appended(before, self.next_seq, payload);
            i = j;
        }
        tracing::debug!(
            first_seq = first,
            records = self.next_seq - first,
            "appended a batch"
        );
        self.metrics.batch(records.len());
        self.apply_policy()?;
        Ok(first..self.next_seq)
    }

    /// Rolls to a new segment first when `records` do not fit in what is left of the active
    /// segment but fit whole in a new one, or when the active segment is of version 1, whose
    /// frames cannot mark a batch: a batch is then written in one segment, one run of frames
    /// that recovery keeps or cuts whole. A batch too large for one segment is written in one
    /// part per segment (each part whole on its own); an empty active segment cannot roll
    /// (its successor would have its name).
    fn roll_for_batch<B: AsRef<[u8]>>(&mut self, records: &[B]) -> Result<()> {
        if self.pos == HEADER_LEN {
            return Ok(());
        }
        let frames = |layout: format::Layout| {
            records.iter().fold(0u64, |sum, r| {
                sum.saturating_add(layout.frame_len(r.as_ref().len() as u64))
            })
        };
        let layout = self.seg.header().layout;
        if layout == format::Layout::CURRENT
            && self.pos.saturating_add(frames(layout)) <= self.seg.reservation()
        {
            return Ok(());
        }
        let capacity = (page_size() * u64::from(self.segment_pages)).saturating_sub(HEADER_LEN);
        if frames(format::Layout::CURRENT) > capacity {
            return Ok(());
        }
        self.roll()
    }

    /// Writes the frames of `records` from `start` (ending at `end`, all in the active
    /// segment), stamped `time`, and publishes them together: the first frame's header last.
    /// Every frame but the last says that the next one belongs to the same batch.
    fn write_frames<B: AsRef<[u8]>>(
        &self,
        start: u64,
        end: u64,
        time: u64,
        records: &[B],
    ) -> Result<()> {
        // Write every frame but publish the first one last: readers stop at the first
        // empty header, so the Release store of the first header publishes them all.
        let mut off = start;
        let mut first_word = 0;
        for (k, r) in records.iter().enumerate() {
            let r = r.as_ref();
            let seq = self.next_seq + k as u64;
            let more = k + 1 < records.len();
            let word = self.seg.write_body(off, seq, time, more, r)?;
            if k == 0 {
                first_word = word;
            } else {
                self.seg.stage(off, word)?;
            }
            off += self.seg.frame_len(r.len() as u64);
        }
        self.seg.publish(start, first_word, end, Ordering::Release)
    }

    /// After writing the unpublished frames `[from, to)` of a batch failed (only a segment
    /// written with `pwrite` can fail there, e.g. with `NoSpace`): zeroes what was written, so
    /// that a later append never publishes a frame in front of a frame header the batch had
    /// staged; the writer is poisoned if even that fails. Returns the error to report.
    #[cold]
    fn take_back(&mut self, from: u64, to: u64, e: Error) -> Error {
        if let Err(again) = self.seg.discard_unpublished(from, to) {
            tracing::error!(error = %again, "could not take back a failed append; the writer is poisoned until the log is reopened");
            self.poisoned = Some(PoisonCause::of(&again));
        }
        e
    }
}
