//! Model check of group commit (`applog::commit`, the state machine of `SharedWriter`) with
//! loom.
//!
//! Model: the crate's own `Group` code (`wait_until`, the leader's capture / flush / publish,
//! the handoff of the next flush to the sync thread, and the sync thread's loop), instantiated
//! with loom's mutex and condition variables and a fake writer. The fake writer appends seqs,
//! records what each flush's capture covered and which flushes completed Ok, and can fail a
//! chosen flush, which poisons it as the real writer does. Threads: appenders, each appending
//! one record at a time and waiting until it is durable, and the sync thread (without its
//! timer). Two appenders with two records each are explored exhaustively (every interleaving);
//! three appenders with one record each within a preemption bound. A handoff threshold of 1
//! or 2 lets a flush that ends with waiters it did not cover hand the next one to the sync
//! thread; another model turns the handoff off, so that a woken waiter must lead. Condition
//! variables have no timeout in the model, so a lost wake-up is a deadlock, which loom reports.
//!
//! Fault model: a flush (msync) may fail: the first, second or third flush fails in the poison
//! models, run by a leader or by the sync thread. Not modelled: the test hook
//! (`set_sync_hook`), the interval timer, retention, spurious condvar wake-ups.
//!
//! Pass criterion: in every interleaving loom explores:
//! - a waiter returns Ok only if its seq was covered by a flush that completed Ok, and only
//!   while the writer is not poisoned; a waiter that returns an error finds the writer
//!   poisoned, and after a failure every later wait fails;
//! - `durable` never exceeds what completed flushes covered and never goes down (checked each
//!   time a test thread holds the lock);
//! - at most one flush is in flight (captured and not yet published) at a time;
//! - every thread returns (no lost wake-up), and without a failure every wait returns Ok;
//! - the paths a model is about were taken at least once (handoffs, flushes led by a woken
//!   waiter, failed handed-off flushes), counted over all executions.
//!
//! The checks are of safety and deadlock-freedom, not of promptness: a wake-up sent to the
//! wrong condition variable that only delays a waiter until a later flush passes.
//!
//! A control runs the model with a fake writer whose plans claim one record more than they
//! flush, and must fail: the checks catch a durable seq that no flush covered.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use applog::commit::{CommitLog, CommitPlan, Group, Primitives, State};
use applog::{Error, Result};
use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Loom's bound on preemptions per execution for the models too large to explore fully (three
/// appenders: about 90,000 executions, 10 s).
const PREEMPTIONS: usize = 3;

/// Loom's mutex and condition variables.
struct Loom;

impl Primitives for Loom {
    type Mutex<T> = Mutex<T>;
    type Guard<'a, T: 'a> = MutexGuard<'a, T>;
    type Condvar = Condvar;

    fn mutex<T>(value: T) -> Mutex<T> {
        Mutex::new(value)
    }

    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        mutex.lock().unwrap()
    }

    fn condvar() -> Condvar {
        Condvar::new()
    }

    fn wait<'a, T>(cv: &Condvar, guard: Self::Guard<'a, T>) -> Self::Guard<'a, T> {
        cv.wait(guard).unwrap()
    }

    fn wait_timeout<'a, T>(
        cv: &Condvar,
        guard: Self::Guard<'a, T>,
        _timeout: Duration,
    ) -> Self::Guard<'a, T> {
        // Loom has no time: a timed wait is a wait (the model runs without a timer).
        cv.wait(guard).unwrap()
    }

    fn notify_one(cv: &Condvar) {
        cv.notify_one();
    }

    fn notify_all(cv: &Condvar) {
        cv.notify_all();
    }

    fn yield_now() {
        loom::thread::yield_now();
    }
}

/// The fake writer.
struct FakeLog {
    /// The seq the next record gets.
    next: u64,
    /// Every record below this seq was covered by a flush that ran and was published Ok.
    flushed: u64,
    /// A plan was captured and not yet published.
    in_flight: bool,
    /// Flushes captured so far.
    captures: u32,
    /// The flush (by capture number) that fails.
    fail: Option<u32>,
    poisoned: bool,
    /// The control: plans claim one record more than they flush.
    over_claim: bool,
    /// The highest durable seq a test thread has seen.
    seen_durable: u64,
    /// What the model explored, over all executions.
    explored: std::sync::Arc<Explored>,
}

/// Counts over all the executions of one model (std atomics, outside loom's model), so that
/// the test can check that the paths it is about were explored at all.
#[derive(Default)]
struct Explored {
    executions: AtomicUsize,
    /// Flushes captured by the sync thread (handed off by a leader).
    handoffs: AtomicUsize,
    /// Flushes after the first that an appender led (a waiter woken by an earlier flush).
    second_leads: AtomicUsize,
    /// Flushes that failed.
    failures: AtomicUsize,
    /// Handed-off flushes that failed.
    failed_handoffs: AtomicUsize,
}

/// The name of the sync thread in the model.
const SYNC_THREAD: &str = "applog-sync";

struct FakePlan {
    /// What the plan claims to make durable.
    claims: u64,
    /// What it really flushes.
    covers: u64,
    fails: bool,
}

fn eio() -> Error {
    Error::Io {
        op: "could not sync segment",
        path: "model".into(),
        source: io::Error::from_raw_os_error(5),
    }
}

impl CommitLog for FakeLog {
    type Plan = FakePlan;

    fn check_poisoned(&self) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned {
                cause: "model flush failed".into(),
                kind: io::ErrorKind::Other,
                path: None,
            });
        }
        Ok(())
    }

    fn next_seq(&self) -> u64 {
        self.next
    }

    fn capture_sync(&mut self) -> Result<Option<FakePlan>> {
        self.check_poisoned()?;
        assert!(
            !self.in_flight,
            "a flush was captured while another one is in flight"
        );
        if self.next == self.flushed {
            return Ok(None);
        }
        let fails = self.fail == Some(self.captures);
        let by_sync_thread = loom::thread::current().name() == Some(SYNC_THREAD);
        if by_sync_thread {
            self.explored.handoffs.fetch_add(1, Ordering::Relaxed);
        } else if self.captures > 0 {
            self.explored.second_leads.fetch_add(1, Ordering::Relaxed);
        }
        if fails {
            self.explored.failures.fetch_add(1, Ordering::Relaxed);
            if by_sync_thread {
                self.explored
                    .failed_handoffs
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        self.captures += 1;
        self.in_flight = true;
        Ok(Some(FakePlan {
            claims: self.next + u64::from(self.over_claim),
            covers: self.next,
            fails,
        }))
    }

    fn publish_sync(&mut self, plan: FakePlan, outcome: Result<()>) -> Result<()> {
        assert!(
            self.in_flight,
            "a flush was published that was not captured"
        );
        self.in_flight = false;
        match outcome {
            Ok(()) => {
                self.flushed = self.flushed.max(plan.covers);
                Ok(())
            }
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }
}

impl CommitPlan for FakePlan {
    fn next_seq(&self) -> u64 {
        self.claims
    }

    fn run(&mut self) -> Result<()> {
        if self.fails {
            Err(eio())
        } else {
            Ok(())
        }
    }
}

type Model = Group<Loom, FakeLog>;

/// Checks what `durable` claims, each time a test thread holds the lock.
fn observe(st: &mut State<FakeLog>) {
    let durable = st.durable();
    assert!(
        durable <= st.w.flushed,
        "durable {durable} claims records that no completed flush covered (flushed up to {})",
        st.w.flushed
    );
    assert!(
        durable >= st.w.seen_durable,
        "durable went down from {} to {durable}",
        st.w.seen_durable
    );
    st.w.seen_durable = durable;
}

/// `rounds` times: appends one record and waits until it is durable; stops at the first
/// failed wait. Returns how many waits returned Ok.
fn appender(g: &Model, rounds: usize) -> usize {
    let mut ok = 0;
    for _ in 0..rounds {
        let mut st = g.lock();
        let seq = st.w.next;
        st.w.next += 1;
        observe(&mut st);
        match g.wait_until(st, seq + 1) {
            Ok(mut st) => {
                assert!(!st.w.poisoned, "a wait returned Ok on a poisoned writer");
                assert!(
                    seq < st.w.flushed,
                    "the wait for seq {seq} returned Ok, but no completed flush covered it \
                     (flushed up to {})",
                    st.w.flushed
                );
                assert!(seq < st.durable());
                observe(&mut st);
                ok += 1;
            }
            Err(e) => {
                let mut st = g.lock();
                assert!(st.w.poisoned, "a wait failed ({e}) but no flush failed");
                observe(&mut st);
                return ok;
            }
        }
    }
    ok
}

#[derive(Clone, Copy)]
struct Config {
    /// Appender threads (the model's main thread is one of them).
    appenders: usize,
    /// Records each appender appends and waits for, one at a time.
    rounds: usize,
    /// Loom's preemption bound; `None` explores every interleaving.
    preemptions: Option<usize>,
    /// The flush (by capture number) that fails.
    fail: Option<u32>,
    handoff_min_pending: u64,
    over_claim: bool,
}

fn model(config: Config) -> std::sync::Arc<Explored> {
    // One model at a time: loom maps a fresh stack for every thread of every execution, and
    // two models side by side spend their time contending in the kernel for that.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let explored = std::sync::Arc::new(Explored::default());
    let counts = explored.clone();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = config.preemptions;
    builder.check(move || {
        counts.executions.fetch_add(1, Ordering::Relaxed);
        let g: Arc<Model> = Arc::new(Group::new(
            FakeLog {
                next: 0,
                flushed: 0,
                in_flight: false,
                captures: 0,
                fail: config.fail,
                poisoned: false,
                over_claim: config.over_claim,
                seen_durable: 0,
                explored: counts.clone(),
            },
            config.handoff_min_pending,
        ));
        let sync = {
            let g = g.clone();
            loom::thread::Builder::new()
                .name(SYNC_THREAD.into())
                .spawn(move || g.run_sync_thread(None))
                .unwrap()
        };
        let others: Vec<_> = (1..config.appenders)
            .map(|_| {
                let g = g.clone();
                loom::thread::spawn(move || appender(&g, config.rounds))
            })
            .collect();
        let mut ok = appender(&g, config.rounds);
        for t in others {
            ok += t.join().unwrap();
        }
        let records = (config.appenders * config.rounds) as u64;
        g.stop();
        sync.join().unwrap();

        let mut st = g.lock();
        observe(&mut st);
        assert!(!st.w.in_flight, "a flush is still in flight");
        if config.fail.is_none() {
            assert_eq!(ok as u64, records, "a wait failed without a failed flush");
            assert_eq!(st.durable(), records);
        } else if st.w.poisoned {
            // Every later wait sees the poison, even for a seq that is durable.
            assert!(
                g.wait_until(st, 0).is_err(),
                "a poisoned writer let a wait pass"
            );
        } else {
            // The failing flush was never needed (fewer flushes covered every record).
            assert_eq!(ok as u64, records);
        }
    });
    eprintln!(
        "explored {} executions: {} handed-off flushes, {} flushes led by a woken waiter, {} failed flushes",
        explored.executions.load(Ordering::Relaxed),
        explored.handoffs.load(Ordering::Relaxed),
        explored.second_leads.load(Ordering::Relaxed),
        explored.failures.load(Ordering::Relaxed),
    );
    explored
}

fn count(n: &AtomicUsize) -> usize {
    n.load(Ordering::Relaxed)
}

#[test]
fn waiters_return_only_after_a_flush_covered_them_with_handoff() {
    let explored = model(Config {
        appenders: 2,
        rounds: 2,
        preemptions: None,
        fail: None,
        handoff_min_pending: 1,
        over_claim: false,
    });
    assert!(count(&explored.handoffs) > 0, "no handoff explored");
    assert!(count(&explored.second_leads) > 0, "no woken waiter led");
}

#[test]
fn waiters_return_only_after_a_flush_covered_them_without_handoff() {
    let explored = model(Config {
        appenders: 2,
        rounds: 2,
        preemptions: None,
        fail: None,
        handoff_min_pending: u64::MAX,
        over_claim: false,
    });
    assert_eq!(count(&explored.handoffs), 0);
    assert!(count(&explored.second_leads) > 0, "no woken waiter led");
}

/// Three waiters: a flush can leave two uncovered waiters, which the handoff (threshold 2)
/// must serve together, and waiters sleep on both condition variables at once.
#[test]
fn three_waiters_share_flushes_and_hand_off_to_the_sync_thread() {
    let explored = model(Config {
        appenders: 3,
        rounds: 1,
        preemptions: Some(PREEMPTIONS),
        fail: None,
        handoff_min_pending: 2,
        over_claim: false,
    });
    assert!(count(&explored.handoffs) > 0, "no handoff explored");
}

#[test]
fn a_failed_first_flush_poisons_every_waiter() {
    let explored = model(Config {
        appenders: 2,
        rounds: 2,
        preemptions: None,
        fail: Some(0),
        handoff_min_pending: 1,
        over_claim: false,
    });
    assert_eq!(count(&explored.failures), count(&explored.executions));
}

/// The second or third flush fails: some waiters may have returned Ok before, the others
/// must see the poison, whether a leader or the sync thread (after a handoff) ran the flush
/// that failed.
#[test]
fn a_failed_second_flush_poisons_the_waiters_it_left_and_the_sync_thread() {
    failed_later_flush(2);
}

#[test]
fn a_failed_third_flush_poisons_the_waiters_it_left_and_the_sync_thread() {
    failed_later_flush(3);
}

/// Flush `fail` (counted from 1) fails, in every interleaving of two appenders with two
/// records each; some handed-off flush is among the failures.
fn failed_later_flush(fail: u32) {
    let explored = model(Config {
        appenders: 2,
        rounds: 2,
        preemptions: None,
        fail: Some(fail - 1),
        handoff_min_pending: 1,
        over_claim: false,
    });
    assert!(count(&explored.failures) > 0, "flush {fail} never failed");
    assert!(
        count(&explored.failed_handoffs) > 0,
        "no handed-off flush failed when flush {fail} did"
    );
}

/// The model has teeth: with plans that claim one record more than they flush, loom finds an
/// interleaving in which `durable` (or a waiter) claims a record that no flush covered.
#[test]
#[should_panic(expected = "no completed flush covered")]
fn a_plan_that_claims_more_than_it_flushed_is_caught() {
    model(Config {
        appenders: 2,
        rounds: 1,
        preemptions: Some(PREEMPTIONS),
        fail: None,
        handoff_min_pending: 1,
        over_claim: true,
    });
}
