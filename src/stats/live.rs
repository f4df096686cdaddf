//! The writer's side of the stats file: the figures it keeps, and when it publishes them.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::file::{Figures, StatsFile, STATE_CLOSED, STATE_RELEASED};

/// Appends publish the figures each time the next seq crosses a multiple of this (a power
/// of two): the append path pays one add and one compare, and the figures lag by at most
/// this many records between syncs.
const PUBLISH_EVERY: u64 = 256;

/// The writer's live figures and its stats file (`None` when it could not be made: the writer
/// runs on without it, after a warning naming the file).
pub(crate) struct Live {
    file: Option<StatsFile>,
    /// The next seq when the writer opened the log.
    open_next_seq: u64,
    /// Payload bytes appended since then.
    bytes: u64,
    durable_seq: u64,
    syncs: u64,
    slow_syncs: u64,
    last_sync_ns: u64,
}

impl Live {
    /// Creates the stats file of the log in `dir` for a writer that opens it with `next_seq`
    /// next and every record below `durable_seq` durable.
    pub(crate) fn open(dir: &Path, next_seq: u64, durable_seq: u64) -> Live {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let figures = Figures {
            next_seq,
            durable_seq,
            updated_ns: started,
            ..Figures::default()
        };
        let file = match StatsFile::create(dir, started, figures) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "no stats file (applog stats will not show this writer's figures): {e}");
                None
            }
        };
        Live {
            file,
            open_next_seq: next_seq,
            bytes: 0,
            durable_seq,
            syncs: 0,
            slow_syncs: 0,
            last_sync_ns: 0,
        }
    }

    /// Records were appended: the next seq went from `before` to `after`, with `bytes` of
    /// payload. Publishes when a multiple of [`PUBLISH_EVERY`] was crossed.
    #[inline]
    pub(crate) fn appended(&mut self, before: u64, after: u64, bytes: u64) {
        self.bytes = self.bytes.wrapping_add(bytes);
        if (before ^ after) >= PUBLISH_EVERY {
            self.publish(after);
        }
    }

    /// A sync succeeded: every record below `durable_seq` is durable; its flush took
    /// `elapsed`.
    pub(crate) fn synced(&mut self, next_seq: u64, durable_seq: u64, elapsed: Duration) {
        self.syncs += 1;
        self.durable_seq = self.durable_seq.max(durable_seq);
        self.last_sync_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.publish(next_seq);
    }

    /// Every record below this seq was durable at the last successful sync.
    pub(crate) fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// A flush was slower than `Options::slow_sync`.
    pub(crate) fn slow_sync(&mut self) {
        self.slow_syncs += 1;
    }

    /// Publishes the figures with `next_seq` as the next seq.
    #[cold]
    pub(crate) fn publish(&mut self, next_seq: u64) {
        let figures = Figures {
            generation: 0, // set by the file
            records: next_seq.saturating_sub(self.open_next_seq),
            bytes: self.bytes,
            next_seq,
            durable_seq: self.durable_seq,
            syncs: self.syncs,
            slow_syncs: self.slow_syncs,
            last_sync_ns: self.last_sync_ns,
            updated_ns: 0, // set by the file
        };
        if let Some(file) = &mut self.file {
            if let Err(e) = file.publish(figures) {
                self.give_up(&e);
            }
        }
    }

    /// The writer lets go of the log: publishes the final figures and whether every record
    /// it appended was durable then.
    pub(crate) fn release(&mut self, next_seq: u64, all_durable: bool) {
        self.publish(next_seq);
        let state = if all_durable {
            STATE_CLOSED
        } else {
            STATE_RELEASED
        };
        if let Some(file) = &self.file {
            if let Err(e) = file.set_state(state) {
                self.give_up(&e);
            }
        }
    }

    #[cold]
    fn give_up(&mut self, e: &std::io::Error) {
        if let Some(file) = self.file.take() {
            tracing::warn!(file = %file.path().display(), error = %e, "could not update the stats file; no longer updating it");
        }
    }
}
