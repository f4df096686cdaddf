//! Raft log entries made durable through applog-raft's `LogStore` (openraft 0.9's log
//! storage on applog), from 1 and 16 concurrent proposers, beside okaywal's durable commit
//! and `write` + `fdatasync` of the same bytes, in one run.
//!
//! `raft/<proposers>/<variant>`; criterion's time per iteration is wall time divided by
//! entries, so its throughput line is entries per second over all proposers. After each
//! variant the bench prints the p50 and p99 latency of one proposal (append to flushed).
//!
//! - `applog_raft`: one `LogStore` behind an async mutex, on a two-thread tokio runtime; each
//!   proposer task takes the lock, appends one entry (a `Set` of a 128-byte value, encoded
//!   with postcard: 150 bytes) with `append_entries` (what openraft's `append` calls), lets
//!   go of the lock and awaits its flush callback. Each append starts a flush, or joins the
//!   next one while a flush runs (applog's group commit); the store's flush thread calls the
//!   callbacks in order as their entries become durable. The bench prints how many entries
//!   each flush carried.
//! - `okaywal`: one okaywal entry of one chunk of the same encoded bytes per proposal,
//!   `commit`ted, from that many threads (okaywal batches concurrent commits).
//! - `write_fdatasync`: one `O_APPEND` file shared by that many threads; each `write`s the
//!   same bytes framed (length + CRC) and calls `fdatasync`.
//! - `raft_engine`: TiKV's Raft log (raft-engine 0.4, default configuration), one entry of
//!   the same encoded bytes (a protobuf `BytesValue`) per proposal, written with `sync`;
//!   each thread appends to a Raft group (region) of its own, as TiKV's regions do, and
//!   raft-engine groups concurrent synced writes into one.
//!
//! ```text
//! cargo bench -p applog-bench --bench raft -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Files go to `$APPLOG_BENCH_DIR` when set, else to `target/tmp` (see `support`): keep them
//! on the file system under test, never tmpfs.

#[path = "support/mod.rs"]
mod support;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use applog_raft::kv::{Request, TypeConfig};
use applog_raft::LogStore;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use openraft::{Entry, EntryPayload};
use protobuf::well_known_types::BytesValue;

const PROPOSERS: [usize; 2] = [1, 16];
const VALUE: usize = 128;

fn entry(index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: openraft::testing::log_id(1, 1, index),
        payload: EntryPayload::Normal(Request::Set {
            key: format!("k{:08}", index % 100_000_000),
            value: "v".repeat(VALUE),
        }),
    }
}

/// The bytes one entry takes in the log (what the peers write for it).
fn encoded() -> Vec<u8> {
    postcard::to_stdvec(&entry(0)).expect("encode")
}

fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("applog-raft-{name}-"))
        .tempdir_in(support::bench_root())
        .expect("temporary directory")
}

/// The same over `proposers` tokio tasks, each appending through the shared store.
fn run_proposers(
    rt: &tokio::runtime::Runtime,
    store: &Arc<tokio::sync::Mutex<LogStore<TypeConfig>>>,
    proposers: usize,
    iters: u64,
    lat: &Mutex<Vec<u64>>,
) -> Duration {
    rt.block_on(async {
        let start = Arc::new(tokio::sync::Barrier::new(proposers + 1));
        let per = iters / proposers as u64;
        let extra = iters % proposers as u64;
        let tasks: Vec<_> = (0..proposers as u64)
            .map(|t| {
                let (start, store) = (Arc::clone(&start), Arc::clone(store));
                tokio::spawn(async move {
                    let n = per + u64::from(t < extra);
                    let mut mine = Vec::with_capacity(n as usize);
                    start.wait().await;
                    for _ in 0..n {
                        let t0 = Instant::now();
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        {
                            let mut store = store.lock().await;
                            let index = store.log().next_seq();
                            store
                                .append_entries([entry(index)], move |r| drop(tx.send(r)))
                                .await
                                .expect("append");
                        }
                        rx.await.expect("callback").expect("flushed");
                        mine.push(t0.elapsed().as_nanos() as u64);
                    }
                    mine
                })
            })
            .collect();
        start.wait().await;
        let t0 = Instant::now();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.expect("proposer"));
        }
        let elapsed = t0.elapsed();
        lat.lock().expect("lock").extend(all);
        elapsed
    })
}

/// raft-engine's view of an entry: a protobuf message whose first 8 bytes are its index.
struct RawEntry;

impl raft_engine::MessageExt for RawEntry {
    type Entry = BytesValue;

    fn index(e: &BytesValue) -> u64 {
        e.value
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }
}

static NEXT_REGION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// This thread's Raft group in raft-engine, and the index of its next entry.
    static REGION: (u64, std::cell::Cell<u64>) = (
        NEXT_REGION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::cell::Cell::new(1),
    );
}

/// One synced raft-engine write of one entry holding `bytes`, in this thread's region.
fn raft_engine_append(engine: &raft_engine::Engine, bytes: &[u8]) {
    REGION.with(|(region, next)| {
        let index = next.get();
        next.set(index + 1);
        let mut value = index.to_le_bytes().to_vec();
        value.extend_from_slice(bytes);
        let entry = BytesValue {
            value,
            ..Default::default()
        };
        let mut batch = raft_engine::LogBatch::default();
        batch
            .add_entries::<RawEntry>(*region, &[entry])
            .expect("add_entries");
        engine.write(&mut batch, true).expect("raft-engine write");
    });
}

fn report(name: &str, lat: &Mutex<Vec<u64>>) {
    let mut v = std::mem::take(&mut *lat.lock().expect("lock"));
    support::report_latency(name, &mut v);
}

fn raft(c: &mut Criterion) {
    let bytes = encoded();
    let mut framed = Vec::with_capacity(8 + bytes.len());
    framed.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    framed.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
    framed.extend_from_slice(&bytes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut dirs = Vec::new();
    for proposers in PROPOSERS {
        let mut group = c.benchmark_group(format!("raft/{proposers}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(10);
        let lat = Mutex::new(Vec::new());

        let dir = temp_dir("store");
        let store = rt
            .block_on(LogStore::<TypeConfig>::open(
                dir.path().join("log"),
                applog::Options::new(),
            ))
            .expect("open store");
        let store = Arc::new(tokio::sync::Mutex::new(store));
        group.bench_function("applog_raft", |b| {
            b.iter_custom(|iters| run_proposers(&rt, &store, proposers, iters, &lat))
        });
        let store = Arc::into_inner(store).expect("one handle").into_inner();
        let (entries, flushes) = (store.log().next_seq(), store.log().shared().sync_count());
        rt.block_on(store.close()).expect("close");
        report(&format!("raft/{proposers}/applog_raft"), &lat);
        if entries > 0 {
            println!(
                "raft/{proposers}/applog_raft: {entries} entries, {flushes} flushes ({:.1} entries per flush)",
                entries as f64 / flushes.max(1) as f64
            );
        }
        dirs.push(dir);

        let dir = temp_dir("okaywal");
        let wal =
            okaywal::WriteAheadLog::recover(dir.path().join("okaywal"), support::NoCheckpoint)
                .expect("open okaywal");
        group.bench_function("okaywal", |b| {
            b.iter_custom(|iters| {
                support::run_threads(proposers, iters, &lat, || {
                    let mut entry = wal.begin_entry().expect("begin_entry");
                    entry.write_chunk(&bytes).expect("write_chunk");
                    entry.commit().expect("commit");
                })
            })
        });
        wal.shutdown().expect("okaywal shutdown");
        report(&format!("raft/{proposers}/okaywal"), &lat);
        dirs.push(dir);

        let dir = temp_dir("fdatasync");
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.path().join("log"))
            .expect("open file");
        group.bench_function("write_fdatasync", |b| {
            b.iter_custom(|iters| {
                support::run_threads(proposers, iters, &lat, || {
                    let mut f: &File = &file;
                    f.write_all(&framed).expect("write");
                    f.sync_data().expect("fdatasync");
                })
            })
        });
        drop(file);
        report(&format!("raft/{proposers}/write_fdatasync"), &lat);
        dirs.push(dir);

        let dir = temp_dir("raft-engine");
        let engine = raft_engine::Engine::open(raft_engine::Config {
            dir: dir.path().join("engine").display().to_string(),
            ..Default::default()
        })
        .expect("open raft-engine");
        group.bench_function("raft_engine", |b| {
            b.iter_custom(|iters| {
                support::run_threads(proposers, iters, &lat, || {
                    raft_engine_append(&engine, &bytes)
                })
            })
        });
        drop(engine);
        report(&format!("raft/{proposers}/raft_engine"), &lat);
        dirs.push(dir);
        group.finish();
    }
    drop(dirs);
}

criterion_group!(benches, raft);
criterion_main!(benches);
