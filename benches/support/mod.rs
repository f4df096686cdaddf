//! Helpers shared by the benches that record more than criterion does (latency percentiles,
//! memory): where their files go, and the results file the report command reads.
#![allow(dead_code)]

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

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
