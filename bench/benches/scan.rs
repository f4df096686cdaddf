//! Reading a whole log: `applog::verify`, a `Reader` and a `Tailer` over a large log, against
//! crc32fast over the same bytes, and the memory a tailer holds while it reads.
//!
//! The bench first writes a log of `APPLOG_BENCH_SCAN_MIB` MiB (default 1024) for each record
//! size (128 B and 4 KiB), with default options, syncs it and drops the writer (untimed). The
//! log stays in the page cache (24 GiB of RAM here), so these are hot-cache scans: CPU cost of
//! the format, not disk speed. Throughput is in bytes of segment files per second.
//! - `scan/<size>/verify`: `applog::verify(dir)`: every frame's CRC, seals, synced marks.
//! - `scan/<size>/reader`: `Reader::open` and `next()` to the end, touching each record.
//! - `scan/<size>/crc32fast`: `crc32fast::hash` over every segment file's bytes, through a
//!   read-only mapping of each file (the same bytes the reader checks, one hash per file):
//!   the ceiling for a CRC-checked scan through mappings (it pays the same page faults).
//! - `scan/<size>/crc32fast_in_memory`: `crc32fast::hash` over the same bytes copied into one
//!   buffer in memory (untimed): crc32fast's own speed, no mapping, no faults.
//! - `scan/<size>/writer_open`: `Writer::open` of the log (recovery scans the newest segment
//!   only, so this is a time, not a rate; throughput is not set).
//!
//! Then, for the 4 KiB log, a `Tailer` reads the whole log from seq 0 (as a consumer catching
//! up would) while the bench samples this process's resident set (`VmRSS`, and `RssFile`, the
//! part that is mapped file pages) every 4096 records; it prints the baseline and the peak and
//! records them for the report. A reader maps one segment at a time and unmaps it when it
//! moves on, so its resident set stays near one segment's size however large the log is.
//!
//! Run: `cargo bench -p applog-bench --bench scan` (add `-- --warm-up-time 1 --measurement-time 2` to shorten;
//! `APPLOG_BENCH_SCAN_MIB=256` for a smaller log).

#[path = "support/mod.rs"]
mod support;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use applog::{Options, Reader, Tailer, Writer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn log_bytes() -> u64 {
    std::env::var("APPLOG_BENCH_SCAN_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1024)
        << 20
}

/// Writes a log of about `log_bytes()` bytes of `size`-byte records; returns the segment files.
fn build_log(dir: &Path, size: usize) -> Vec<PathBuf> {
    let mut w = Writer::open(dir, Options::new()).expect("open writer");
    let data: Vec<u8> = (0..size).map(|i| (i * 13 + 1) as u8).collect();
    let frames = log_bytes() / (8 + size as u64);
    let batch: Vec<&[u8]> = vec![&data[..]; 64];
    for _ in 0..frames / 64 {
        w.append_batch(&batch).expect("append");
    }
    w.close().expect("close");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn files_len(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| std::fs::metadata(f).expect("stat").len())
        .sum()
}

fn crc_files(files: &[PathBuf]) -> u32 {
    let mut x = 0;
    for f in files {
        let file = std::fs::File::open(f).expect("open");
        // SAFETY: nothing writes or truncates these files while they are mapped (the writer
        // was closed before the benchmark).
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
        x ^= crc32fast::hash(&map);
    }
    x
}

fn tail_rss(dir: &Path, size: &str) {
    let base_rss = support::proc_status_bytes("VmRSS");
    let base_file = support::proc_status_bytes("RssFile");
    let mut peak_rss = base_rss;
    let mut peak_file = base_file;
    let mut t = Tailer::open(dir, 0).expect("tailer");
    let mut n = 0u64;
    let mut sum = 0u64;
    while let Some(rec) = t.next_timeout(Duration::ZERO).expect("tail") {
        sum += u64::from(rec.data()[0]);
        n += 1;
        if n % 4096 == 0 {
            peak_rss = peak_rss.max(support::proc_status_bytes("VmRSS"));
            peak_file = peak_file.max(support::proc_status_bytes("RssFile"));
        }
    }
    black_box(sum);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "tail_rss/{size}: tailed {n} records: VmRSS {:.1} MiB before, peak {:.1} MiB; RssFile {:.1} MiB before, peak {:.1} MiB",
        mib(base_rss),
        mib(peak_rss),
        mib(base_file),
        mib(peak_file)
    );
    let name = format!("tail_rss/{size}");
    support::record(&name, "records", n as f64);
    support::record(&name, "log_bytes", log_bytes() as f64);
    support::record(&name, "rss_before", base_rss as f64);
    support::record(&name, "rss_peak", peak_rss as f64);
    support::record(&name, "rss_file_before", base_file as f64);
    support::record(&name, "rss_file_peak", peak_file as f64);
}

fn benches(c: &mut Criterion) {
    for (size, name) in [(128usize, "128B"), (4096, "4KiB")] {
        let tmp = tempfile::Builder::new()
            .prefix("applog-scan-")
            .tempdir_in(support::bench_root())
            .expect("temporary directory");
        let dir = tmp.path().join("log");
        let files = build_log(&dir, size);
        let bytes = files_len(&files);
        let mut group = c.benchmark_group(format!("scan/{name}"));
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function("verify", |b| {
            b.iter(|| {
                let r = applog::verify(&dir).expect("verify");
                assert!(r.is_clean());
                black_box(r.records)
            })
        });
        group.bench_function("reader", |b| {
            b.iter(|| {
                let mut r = Reader::open(&dir).expect("reader");
                let mut n = 0u64;
                while let Some(rec) = r.next().expect("next") {
                    n += rec.data().len() as u64;
                }
                black_box(n)
            })
        });
        group.bench_function("crc32fast", |b| b.iter(|| black_box(crc_files(&files))));
        let mut bytes_in_memory = Vec::with_capacity(bytes as usize);
        for f in &files {
            bytes_in_memory.extend_from_slice(&std::fs::read(f).expect("read segment"));
        }
        group.bench_function("crc32fast_in_memory", |b| {
            b.iter(|| black_box(crc32fast::hash(&bytes_in_memory)))
        });
        drop(bytes_in_memory);
        group.finish();

        let mut group = c.benchmark_group(format!("scan/{name}"));
        group.bench_function("writer_open", |b| {
            b.iter(|| black_box(Writer::open(&dir, Options::new()).expect("open")))
        });
        group.finish();

        if size == 4096 {
            tail_rss(&dir, name);
        }
        drop(tmp);
    }
}

criterion_group! {
    name = scan;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(scan);
