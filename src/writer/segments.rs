//! Rolling to a new segment, retention as this writer, and the free-space floor.

use std::path::Path;

use super::{micros, Writer};
use crate::dir;
use crate::error::{Error, Result};
use crate::format::{FRAME_HEADER_LEN, HEADER_LEN};
use crate::options::SyncPolicy;
use crate::segment::{Segment, WriteSegment};

impl Writer {
    /// Retention: removes the oldest segments while every record they hold is below `seq`
    /// (whole files, with `unlink`; a file is never shrunk), then fsyncs the directory.
    /// Returns the new [`first_seq`](Self::first_seq). The active segment is never removed,
    /// nor any segment holding a record at or after `seq`, so the log keeps at least the
    /// records from `seq` on (and usually some before it: removal goes by whole segments).
    ///
    /// Records a [`Consumer`](crate::Consumer) has not committed are kept: removal stops at
    /// the slowest consumer's position (a parked consumer excepted).
    ///
    /// Readers that have a removed segment open keep reading it (an unlinked file stays
    /// mapped); a reader that reaches a removed segment later gets [`Error::SeqBeforeStart`].
    ///
    /// # Errors
    /// [`Error::ConsumerCorrupt`] when a consumer's file is damaged (nothing is removed);
    /// [`Error::Io`] when a file cannot be removed (those before it are gone) or the directory
    /// cannot be listed or fsynced; a failed directory fsync poisons the writer, like a failed
    /// sync. [`Error::Poisoned`] after a failed sync.
    ///
    /// # Example
    /// ```
    /// use applog::{Error, Options, Reader, Writer};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = Writer::open(dir.path(), Options::new().segment_pages(1))?;
    /// let record = vec![0u8; log.max_record_len() as usize / 2 + 8]; // one per segment
    /// for _ in 0..4 {
    ///     log.append(&record)?;
    /// }
    /// assert_eq!(log.truncate_front(3)?, 3); // records 0, 1 and 2 are gone
    ///
    /// let mut reader = Reader::open(dir.path())?; // starts at the first record left
    /// assert_eq!(reader.next()?.map(|r| r.seq()), Some(3));
    /// assert!(matches!(reader.seek(0), Err(Error::SeqBeforeStart { first_seq: 3, .. })));
    /// # Ok(()) }
    /// ```
    pub fn truncate_front(&mut self, seq: u64) -> Result<u64> {
        self.retain(Some(seq), &crate::Retention::new())
    }

    /// One retention pass (see `retention::run`) to `target` and `policy`, as this writer.
    pub(super) fn retain(&mut self, target: Option<u64>, policy: &crate::Retention) -> Result<u64> {
        self.check_poisoned()?;
        let started = std::time::Instant::now();
        let active = self.seg.header().base_seq;
        let pass = crate::retention::Pass {
            target,
            needs_consumer: false,
            policy,
            dry_run: false,
            writer: Some((active, self.next_seq, self.pos)),
        };
        let (report, failed) = crate::retention::run(&self.dir, &self.fs, &pass);
        let removed = report.removed.len() as u64;
        if removed > 0 {
            self.dir_gen += 1;
            self.first_seq = self.first_seq.max(report.first_seq.min(self.next_seq));
            if let Err(e) = self.fs.sync_dir(&self.dir) {
                let e = Error::io("could not sync log directory", &self.dir, e);
                self.poison(&e);
                return Err(e);
            }
            self.dir_synced_gen = self.dir_gen;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        tracing::debug!(
            up_to = target,
            segments = removed,
            first_seq = self.first_seq,
            held_back_by = report.held_back_by.as_deref(),
            elapsed_us = micros(started.elapsed()),
            "truncated the log front"
        );
        Ok(self.first_seq)
    }

    /// The writer's retention policy, after a rollover. A failure is logged, not returned:
    /// the append that rolled succeeded (a failed directory sync poisons the writer, so the
    /// next call reports it).
    pub(super) fn apply_retention(&mut self) {
        let Some(policy) = self.opts.retention.clone() else {
            return;
        };
        if let Err(e) = self.retain(None, &policy) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "retention failed");
        }
    }

    /// Refuses to start a segment while free space is below the policy's floor, after one
    /// more retention pass.
    pub(super) fn check_free_space(&mut self) -> Result<()> {
        let Some(floor) = self.opts.retention.as_ref().and_then(|r| r.min_free_bytes) else {
            return Ok(());
        };
        let free = |dir: &Path| -> Result<u64> {
            let st = rustix::fs::statvfs(dir)
                .map_err(|e| Error::io("could not statvfs", dir, e.into()))?;
            Ok(st.f_bavail.saturating_mul(st.f_frsize))
        };
        if free(&self.dir)? >= floor {
            return Ok(());
        }
        self.apply_retention();
        let now = free(&self.dir)?;
        if now >= floor {
            return Ok(());
        }
        Err(Error::FreeSpaceFloor {
            path: self.dir.clone(),
            free: now,
            floor,
        })
    }

    pub(super) fn apply_policy(&mut self) -> Result<()> {
        match self.opts.sync {
            SyncPolicy::Always => self.sync(),
            SyncPolicy::EveryBytes(n) if self.unsynced_bytes >= n => self.sync(),
            SyncPolicy::Manual | SyncPolicy::EveryBytes(_) | SyncPolicy::Interval(_) => Ok(()),
        }
    }

    /// Starts a new segment at `next_seq` and seals the current one.
    ///
    /// The new segment is created (header complete and durable) before the seal is
    /// published, so a reader that sees the seal can always open the successor, and the readers waiting on the old
    /// segment's wake word are woken by the seal itself. A crash between the two leaves an
    /// unsealed segment followed by its successor: recovery rewrites the seal.
    pub(super) fn roll(&mut self) -> Result<()> {
        self.check_free_space()?;
        self.roll_inner()?;
        if self.opts.retention.is_some() {
            self.apply_retention();
        }
        Ok(())
    }

    pub(super) fn roll_inner(&mut self) -> Result<()> {
        let _span = tracing::debug_span!(
            "applog.roll",
            dir = %self.dir.display(),
            sealed_base_seq = self.seg.header().base_seq,
            next_seq = self.next_seq,
        )
        .entered();
        let seal_at = (self.pos + FRAME_HEADER_LEN <= self.seg.reservation()).then_some(self.pos);
        if let Some(at) = seal_at {
            // Make room for the seal first: once the successor exists, sealing cannot fail.
            self.seg.grow_to(at + FRAME_HEADER_LEN)?;
        }
        let path = self.dir.join(dir::segment_name(self.next_seq));
        // After a seal the header needs no msync of its own (see `WriteSegment::write_header`);
        // after a segment full to its last byte, nothing vouches for it but the msync.
        let mut seg = WriteSegment::create(
            &path,
            self.next_seq,
            self.segment_pages,
            &self.fs,
            seal_at.is_none(),
        )?;
        seg.set_grow_pages(self.opts.grow_pages);
        self.metrics.segment_created();
        if let Some(at) = seal_at {
            if let Err(e) = self.seg.seal(at, self.next_seq) {
                // Nothing was published in the successor: take it back so a retry starts clean.
                let _ = self.fs.remove_file(&path);
                return Err(e);
            }
            self.wake_readers();
        }
        let seal_end = seal_at.map_or(self.pos, |at| at + FRAME_HEADER_LEN);
        let old = std::mem::replace(&mut self.seg, seg);
        if let Some(p) = &self.pretouch {
            // The pretoucher moves to the new segment (and lets go of the old one).
            self.seg.attach(p.link(), HEADER_LEN);
        }
        tracing::debug!(sealed = %old.path().display(), new = %path.display(), next_seq = self.next_seq, "rolled to a new segment");
        // A sealed segment's final mark is made durable by the checkpoint that covers the
        // seal: damage in an older segment must never pass for a torn tail (recovery would
        // then remove the newer segments).
        // Detached: a sealed segment keeps no mapping or file open until the checkpoint.
        self.pending
            .push(old.sync_handle(self.synced_pos, seal_end, true).detached());
        self.pos = HEADER_LEN;
        self.synced_pos = 0;
        self.mark_flushed = 0;
        self.dir_gen += 1;
        self.stats.publish(self.next_seq);
        Ok(())
    }
}
