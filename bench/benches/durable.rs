//! Durable appends per second of 128 B records from 1, 4, 16 and 64 threads, side by side:
//!
//! - `applog`: one [`applog::SharedWriter`] (default options: 1000-page segments) shared by
//!   every thread; each thread calls `append_durable` (group commit: concurrent waiters share
//!   msync calls).
//! - `applog_grow16`: the same with `Options::grow_pages(16)`: the segment file grows 16 pages
//!   at a time, so that far fewer flushes also have to write the inode (the file size).
//! - `okaywal`: one `okaywal::WriteAheadLog` (default configuration; its checkpointer does
//!   nothing) shared by every thread; each thread writes one entry of one 128 B chunk and
//!   `commit`s it (okaywal's durable commit, which batches concurrent commits too).
//! - `write_fdatasync`: one file opened with `O_APPEND`, shared by every thread; each thread
//!   `write`s one frame (8-byte header + 128 B payload) and calls `fdatasync`, the naive way
//!   (every write extends the file, so every fdatasync also writes the inode).
//!
//! Criterion's time per iteration is wall time divided by records: its throughput line is
//! records per second over all threads. Each iteration batch starts all threads at a barrier
//! (threads are spawned per batch, outside the timed region) and ends when the last finishes.
//! After each group, the bench prints the p50 and p99 latency of single calls, over every
//! call it made (criterion's warm-up included).
//!
//! Warm-up: criterion's own (1 s by default) runs the exact workload on the same log that the
//! measurement then continues, so files exist, and are past their first segment, before
//! anything is timed.
//!
//! ```text
//! cargo bench -p applog-bench --bench durable -- --warm-up-time 1 --measurement-time 3
//! cargo bench -p applog-bench --bench durable -- durable/16       # one thread count
//! ```
//!
//! Files go to `$APPLOG_BENCH_DIR` when set, else to cargo's per-target temporary directory
//! (`target/tmp`): keep them on the file system under test (the numbers measure its device
//! flush), never tmpfs. They are removed at the end.

#[path = "support/mod.rs"]
mod support;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use applog::{Options, SharedWriter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use okaywal::WriteAheadLog;

const RECORD: usize = 128;
const THREADS: [usize; 4] = [1, 4, 16, 64];

fn bench_root() -> PathBuf {
    let root = match std::env::var_os("APPLOG_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => option_env!("CARGO_TARGET_TMPDIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from),
    };
    std::fs::create_dir_all(&root).expect("create the bench directory");
    root
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = bench_root().join(format!("durable-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn report(name: &str, lat: &Mutex<Vec<u64>>) {
    let mut v = std::mem::take(&mut *lat.lock().unwrap());
    if v.is_empty() {
        return;
    }
    v.sort_unstable();
    let p = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "{name}: latency of one durable append over {} calls: p50 {:.0} us, p99 {:.0} us",
        v.len(),
        p(0.5),
        p(0.99)
    );
    // For the report command (bench/benches/support/mod.rs), in ns.
    support::record(name, "p50_ns", p(0.5) * 1e3);
    support::record(name, "p99_ns", p(0.99) * 1e3);
    support::record(name, "samples", v.len() as f64);
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + payload.len());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

fn durable(c: &mut Criterion) {
    let payload = vec![0xA5u8; RECORD];
    let mut dirs: Vec<PathBuf> = Vec::new();
    for threads in THREADS {
        let mut group = c.benchmark_group(format!("durable/{threads}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(10);
        let lat = Mutex::new(Vec::new());

        for (name, opts) in [
            ("applog", Options::new()),
            ("applog_grow16", Options::new().grow_pages(16)),
        ] {
            let dir = fresh_dir(&format!("{name}-{threads}"));
            let log = SharedWriter::open(&dir, opts).expect("open applog");
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    support::run_threads(threads, iters, &lat, || {
                        log.append_durable(&payload).expect("append_durable");
                    })
                })
            });
            let syncs = log.sync_count();
            let records = log.next_seq();
            drop(log);
            dirs.push(dir);
            report(&format!("durable/{threads}/{name}"), &lat);
            if records == 0 {
                continue; // filtered out
            }
            println!(
                "durable/{threads}/{name}: {records} records, {syncs} flushes ({:.1} records per flush)",
                records as f64 / syncs.max(1) as f64
            );
        }

        let dir = fresh_dir(&format!("okaywal-{threads}"));
        let wal = WriteAheadLog::recover(&dir, support::NoCheckpoint).expect("open okaywal");
        group.bench_function("okaywal", |b| {
            b.iter_custom(|iters| {
                support::run_threads(threads, iters, &lat, || {
                    let mut entry = wal.begin_entry().expect("begin_entry");
                    entry.write_chunk(&payload).expect("write_chunk");
                    entry.commit().expect("commit");
                })
            })
        });
        wal.shutdown().expect("okaywal shutdown");
        dirs.push(dir);
        report(&format!("durable/{threads}/okaywal"), &lat);

        let dir = fresh_dir(&format!("fdatasync-{threads}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let file = Arc::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("log"))
                .expect("open file"),
        );
        let framed = frame(&payload);
        group.bench_function("write_fdatasync", |b| {
            b.iter_custom(|iters| {
                support::run_threads(threads, iters, &lat, || {
                    let mut f: &File = &file;
                    f.write_all(&framed).expect("write");
                    f.sync_data().expect("fdatasync");
                })
            })
        });
        drop(file);
        dirs.push(dir);
        report(&format!("durable/{threads}/write_fdatasync"), &lat);
        group.finish();
    }
    for d in dirs {
        remove(&d);
    }
}

fn remove(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        eprintln!("could not remove {}: {e}", dir.display());
    }
}

criterion_group!(benches, durable);
criterion_main!(benches);
