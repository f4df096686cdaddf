//! The group-commit state machine of [`SharedWriter`](crate::SharedWriter): who flushes (a
//! leader, or the sync thread when a leader hands the next flush off), who waits and on which
//! condition variable, and what the durable seq may claim. See `shared.rs` for the design.
//!
//! The code is generic over the synchronisation primitives
//! ([`Primitives`](crate::commit::Primitives)) and over the writer
//! ([`CommitLog`](crate::commit::CommitLog), [`CommitPlan`](crate::commit::CommitPlan)). The
//! crate instantiates it with `std::sync` and the
//! real [`Writer`]; the loom model check (`tests/loom_group_commit.rs`) runs the same code with
//! loom's mutex and condition variables and a fake writer that records what each flush
//! covered and can fail a flush. Both instantiations monomorphise: production pays nothing for
//! the generics.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::checkpoint::SyncPlan;
use crate::error::{Error, Result};
use crate::writer::Writer;

/// A mutex and condition variables with the API of `std::sync`: implemented by [`Std`], and
/// by loom's types in the model check.
pub trait Primitives {
    /// A mutex holding a `T`.
    type Mutex<T>;
    /// The guard of a locked [`Mutex`](Self::Mutex).
    type Guard<'a, T: 'a>: DerefMut<Target = T>;
    /// A condition variable used with [`Mutex`](Self::Mutex).
    type Condvar;

    /// A new mutex holding `value`.
    fn mutex<T>(value: T) -> Self::Mutex<T>;
    /// Locks `mutex` (ignoring poisoning: no code holding this lock panics).
    fn lock<T>(mutex: &Self::Mutex<T>) -> Self::Guard<'_, T>;
    /// A new condition variable.
    fn condvar() -> Self::Condvar;
    /// Releases `guard`, sleeps until `cv` is notified (or spuriously), locks again.
    fn wait<'a, T>(cv: &Self::Condvar, guard: Self::Guard<'a, T>) -> Self::Guard<'a, T>;
    /// As [`wait`](Self::wait), for at most `timeout`.
    fn wait_timeout<'a, T>(
        cv: &Self::Condvar,
        guard: Self::Guard<'a, T>,
        timeout: Duration,
    ) -> Self::Guard<'a, T>;
    /// Wakes one thread sleeping on `cv`.
    fn notify_one(cv: &Self::Condvar);
    /// Wakes every thread sleeping on `cv`.
    fn notify_all(cv: &Self::Condvar);
    /// Offers the CPU to other threads.
    fn yield_now();
}

/// The primitives of `std::sync`, for production.
pub struct Std;

impl Primitives for Std {
    type Mutex<T> = Mutex<T>;
    type Guard<'a, T: 'a> = MutexGuard<'a, T>;
    type Condvar = Condvar;

    #[inline]
    fn mutex<T>(value: T) -> Mutex<T> {
        Mutex::new(value)
    }

    #[inline]
    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        // No code holding the lock panics; if a caller's hook did, the state is still sound.
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    fn condvar() -> Condvar {
        Condvar::new()
    }

    #[inline]
    fn wait<'a, T>(cv: &Condvar, guard: Self::Guard<'a, T>) -> Self::Guard<'a, T> {
        cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
    }

    #[inline]
    fn wait_timeout<'a, T>(
        cv: &Condvar,
        guard: Self::Guard<'a, T>,
        timeout: Duration,
    ) -> Self::Guard<'a, T> {
        cv.wait_timeout(guard, timeout)
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    #[inline]
    fn notify_one(cv: &Condvar) {
        cv.notify_one();
    }

    #[inline]
    fn notify_all(cv: &Condvar) {
        cv.notify_all();
    }

    #[inline]
    fn yield_now() {
        std::thread::yield_now();
    }
}

/// What group commit needs of a writer: a checkpoint in three steps, capture (under the lock),
/// [`run`](CommitPlan::run) (without it) and publish (under it again).
pub trait CommitLog {
    /// One captured checkpoint.
    type Plan: CommitPlan;
    /// The error that poisoned the writer, if a checkpoint failed.
    fn check_poisoned(&self) -> Result<()>;
    /// The seq the next appended record will get.
    fn next_seq(&self) -> u64;
    /// Step 1: what to flush; `None` when everything appended is durable already. Fails when
    /// the writer is poisoned.
    fn capture_sync(&mut self) -> Result<Option<Self::Plan>>;
    /// Step 3: records the outcome of [`run`](CommitPlan::run); an `Err` poisons the writer
    /// and is returned.
    fn publish_sync(&mut self, plan: Self::Plan, outcome: Result<()>) -> Result<()>;
    /// A flush ended with `waiters` threads waiting for it (for metrics; nothing by default).
    #[inline]
    fn flushed(&mut self, waiters: u64) {
        let _ = waiters;
    }
}

/// A checkpoint captured by [`CommitLog::capture_sync`].
pub trait CommitPlan {
    /// Every record below this seq is durable once [`run`](Self::run) returned Ok.
    fn next_seq(&self) -> u64;
    /// Step 2 (no lock): the flush itself.
    fn run(&mut self) -> Result<()>;
}

/// The real [`Writer`] as a [`CommitLog`]. A crate-private wrapper, so that the writer's
/// crate-private [`SyncPlan`] does not leak through the public trait; it derefs to the writer.
#[derive(Debug)]
pub(crate) struct WriterLog(pub(crate) Writer);

impl Deref for WriterLog {
    type Target = Writer;

    #[inline]
    fn deref(&self) -> &Writer {
        &self.0
    }
}

impl DerefMut for WriterLog {
    #[inline]
    fn deref_mut(&mut self) -> &mut Writer {
        &mut self.0
    }
}

impl CommitLog for WriterLog {
    type Plan = SyncPlan;

    #[inline]
    fn check_poisoned(&self) -> Result<()> {
        self.0.check_poisoned()
    }

    #[inline]
    fn next_seq(&self) -> u64 {
        self.0.next_seq()
    }

    #[inline]
    fn capture_sync(&mut self) -> Result<Option<SyncPlan>> {
        self.0.capture_sync()
    }

    #[inline]
    fn publish_sync(&mut self, plan: SyncPlan, outcome: Result<()>) -> Result<()> {
        self.0.publish_sync(plan, outcome)
    }

    #[inline]
    fn flushed(&mut self, waiters: u64) {
        self.0.metrics.flush_waiters(waiters);
    }
}

impl CommitPlan for SyncPlan {
    #[inline]
    fn next_seq(&self) -> u64 {
        SyncPlan::next_seq(self)
    }

    #[inline]
    fn run(&mut self) -> Result<()> {
        SyncPlan::run(self)
    }
}

/// Called after each flush with the seq below which records are then durable (test hook);
/// an `Err` counts as a failed flush.
pub(crate) type SyncHook = Arc<dyn Fn(u64) -> Result<()> + Send + Sync>;

/// What the group's mutex guards: the writer and the group-commit state.
pub struct State<W> {
    /// The writer.
    pub w: W,
    /// Every record below this seq is durable.
    durable: u64,
    /// A leader is flushing, without the lock, or the sync thread is about to (`handoff`).
    flushing: bool,
    /// The highest seq (exclusive) that a waiter has asked to be durable.
    wanted: u64,
    /// A leader handed the next flush to the sync thread (`flushing` stays set meanwhile).
    handoff: bool,
    /// Number of the flush that runs (or runs next): its waiters sleep on
    /// `flushed[gen % 2]`, those it does not cover on the other one.
    gen: u64,
    /// The running flush makes every record below this durable (`u64::MAX` until it has
    /// captured: it covers everything appended before then).
    covers: u64,
    /// Flushes that completed.
    syncs: u64,
    /// Threads asleep on `flushed[0]` and `flushed[1]`: the waiters of a flush.
    sleeping: [u64; 2],
    /// The sync thread must stop.
    stop: bool,
    /// How many times the log was rewound ([`Group::rewind`]): a waiter that started before
    /// a rewind returns, since its record was durable when the rewind began.
    rewinds: u64,
    hook: Option<SyncHook>,
}

impl<W> State<W> {
    /// Every record below this seq is durable.
    #[inline]
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// How many flushes completed.
    #[inline]
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Installs the test hook that runs after each flush (see `SharedWriter::set_sync_hook`).
    #[cfg(feature = "fault-injection")]
    pub(crate) fn set_hook(&mut self, hook: SyncHook) {
        self.hook = Some(hook);
    }
}

/// The writer behind its mutex, with the condition variables of group commit.
pub struct Group<P: Primitives, W> {
    state: P::Mutex<State<W>>,
    /// Signalled after flushes (and on poisoning): waiters re-check. Two, by the parity of
    /// the flush that covers a waiter, so that a flush wakes the waiters it covered and not
    /// those of the next one (on few cores, needless wake-ups cost as much as the flush).
    flushed: [P::Condvar; 2],
    /// The sync thread sleeps on it; signalled for a handoff and to stop it.
    tick: P::Condvar,
    /// A leader hands the next flush to the sync thread when at least this many records
    /// appended during its flush wait for durability.
    handoff_min_pending: u64,
}

impl<P: Primitives, W: CommitLog> Group<P, W> {
    /// A group around `w`, nothing durable yet, no flush running.
    pub fn new(w: W, handoff_min_pending: u64) -> Self {
        Group {
            state: P::mutex(State {
                w,
                durable: 0,
                flushing: false,
                wanted: 0,
                handoff: false,
                gen: 0,
                covers: u64::MAX,
                syncs: 0,
                sleeping: [0; 2],
                stop: false,
                rewinds: 0,
                hook: None,
            }),
            flushed: [P::condvar(), P::condvar()],
            tick: P::condvar(),
            handoff_min_pending,
        }
    }

    /// Locks the state.
    #[inline]
    pub fn lock(&self) -> P::Guard<'_, State<W>> {
        P::lock(&self.state)
    }

    /// Returns once every record below `target` is durable: sleeps while another thread
    /// flushes, and leads a flush when none runs.
    ///
    /// # Errors
    /// The error of a failed flush (the writer is then poisoned), or the poison of an earlier
    /// one.
    pub fn wait_until<'a>(
        &'a self,
        mut st: P::Guard<'a, State<W>>,
        target: u64,
    ) -> Result<P::Guard<'a, State<W>>> {
        let rewinds = st.rewinds;
        loop {
            st.w.check_poisoned()?;
            if st.durable >= target || st.rewinds != rewinds {
                return Ok(st);
            }
            st.wanted = st.wanted.max(target);
            if st.flushing {
                let gen = if target <= st.covers {
                    st.gen
                } else {
                    st.gen + 1
                };
                let parity = (gen % 2) as usize;
                st.sleeping[parity] += 1;
                st = P::wait(&self.flushed[parity], st);
                st.sleeping[parity] -= 1;
            } else {
                st = self.lead(st, true)?;
            }
        }
    }

    /// Runs one checkpoint of everything appended so far: capture under the lock, flush
    /// without it, publish under it again. The caller has checked that no flush runs; `waits`
    /// says whether it waits for the flush itself (a leader does, the sync thread does not).
    fn lead<'a>(
        &'a self,
        mut st: P::Guard<'a, State<W>>,
        waits: bool,
    ) -> Result<P::Guard<'a, State<W>>> {
        st.flushing = true;
        st.covers = u64::MAX;
        // Threads that the last flush woke are about to append their next records: give them
        // the CPU first, so that this flush covers them too (on few cores they would otherwise
        // append right after the capture, and wait for a whole extra flush). Meanwhile
        // `flushing` keeps other waiters from leading.
        drop(st);
        P::yield_now();
        self.flush(self.lock(), waits)
    }

    /// [`lead`](Self::lead) once `flushing` is set. When waiters remain whose records this
    /// flush did not cover (they appended while it ran), hands the next flush to the sync
    /// thread, which is idle and starts it at once: the leader's own caller returns now, and no
    /// flush waits for one of the woken waiters to be scheduled and take the lead.
    fn flush<'a>(
        &'a self,
        mut st: P::Guard<'a, State<W>>,
        waits: bool,
    ) -> Result<P::Guard<'a, State<W>>> {
        let mut plan = match st.w.capture_sync() {
            Ok(Some(plan)) => plan,
            other => {
                // Nothing to flush (everything appended is durable already), or poisoned.
                st.flushing = false;
                if let Ok(None) = other {
                    st.durable = st.durable.max(st.w.next_seq());
                }
                self.wake_all();
                return other.map(|_| st);
            }
        };
        let hook = st.hook.clone();
        let target = plan.next_seq();
        st.covers = target;
        drop(st);

        let mut outcome = plan.run();
        if let (Ok(()), Some(hook)) = (&outcome, hook) {
            outcome = hook(target);
        }

        let mut st = self.lock();
        let published = st.w.publish_sync(plan, outcome);
        if published.is_ok() {
            st.durable = st.durable.max(target);
            st.syncs += 1;
        }
        let done = st.gen;
        st.gen += 1;
        if published.is_ok() {
            let waiters = st.sleeping[(done % 2) as usize] + u64::from(waits);
            st.w.flushed(waiters);
        }
        if published.is_ok()
            && st.wanted > st.durable
            && st.w.next_seq() >= st.durable.saturating_add(self.handoff_min_pending)
            && !st.stop
        {
            // The next flush covers every waiter left: they sleep on until it ends.
            st.handoff = true;
            st.covers = u64::MAX;
            P::notify_one(&self.tick);
            P::notify_all(&self.flushed[(done % 2) as usize]);
        } else {
            // Waiters left must lead the next flush (or see the poison).
            st.flushing = false;
            self.wake_all();
        }
        published.map(|()| st)
    }

    /// Changes the log under the lock in a way that can remove records or move `next_seq`
    /// (cutting its end, a reset): first makes every record appended so far durable and waits
    /// for any flush still running to end (its plan names segments that `change` may remove),
    /// then runs `change`, which leaves every record in the log durable. Waiters that started
    /// before return Ok: their records were durable when the change began.
    ///
    /// # Errors
    /// A failed flush, or the error of `change`.
    pub fn rewind<'a, T>(
        &'a self,
        mut st: P::Guard<'a, State<W>>,
        change: impl FnOnce(&mut W) -> Result<T>,
    ) -> Result<(P::Guard<'a, State<W>>, T)> {
        loop {
            let target = st.w.next_seq();
            st = self.wait_until(st, target)?;
            if !st.flushing {
                break;
            }
            // A flush handed to the sync thread, or one that covers nothing we need: let it end.
            let parity = (st.gen % 2) as usize;
            st.sleeping[parity] += 1;
            st = P::wait(&self.flushed[parity], st);
            st.sleeping[parity] -= 1;
        }
        let out = change(&mut st.w);
        st.durable = st.w.next_seq();
        st.wanted = st.wanted.min(st.durable);
        st.rewinds += 1;
        self.wake_all();
        out.map(|t| (st, t))
    }

    fn wake_all(&self) {
        for c in &self.flushed {
            P::notify_all(c);
        }
    }

    /// Tells the sync thread ([`run_sync_thread`](Self::run_sync_thread)) to return.
    pub fn stop(&self) {
        self.lock().stop = true;
        P::notify_all(&self.tick);
    }

    /// The sync thread: runs the flushes that leaders hand off, and with `every` a checkpoint
    /// that often. Sleeps otherwise. Returns after [`stop`](Self::stop), or when a flush
    /// failed (the writer is then poisoned, and its waiters have been told: every call on it
    /// now fails until the log is reopened, so the sync thread has nothing left to do).
    pub fn run_sync_thread(&self, every: Option<Duration>) {
        let mut st = self.lock();
        let mut due = every.map(|e| Instant::now() + e);
        loop {
            if st.stop {
                return;
            }
            if st.handoff {
                st.handoff = false;
                st = match self.flush(st, false) {
                    Ok(st) => st,
                    Err(e) => return stopped(&e),
                };
                continue;
            }
            match due {
                None => st = P::wait(&self.tick, st),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        due = every.map(|e| now + e);
                        if !st.flushing {
                            st = match self.lead(st, false) {
                                Ok(st) => st,
                                Err(e) => return stopped(&e),
                            };
                        }
                        // Else a flush is running right now: it covers what this one would.
                    } else {
                        st = P::wait_timeout(&self.tick, st, at - now);
                    }
                }
            }
        }
    }
}

/// The sync thread stops after a failed flush.
fn stopped(e: &Error) {
    tracing::debug!(error = %e, "sync thread stopped");
}
