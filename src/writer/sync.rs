//! The durability checkpoint: capturing a sync, running it, publishing its outcome; slow
//! syncs and poisoning.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{micros, Writer, MARK_FLUSH_INTERVAL};
use crate::checkpoint::{PoisonCause, SyncPlan};
use crate::error::{Error, Result};
use crate::segment::Segment;

impl Writer {
    /// The durability checkpoint: `msync(MS_SYNC)` of everything appended since the last sync
    /// (sealed segments first), and an fsync of the directory when a segment was created. When
    /// it returns Ok, every record appended before the call survives a power cut.
    ///
    /// # Errors
    /// The I/O error, after which the writer is poisoned: the kernel may have dropped the
    /// dirty pages it failed to write, so a later sync could "succeed" without them. Every
    /// later call returns [`Error::Poisoned`] until the log is reopened (and recovered).
    pub fn sync(&mut self) -> Result<()> {
        let Some(mut plan) = self.capture_sync()? else {
            return Ok(());
        };
        let outcome = plan.run();
        self.publish_sync(plan, outcome)
    }

    /// Makes the active segment's synced mark durable if the last checkpoints left it only in
    /// the page cache (see [`MARK_FLUSH_INTERVAL`]). For `close`.
    pub(crate) fn flush_mark(&mut self) -> Result<()> {
        self.check_poisoned()?;
        if self.mark_flushed >= self.synced_pos {
            return Ok(());
        }
        let handle = self.seg.sync_handle(self.synced_pos, self.synced_pos, true);
        match handle.mark_synced() {
            Ok(()) => {
                self.mark_flushed = self.synced_pos;
                self.mark_flushed_at = Instant::now();
                Ok(())
            }
            Err(e) => {
                self.poison(&e);
                Err(e)
            }
        }
    }

    /// Sync, step 1 of 3 (under the writer's lock, in a [`SharedWriter`](crate::SharedWriter)):
    /// what the checkpoint must flush to make every record appended so far durable. `None`
    /// when that is already so.
    pub(crate) fn capture_sync(&mut self) -> Result<Option<SyncPlan>> {
        self.check_poisoned()?;
        if self.pending.is_empty()
            && self.dir_synced_gen == self.dir_gen
            && self.synced_pos == self.pos
            && self.injected_sync_error.is_none()
        {
            return Ok(None);
        }
        let started = Instant::now();
        let flush_mark = started.duration_since(self.mark_flushed_at) >= MARK_FLUSH_INTERVAL;
        Ok(Some(SyncPlan {
            sealed: std::mem::take(&mut self.pending),
            active: self.seg.sync_handle(self.synced_pos, self.pos, flush_mark),
            active_base: self.seg.header().base_seq,
            fs: Arc::clone(&self.fs),
            dir: (self.dir_synced_gen != self.dir_gen).then(|| self.dir.clone()),
            dir_gen: self.dir_gen,
            next_seq: self.next_seq,
            from_seq: self.stats.durable_seq(),
            unsynced_bytes: self.unsynced_bytes,
            injected: self.injected_sync_error.take(),
            started,
            flushed_in: Duration::ZERO,
        }))
    }

    /// Sync, step 3 of 3 (under the lock again): records what the flush made durable, or
    /// poisons the writer when it failed. Appends, rolls and retention may have happened
    /// since the capture; only what the plan covered is marked synced.
    #[allow(clippy::needless_pass_by_value)] // the plan is spent: no second publish of it
    pub(crate) fn publish_sync(&mut self, plan: SyncPlan, outcome: Result<()>) -> Result<()> {
        if plan.was_slow(self.opts.slow_sync, outcome.is_ok()) {
            self.slow_syncs += 1;
            self.metrics.slow_sync();
            self.stats.slow_sync();
        }
        match outcome {
            Ok(()) => {
                self.metrics.synced(plan.next_seq, plan.flushed_in);
                self.dir_synced_gen = self.dir_synced_gen.max(plan.dir_gen);
                if self.seg.header().base_seq == plan.active_base {
                    self.synced_pos = self.synced_pos.max(plan.active.end);
                    if plan.active.flush_mark {
                        self.mark_flushed = self.mark_flushed.max(plan.active.end);
                        self.mark_flushed_at = plan.started;
                    }
                }
                self.unsynced_bytes = self.unsynced_bytes.saturating_sub(plan.unsynced_bytes);
                self.stats
                    .synced(self.next_seq, plan.next_seq, plan.flushed_in);
                tracing::debug!(
                    durable_seq = plan.next_seq,
                    sealed_segments = plan.sealed.len(),
                    active_end = plan.active.end,
                    dir_fsync = plan.dir.is_some(),
                    mark_flushed = plan.active.flush_mark,
                    elapsed_us = micros(plan.started.elapsed()),
                    "synced"
                );
                Ok(())
            }
            Err(e) => {
                self.metrics.sync_failed();
                self.stats.publish(self.next_seq);
                self.poison(&e);
                Err(e)
            }
        }
    }

    /// How many syncs took longer than [`Options::slow_sync`](crate::Options::slow_sync) since the writer was opened
    /// (each was logged with `tracing::warn!`).
    pub fn slow_syncs(&self) -> u64 {
        self.slow_syncs
    }

    pub(super) fn poison(&mut self, e: &Error) {
        tracing::error!(error = %e, "sync failed; the writer is poisoned until the log is reopened");
        self.poisoned = Some(PoisonCause::of(e));
    }

    /// Test hook: the next `sync` fails with `error` as if msync had failed.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_sync_error(&mut self, error: std::io::Error) {
        self.injected_sync_error = Some(error);
    }
}
