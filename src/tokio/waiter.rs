//! One waiter thread per process for every async tailer: it sleeps on many wake words at once
//! (`futex_waitv`, up to 128 futexes per call) and wakes the tasks whose logs moved.
//!
//! A tailer that finds nothing to read announces its wait on its segment's wake word as the
//! blocking tailer does (`notify::prepare`: set `WAITING`, then look again), then
//! [registers](Waiter::register) its task's waker with the word's value (the token). The
//! waiter thread keeps one entry per segment file (by device and inode), shared by every
//! tailer of that segment, and sleeps on each entry's word with the tokens' value:
//!
//! - a word whose value is no longer the token a tailer registered with has moved on (only
//!   the writer changes a word that has `WAITING` set, and it advances the epoch when it
//!   does): that tailer's task is woken, and looks again;
//! - a new registration (or a new token) interrupts the sleep through a process-local futex
//!   word that is part of every wait set, so that the next sleep includes it;
//! - every sleep is bounded ([`MAX_SLEEP`], as the blocking tailer's): then every tailer looks
//!   again, to notice what the word does not announce (a writer that died, a new segment after
//!   a crash). Tailers without a word (no segment yet, or no write access) are polled every
//!   [`POLL`].
//!
//! No wake-up is lost: a tailer registers only after its `prepare` and a second look found
//! nothing; if the writer published after that `prepare`, it advanced the word, so the waiter
//! sees a value other than the token (before it sleeps, or `futex_waitv` returns at once
//! because a value differs), and wakes the task.
//!
//! Registrations are removed when their tailer (or its pending `next()` future) is dropped,
//! and when they fire. The thread starts at the first registration and then lives as long as
//! the process, asleep when nobody waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::mapping::WakeView;
use crate::notify::WAITING;

/// The longest sleep: every waiting tailer then looks again.
pub(crate) const MAX_SLEEP: Duration = Duration::from_millis(100);

/// How often tailers that have no wake word to sleep on look again.
const POLL: Duration = Duration::from_millis(2);

/// Futexes per `futex_waitv` call (the kernel's limit); one is the interrupt word.
const MAX_WAITV: usize = 128;

/// The identity of a segment file: (device, inode).
pub(crate) type Key = (u64, u64);

/// Where a tailer is registered, for moving or removing its registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Slot {
    id: u64,
    /// The segment whose word it waits on; `None` for a polled registration.
    key: Option<Key>,
}

struct Reg {
    id: u64,
    token: u32,
    /// Tailers of one class see the same records (1: durable records only, 0: all).
    class: u8,
    waker: Waker,
}

struct Entry {
    /// Keeps the word mapped while the thread sleeps on it.
    view: Arc<WakeView>,
    regs: Vec<Reg>,
    /// The token every registration has, when they all agree: then the thread need not look
    /// at each of them while the word keeps that value.
    same: Option<u32>,
}

impl Entry {
    fn word(&self) -> Option<&AtomicU32> {
        self.view.word32(crate::format::WAKE_WORD_OFFSET)
    }
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    polled: Vec<(u64, Waker)>,
    /// Registrations woken by a timeout to look for what the word did not announce.
    scouts: Vec<u64>,
    next_id: u64,
    started: bool,
}

/// The process's waiter.
pub(crate) struct Waiter {
    state: Mutex<State>,
    /// Bumped (and woken) when a registration needs the thread to build a new wait set.
    interrupt: AtomicU32,
}

static WAITER: OnceLock<Waiter> = OnceLock::new();

/// The process's waiter (its thread starts at the first registration).
pub(crate) fn get() -> &'static Waiter {
    WAITER.get_or_init(|| Waiter {
        state: Mutex::new(State::default()),
        interrupt: AtomicU32::new(0),
    })
}

impl Waiter {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock (wakers are woken after it is released).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers (or re-registers) `waker` to be woken when the word in `view` moves from
    /// `token`, which the caller got from `notify::prepare` before it looked again and found
    /// nothing. Replaces the registration at `slot`.
    pub(crate) fn register(
        &'static self,
        slot: Option<Slot>,
        key: Key,
        view: &Arc<WakeView>,
        token: u32,
        class: u8,
        waker: &Waker,
    ) -> Slot {
        let mut st = self.lock();
        if let Some(Slot { id, key: Some(k) }) = slot {
            if k == key {
                if let Some(reg) = st
                    .entries
                    .get_mut(&key)
                    .and_then(|e| e.regs.iter_mut().find(|r| r.id == id))
                {
                    if reg.token == token {
                        // Already in the wait set as it is: nothing for the thread to do.
                        if !reg.waker.will_wake(waker) {
                            reg.waker.clone_from(waker);
                        }
                        return Slot { id, key: Some(key) };
                    }
                }
            }
        }
        if let Some(old) = slot {
            remove(&mut st, old);
        }
        let id = st.next_id;
        st.next_id += 1;
        let entry = st.entries.entry(key).or_insert_with(|| Entry {
            view: Arc::clone(view),
            regs: Vec::new(),
            same: None,
        });
        // The thread sleeps on the word with the value of the registrations before this one
        // (or is about to, interrupted by the first of them): a new wait set is needed only
        // for a new entry or a token that differs from theirs.
        let known = !entry.regs.is_empty()
            && (entry.same == Some(token) || entry.regs.iter().any(|r| r.token == token));
        entry.same = match entry.same {
            _ if entry.regs.is_empty() => Some(token),
            Some(t) if t == token => Some(t),
            _ => None,
        };
        entry.regs.push(Reg {
            id,
            token,
            class,
            waker: waker.clone(),
        });
        self.start(&mut st);
        drop(st);
        if !known {
            self.interrupt_thread();
        }
        Slot { id, key: Some(key) }
    }

    /// Registers `waker` to be woken within [`POLL`]: for a tailer without a wake word.
    pub(crate) fn register_polled(&'static self, slot: Option<Slot>, waker: &Waker) -> Slot {
        let mut st = self.lock();
        if let Some(old) = slot {
            remove(&mut st, old);
        }
        let id = st.next_id;
        st.next_id += 1;
        let was_empty = st.polled.is_empty();
        st.polled.push((id, waker.clone()));
        self.start(&mut st);
        drop(st);
        if was_empty {
            // The thread may sleep for MAX_SLEEP: have it poll.
            self.interrupt_thread();
        }
        Slot { id, key: None }
    }

    /// Removes a registration (its tailer was dropped, or got what it waited for).
    pub(crate) fn deregister(&self, slot: Slot) {
        remove(&mut self.lock(), slot);
    }

    /// The tailer at `slot` found records. When a timeout had woken it as its segment's scout,
    /// the word did not announce them: every tailer waiting on that segment is woken to look.
    pub(crate) fn found(&self, slot: Slot) {
        let mut wake = Vec::new();
        {
            let mut st = self.lock();
            let scout = st.scouts.contains(&slot.id);
            remove(&mut st, slot);
            if !scout {
                return;
            }
            if let Some(entry) = slot.key.and_then(|k| st.entries.remove(&k)) {
                wake.extend(entry.regs.into_iter().map(|r| r.waker));
            }
        }
        for w in wake {
            w.wake();
        }
    }

    /// How many tasks are registered (for the tests).
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    pub(crate) fn registrations(&self) -> usize {
        let st = self.lock();
        st.polled.len() + st.entries.values().map(|e| e.regs.len()).sum::<usize>()
    }

    fn interrupt_thread(&self) {
        self.interrupt.fetch_add(1, Ordering::AcqRel);
        futex_wake_private(&self.interrupt);
    }

    fn start(&'static self, st: &mut State) {
        if st.started {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("applog-waiter".into())
            .spawn(move || self.run());
        match spawned {
            Ok(_) => st.started = true,
            // Tried again at the next registration; meanwhile the tasks are not woken but by
            // the registrations that follow.
            Err(e) => tracing::warn!(error = %e, "could not start the applog waiter thread"),
        }
    }

    /// The waiter thread.
    fn run(&self) {
        let mut due = Instant::now() + MAX_SLEEP;
        let mut poll_due = Instant::now() + POLL;
        let mut wake: Vec<Waker> = Vec::new();
        let mut views: Vec<Arc<WakeView>> = Vec::new();
        let mut values: Vec<u32> = Vec::new();
        loop {
            // The interrupt word's value before the wait set is built: a registration after
            // this bumps it, and the sleep below returns at once.
            let interrupt = self.interrupt.load(Ordering::Acquire);
            let now = Instant::now();
            let timed_out = now >= due;
            if timed_out {
                due = now + MAX_SLEEP;
            }
            let polling;
            {
                let mut guard = self.lock();
                let st = &mut *guard;
                if timed_out {
                    // Last round's scouts that found nothing have registered again.
                    st.scouts.clear();
                }
                let scouts = &mut st.scouts;
                st.entries.retain(|_, entry| {
                    let Some(word) = entry.word() else {
                        // Cannot happen (the view holds its word); wake them to look again.
                        wake.extend(entry.regs.drain(..).map(|r| r.waker));
                        return false;
                    };
                    let now_value = word.load(Ordering::Acquire);
                    if entry.same != Some(now_value) {
                        // The word moved from some registrations' tokens: wake those.
                        entry.regs.retain(|r| {
                            let fire = r.token != now_value;
                            if fire {
                                wake.push(r.waker.clone());
                            }
                            !fire
                        });
                        entry.same = Some(now_value);
                    }
                    if timed_out {
                        // One tailer of each class per segment (the oldest registration: each
                        // takes its turn) looks for what the word did not announce; if it finds
                        // records, it wakes the others (`found`).
                        for class in 0..2 {
                            if let Some(i) = entry.regs.iter().position(|r| r.class == class) {
                                let r = entry.regs.remove(i);
                                scouts.push(r.id);
                                wake.push(r.waker);
                            }
                        }
                    }
                    if entry.regs.is_empty() {
                        return false;
                    }
                    if views.len() < MAX_WAITV - 1 && now_value & WAITING != 0 {
                        views.push(Arc::clone(&entry.view));
                        values.push(now_value);
                    }
                    true
                });
                if timed_out || now >= poll_due {
                    poll_due = now + POLL;
                    if st.entries.len() > views.len() {
                        // Entries past the wait set's capacity are not slept on: their
                        // tailers look again every POLL.
                        for entry in st.entries.values_mut() {
                            if !views.iter().any(|v| Arc::ptr_eq(v, &entry.view)) {
                                wake.extend(entry.regs.drain(..).map(|r| r.waker));
                            }
                        }
                        st.entries.retain(|_, e| !e.regs.is_empty());
                    }
                    wake.extend(st.polled.drain(..).map(|(_, w)| w));
                }
                polling = !st.polled.is_empty() || st.entries.len() > views.len();
            }
            for w in wake.drain(..) {
                w.wake();
            }
            let now = Instant::now();
            let left = due.saturating_duration_since(now);
            let timeout = if polling {
                left.min(poll_due.saturating_duration_since(now))
            } else {
                left
            };
            sleep_on(&self.interrupt, interrupt, &views, &values, timeout);
            views.clear();
            values.clear();
        }
    }
}

fn remove(st: &mut State, slot: Slot) {
    if let Some(pos) = st.scouts.iter().position(|&id| id == slot.id) {
        st.scouts.swap_remove(pos);
    }
    match slot.key {
        Some(key) => {
            if let Some(entry) = st.entries.get_mut(&key) {
                entry.regs.retain(|r| r.id != slot.id);
                if entry.regs.is_empty() {
                    st.entries.remove(&key);
                }
            }
        }
        None => st.polled.retain(|(id, _)| *id != slot.id),
    }
}

/// Sleeps until the interrupt word moves from `interrupt`, a word in `views` moves from its
/// value in `values`, a wake-up on any of them, or `timeout`.
#[cfg(target_os = "linux")]
fn sleep_on(
    interrupt_word: &AtomicU32,
    interrupt: u32,
    views: &[Arc<WakeView>],
    values: &[u32],
    timeout: Duration,
) {
    use rustix::thread::futex;

    let mut waits = Vec::with_capacity(views.len() + 1);
    let mut w = futex::Wait::new();
    w.val = u64::from(interrupt);
    w.uaddr = futex::WaitPtr::new(interrupt_word.as_ptr().cast());
    w.flags = futex::WaitFlags::SIZE_U32 | futex::WaitFlags::PRIVATE;
    waits.push(w);
    for (view, &value) in views.iter().zip(values) {
        if let Some(word) = view.word32(crate::format::WAKE_WORD_OFFSET) {
            let mut w = futex::Wait::new();
            w.val = u64::from(value);
            // The mapping stays alive (`views` holds it) until the call returns. Not
            // private: the word is shared with the writer's process.
            w.uaddr = futex::WaitPtr::new(word.as_ptr().cast());
            w.flags = futex::WaitFlags::SIZE_U32;
            waits.push(w);
        }
    }
    // futex_waitv takes an absolute time on the clock it is given.
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0) + u64::from(timeout.subsec_nanos());
    let secs = now
        .tv_sec
        .saturating_add(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX / 2))
        .saturating_add(i64::try_from(nanos / 1_000_000_000).unwrap_or(0));
    let deadline = futex::Timespec {
        tv_sec: secs,
        tv_nsec: i64::try_from(nanos % 1_000_000_000).unwrap_or(0),
    };
    match futex::waitv(
        &waits,
        futex::WaitvFlags::empty(),
        Some(&deadline),
        rustix::time::ClockId::Monotonic,
    ) {
        // Woken, a value differed, timed out, or a signal: the caller looks again.
        Ok(_) => {}
        Err(e)
            if e == rustix::io::Errno::AGAIN
                || e == rustix::io::Errno::TIMEDOUT
                || e == rustix::io::Errno::INTR => {}
        Err(e) => {
            // No futex_waitv (a kernel before 5.16, or a seccomp filter): poll.
            tracing::debug!(error = %e, "futex_waitv failed; polling");
            std::thread::sleep(timeout.min(POLL));
        }
    }
}

/// Without `futex_waitv`: poll.
#[cfg(not(target_os = "linux"))]
fn sleep_on(
    _interrupt_word: &AtomicU32,
    _interrupt: u32,
    _views: &[Arc<WakeView>],
    _values: &[u32],
    timeout: Duration,
) {
    std::thread::sleep(timeout.min(POLL));
}

#[cfg(target_os = "linux")]
fn futex_wake_private(word: &AtomicU32) {
    use rustix::thread::futex;
    // A failed wake cannot be acted on; the waiter's sleep is bounded.
    let _ = futex::wake(word, futex::Flags::PRIVATE, 1);
}

#[cfg(not(target_os = "linux"))]
fn futex_wake_private(_word: &AtomicU32) {}
