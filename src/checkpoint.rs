//! A durability checkpoint, captured under the writer's lock and run without it, and what a
//! failed one leaves behind (the poison).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::segment::SegmentSync;

/// One durability checkpoint, captured under the writer's lock ([`Writer::capture_sync`](crate::Writer)) and
/// run without it ([`SyncPlan::run`]): every range it flushes holds published frames only, whose
/// bytes are never written again, so appends can go on meanwhile.
pub(crate) struct SyncPlan {
    /// Sealed segments not yet durable, each up to the end of its seal.
    pub(crate) sealed: Vec<SegmentSync>,
    /// The active segment, up to the end of its last frame.
    pub(crate) active: SegmentSync,
    pub(crate) active_base: u64,
    pub(crate) fs: Arc<dyn FileSystem>,
    /// The directory to fsync, when a segment was created or removed since the last one.
    pub(crate) dir: Option<PathBuf>,
    pub(crate) dir_gen: u64,
    /// Every record below this seq is durable once the plan ran.
    pub(crate) next_seq: u64,
    /// Every record below this seq was durable before (as far as the writer knew).
    pub(crate) from_seq: u64,
    pub(crate) unsynced_bytes: u64,
    pub(crate) injected: Option<io::Error>,
    pub(crate) started: std::time::Instant,
    /// How long [`run`](SyncPlan::run) took (zero until it ran).
    pub(crate) flushed_in: Duration,
}

impl SyncPlan {
    /// Every record below this seq is durable once [`run`](Self::run) returned Ok.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Sync, step 2 of 3 (no lock): msync of each sealed segment and of the active one, fsync
    /// of the directory, then the synced marks: each sealed segment's (and its header), then
    /// the active segment's (and its header, when due).
    pub(crate) fn run(&mut self) -> Result<()> {
        let dir = self.active.path.parent().unwrap_or(&self.active.path);
        let _span = tracing::debug_span!(
            "applog.sync",
            dir = %dir.display(),
            from_seq = self.from_seq,
            next_seq = self.next_seq,
            sealed_segments = self.sealed.len(),
        )
        .entered();
        let started = Instant::now();
        let outcome = self.run_inner();
        self.flushed_in = started.elapsed();
        outcome
    }

    fn run_inner(&mut self) -> Result<()> {
        if let Some(e) = self.injected.take() {
            return Err(Error::io("could not sync segment", &self.active.path, e));
        }
        // A sealed segment that retention unlinked meanwhile is still mapped: flushing it is
        // harmless, and it keeps the order "sealed segments before the active one".
        for sealed in &self.sealed {
            sealed.flush()?;
        }
        self.active.flush()?;
        if let Some(dir) = &self.dir {
            self.fs
                .sync_dir(dir)
                .map_err(|e| Error::io("could not sync log directory", dir, e))?;
        }
        // The marks last: a sealed segment's durable mark then also says that the segment
        // its seal names was durable, entry and header (see `recovery::analyze`).
        for sealed in &self.sealed {
            sealed.mark_synced()?;
        }
        self.active.mark_synced()
    }

    /// Whether the flush took longer than `limit` ([`Options::slow_sync`](crate::Options));
    /// if so, says so with `tracing::warn!`: how long, how many bytes, which file.
    pub(crate) fn was_slow(&self, limit: Duration, ok: bool) -> bool {
        if self.flushed_in <= limit {
            return false;
        }
        tracing::warn!(
            segment = %self.active.path.display(),
            sealed_segments = self.sealed.len(),
            bytes = self.unsynced_bytes,
            elapsed_ms = u64::try_from(self.flushed_in.as_millis()).unwrap_or(u64::MAX),
            limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            ok,
            "slow sync: msync took {:?}",
            self.flushed_in
        );
        true
    }
}

/// Why a writer is poisoned: the failed operation's error kind and file, so that every later
/// call can say what happened where.
#[derive(Clone, Debug)]
pub(crate) struct PoisonCause {
    message: String,
    kind: io::ErrorKind,
    path: Option<PathBuf>,
}

impl PoisonCause {
    pub(crate) fn of(e: &Error) -> PoisonCause {
        let (kind, path) = match e {
            Error::Io { source, path, .. } | Error::NoSpace { source, path, .. } => {
                (source.kind(), Some(path.clone()))
            }
            _ => (io::ErrorKind::Other, None),
        };
        PoisonCause {
            message: e.to_string(),
            kind,
            path,
        }
    }

    pub(crate) fn error(&self) -> Error {
        Error::Poisoned {
            cause: self.message.clone(),
            kind: self.kind,
            path: self.path.clone(),
        }
    }
}
