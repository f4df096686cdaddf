//! Helpers shared by the benches that record more than criterion does (latency percentiles,
//! memory): where their files go, and the results file the report command reads.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// The directory benchmark files go to: `$APPLOG_BENCH_DIR`, else cargo's per-target
/// temporary directory (`target/tmp`). Keep it on the file system under test, not tmpfs.
pub fn bench_root() -> PathBuf {
    let root = match std::env::var_os("APPLOG_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => option_env!("CARGO_TARGET_TMPDIR")
            .map_or_else(|| PathBuf::from("target"), PathBuf::from),
    };
    fs::create_dir_all(&root).expect("create the bench directory");
    root
}

/// Appends `name <TAB> key <TAB> value` to `$APPLOG_BENCH_RESULTS/extra.tsv` (when that is
/// set; the report command sets it), for figures criterion does not keep: percentiles and
/// memory. A later line for the same name and key replaces an earlier one.
pub fn record(name: &str, key: &str, value: f64) {
    let Some(dir) = std::env::var_os("APPLOG_BENCH_RESULTS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    fs::create_dir_all(&dir).expect("create the results directory");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("extra.tsv"))
        .expect("open extra.tsv");
    writeln!(f, "{name}\t{key}\t{value}").expect("write extra.tsv");
}

/// The `q` quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Sorts latencies (ns), prints p50/p99/p99.9 and records them under `name`.
pub fn report_latency(name: &str, samples: &mut [u64]) {
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    let (p50, p99, p999) = (
        quantile(samples, 0.5),
        quantile(samples, 0.99),
        quantile(samples, 0.999),
    );
    println!(
        "{name}: {} samples: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        samples.len(),
        p50 as f64 / 1e3,
        p99 as f64 / 1e3,
        p999 as f64 / 1e3
    );
    record(name, "p50_ns", p50 as f64);
    record(name, "p99_ns", p99 as f64);
    record(name, "p999_ns", p999 as f64);
    record(name, "samples", samples.len() as f64);
}

/// A field of `/proc/self/status` in bytes (`VmRSS`, `RssFile`, `RssAnon`, ...).
pub fn proc_status_bytes(field: &str) -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(field)?.strip_prefix(':')?;
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// An okaywal log manager that never checkpoints: the benches measure okaywal's write path
/// and commits, not its checkpointing.
#[derive(Debug)]
pub struct NoCheckpoint;

impl okaywal::LogManager for NoCheckpoint {
    fn recover(&mut self, _entry: &mut okaywal::Entry<'_>) -> std::io::Result<()> {
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last: okaywal::EntryId,
        _entries: &mut okaywal::SegmentReader,
        _wal: &okaywal::WriteAheadLog,
    ) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes written so far to the block device that holds `path` (the "sectors written" field of
/// `/sys/dev/block/<major>:<minor>/stat`, in 512-byte units), or `None` where that is not
/// available (tmpfs, no sysfs). Counts every writer of the device, so measure on a quiet
/// machine.
pub fn device_bytes_written(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(path).ok()?.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let stat = fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    let sectors: u64 = stat.split_whitespace().nth(6)?.parse().ok()?;
    Some(sectors * 512)
}

/// Device bytes written per operation, accumulated over the batches criterion runs.
#[derive(Default)]
pub struct DeviceBytes {
    bytes: u64,
    ops: u64,
}

impl DeviceBytes {
    /// Runs `batch` (which performs `ops` operations on files under `path`) and counts the
    /// device bytes written meanwhile.
    pub fn measure<T>(&mut self, path: &std::path::Path, ops: u64, batch: impl FnOnce() -> T) -> T {
        let before = device_bytes_written(path);
        let out = batch();
        if let (Some(b), Some(a)) = (before, device_bytes_written(path)) {
            self.bytes += a.saturating_sub(b);
            self.ops += ops;
        }
        out
    }

    /// Prints and records (under `name`, key `device_bytes_per_op`) the bytes per operation.
    pub fn report(&self, name: &str) {
        if self.ops == 0 {
            println!("{name}: device bytes not available here");
            return;
        }
        let per_op = self.bytes as f64 / self.ops as f64;
        println!(
            "{name}: {:.1} KiB written to the device per durable append ({} appends)",
            per_op / 1024.0,
            self.ops
        );
        record(name, "device_bytes_per_op", per_op);
    }
}

/// Runs `iters` calls of `op` spread over `threads` threads that start together; returns the
/// wall time and adds each call's latency (ns) to `lat`.
pub fn run_threads(
    threads: usize,
    iters: u64,
    lat: &Mutex<Vec<u64>>,
    op: impl Fn() + Sync,
) -> Duration {
    let start = Barrier::new(threads + 1);
    let per = iters / threads as u64;
    let extra = iters % threads as u64;
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u64)
            .map(|t| {
                let (start, op) = (&start, &op);
                s.spawn(move || {
                    let n = per + u64::from(t < extra);
                    let mut mine = Vec::with_capacity(n as usize);
                    start.wait();
                    for _ in 0..n {
                        let t0 = Instant::now();
                        op();
                        mine.push(t0.elapsed().as_nanos() as u64);
                    }
                    mine
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let all: Vec<Vec<u64>> = handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect();
        elapsed = t0.elapsed();
        lat.lock().expect("lock").extend(all.into_iter().flatten());
    });
    elapsed
}
