//! The async face against the blocking one, measured in the same run:
//!
//! - `async_tail/throughput/{tailer,async}`: a writer thread appends N 128 B records without
//!   pausing; a blocking `Tailer` (its own thread) or an `AsyncTailer` (a task on a
//!   current-thread runtime in its own thread) reads all N. Elements per second.
//! - one-way latency (printed after the groups, p50/p99, also in the results file): the writer
//!   sends one 128 B record every 200 µs (busy-waiting in between) carrying its send time; the
//!   tailer, asleep in between (futex: the blocking tailer on the wake word, the async one
//!   through the process's waiter thread and the runtime), takes the time it has the record.
//! - `async_durable/64/{threads,tasks}`: durable appends of 128 B from 64 threads calling
//!   `SharedWriter::append_durable`, against 64 tasks on a 2-thread runtime calling
//!   `AsyncWriter::append` + `durable`. Elements per second.
//!
//! Writer and tailer run in one process (in separate threads): the wake-ups cross the same
//! futex on the shared file mapping as across processes. Logs go to `bench_root()`.
//! Run: `cargo bench -p applog-bench --bench async_tail`.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use applog::tokio::{AsyncTailer, AsyncWriter};
use applog::{Options, SharedWriter, Tailer, Writer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const MSG: usize = 128;
const N: u64 = 100_000;

fn fresh_dir(name: &str) -> PathBuf {
    let dir = support::bench_root().join(format!("async-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn opts() -> Options {
    Options::new().segment_pages(16 * 1024)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Reads `n` records with the chosen tailer in its own thread while this thread appends them;
/// returns the time until the tailer had them all.
fn pass(kind: &str, n: u64) -> Duration {
    let dir = fresh_dir(kind);
    let mut w = Writer::open(&dir, opts()).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let d = dir.clone();
    let reader = match kind {
        "tailer" => std::thread::spawn(move || {
            let mut t = Tailer::open(&d, 0).unwrap();
            ready_tx.send(()).unwrap();
            for _ in 0..n {
                std::hint::black_box(t.next().unwrap());
            }
            Instant::now()
        }),
        _ => std::thread::spawn(move || {
            current_thread().block_on(async {
                let mut t = AsyncTailer::open_blocking(&d, 0).unwrap();
                ready_tx.send(()).unwrap();
                let mut got = 0;
                while got < n {
                    got += t.next_batch(256).await.unwrap().len() as u64;
                }
                Instant::now()
            })
        }),
    };
    ready_rx.recv().unwrap();
    let rec = [7u8; MSG];
    let start = Instant::now();
    for _ in 0..n {
        w.append(&rec).unwrap();
    }
    let end = reader.join().unwrap();
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
    end - start
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("async_tail/throughput");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    for kind in ["tailer", "async"] {
        g.bench_function(kind, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| pass(kind, N)).sum());
        });
    }
    g.finish();
}

fn now_ns(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64
}

/// One-way latencies (ns) of `count` records sent every `gap`.
fn latencies(kind: &str, count: usize, gap: Duration) -> Vec<u64> {
    let dir = fresh_dir(&format!("lat-{kind}"));
    let mut w = Writer::open(&dir, opts()).unwrap();
    let epoch = Instant::now();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let d = dir.clone();
    let n = count as u64;
    let reader = match kind {
        "tailer" => std::thread::spawn(move || {
            let mut t = Tailer::open(&d, 0).unwrap();
            ready_tx.send(()).unwrap();
            (0..n)
                .map(|_| {
                    let r = t.next().unwrap();
                    let sent = u64::from_le_bytes(r.data()[..8].try_into().unwrap());
                    now_ns(epoch) - sent
                })
                .collect::<Vec<_>>()
        }),
        _ => std::thread::spawn(move || {
            current_thread().block_on(async {
                let mut t = AsyncTailer::open_blocking(&d, 0).unwrap();
                ready_tx.send(()).unwrap();
                let mut out = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    let r = t.next().await.unwrap();
                    let sent = u64::from_le_bytes(r.data()[..8].try_into().unwrap());
                    out.push(now_ns(epoch) - sent);
                }
                out
            })
        }),
    };
    ready_rx.recv().unwrap();
    let mut rec = [0u8; MSG];
    for _ in 0..count {
        let until = Instant::now() + gap;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        rec[..8].copy_from_slice(&now_ns(epoch).to_le_bytes());
        w.append(&rec).unwrap();
    }
    let mut lat = reader.join().unwrap();
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
    lat.sort_unstable();
    lat
}

fn latency_report() {
    let mut p50 = Vec::new();
    for kind in ["tailer", "async"] {
        let lat = latencies(kind, 5_000, Duration::from_micros(200));
        let (a, b) = (support::quantile(&lat, 0.5), support::quantile(&lat, 0.99));
        println!(
            "async_tail/latency/{kind}: one-way p50 {:.1} us, p99 {:.1} us",
            a as f64 / 1e3,
            b as f64 / 1e3
        );
        support::record(&format!("async_tail/latency/{kind}"), "p50_ns", a as f64);
        support::record(&format!("async_tail/latency/{kind}"), "p99_ns", b as f64);
        p50.push(a);
    }
    println!(
        "async_tail/latency: async p50 - tailer p50 = {:.1} us",
        (p50[1] as f64 - p50[0] as f64) / 1e3
    );
}

fn durable(c: &mut Criterion) {
    const WORKERS: u64 = 64;
    let mut g = c.benchmark_group("async_durable/64");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    let rec = [5u8; MSG];
    g.bench_function("threads", |b| {
        let dir = fresh_dir("durable-threads");
        let log = SharedWriter::open(&dir, opts()).unwrap();
        b.iter_custom(|iters| {
            let per = iters.div_ceil(WORKERS);
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..WORKERS {
                    let log = &log;
                    s.spawn(move || {
                        for _ in 0..per {
                            log.append_durable(&rec).unwrap();
                        }
                    });
                }
            });
            start
                .elapsed()
                .mul_f64(iters as f64 / (per * WORKERS) as f64)
        });
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    });
    g.bench_function("tasks", |b| {
        let dir = fresh_dir("durable-tasks");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let log = rt.block_on(AsyncWriter::open(&dir, opts())).unwrap();
        b.iter_custom(|iters| {
            let per = iters.div_ceil(WORKERS);
            let start = Instant::now();
            rt.block_on(async {
                let tasks: Vec<_> = (0..WORKERS)
                    .map(|_| {
                        let log = log.clone();
                        tokio::spawn(async move {
                            for _ in 0..per {
                                let seq = log.append(&rec).unwrap();
                                log.durable(seq).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            });
            start
                .elapsed()
                .mul_f64(iters as f64 / (per * WORKERS) as f64)
        });
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    throughput(c);
    latency_report();
    durable(c);
}

criterion_group!(async_benches, benches);
criterion_main!(async_benches);
