//! Async tailing (the `tokio` feature): many tailers on one waiter thread, idle cost,
//! cancellation, durable-only reading.
//!
//! Pass criteria: 1,000 async tailers in one process each receive every record in order,
//! byte for byte, across rollovers, while the process's thread count stays small (asserted and
//! printed); 1,000 idle tailers use under 0.5% of a core (process CPU time over 1.5 s of
//! idleness, printed) and all wake for the next record; `next()` and `durable()` futures
//! dropped at random points lose nothing and leave nothing registered; a durable-only tailer
//! yields a record only after a checkpoint covered it, and is woken by that checkpoint.
#![cfg(feature = "tokio")]

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use applog::tokio::{AsyncTailer, AsyncWriter};
use applog::{Options, Writer};
use common::{payload, serial};

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

fn len_of(seq: u64) -> usize {
    (seq as usize * 37) % 400
}

/// Spawns `n` tailers from seq 0, each checking `count` records; returns their handles.
fn spawn_tailers(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    n: usize,
    count: u64,
    done: &Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|i| {
            let mut t = AsyncTailer::open_blocking(dir, 0).unwrap();
            let done = done.clone();
            rt.spawn(async move {
                let mut expect = 0;
                while expect < count {
                    let batch = if i % 2 == 0 {
                        vec![t.next().await.unwrap()]
                    } else {
                        t.next_batch(64).await.unwrap()
                    };
                    assert!(!batch.is_empty());
                    for r in batch {
                        assert_eq!(r.seq(), expect, "tailer {i}");
                        assert_eq!(r.data(), &payload(expect, len_of(expect))[..], "tailer {i}");
                        expect += 1;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect()
}

#[test]
fn a_thousand_tailers_get_every_record_in_order_on_few_threads() {
    let _serial = serial();
    const TAILERS: usize = 1000;
    const N: u64 = 200;
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(4)).unwrap();
    let rt = runtime();
    let done = Arc::new(AtomicUsize::new(0));
    let tasks = spawn_tailers(&rt, d.path(), TAILERS, N, &done);
    let mut max_threads = threads();
    // Bursts with pauses: the tailers go to sleep between them and must be woken.
    for seq in 0..N {
        assert_eq!(w.append(&payload(seq, len_of(seq))).unwrap(), seq);
        if seq % 10 == 9 {
            std::thread::sleep(Duration::from_millis(3));
            max_threads = max_threads.max(threads());
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while done.load(Ordering::Relaxed) < TAILERS {
        assert!(Instant::now() < deadline, "tailers did not finish");
        max_threads = max_threads.max(threads());
        std::thread::sleep(Duration::from_millis(5));
    }
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let segments = std::fs::read_dir(d.path()).unwrap().count();
    println!("{TAILERS} async tailers x {N} records over {segments} files: at most {max_threads} threads in the process");
    assert!(segments > 3, "rollovers happened");
    // The test harness, 2 runtime workers, the waiter thread, and a few of the runtime's.
    assert!(
        max_threads <= 12,
        "{max_threads} threads for {TAILERS} tailers"
    );
    assert_eq!(applog::tokio::waiting_tasks(), 0);
}

#[test]
fn idle_tailers_use_almost_no_cpu_and_all_wake() {
    let _serial = serial();
    const TAILERS: usize = 1000;
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::default()).unwrap();
    w.append(&payload(0, len_of(0))).unwrap();
    let rt = runtime();
    let done = Arc::new(AtomicUsize::new(0));
    let tasks = spawn_tailers(&rt, d.path(), TAILERS, 2, &done);
    // Every tailer reads record 0, then waits for record 1.
    let deadline = Instant::now() + Duration::from_secs(30);
    while applog::tokio::waiting_tasks() < TAILERS {
        assert!(Instant::now() < deadline, "tailers did not all wait");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (cpu0, t0) = (cpu_time(), Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let (cpu, wall) = (cpu_time() - cpu0, t0.elapsed());
    let share = cpu.as_secs_f64() / wall.as_secs_f64();
    let n_threads = threads();
    println!(
        "{TAILERS} idle async tailers: {:.3} ms of CPU over {:.2} s ({:.3}% of a core), {n_threads} threads",
        cpu.as_secs_f64() * 1e3,
        wall.as_secs_f64(),
        share * 100.0
    );
    assert!(
        share < 0.005,
        "idle tailers used {:.3}% of a core",
        share * 100.0
    );
    assert_eq!(applog::tokio::waiting_tasks(), TAILERS, "still all waiting");
    // One append wakes them all.
    w.append(&payload(1, len_of(1))).unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await
        .expect("every idle tailer woke");
    });
    assert_eq!(done.load(Ordering::Relaxed), TAILERS);
    assert_eq!(applog::tokio::waiting_tasks(), 0);
}

#[test]
fn dropped_next_futures_lose_nothing_and_leave_nothing_waiting() {
    let _serial = serial();
    const N: u64 = 3000;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_owned();
    let mut w = Writer::open(&dir, Options::new().segment_pages(4)).unwrap();
    let rt = runtime();
    let mut tailers: Vec<_> = (0..4)
        .map(|_| AsyncTailer::open_blocking(&dir, 0).unwrap())
        .collect();
    let writer = std::thread::spawn(move || {
        let mut x = 12345u64;
        for seq in 0..N {
            w.append(&payload(seq, len_of(seq))).unwrap();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 16 == 0 {
                std::thread::sleep(Duration::from_micros(x % 700));
            }
        }
    });
    let cancelled = rt.block_on(async {
        let tasks: Vec<_> = tailers
            .drain(..)
            .enumerate()
            .map(|(i, mut t)| {
                tokio::spawn(async move {
                    let mut x = 0x9E37_79B9u64 + i as u64;
                    let mut cancelled = 0u64;
                    let mut expect = 0;
                    while expect < N {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let got = if x % 2 == 0 {
                            let limit = Duration::from_micros(x % 300);
                            tokio::time::timeout(limit, t.next()).await.ok()
                        } else {
                            tokio::select! {
                                r = t.next() => Some(r),
                                () = tokio::time::sleep(Duration::from_micros(x % 200)) => None,
                            }
                        };
                        match got {
                            Some(r) => {
                                let r = r.unwrap();
                                assert_eq!(r.seq(), expect);
                                assert_eq!(r.data(), &payload(expect, len_of(expect))[..]);
                                expect += 1;
                            }
                            None => cancelled += 1,
                        }
                    }
                    cancelled
                })
            })
            .collect();
        let mut cancelled = 0;
        for t in tasks {
            cancelled += t.await.unwrap();
        }
        cancelled
    });
    writer.join().unwrap();
    println!("{cancelled} next() futures dropped before they completed");
    assert!(cancelled > 0, "no future was cancelled");
    assert_eq!(
        applog::tokio::waiting_tasks(),
        0,
        "a dropped future left a registration"
    );
}

#[test]
fn dropped_durable_futures_lose_nothing() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let log = AsyncWriter::open(d.path(), Options::default())
            .await
            .unwrap();
        let tasks: Vec<_> = (0..16u64)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut cancelled = 0;
                    for j in 0..20u64 {
                        let seq = log.append(&payload(i * 100 + j, 64)).unwrap();
                        let limit = Duration::from_micros((i * 31 + j * 17) % 400);
                        if tokio::time::timeout(limit, log.durable(seq)).await.is_err() {
                            cancelled += 1;
                            // Asked again, it still resolves.
                            log.durable(seq).await.unwrap();
                        }
                        assert!(log.durable_seq() > seq);
                    }
                    cancelled
                })
            })
            .collect();
        let mut cancelled = 0;
        for t in tasks {
            cancelled += t.await.unwrap();
        }
        println!("{cancelled} durable() futures dropped before they completed");
        assert_eq!(log.durable_seq(), 320);
        assert_eq!(applog::durable_seq(d.path()).unwrap(), 320);
    });
}

#[test]
fn durable_only_tailers_wait_for_the_checkpoint() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::default()).unwrap();
    for seq in 0..3 {
        w.append(&payload(seq, 10)).unwrap();
    }
    assert_eq!(applog::durable_seq(d.path()).unwrap(), 0);
    let reader = applog::Reader::open(d.path()).unwrap();
    assert_eq!(reader.durable_seq().unwrap(), 0);
    let mut blocking = applog::Tailer::open(d.path(), 0).unwrap().durable_only();
    assert!(blocking
        .next_timeout(Duration::from_millis(20))
        .unwrap()
        .is_none());
    let rt = runtime();
    rt.block_on(async {
        let mut t = AsyncTailer::open(d.path(), 0).await.unwrap().durable_only();
        let mut all = AsyncTailer::open(d.path(), 0).await.unwrap();
        assert_eq!(
            all.next().await.unwrap().seq(),
            0,
            "appended records are there"
        );
        assert!(t.try_next().unwrap().is_none());
        let waiting = tokio::spawn(async move {
            let r = t.next().await.unwrap();
            (r.seq(), t)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "a record was yielded before it was durable"
        );
        let started = Instant::now();
        // The checkpoint wakes the tailer (well before the waiter's 100 ms look).
        w.sync().unwrap();
        let (seq, mut t) = waiting.await.unwrap();
        println!(
            "durable-only tailer woke {:?} after the sync",
            started.elapsed()
        );
        assert_eq!(seq, 0);
        assert_eq!(t.next().await.unwrap().seq(), 1);
        assert_eq!(t.next().await.unwrap().seq(), 2);
        w.append(&payload(3, 10)).unwrap();
        assert!(tokio::time::timeout(Duration::from_millis(30), t.next())
            .await
            .is_err());
    });
    assert_eq!(blocking.next().unwrap().seq(), 0);
    assert_eq!(applog::durable_seq(d.path()).unwrap(), 3);
    assert_eq!(reader.durable_seq().unwrap(), 3);
    w.sync().unwrap();
    assert_eq!(applog::durable_seq(d.path()).unwrap(), 4);
}

/// A batch that meets damage after good records hands out the good records, and the error
/// with the next read: the reader has moved past them, so an error in their place would lose
/// them for good.
#[test]
fn a_batch_that_meets_damage_keeps_the_records_before_it() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), Options::new()).unwrap();
    for seq in 0..20 {
        w.append(&payload(seq, 100)).unwrap();
    }
    w.close().unwrap();
    // Record 10's payload, inside synced data: corruption, reported, never returned.
    let frame = common::frame_len(100);
    common::flip(
        &common::seg_path(dir.path(), 0),
        common::HEADER + 10 * frame + 8,
        0x01,
    );
    runtime().block_on(async {
        let mut t = AsyncTailer::open(dir.path(), 0).await.unwrap();
        let batch = t.next_batch(100).await.unwrap();
        let seqs: Vec<u64> = batch.iter().map(|r| r.seq()).collect();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>());
        match t.next_batch(100).await {
            Err(applog::Error::Corrupt { offset, .. }) => {
                assert_eq!(offset, common::HEADER + 10 * frame);
            }
            other => panic!("{other:?}"),
        }
    });
}
