//! [`LogStore`]: openraft's `RaftLogStorage` on an applog log.

use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use applog::tokio::AsyncWriter;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    AnyError, LogId, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError, StorageIOError, Vote,
};
use tokio::sync::{mpsc, oneshot};

use crate::codec;
use crate::reader::LogReader;

/// The name of the vote in the log's metadata.
pub const VOTE_META: &str = "raft.vote";
/// The name of the last purged log id in the log's metadata.
pub const PURGED_META: &str = "raft.purged";

/// What a flush callback is told: `Ok` once the entries are durable.
type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

/// A job for the flush thread, in the order the store queued it.
enum Flush {
    /// Tell `done` once every record up to `last` is durable.
    Wait { last: u64, done: Done },
    /// Every job before this one is done.
    Barrier(oneshot::Sender<()>),
}

/// openraft's log storage (storage API v2) on an applog log: the Raft log index of an entry
/// is its applog seq, one record per entry, encoded with postcard (see the crate docs).
///
/// - [`append`](RaftLogStorage::append) writes the entries of one call with one
///   [`append_batch`](AsyncWriter::append_batch) (after a crash they are there whole or not at
///   all), asks the store's flush thread for them and returns at once; that thread calls the
///   flush callback once they are durable, in the order of the appends, through applog's
///   group commit: the appends made while a flush runs share the next one.
/// - [`truncate`](RaftLogStorage::truncate) cuts the log's end with
///   [`truncate_back`](AsyncWriter::truncate_back), durably.
/// - [`purge`](RaftLogStorage::purge) records the last purged log id in the log's metadata
///   (durably) first, then removes the prefix with [`reset`](AsyncWriter::reset): the whole
///   segment files below it, or, past the log's last entry (after openraft installed a
///   snapshot), everything: the log then continues at the purged index + 1.
/// - The vote is stored in the log's metadata, durably and crash-atomically.
///
/// Open it within a tokio runtime (its writer runs its async work there). [`close`](Self::close) it to
/// make everything durable and release the log's lock at once; dropping it releases the lock
/// too, once a flush under way has ended.
pub struct LogStore<C: RaftTypeConfig> {
    log: Arc<AsyncWriter>,
    /// The lowest index reads may return: the last purged index + 1 (shared with the readers).
    first: Arc<AtomicU64>,
    last_purged: Option<LogId<C::NodeId>>,
    flush: mpsc::UnboundedSender<Flush>,
    /// The store's flush thread (see [`run_flusher`]).
    flusher: Option<std::thread::JoinHandle<()>>,
    reader: LogReader<C>,
}

impl<C: RaftTypeConfig> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.log.dir())
            .field("next_index", &self.log.next_seq())
            .field("last_purged", &self.last_purged)
            .finish_non_exhaustive()
    }
}

impl<C: RaftTypeConfig> LogStore<C> {
    /// Opens (creating, locking and recovering) the log in `dir` as
    /// [`AsyncWriter::open`] does (within a tokio runtime), and starts the store's flush
    /// thread.
    ///
    /// `opts` are applog's (segment size, growth, ...), except the sync policy, which is
    /// [`SyncPolicy::Manual`](applog::SyncPolicy::Manual): the store's flush thread starts a
    /// flush as soon as an append asks for one, or has the next flush cover it when one is
    /// running (applog's group commit), and calls the flush callbacks itself.
    ///
    /// # Errors
    /// A [`StorageError`] with applog's error (which names the file) when the log cannot be
    /// opened or recovered, or its metadata is not what this store wrote; when called outside a
    /// tokio runtime, or the flush thread cannot be started.
    pub async fn open(
        dir: impl AsRef<Path>,
        opts: applog::Options,
    ) -> Result<LogStore<C>, StorageError<C::NodeId>> {
        let dir = dir.as_ref();
        tokio::runtime::Handle::try_current()
            .map_err(|e| StorageIOError::read(AnyError::new(&e)))?;
        let log = AsyncWriter::open(dir, opts.sync(applog::SyncPolicy::Manual))
            .await
            .map_err(|e| StorageIOError::read(AnyError::new(&e)))?;
        let last_purged: Option<LogId<C::NodeId>> = match log.meta().get(PURGED_META) {
            Some(bytes) => Some(
                codec::decode(bytes, || {
                    format!(
                        "the last purged log id ({PURGED_META}) of {}",
                        dir.display()
                    )
                })
                .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?,
            ),
            None => None,
        };
        let first = last_purged.as_ref().map_or(0, |id| id.index + 1);
        // A purge past the log's end that a crash interrupted after it stored the purged id:
        // finish it, so that the log continues where Raft expects it to.
        if log.next_seq() < first {
            log.reset(first)
                .await
                .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        }
        let log = Arc::new(log);
        let first = Arc::new(AtomicU64::new(first));
        let (flush, jobs) = mpsc::unbounded_channel();
        let weak = Arc::downgrade(&log);
        let flusher = std::thread::Builder::new()
            .name("applog-raft-flush".into())
            .spawn(move || run_flusher(&weak, jobs))
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        Ok(LogStore {
            reader: LogReader::new(log.dir(), Arc::clone(&first)),
            log,
            first,
            last_purged,
            flush,
            flusher: Some(flusher),
        })
    }

    /// The applog writer underneath (for its directory, seqs and durability).
    pub fn log(&self) -> &AsyncWriter {
        &self.log
    }

    /// Appends `entries` as [`RaftLogStorage::append`] does, and calls `on_flushed` once they
    /// are durable (or with the error when the flush failed) instead of an openraft callback:
    /// for code that drives the store without openraft (tests, benches, tools).
    ///
    /// The entries must continue the log: the first one's index is the log's next index, and
    /// each next one's index is one more. A new log (no entry, never purged) may start at any
    /// index. Leading entries at or below the last purged log id are left out: the purge
    /// covers them.
    ///
    /// # Errors
    /// A [`StorageError`] when an entry cannot be encoded, the entries would leave a hole in
    /// the log, or applog cannot append them (its error names the file). `on_flushed` is not
    /// called then.
    pub async fn append_entries<I>(
        &mut self,
        entries: I,
        on_flushed: impl FnOnce(io::Result<()>) + Send + 'static,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry>,
    {
        let mut records = Vec::new();
        let mut first_index = None;
        let purged_below = self.first.load(Ordering::Acquire);
        for entry in entries {
            let index = entry.get_log_id().index;
            if index < purged_below && first_index.is_none() {
                // Already purged: a snapshot holds it, and no read would return it.
                continue;
            }
            let expected = first_index.map(|f: u64| f + records.len() as u64);
            if expected.is_some_and(|e| e != index) {
                return Err(hole(expected.unwrap_or(index), index));
            }
            first_index.get_or_insert(index);
            let record =
                codec::encode(&entry, || format!("the entry at index {index}")).map_err(|e| {
                    StorageIOError::write_log_entry(entry.get_log_id().clone(), AnyError::new(&e))
                })?;
            records.push(record);
        }
        let Some(first_index) = first_index else {
            // Nothing to write: tell once everything appended before is durable.
            return self.queue(self.log.next_seq().checked_sub(1), Box::new(on_flushed));
        };
        let next = self.log.next_seq();
        if first_index != next {
            // A log that never had a purge and holds no entry may start at any index: what
            // openraft's test suite does. Otherwise the entries must continue the log (after
            // a purge past its end the log already continues at the purged index + 1).
            let empty =
                next <= self.first.load(Ordering::Acquire) || self.log.shared().first_seq() >= next;
            if !(empty && self.last_purged.is_none() && first_index > next) {
                return Err(hole(next, first_index));
            }
            self.settle().await;
            self.log
                .reset(first_index)
                .await
                .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        }
        let range = self
            .log
            .append_batch(&records)
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        if range.start != first_index {
            return Err(hole(range.start, first_index));
        }
        self.queue(range.end.checked_sub(1), Box::new(on_flushed))
    }

    /// Queues `done` to be told once every record up to `last` is durable (at once for `None`).
    fn queue(&self, last: Option<u64>, done: Done) -> Result<(), StorageError<C::NodeId>> {
        let Some(last) = last else {
            done(Ok(()));
            return Ok(());
        };
        if let Err(mpsc::error::SendError(job)) = self.flush.send(Flush::Wait { last, done }) {
            // The flush thread ended (the store is going): say so to the caller and
            // the callback alike.
            if let Flush::Wait { done, .. } = job {
                done(Err(io::Error::other(
                    "the log store's flush thread has stopped",
                )));
            }
            return Err(StorageIOError::write_logs(AnyError::error(
                "the log store's flush thread has stopped",
            ))
            .into());
        }
        Ok(())
    }

    /// Returns once every flush callback queued so far has been called: before the log's end
    /// is cut or reset, so that no callback waits for a seq that is gone.
    async fn settle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.flush.send(Flush::Barrier(tx)).is_ok() {
            // An error: the task ended, so nothing is waiting either.
            let _ = rx.await;
        }
    }

    /// The entries with an index in `range`, as [`RaftLogReader::try_get_log_entries`].
    ///
    /// # Errors
    /// As [`RaftLogReader::try_get_log_entries`].
    pub async fn entries(
        &mut self,
        range: impl RangeBounds<u64>,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.reader.read(range)
    }

    /// Makes every entry durable, waits for every flush callback, stops the flush thread and
    /// closes the log (releasing its lock).
    ///
    /// # Errors
    /// A [`StorageError`] with applog's error when the last flush fails.
    pub async fn close(self) -> Result<(), StorageError<C::NodeId>> {
        let LogStore {
            log,
            flush,
            flusher,
            ..
        } = self;
        drop(flush);
        // The thread ends once it has told every callback; it never panics.
        if let Some(t) = flusher {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        match Arc::into_inner(log) {
            Some(log) => log
                .close()
                .await
                .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into()),
            None => Ok(()),
        }
    }
}

/// The error for entries that do not continue the log.
fn hole<NID: openraft::NodeId>(expected: u64, got: u64) -> StorageError<NID> {
    StorageIOError::write_logs(AnyError::error(format!(
        "entries must continue the log: expected index {expected}, got {got}"
    )))
    .into()
}

/// The flush thread: tells each callback, in order, once its entries are durable. Each wait
/// leads a group-commit flush in this thread (or joins the one running), which covers every
/// record appended until it starts, so the callbacks queued meanwhile mostly find their
/// entries durable already. It calls the callbacks itself: a proposal costs one wake-up of
/// this thread and one of the task the callback tells, and no runtime thread blocks on a
/// flush.
fn run_flusher(log: &Weak<AsyncWriter>, mut jobs: mpsc::UnboundedReceiver<Flush>) {
    while let Some(job) = jobs.blocking_recv() {
        match job {
            Flush::Barrier(tx) => {
                let _ = tx.send(());
            }
            Flush::Wait { last, done } => {
                let outcome = match log.upgrade() {
                    Some(log) => log.shared().wait_durable(last).map_err(io::Error::other),
                    None => Err(io::Error::other(
                        "the log store was closed before the entries were durable",
                    )),
                };
                done(outcome);
            }
        }
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.reader.read(range)
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = LogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let next = self.log.next_seq();
        let mut last_log_id = None;
        if let Some(last) = next.checked_sub(1) {
            // The last entry, unless it is purged or the log holds none.
            last_log_id = self
                .reader
                .read(last..next)?
                .pop()
                .map(|e| e.get_log_id().clone());
        }
        Ok(LogState {
            last_log_id: last_log_id.or_else(|| self.last_purged.clone()),
            last_purged_log_id: self.last_purged.clone(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader::new(self.log.dir(), Arc::clone(&self.first))
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let bytes = codec::encode(vote, || "the vote".to_owned())
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        // Writes stay in order: every entry appended before the vote is durable before it.
        self.log
            .sync()
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        self.log
            .set_meta(VOTE_META, Some(&bytes))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        let meta = self.log.meta();
        let Some(bytes) = meta.get(VOTE_META) else {
            return Ok(None);
        };
        let dir = self.log.dir();
        codec::decode(bytes, || {
            format!("the vote ({VOTE_META}) of {}", dir.display())
        })
        .map(Some)
        .map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + Send,
        I::IntoIter: Send,
    {
        self.append_entries(entries, move |outcome| callback.log_io_completed(outcome))
            .await
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        if log_id.index >= self.log.next_seq() {
            return Ok(());
        }
        self.settle().await;
        self.log
            .truncate_back(log_id.index)
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        if self
            .last_purged
            .as_ref()
            .is_some_and(|p| p.index >= log_id.index)
        {
            return Ok(());
        }
        let bytes = codec::encode(&log_id, || format!("the purged log id {log_id}"))
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        // First the purged id, durably: from then on no read returns an entry up to it, even
        // if the prefix is not removed yet (a crash now: the next open removes it).
        self.log
            .set_meta(PURGED_META, Some(&bytes))
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        let keep = log_id.index + 1;
        self.first.store(keep, Ordering::Release);
        self.last_purged = Some(log_id);
        if keep > self.log.next_seq() {
            // Past the end: the log becomes empty and continues at `keep`. No flush callback
            // may wait for a seq that goes.
            self.settle().await;
        }
        // Inside the log: whole segment files below `keep` go; reads skip the rest.
        let removed = self.log.reset(keep).await;
        removed.map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}
