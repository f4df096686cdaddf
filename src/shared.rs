//! A writer that many threads share: appends from any thread, durability waits with group
//! commit, and the sync thread (handed-off flushes, and the timer of [`SyncPolicy::Interval`]).
//!
//! # Group commit
//!
//! One mutex guards the [`Writer`]. A thread that waits for a seq to become durable either
//! finds a flush running and sleeps until it ends, or becomes the *leader*: it runs one
//! checkpoint in three steps, and only the first and last hold the lock:
//!
//! 1. **capture** (locked): which sealed segments and which range of the active segment to
//!    flush, whether the directory needs an fsync, and the seq below which everything will be
//!    durable: every record appended so far, not just the leader's;
//! 2. **flush** (unlocked): msync of those ranges, whose bytes are published frames that are
//!    never written again, so other threads keep appending (and rolling segments) meanwhile;
//! 3. **publish** (locked): the new durable seq, or the poison if the flush failed; then every
//!    sleeper wakes, returns if the flush covered its record, or leads the next flush, which
//!    covers everything appended during this one.
//!
//! So one msync serves every waiter whose record was appended before its capture, and a burst
//! of `n` concurrent durable appends costs about two flushes instead of `n`. A new leader
//! yields the CPU once before it captures: the threads the last flush woke then append their
//! next records first and ride along, instead of waiting for one more flush (on a 2-core
//! machine this doubled the records per flush at 16 threads).
//!
//! Under heavy load the wait for one of the woken threads to be scheduled and take the lead
//! costs about as much as a flush. So when a flush ends with several records appended during
//! it still waiting ([`HANDOFF_MIN_PENDING`]), its leader hands the next flush to the writer's
//! *sync thread*, which starts it at once, and keeps flushing for as long as waiters remain;
//! the leader's caller returns. The same thread runs the timer of [`SyncPolicy::Interval`].
//! It sleeps otherwise, and stops when the last handle goes or a flush poisons the writer.
//!
//! The state machine itself is in `commit.rs`, generic over the mutex and condition variables
//! and over the writer, so that the loom model check (`tests/loom_group_commit.rs`) runs the
//! same code with loom's primitives and a fake writer.

#[cfg(feature = "fault-injection")]
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, MutexGuard};
use std::thread::JoinHandle;

use crate::commit::{Group, Std, WriterLog};
use crate::error::{Error, Result};
use crate::options::{Options, SyncPolicy};
use crate::writer::Writer;

/// A leader hands the next flush to the sync thread when at least this many records appended
/// during its flush wait for durability. With fewer, the next flush is led by one of the
/// waiters, which first lets the threads this flush woke append their next records (see
/// [`Group::wait_until`]): that doubles a small batch for little delay. With more, scheduling
/// every woken thread first would delay the next flush by about as long as the flush itself
/// (measured on 2 cores: 4 threads do best without the handoff, 16 and 64 with it).
const HANDOFF_MIN_PENDING: u64 = 4;

type State = crate::commit::State<WriterLog>;

struct Core {
    /// The writer and the group-commit state machine (`commit.rs`).
    group: Group<Std, WriterLog>,
    policy: SyncPolicy,
    dir: PathBuf,
    max_record_len: u64,
}

impl Core {
    #[inline]
    fn lock(&self) -> MutexGuard<'_, State> {
        self.group.lock()
    }

    /// Returns once every record below `target` is durable (see [`Group::wait_until`]).
    #[inline]
    fn wait_until<'a>(
        &'a self,
        st: MutexGuard<'a, State>,
        target: u64,
    ) -> Result<MutexGuard<'a, State>> {
        self.group.wait_until(st, target)
    }
}

/// Owns the sync thread; stops and joins it when the last [`SharedWriter`] goes.
struct Handle {
    core: Arc<Core>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.core.group.stop();
        if let Some(thread) = self.thread.take() {
            // The sync thread never panics; if it did, there is nothing left to stop.
            let _ = thread.join();
        }
    }
}

/// A writer that many threads share (`Clone + Send + Sync`): appends from any thread, and
/// waits for durability with **group commit**, so concurrent waiters share msync calls.
///
/// Every clone is a handle to the same writer, which holds the log's lock until the last
/// handle is dropped. Dropping does not sync (as with [`Writer`]); [`close`](Self::close)
/// does.
///
/// - [`append`](Self::append) returns the record's seq once readers can see it (and a crash of
///   this process would not lose it), as [`Writer::append`] does;
/// - [`wait_durable`](Self::wait_durable) returns once that record survives a power cut too;
/// - [`append_durable`](Self::append_durable) is both: what a service calls before it
///   acknowledges a request.
///
/// While one thread flushes, the others keep appending: the flush (msync) runs without the
/// lock, and the next flush covers every record appended meanwhile.
///
/// [`Options::sync`] works as with a [`Writer`], and [`SyncPolicy::Interval`] starts a
/// background thread that checkpoints on a timer.
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let log = applog::SharedWriter::open(dir.path(), applog::Options::default())?;
/// let threads: Vec<_> = (0..4)
///     .map(|i| {
///         let log = log.clone();
///         std::thread::spawn(move || log.append_durable(format!("request {i}").as_bytes()))
///     })
///     .collect();
/// for t in threads {
///     let seq = t.join().unwrap()?;
///     assert!(seq < log.durable_seq()); // durable before append_durable returned
/// }
/// log.close()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SharedWriter {
    inner: Arc<Handle>,
}

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.core().lock();
        f.debug_struct("SharedWriter")
            .field("writer", &*st.w)
            .field("durable_seq", &st.durable())
            .field("policy", &self.core().policy)
            .finish_non_exhaustive()
    }
}

impl SharedWriter {
    /// Opens (creating, locking and recovering) the log in `dir` as [`Writer::open`] does,
    /// then syncs once, so that every record already in the log is durable and
    /// [`durable_seq`](Self::durable_seq) starts at [`next_seq`](Self::next_seq). Starts the
    /// writer's sync thread (`applog-sync`), which sleeps until a flush is handed to it or,
    /// with [`SyncPolicy::Interval`], the timer is due.
    ///
    /// # Errors
    /// As [`Writer::open`] and [`Writer::sync`]; [`Error::Io`] when the sync thread cannot be
    /// started.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<SharedWriter> {
        let policy = opts.sync;
        opts.validate(crate::segment::page_size())?;
        let w = Writer::open_inner(dir, opts.sync(SyncPolicy::Manual))?;
        let dir = w.dir().to_owned();
        let core = Arc::new(Core {
            max_record_len: w.max_record_len(),
            group: Group::new(WriterLog(w), HANDOFF_MIN_PENDING),
            policy,
            dir,
        });
        {
            let st = core.lock();
            let target = st.w.next_seq();
            drop(core.wait_until(st, target)?);
        }
        let every = match policy {
            SyncPolicy::Interval(every) => Some(every),
            _ => None,
        };
        let for_thread = core.clone();
        let thread = std::thread::Builder::new()
            .name("applog-sync".into())
            .spawn(move || for_thread.group.run_sync_thread(every))
            .map_err(|e| Error::io("could not start the sync thread for", &core.dir, e))?;
        Ok(SharedWriter {
            inner: Arc::new(Handle {
                core,
                thread: Some(thread),
            }),
        })
    }

    fn core(&self) -> &Core {
        &self.inner.core
    }

    /// What the sync policy asks for after records below `end` were appended.
    fn after_append(&self, st: MutexGuard<'_, State>, end: u64) -> Result<()> {
        match self.core().policy {
            SyncPolicy::Always => self.core().wait_until(st, end).map(drop),
            SyncPolicy::EveryBytes(n) if st.w.unsynced_bytes() >= n => {
                self.core().wait_until(st, end).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// Appends one record and returns its seq, as [`Writer::append`] does; callable from any
    /// thread. Readers see the record when this returns; it is durable once
    /// [`wait_durable`](Self::wait_durable) returns for it. With [`SyncPolicy::Always`], this
    /// waits for that itself.
    ///
    /// # Errors
    /// As [`Writer::append`].
    pub fn append(&self, record: &[u8]) -> Result<u64> {
        let mut st = self.core().lock();
        let seq = st.w.append(record)?;
        self.after_append(st, seq + 1)?;
        Ok(seq)
    }

    /// Appends many records, as [`Writer::append_batch`] does (readers see those that land
    /// in one segment at once); callable from any thread.
    ///
    /// # Errors
    /// As [`Writer::append_batch`].
    pub fn append_batch<B: AsRef<[u8]>>(&self, records: &[B]) -> Result<Range<u64>> {
        let mut st = self.core().lock();
        let range = st.w.append_batch(records)?;
        self.after_append(st, range.end)?;
        Ok(range)
    }

    /// Returns once the record `seq` (and every record before it) is durable: it survives a
    /// power cut. Concurrent callers share msync calls: if a flush is running, this waits
    /// for it, and the next flush covers every record appended until it starts.
    ///
    /// # Errors
    /// [`Error::SeqNotAppended`] when `seq` was not appended yet. The error of a failed flush
    /// (the writer is then poisoned); [`Error::Poisoned`] when an earlier one failed,
    /// including for callers that were waiting on the flush that failed.
    ///
    /// # Example
    /// ```
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let log = applog::SharedWriter::open(dir.path(), applog::Options::default())?;
    /// let seq = log.append(b"order 17")?; // readers see it now
    /// assert_eq!(log.durable_seq(), 0); // not durable yet
    ///
    /// log.wait_durable(seq)?; // one msync, shared with every thread waiting meanwhile
    /// assert!(log.durable_seq() > seq); // now it is safe to acknowledge the order
    ///
    /// // A seq not appended yet is an error, not a wait.
    /// let too_far = log.wait_durable(seq + 1);
    /// assert!(matches!(too_far, Err(applog::Error::SeqNotAppended { .. })));
    /// # Ok(()) }
    /// ```
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        let st = self.core().lock();
        let next_seq = st.w.next_seq();
        if seq >= next_seq {
            return Err(Error::SeqNotAppended { seq, next_seq });
        }
        self.core().wait_until(st, seq + 1).map(drop)
    }

    /// Appends one record and returns its seq once it is durable: [`append`](Self::append)
    /// then [`wait_durable`](Self::wait_durable), for a service to call before it
    /// acknowledges a request.
    ///
    /// # Errors
    /// As both. When the wait fails, the record was appended but is not known to be durable.
    pub fn append_durable(&self, record: &[u8]) -> Result<u64> {
        let mut st = self.core().lock();
        let seq = st.w.append(record)?;
        drop(self.core().wait_until(st, seq + 1)?);
        Ok(seq)
    }

    /// Makes every record appended so far durable (one shared flush, as
    /// [`wait_durable`](Self::wait_durable) for the last one).
    ///
    /// # Errors
    /// As [`wait_durable`](Self::wait_durable).
    pub fn sync(&self) -> Result<()> {
        let st = self.core().lock();
        let target = st.w.next_seq();
        self.core().wait_until(st, target).map(drop)
    }

    /// Syncs, then drops this handle. The log's lock is released when the last handle is
    /// dropped.
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub fn close(self) -> Result<()> {
        self.sync()?;
        self.core().lock().w.flush_mark()
    }

    /// Retention: removes the oldest whole segments whose records are all below `seq`, as
    /// [`Writer::truncate_front`] does; returns the new [`first_seq`](Self::first_seq).
    /// Appends wait while the directory is fsynced; a flush running meanwhile is not
    /// disturbed.
    ///
    /// # Errors
    /// As [`Writer::truncate_front`].
    pub fn truncate_front(&self, seq: u64) -> Result<u64> {
        self.core().lock().w.truncate_front(seq)
    }

    /// Removes every record at and after `seq`, durably, as [`Writer::truncate_back`] does;
    /// the next append gets `seq`. Everything appended so far is made durable first (with the
    /// other threads' waits), and a flush still running is let end; appends from other
    /// threads wait meanwhile. A thread waiting for a record's durability when the cut began
    /// returns Ok: the record was durable (and then removed by the cut).
    ///
    /// # Errors
    /// As [`Writer::truncate_back`].
    pub fn truncate_back(&self, seq: u64) -> Result<()> {
        let core = self.core();
        core.group
            .rewind(core.lock(), |w| w.truncate_back(seq))
            .map(drop)
    }

    /// Starts the log again at `seq`, as [`Writer::reset`] does: removes the records before
    /// it, and past the end makes the log empty, continuing at `seq`. Durability waits work as
    /// for [`truncate_back`](Self::truncate_back).
    ///
    /// # Errors
    /// As [`Writer::reset`].
    pub fn reset(&self, seq: u64) -> Result<()> {
        let core = self.core();
        core.group.rewind(core.lock(), |w| w.reset(seq)).map(drop)
    }

    /// Every record below this seq is durable.
    pub fn durable_seq(&self) -> u64 {
        self.core().lock().durable()
    }

    /// The seq the next appended record will get.
    pub fn next_seq(&self) -> u64 {
        self.core().lock().w.next_seq()
    }

    /// The seq of the oldest record in the log (it grows with
    /// [`truncate_front`](Self::truncate_front)).
    pub fn first_seq(&self) -> u64 {
        self.core().lock().w.first_seq()
    }

    /// How many flushes (msync checkpoints) have completed since the writer was opened: with
    /// group commit, far fewer than the durable appends.
    pub fn sync_count(&self) -> u64 {
        self.core().lock().syncs()
    }

    /// How many flushes took longer than [`Options::slow_sync`] since the writer was opened
    /// (see [`Writer::slow_syncs`]).
    pub fn slow_syncs(&self) -> u64 {
        self.core().lock().w.slow_syncs()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.core().dir
    }

    /// The largest record this writer accepts (see [`Writer::max_record_len`]).
    pub fn max_record_len(&self) -> u64 {
        self.core().max_record_len
    }

    /// Test hook: `hook(seq)` runs after each flush's msyncs returned Ok, without the lock,
    /// with the seq below which records are then durable, before any waiter is told. An
    /// `Err` counts as a failed flush (the writer is poisoned). It must not panic.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn set_sync_hook(&self, hook: impl Fn(u64) -> io::Result<()> + Send + Sync + 'static) {
        let dir = self.dir().to_owned();
        self.core().lock().set_hook(Arc::new(move |seq| {
            hook(seq).map_err(|e| Error::io("could not sync log", &dir, e))
        }));
    }
}

/// The log's metadata (see [`Writer::set_meta`]).
impl SharedWriter {
    /// The log's metadata as last stored (a copy; see [`Writer::meta`]).
    pub fn meta(&self) -> crate::Meta {
        self.core().lock().w.meta().clone()
    }

    /// Stores `value` under `name` (`None` removes it), durably and crash-atomically, as
    /// [`Writer::set_meta`]. Appends wait meanwhile (one `pwrite` and one `fdatasync`).
    ///
    /// # Errors
    /// As [`Writer::set_meta`].
    pub fn set_meta(&self, name: &str, value: Option<&[u8]>) -> Result<()> {
        self.core().lock().w.set_meta(name, value)
    }

    /// Several changes at once, crash-atomic together, as [`Writer::set_meta_many`].
    ///
    /// # Errors
    /// As [`Writer::set_meta_many`].
    pub fn set_meta_many(&self, changes: &[(&str, Option<&[u8]>)]) -> Result<()> {
        self.core().lock().w.set_meta_many(changes)
    }
}
