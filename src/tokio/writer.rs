//! Durability as a future: an async face of [`SharedWriter`] with one flusher thread.

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use ::tokio::sync::watch;

use crate::error::{Error, Result};
use crate::options::{Options, SyncPolicy};
use crate::shared::SharedWriter;

/// The durable position of a writer, as its [`watch`](AsyncWriter::watch_durable) publishes
/// it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Durability {
    /// Every record below this seq is durable.
    pub durable_seq: u64,
    /// A flush failed: the writer is poisoned (see [`Error::Poisoned`]), and nothing more
    /// will become durable until the log is reopened.
    pub poisoned: bool,
    /// How many times the log was cut back or reset through this writer
    /// ([`truncate_back`](AsyncWriter::truncate_back), [`reset`](AsyncWriter::reset)):
    /// `durable_seq` moves to where the change left the log then, and only then it may go
    /// down.
    pub rewinds: u64,
}

/// What the flusher thread and the handles share.
struct Flusher {
    shared: SharedWriter,
    /// Records below `want` are waited for; `stop` ends the thread.
    want: Mutex<Want>,
    wanted: Condvar,
    tx: watch::Sender<Durability>,
}

#[derive(Default)]
struct Want {
    want: u64,
    stop: bool,
}

impl Flusher {
    fn lock(&self) -> MutexGuard<'_, Want> {
        // Nothing panics while holding it.
        self.want.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks the flusher thread for every record below `target` to become durable.
    fn request(&self, target: u64) {
        let mut w = self.lock();
        if target > w.want {
            w.want = target;
            drop(w);
            self.wanted.notify_one();
        }
    }

    /// The flusher thread: while records are waited for, one group-commit flush after
    /// another (shared with every thread that waits on the same [`SharedWriter`]), each
    /// covering every record appended until it starts; publishes each new durable seq.
    fn run(&self) {
        loop {
            let target = {
                let mut w = self.lock();
                loop {
                    if w.stop {
                        return;
                    }
                    if w.want > self.tx.borrow().durable_seq {
                        break w.want;
                    }
                    w = self.wanted.wait(w).unwrap_or_else(PoisonError::into_inner);
                }
            };
            // `target` > 0: records below it were appended (unless the log's end was cut
            // since: then the cut made them durable, and published that).
            let outcome = match self.shared.wait_durable(target - 1) {
                Err(Error::SeqNotAppended { .. }) => Ok(()),
                other => other,
            };
            // Under the lock, so that a cut (which lowers the durable seq) is not undone by a
            // figure read before it.
            let w = self.lock();
            let durable = self.shared.durable_seq();
            let poisoned = outcome.is_err();
            self.tx.send_modify(|d| {
                d.durable_seq = d.durable_seq.max(durable);
                d.poisoned |= poisoned;
            });
            drop(w);
            if let Err(e) = outcome {
                tracing::debug!(error = %e, "flusher stopped: the writer is poisoned");
                return;
            }
        }
    }
}

/// Stops and joins the flusher thread when the last handle goes.
struct Handle {
    flusher: Arc<Flusher>,
    thread: Option<JoinHandle<()>>,
    policy: SyncPolicy,
    /// Bytes appended since the last flush request ([`SyncPolicy::EveryBytes`]).
    unrequested: AtomicU64,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.flusher.lock().stop = true;
        self.flusher.wanted.notify_all();
        if let Some(t) = self.thread.take() {
            // The flusher never panics; if it did, there is nothing left to stop.
            let _ = t.join();
        }
    }
}

/// An async face of [`SharedWriter`] (`Clone + Send + Sync`): [`append`](Self::append)
/// returns the seq at once, and [`durable`](Self::durable) is a future that resolves when
/// that seq is durable.
///
/// One flusher thread per writer runs group-commit flushes while any future waits, each
/// covering every record appended until it starts, and shares them with every thread that
/// waits on the same [`SharedWriter`] ([`shared`](Self::shared)); it publishes each new durable
/// seq on a watch channel that any number of tasks can
/// [subscribe to](Self::watch_durable). A failed flush poisons the writer, and every pending
/// and later `durable` future resolves to the error.
///
/// The sync policy applies as with [`SharedWriter`], except that nothing waits in `append`:
/// with [`SyncPolicy::Always`] each append starts a flush (or joins the next) in the
/// background, with [`SyncPolicy::EveryBytes`] every that many bytes.
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use applog::tokio::AsyncWriter;
/// let log = AsyncWriter::open(dir.path(), applog::Options::default()).await?;
/// let handlers: Vec<_> = (0..8)
///     .map(|i| {
///         let log = log.clone();
///         tokio::spawn(async move {
///             let seq = log.append(format!("request {i}").as_bytes())?;
///             log.durable(seq).await?; // now acknowledge the request
///             applog::Result::Ok(seq)
///         })
///     })
///     .collect();
/// for h in handlers {
///     let seq = h.await.unwrap()?;
///     assert!(seq < log.durable_seq());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncWriter {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for AsyncWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncWriter")
            .field("shared", &self.inner.flusher.shared)
            .field("durability", &*self.inner.flusher.tx.borrow())
            .finish_non_exhaustive()
    }
}

impl AsyncWriter {
    /// Opens (creating, locking and recovering) the log in `dir` as [`SharedWriter::open`]
    /// does, on a blocking thread, and starts the flusher thread (`applog-flush`).
    ///
    /// # Errors
    /// As [`SharedWriter::open`]; [`Error::Io`] when the flusher thread cannot be started.
    pub async fn open(dir: impl AsRef<Path>, opts: Options) -> Result<AsyncWriter> {
        let dir = dir.as_ref().to_owned();
        super::blocking(move || AsyncWriter::open_blocking(dir, opts)).await
    }

    /// As [`open`](Self::open), in the calling thread.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_blocking(dir: impl AsRef<Path>, opts: Options) -> Result<AsyncWriter> {
        let policy = opts.sync;
        let shared_policy = match policy {
            SyncPolicy::Always | SyncPolicy::EveryBytes(_) => SyncPolicy::Manual,
            other => other,
        };
        let shared = SharedWriter::open(dir, opts.sync(shared_policy))?;
        AsyncWriter::from_shared(shared, policy)
    }

    /// An async face of an open [`SharedWriter`] (its clones go on working beside it). Open
    /// that writer with [`SyncPolicy::Manual`] (or `Interval`): appends made through the async
    /// face go through the `SharedWriter`, which applies its own policy, and with `Always` or
    /// `EveryBytes` an `append` would wait for an msync on the runtime's thread. Use
    /// [`open`](Self::open) for those policies: it runs them in the background.
    ///
    /// # Errors
    /// [`Error::Io`] when the flusher thread cannot be started.
    pub fn from_shared_writer(shared: SharedWriter) -> Result<AsyncWriter> {
        AsyncWriter::from_shared(shared, SyncPolicy::Manual)
    }

    fn from_shared(shared: SharedWriter, policy: SyncPolicy) -> Result<AsyncWriter> {
        let (tx, _) = watch::channel(Durability {
            durable_seq: shared.durable_seq(),
            poisoned: false,
            rewinds: 0,
        });
        let dir = shared.dir().to_owned();
        let flusher = Arc::new(Flusher {
            shared,
            want: Mutex::new(Want::default()),
            wanted: Condvar::new(),
            tx,
        });
        let for_thread = Arc::clone(&flusher);
        let thread = std::thread::Builder::new()
            .name("applog-flush".into())
            .spawn(move || for_thread.run())
            .map_err(|e| Error::io("could not start the flusher thread for", &dir, e))?;
        Ok(AsyncWriter {
            inner: Arc::new(Handle {
                flusher,
                thread: Some(thread),
                policy,
                unrequested: AtomicU64::new(0),
            }),
        })
    }

    fn flusher(&self) -> &Flusher {
        &self.inner.flusher
    }

    /// The [`SharedWriter`] underneath, for threads that append or wait without async.
    pub fn shared(&self) -> &SharedWriter {
        &self.flusher().shared
    }

    /// What the sync policy asks for after `bytes` more were appended, up to `end`.
    fn after_append(&self, bytes: u64, end: u64) {
        match self.inner.policy {
            SyncPolicy::Always => self.flusher().request(end),
            SyncPolicy::EveryBytes(n) => {
                let total = self.inner.unrequested.fetch_add(bytes, Ordering::Relaxed) + bytes;
                if total >= n {
                    self.inner.unrequested.store(0, Ordering::Relaxed);
                    self.flusher().request(end);
                }
            }
            _ => {}
        }
    }

    /// Appends one record and returns its seq at once (readers see it; a crash of this
    /// process would not lose it). Await [`durable`](Self::durable) before telling anyone
    /// outside that it is kept. Takes the writer's lock for the copy into the mapping (and,
    /// once per page, to grow the file): it does not wait for the disk.
    ///
    /// # Errors
    /// As [`Writer::append`](crate::Writer::append).
    pub fn append(&self, record: &[u8]) -> Result<u64> {
        let seq = self.shared().append(record)?;
        self.after_append(record.len() as u64, seq + 1);
        Ok(seq)
    }

    /// Appends many records at once, as [`SharedWriter::append_batch`] does.
    ///
    /// # Errors
    /// As [`Writer::append_batch`](crate::Writer::append_batch).
    pub fn append_batch<B: AsRef<[u8]>>(&self, records: &[B]) -> Result<Range<u64>> {
        let range = self.shared().append_batch(records)?;
        let bytes = records.iter().map(|r| r.as_ref().len() as u64).sum();
        self.after_append(bytes, range.end);
        Ok(range)
    }

    /// Resolves once record `seq` (and every record before it) is durable: it survives a
    /// power cut. Concurrent waiters, tasks and threads, share flushes. Cancel-safe: dropping
    /// the future leaves nothing waiting (a flush it started still runs to the end).
    ///
    /// # Errors
    /// [`Error::SeqNotAppended`] when `seq` was not appended yet; the writer's poison
    /// ([`Error::Poisoned`]) when a flush failed, including the one this waited for.
    pub async fn durable(&self, seq: u64) -> Result<()> {
        let mut rx = self.flusher().tx.subscribe();
        let now = *rx.borrow_and_update();
        if now.durable_seq > seq {
            return Ok(());
        }
        if !now.poisoned {
            let next_seq = self.shared().next_seq();
            if seq >= next_seq {
                return Err(Error::SeqNotAppended { seq, next_seq });
            }
            self.flusher().request(seq + 1);
            // The sender lives as long as `self`: `wait_for` cannot fail.
            let _ = rx
                .wait_for(|d| d.durable_seq > seq || d.poisoned || d.rewinds != now.rewinds)
                .await;
        }
        let after = *rx.borrow();
        // A cut makes every record appended before it durable first.
        if after.durable_seq > seq || (after.rewinds != now.rewinds && !after.poisoned) {
            return Ok(());
        }
        // Poisoned: the writer says why, at once (it waits for nothing once poisoned).
        self.shared().wait_durable(seq)?;
        Ok(())
    }

    /// [`append`](Self::append), then [`durable`](Self::durable): what a request handler
    /// awaits before it acknowledges. Returns the record's seq.
    ///
    /// # Errors
    /// As both. When the wait fails, the record was appended but is not known to be durable.
    pub async fn append_durable(&self, record: &[u8]) -> Result<u64> {
        let seq = self.append(record)?;
        self.durable(seq).await?;
        Ok(seq)
    }

    /// Makes every record appended so far durable (one shared flush, as
    /// [`durable`](Self::durable) for the last one).
    ///
    /// # Errors
    /// As [`durable`](Self::durable).
    pub async fn sync(&self) -> Result<()> {
        match self.shared().next_seq().checked_sub(1) {
            Some(last) => self.durable(last).await,
            None => Ok(()),
        }
    }

    /// Every record below this seq is durable, as last published on the
    /// [watch](Self::watch_durable) (flushes run by threads waiting on the
    /// [`SharedWriter`] directly show there at the flusher's next flush).
    pub fn durable_seq(&self) -> u64 {
        self.flusher().tx.borrow().durable_seq
    }

    /// A watch of the writer's durable position: each new durable seq (and a poisoning) is
    /// published on it. Any number of tasks can hold one.
    pub fn watch_durable(&self) -> watch::Receiver<Durability> {
        self.flusher().tx.subscribe()
    }

    /// The seq the next appended record will get.
    pub fn next_seq(&self) -> u64 {
        self.shared().next_seq()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        self.shared().dir()
    }

    /// Retention, as [`SharedWriter::truncate_front`], on a blocking thread (it removes files
    /// and fsyncs the directory).
    ///
    /// # Errors
    /// As [`Writer::truncate_front`](crate::Writer::truncate_front).
    pub async fn truncate_front(&self, seq: u64) -> Result<u64> {
        let shared = self.shared().clone();
        super::blocking(move || shared.truncate_front(seq)).await
    }

    /// Removes every record at and after `seq`, durably, as
    /// [`Writer::truncate_back`](crate::Writer::truncate_back) does, on a blocking thread; the
    /// next append gets `seq`. Everything appended before it is made durable first, so a
    /// [`durable`](Self::durable) future that was waiting resolves to Ok; the
    /// [durable seq](Self::watch_durable) then goes down to `seq`, with
    /// [`Durability::rewinds`] counting the cut.
    ///
    /// # Errors
    /// As [`Writer::truncate_back`](crate::Writer::truncate_back).
    pub async fn truncate_back(&self, seq: u64) -> Result<()> {
        self.rewind(move |shared| shared.truncate_back(seq)).await
    }

    /// Starts the log again at `seq`, as [`Writer::reset`](crate::Writer::reset) does, on a
    /// blocking thread; durability as for [`truncate_back`](Self::truncate_back) (past the end,
    /// the durable seq becomes `seq`).
    ///
    /// # Errors
    /// As [`Writer::reset`](crate::Writer::reset).
    pub async fn reset(&self, seq: u64) -> Result<()> {
        self.rewind(move |shared| shared.reset(seq)).await
    }

    /// Runs `change` (a cut or a reset) on a blocking thread with the flusher held off, then
    /// publishes the durable seq it leaves, counting the rewind.
    async fn rewind(
        &self,
        change: impl FnOnce(&SharedWriter) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let flusher = Arc::clone(&self.inner.flusher);
        super::blocking(move || {
            let mut w = flusher.lock();
            let out = change(&flusher.shared);
            let durable = flusher.shared.durable_seq();
            flusher.tx.send_modify(|d| {
                d.durable_seq = durable;
                d.rewinds += 1;
            });
            w.want = w.want.min(durable);
            out
        })
        .await
    }

    /// Makes everything durable, then drops this handle (the log's lock is released when the
    /// last handle of the writer goes, and the flusher thread with it).
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub async fn close(self) -> Result<()> {
        self.sync().await?;
        let shared = self.shared().clone();
        super::blocking(move || shared.close()).await
    }
}

/// The log's metadata (see [`Writer::set_meta`](crate::Writer::set_meta)).
impl AsyncWriter {
    /// The log's metadata as last stored (a copy).
    pub fn meta(&self) -> crate::Meta {
        self.shared().meta()
    }

    /// Stores `value` under `name` (`None` removes it), durably and crash-atomically, on a
    /// blocking thread (it writes and syncs a file), as
    /// [`Writer::set_meta`](crate::Writer::set_meta).
    ///
    /// # Errors
    /// As [`Writer::set_meta`](crate::Writer::set_meta).
    pub async fn set_meta(&self, name: &str, value: Option<&[u8]>) -> Result<()> {
        self.set_meta_many(&[(name, value)]).await
    }

    /// Several changes at once, crash-atomic together, on a blocking thread, as
    /// [`Writer::set_meta_many`](crate::Writer::set_meta_many).
    ///
    /// # Errors
    /// As [`Writer::set_meta_many`](crate::Writer::set_meta_many).
    pub async fn set_meta_many(&self, changes: &[(&str, Option<&[u8]>)]) -> Result<()> {
        let shared = self.shared().clone();
        let owned: Vec<(String, Option<Vec<u8>>)> = changes
            .iter()
            .map(|&(n, v)| (n.to_owned(), v.map(<[u8]>::to_vec)))
            .collect();
        super::blocking(move || {
            let changes: Vec<(&str, Option<&[u8]>)> = owned
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_deref()))
                .collect();
            shared.set_meta_many(&changes)
        })
        .await
    }
}
