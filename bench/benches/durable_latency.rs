//! Latency of one durable append (the record is on disk when the call returns), one thread,
//! against writing and syncing the same frame with plain system calls, measured in one run.
//!
//! `durable_latency/<size>/<variant>` (128 B and 4 KiB records; criterion's time is the mean
//! per durable append). Each call is also timed on its own, and p50, p99 and p99.9 are printed
//! (and recorded for the report command, see `bench/benches/support/mod.rs`).
//! - `applog`: `Writer::append` then `Writer::sync` (what `SyncPolicy::Always` does): the
//!   frame is copied into the mapping, then msync(MS_SYNC) of the dirty page(s).
//! - `applog_grow16`: the same with `Options::grow_pages(16)` (fewer, larger growth steps).
//! - `pwrite_fdatasync`: the same frame (8-byte header + payload, padded to 8) `pwrite` at
//!   the next offset of a file whose blocks were written (zeros) before the timing, then
//!   `fdatasync`: the best case of a write()-based log, no metadata to write.
//! - `write_fdatasync_extend`: `write` to the end of an `O_APPEND` file, then `fdatasync`:
//!   every sync also writes the new file size.
//! - `okaywal`: one okaywal entry of one chunk per record, `commit`ted (okaywal's durable
//!   commit).
//!
//! After each variant the bench also prints the bytes written to the block device per durable
//! append (from `/sys/dev/block/<dev>/stat`, so run it on a quiet machine), which shows the
//! write amplification a format or growth change brings.
//!
//! Group commit (many threads sharing syncs) is measured by `bench/benches/durable.rs`.
//! Run: `cargo bench -p applog-bench --bench durable_latency` (a minute or so; add
//! `-- --warm-up-time 1 --measurement-time 2` to shorten).

#[path = "support/mod.rs"]
mod support;

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use applog::{Options, Writer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZES: [(usize, &str); 2] = [(128, "128B"), (4096, "4KiB")];
/// The pre-written file of `pwrite_fdatasync` (reused from its start when full).
const PREWRITTEN: u64 = 64 << 20;

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("applog-durable-")
        .tempdir_in(support::bench_root())
        .expect("temporary directory")
}

fn frame(payload: &[u8], seq: u64) -> Vec<u8> {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    let mut f = Vec::with_capacity(8 + payload.len().next_multiple_of(8));
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(&h.finalize().to_le_bytes());
    f.extend_from_slice(payload);
    f.resize(8 + payload.len().next_multiple_of(8), 0);
    f
}

/// Runs `op` `iters` times, timing each call; returns the total and keeps every sample.
fn timed(iters: u64, samples: &mut Vec<u64>, mut op: impl FnMut()) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        op();
        let d = start.elapsed();
        samples.push(d.as_nanos() as u64);
        total += d;
    }
    total
}

fn prewritten_file(path: &PathBuf) -> File {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .expect("create");
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..PREWRITTEN >> 20 {
        f.write_all(&zeros).expect("pre-write");
    }
    f.sync_all().expect("sync");
    f
}

fn benches(c: &mut Criterion) {
    let mut dirs = Vec::new();
    for (size, name) in SIZES {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let mut group = c.benchmark_group(format!("durable_latency/{name}"));
        group.throughput(Throughput::Elements(1));

        for (variant, opts) in [
            ("applog", Options::new()),
            ("applog_grow16", Options::new().grow_pages(16)),
        ] {
            let dir = temp_dir();
            let mut w = Writer::open(dir.path().join("log"), opts).expect("open applog");
            let mut samples = Vec::new();
            let mut device = support::DeviceBytes::default();
            group.bench_function(variant, |b| {
                b.iter_custom(|iters| {
                    device.measure(dir.path(), iters, || {
                        timed(iters, &mut samples, || {
                            black_box(w.append(&data).expect("append"));
                            w.sync().expect("sync");
                        })
                    })
                })
            });
            drop(w);
            let bench = format!("durable_latency/{name}/{variant}");
            support::report_latency(&bench, &mut samples);
            device.report(&bench);
            dirs.push(dir);
        }

        let dir = temp_dir();
        let file = prewritten_file(&dir.path().join("prewritten.bin"));
        let mut off = 0u64;
        let mut seq = 0u64;
        let mut samples = Vec::new();
        let mut device = support::DeviceBytes::default();
        group.bench_function("pwrite_fdatasync", |b| {
            b.iter_custom(|iters| {
                device.measure(dir.path(), iters, || {
                    timed(iters, &mut samples, || {
                        let f = frame(&data, seq);
                        if off + f.len() as u64 > PREWRITTEN {
                            off = 0;
                        }
                        file.write_all_at(&f, off).expect("pwrite");
                        file.sync_data().expect("fdatasync");
                        off += f.len() as u64;
                        seq += 1;
                    })
                })
            })
        });
        let bench = format!("durable_latency/{name}/pwrite_fdatasync");
        support::report_latency(&bench, &mut samples);
        device.report(&bench);
        dirs.push(dir);

        let dir = temp_dir();
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(dir.path().join("append.bin"))
            .expect("create");
        let mut seq = 0u64;
        let mut samples = Vec::new();
        let mut device = support::DeviceBytes::default();
        group.bench_function("write_fdatasync_extend", |b| {
            b.iter_custom(|iters| {
                device.measure(dir.path(), iters, || {
                    timed(iters, &mut samples, || {
                        file.write_all(&frame(&data, seq)).expect("write");
                        file.sync_data().expect("fdatasync");
                        seq += 1;
                    })
                })
            })
        });
        let bench = format!("durable_latency/{name}/write_fdatasync_extend");
        support::report_latency(&bench, &mut samples);
        device.report(&bench);
        dirs.push(dir);

        let dir = temp_dir();
        let wal =
            okaywal::WriteAheadLog::recover(dir.path().join("okaywal"), support::NoCheckpoint)
                .expect("open okaywal");
        let mut samples = Vec::new();
        let mut device = support::DeviceBytes::default();
        group.bench_function("okaywal", |b| {
            b.iter_custom(|iters| {
                device.measure(dir.path(), iters, || {
                    timed(iters, &mut samples, || {
                        let mut entry = wal.begin_entry().expect("begin_entry");
                        entry.write_chunk(&data).expect("write_chunk");
                        black_box(entry.commit().expect("commit"));
                    })
                })
            })
        });
        wal.shutdown().expect("okaywal shutdown");
        let bench = format!("durable_latency/{name}/okaywal");
        support::report_latency(&bench, &mut samples);
        device.report(&bench);
        dirs.push(dir);

        group.finish();
    }
    drop(dirs);
}

criterion_group! {
    name = durable_latency;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(durable_latency);
