//! Append throughput of `applog` next to two naive logs, and what one applog append costs.
//!
//! # What it measures
//!
//! `append/<size>` (sizes 16 B, 128 B, 4 KiB, 64 KiB; criterion reports records/s, multiply by
//! the size for payload bytes/s). None of them syncs.
//! - `applog`: [`applog::Writer::open`] with [`Options::default`] (1000-page segments, so the
//!   log rolls to a new segment every ~4 MB, which is part of the cost) but pretouch off
//!   (`Options::pretouch(0)`: the automatic default turns it on for tmpfs), then `append`.
//!   Every `applog*` variant has pretouch off unless its name says otherwise.
//! - `applog_pretouch` (128 B only): `Options::pretouch(8)`, a thread keeping the segment
//!   grown and faulted in up to 8 pages ahead of the data; `applog_pretouch32`: 32 pages
//!   ahead (the writer wakes the thread once per half the lead, so 4x less often).
//! - `applog_grow16`: the same with `Options::grow_pages(16)`: each growth step adds 16 pages
//!   instead of the one the write needs (what the knob buys).
//! - `applog_batch16` / `applog_batch64` (128 B only): pretouch off, the records appended with
//!   `append_batch` of 16 or 64 (one clock read, one growth check and one publish per
//!   batch); the time per record.
//! - `applog_coarse_time` / `applog_no_time` (128 B only): `Options::record_time` with
//!   `RecordTime::Coarse` (`CLOCK_REALTIME_COARSE`) and `RecordTime::Off` (no clock read):
//!   what the per-record clock read costs.
//! - `bufwriter`: a `BufWriter<File>` (default 8 KiB buffer) writing applog's framing of
//!   format version 1 per record (without the time a version-2 record carries, and without the
//!   clock read): an 8-byte header `[u32 len | u32 crc32fast(seq u64, len u32, payload)]`,
//!   the payload, and zeros up to a multiple of 8, each with `write_all`.
//! - `commitlog`: the `commitlog` crate (0.2), default options (1 GB segments, so one
//!   segment per bench log), `append_msg` per record: its own 20-byte header with a CRC-32C,
//!   one `write` to the segment file and one index entry stored into a mapping per record.
//! - `mmap_presized`: a file pre-sized with `set_len` (ftruncate: sparse, no blocks) to
//!   512 MiB and mapped once with `MmapMut`; the same frames are copied in (header written as
//!   two plain u32s, no atomics).
//!
//! `costs/` times the pieces of applog's append path on their own (per page unless named):
//! - `ftruncate_page_unmapped`: `set_len(+4096)` on a file nothing maps.
//! - `ftruncate_page_mapped_4MB`: the same under a 1000-page (4 MB) mapping of the file,
//!   which is what applog does (it maps the whole reservation over a shorter file), and
//!   `ftruncate_page_mapped_1GiB` under a 1 GiB mapping: growing a mapped file unmaps the
//!   range past the new end (`truncate_pagecache`), so the cost grows with the mapping.
//! - `ftruncate_page_fallocated_4MB`: as `_mapped_4MB`, blocks already reserved with
//!   `fallocate(KEEP_SIZE)`.
//! - `fallocate_keep_size_64KiB`: `fallocate(KEEP_SIZE)` of the next 64 KiB (applog reserves
//!   blocks 64 KiB at a time, i.e. once per 16 pages), per call.
//! - `first_touch_sparse` / `first_touch_fallocated`: the first 8-byte store into each fresh
//!   page of a 256 MiB shared mapping whose file was sized beforehand, outside the timing
//!   (ftruncate: sparse; or fallocate: unwritten blocks like applog's). Read-around and large
//!   folios make most of these stores fault-free: this is what `mmap_presized` pays.
//! - `first_touch_at_eof`: the first store into the page a 4 MB-mapped file was just grown by
//!   (fallocate every 16 pages and ftruncate done untimed, each store timed on its own): one
//!   fault per page, with a one-page read of the hole, since nothing past the end of the
//!   file can be read ahead. This is what applog pays per page.
//! - `fallocate_page_fallocated_4MB`: what applog does instead of `ftruncate` to set the size:
//!   `fallocate` (mode 0) of the next page, under a 4 MB mapping, blocks already reserved.
//!   ext4's `ftruncate` calls `truncate_pagecache` even when it extends a file, walking the
//!   mapping and the page cache past the new end; `fallocate` does not.
//! - `grow_and_touch_page`: applog's whole per-page growth step in one timed loop (fallocate
//!   KEEP_SIZE every 16 pages, fallocate +1 page, first store into the page);
//!   `grow_and_touch_page_ftruncate`: the same with `ftruncate` setting the size (what applog
//!   did before).
//! - `crc32_128B`: the frame CRC of format version 2 (crc32fast over seed, seq, length, time,
//!   payload) of a 128 B record; `crc32fast_hash_128B`: plain `crc32fast::hash` of 128 B;
//!   `memcpy_128B`: copying 128 B into memory that is already faulted in; `clock_realtime`:
//!   `SystemTime::now()` (`CLOCK_REALTIME` through the vDSO); `clock_realtime_ns_systemtime`:
//!   the same turned into nanoseconds since the epoch with `duration_since` (how applog
//!   stamped records before); `clock_realtime_ns_clock_gettime`: nanoseconds since the epoch
//!   from `clock_gettime(CLOCK_REALTIME)` directly (how applog stamps them now, less its
//!   checks for a time before 1970 or past 2554);
//!   `clock_realtime_coarse`: `CLOCK_REALTIME_COARSE`, what
//!   `RecordTime::Coarse` reads.
//!
//! # How to run
//!
//! ```text
//! cargo bench -p applog-bench --bench append                  # everything, a few minutes
//! cargo bench -p applog-bench --bench append -- append/128B   # one group (criterion filter)
//! cargo bench -p applog-bench --bench append --features metrics -- metrics/  # see append_metrics.rs
//! ```
//!
//! Files go to `$APPLOG_BENCH_DIR` when set, else to cargo's per-target temporary directory
//! (`target/tmp`), else `target/`: keep them on the file system under test (ext4 here; tmpfs
//! only to compare `applog`, `applog_pretouch` and `bufwriter` there: the bench warns when it
//! sees tmpfs). Each benchmark function gets its own temporary
//! directory; all of them are deleted at the end of the run.
//!
//! Logs stay bounded: once a log holds `APPLOG_BENCH_LOG_MIB` MiB of frames (default 512), it
//! is retired and a new one started (for applog: drop the writer, open a new log directory).
//! The benchmarks time records in chunks that fit (`iter_custom`), and retire and recreate
//! logs between chunks, outside the timed region. Retiring truncates the log's files to zero
//! (freeing blocks and page cache) instead of unlinking them, and the `costs/` files are
//! emptied and reused the same way: this ext4 has no journal, and without one ext4 skips
//! inodes deleted in the last 60 s (up to 360 s) when it allocates a new one, reading each
//! one's inode-table entry. With unlinking, every applog segment created after a 512 MiB log
//! (128 segments) was deleted paid for that scan: ~9% of the 128 B profile. The run deletes
//! its files at the end and then syncs the file system, which still leaves a 60 s window:
//! wait a minute between runs (after deleting many files in this file system, in general)
//! or the next run's applog numbers include slow segment creation.
//! Growth inside one log is timed: applog's fallocate, ftruncate and segment rolls (creating,
//! mapping and sealing segments), the page cache `BufWriter` fills, the faults of the mapping.
//!
//! # Warm-up
//!
//! This VM hands memory the guest frees back to its host (free page reporting), and page
//! faults are expensive here (~2-3 us for a fresh anonymous page under this nested
//! hypervisor), so the first touch of recently freed memory is slow and mmap timings come out
//! bimodal unless the benchmark warms up. (Measured here: re-touching a 256 MiB file mapping
//! right after the previous one was freed, ~1.4 us/page; after 6-20 s idle, ~1.8-2.0.)
//! What this bench does about it:
//! 1. Before any benchmark, it touches `APPLOG_BENCH_PREWARM_MIB` MiB (default 1024; 0 to
//!    skip) of anonymous memory page by page and frees it, so the host backs that memory
//!    again, and prints the fault cost it saw (a sanity check of the machine).
//! 2. Each benchmark's own criterion warm-up (1 s) runs the exact workload on the same log
//!    the measurement then continues (retiring full logs as it fills them), so the measurement
//!    starts in the steady state: page cache being freed and refilled at the benchmark's rate.
//! 3. A full log is retired right before its replacement is created, so the page cache it
//!    frees is what the new log gets next (the allocator hands out recently freed pages
//!    first, and the guest reports free memory to the host only after it has stayed free for
//!    a while).
//!
//! None of this makes a page fault cheap: growth and fault costs stay in the numbers, as they
//! do in real use. Compare criterion's `median` estimates, and expect run-to-run differences
//! of 15-30% on this machine (more for the fault-bound applog and mmap cases): run it more
//! than once before believing a change.

mod append_metrics;
mod support;

use std::fs::{self, File, OpenOptions};
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use applog::{Options, RecordTime, Writer};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use memmap2::{MmapMut, MmapOptions, MmapRaw};
use rustix::fs::{fallocate, FallocateFlags};
use tempfile::TempDir;

/// The page size the `costs/` group steps by (applog itself asks the system; the bench warns
/// when they differ).
const PAGE: u64 = 4096;
const SIZES: [(usize, &str); 5] = [
    (16, "16B"),
    (128, "128B"),
    (1024, "1KiB"),
    (4096, "4KiB"),
    (65536, "64KiB"),
];
const ZEROS: [u8; 8] = [0; 8];
/// Files of the `costs/` group are recycled at this size.
const COST_FILE: u64 = 256 << 20;
/// Span of the large mapping that covers a growing file in `costs/`.
const COST_MAP: usize = 1 << 30;
/// applog's default segment reservation, in pages (`Options::default`).
const SEGMENT_PAGES: u64 = 1000;
/// applog reserves blocks this many bytes at a time (`segment::ALLOCATE_CHUNK`).
const ALLOCATE_CHUNK: u64 = 64 * 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A log is recycled once it holds this many bytes of frames.
fn log_cap() -> u64 {
    env_u64("APPLOG_BENCH_LOG_MIB", 512) << 20
}

/// Temporary directories live until the end of the run (see [`retire`] for why nothing is
/// unlinked while benchmarks run).
static TEMP_DIRS: Mutex<Vec<TempDir>> = Mutex::new(Vec::new());

/// A new temporary directory for one benchmark function.
fn temp_dir() -> PathBuf {
    let dir = tempfile::Builder::new()
        .prefix("applog-bench-")
        .tempdir_in(support::bench_root())
        .expect("create a temporary directory");
    let path = dir.path().to_owned();
    TEMP_DIRS.lock().expect("temp dir list").push(dir);
    path
}

/// Deletes every temporary directory (at the end of the run), then writes the file system's
/// metadata back (syncfs): ext4 without a journal avoids reusing an inode for 60 s after its
/// deletion, 360 s while its inode-table block is still dirty (see [`retire`]), so this
/// shortens the time a run slows down the segment creation of the next one.
fn delete_temp_dirs() {
    TEMP_DIRS.lock().expect("temp dir list").clear();
    if let Ok(root) = File::open(support::bench_root()) {
        let _ = rustix::fs::syncfs(&root);
    }
}

/// Frame length with the 8-byte header and padding to 8.
fn frame_len(len: usize) -> u64 {
    8 + (len as u64).next_multiple_of(8)
}

/// The baselines' frame CRC: crc32fast over (seq u64, len u32) and the payload.
fn frame_crc(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&(payload.len() as u32).to_le_bytes());
    h.update(payload);
    h.finalize()
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

/// A log under test. `room` and `recycle` let the timing loop keep the files bounded.
trait BenchLog {
    /// Frame bytes that still fit before the log must be recycled.
    fn room(&self) -> u64;
    /// Appends one record (timed).
    fn append(&mut self, payload: &[u8]);
    /// Retires the log (see [`retire`]) and starts an empty one (never timed).
    fn recycle(&mut self);
}

/// Times `iters` appends of `payload`, in chunks that fit the log, recycling between chunks.
fn time_appends<L: BenchLog>(log: &mut L, payload: &[u8], iters: u64) -> Duration {
    time_chunks(log, frame_len(payload.len()), iters, |log, n| {
        for _ in 0..n {
            log.append(black_box(payload));
        }
    })
}

/// Times `iters` records of `flen` frame bytes each in chunks that fit the log, recycling it
/// between chunks (untimed); `append(log, n)` appends `n` records.
fn time_chunks<L: BenchLog>(
    log: &mut L,
    flen: u64,
    iters: u64,
    mut append: impl FnMut(&mut L, u64),
) -> Duration {
    let mut left = iters;
    let mut total = Duration::ZERO;
    while left > 0 {
        let n = left.min(log.room() / flen);
        if n == 0 {
            log.recycle();
            assert!(log.room() >= flen, "a record does not fit in an empty log");
            continue;
        }
        let start = Instant::now();
        append(log, n);
        total += start.elapsed();
        left -= n;
    }
    total
}

/// As [`time_appends`] for applog with `append_batch` of `k` records (the last call of a chunk
/// may hold fewer): the time for `iters` records.
fn time_batches(log: &mut ApplogLog, payload: &[u8], k: usize, iters: u64) -> Duration {
    let flen = frame_len(payload.len());
    let batch = vec![payload; k];
    time_chunks(log, flen, iters, |log, n| {
        let w = log.writer.as_mut().expect("writer is open");
        let mut done = 0;
        while done < n {
            let m = usize::try_from(n - done).map_or(k, |left| left.min(k));
            black_box(
                w.append_batch(black_box(&batch[..m]))
                    .expect("applog append_batch"),
            );
            done += m as u64;
        }
        log.dirs.used += n * flen;
    })
}

/// Retires a log (untimed): frees the blocks and page cache of its files by truncating them
/// to zero, but leaves the empty files in place until the run ends. Unlinking them would slow
/// the appends that follow: ext4 without a journal (as here) skips inodes deleted in the last
/// 60 s (360 s while their inode-table block is dirty) when it allocates a new one, reading
/// each one's inode-table entry, so every applog segment created after a 512 MiB log (128
/// segments) was unlinked would pay for a scan past all of them.
fn retire(path: &Path) {
    let meta = fs::metadata(path).expect("stat retired log");
    if meta.is_dir() {
        for entry in fs::read_dir(path).expect("list retired log") {
            retire(&entry.expect("list retired log").path());
        }
    } else if meta.len() > 0 {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open retired file");
        file.set_len(0).expect("truncate retired file");
    }
}

/// A log directory under test: a new `log-<generation>` directory each time the log is
/// retired, and how many bytes of frames the current one holds.
struct LogDirs {
    root: PathBuf,
    generation: u64,
    used: u64,
    cap: u64,
}

impl LogDirs {
    fn new() -> LogDirs {
        LogDirs {
            root: temp_dir(),
            generation: 0,
            used: 0,
            cap: log_cap(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(format!("log-{}", self.generation))
    }

    fn room(&self) -> u64 {
        self.cap.saturating_sub(self.used)
    }

    /// Retires the current directory (the log in it must be closed) and moves to the next.
    fn next(&mut self) {
        retire(&self.dir());
        self.generation += 1;
        self.used = 0;
    }
}

struct ApplogLog {
    dirs: LogDirs,
    opts: Options,
    writer: Option<Writer>,
}

impl ApplogLog {
    fn new(opts: Options) -> ApplogLog {
        let mut log = ApplogLog {
            dirs: LogDirs::new(),
            opts,
            writer: None,
        };
        log.open();
        log
    }

    fn open(&mut self) {
        let writer = Writer::open(self.dirs.dir(), self.opts.clone()).expect("open applog writer");
        self.writer = Some(writer);
    }
}

impl BenchLog for ApplogLog {
    fn room(&self) -> u64 {
        self.dirs.room()
    }

    fn append(&mut self, payload: &[u8]) {
        let w = self.writer.as_mut().expect("writer is open");
        black_box(w.append(payload).expect("applog append"));
        self.dirs.used += frame_len(payload.len());
    }

    fn recycle(&mut self) {
        self.writer = None; // no sync: drop releases the lock only
        self.dirs.next();
        self.open();
    }
}

impl Drop for ApplogLog {
    fn drop(&mut self) {
        self.writer = None;
        retire(&self.dirs.dir());
    }
}

struct BufLog {
    dir: PathBuf,
    generation: u64,
    file: Option<BufWriter<File>>,
    seq: u64,
    used: u64,
    cap: u64,
}

impl BufLog {
    fn path(&self) -> PathBuf {
        self.dir.join(format!("log-{}.bin", self.generation))
    }

    fn create(&mut self) {
        let file = File::create_new(self.path()).expect("create bufwriter log");
        self.file = Some(BufWriter::new(file));
    }

    fn new() -> BufLog {
        let mut log = BufLog {
            dir: temp_dir(),
            generation: 0,
            file: None,
            seq: 0,
            used: 0,
            cap: log_cap(),
        };
        log.create();
        log
    }
}

impl BenchLog for BufLog {
    fn room(&self) -> u64 {
        self.cap.saturating_sub(self.used)
    }

    fn append(&mut self, payload: &[u8]) {
        let w = self.file.as_mut().expect("file is open");
        let crc = frame_crc(self.seq, payload);
        let mut head = [0u8; 8];
        head[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        head[4..].copy_from_slice(&crc.to_le_bytes());
        w.write_all(&head).expect("write");
        w.write_all(payload).expect("write");
        let pad = payload.len().next_multiple_of(8) - payload.len();
        if pad > 0 {
            w.write_all(&ZEROS[..pad]).expect("write");
        }
        self.seq += 1;
        self.used += frame_len(payload.len());
    }

    fn recycle(&mut self) {
        if let Some(mut w) = self.file.take() {
            w.flush().expect("flush");
        }
        retire(&self.path());
        self.generation += 1;
        self.create();
        self.used = 0;
    }
}

impl Drop for BufLog {
    fn drop(&mut self) {
        self.file = None; // flushes
        retire(&self.path());
    }
}

/// How the pre-sized mmap log maps its file.
#[derive(Clone, Copy)]
enum MapKind {
    Plain,
    /// `MAP_POPULATE`: every page of the file is faulted in when it is mapped (untimed).
    Populate,
    /// `madvise(MADV_HUGEPAGE)` on the mapping.
    HugePage,
}

struct MmapLog {
    dir: PathBuf,
    generation: u64,
    kind: MapKind,
    map: Option<MmapMut>,
    pos: usize,
    seq: u64,
    cap: u64,
}

impl MmapLog {
    fn path(&self) -> PathBuf {
        self.dir.join(format!("log-{}.bin", self.generation))
    }

    fn create(&mut self) {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path())
            .expect("create mmap log");
        file.set_len(self.cap).expect("set_len");
        let mut opts = MmapOptions::new();
        if let MapKind::Populate = self.kind {
            opts.populate();
        }
        // SAFETY: the file is ours alone (fresh name in our own temporary directory), and it
        // is only truncated (retired) after this mapping has been dropped.
        let map = unsafe { opts.map_mut(&file) }.expect("map log");
        if let MapKind::HugePage = self.kind {
            if let Err(e) = map.advise(memmap2::Advice::HugePage) {
                eprintln!("madvise(MADV_HUGEPAGE) on the file mapping: {e}");
            }
        }
        self.map = Some(map);
        self.pos = 0;
    }

    fn new(kind: MapKind) -> MmapLog {
        let mut log = MmapLog {
            dir: temp_dir(),
            generation: 0,
            kind,
            map: None,
            pos: 0,
            seq: 0,
            cap: log_cap(),
        };
        log.create();
        log
    }
}

impl BenchLog for MmapLog {
    fn room(&self) -> u64 {
        self.cap.saturating_sub(self.pos as u64)
    }

    fn append(&mut self, payload: &[u8]) {
        let map = self.map.as_mut().expect("mapped");
        let at = self.pos;
        let crc = frame_crc(self.seq, payload);
        map[at + 8..at + 8 + payload.len()].copy_from_slice(payload);
        // Padding stays zero: the file is fresh and sparse.
        map[at..at + 4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        map[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        self.pos += frame_len(payload.len()) as usize;
        self.seq += 1;
    }

    fn recycle(&mut self) {
        self.map = None;
        retire(&self.path());
        self.generation += 1;
        self.create();
    }
}

impl Drop for MmapLog {
    fn drop(&mut self) {
        self.map = None;
        retire(&self.path());
    }
}

/// okaywal's write path: one entry is kept open and every record is one `write_chunk` into it
/// (okaywal frames and checksums each chunk and buffers its writes); the entry is committed
/// (which syncs) only when the log is retired, outside the timing, so that no variant of this
/// bench syncs. okaywal has no way to append without a sync per committed entry: its durable
/// commit is measured by `bench/benches/durable.rs`.
struct OkayLog {
    dirs: LogDirs,
    wal: Option<okaywal::WriteAheadLog>,
}

impl OkayLog {
    fn new() -> OkayLog {
        let mut log = OkayLog {
            dirs: LogDirs::new(),
            wal: None,
        };
        log.open();
        log
    }

    fn open(&mut self) {
        let wal = okaywal::WriteAheadLog::recover(self.dirs.dir(), support::NoCheckpoint)
            .expect("open okaywal");
        self.wal = Some(wal);
    }

    /// Commits the open entry (untimed) and shuts the log down.
    fn shut(&mut self) {
        if let Some(wal) = self.wal.take() {
            wal.shutdown().expect("okaywal shutdown");
        }
    }

    fn close(&mut self) {
        self.shut();
        retire(&self.dirs.dir());
    }

    fn recycle(&mut self) {
        self.shut();
        self.dirs.next();
        self.open();
    }
}

/// Times `iters` okaywal chunk writes (see [`OkayLog`]), one entry per chunk of records that
/// fits the log, committed untimed.
fn time_okaywal(log: &mut OkayLog, payload: &[u8], iters: u64) -> Duration {
    let flen = frame_len(payload.len());
    let mut left = iters;
    let mut total = Duration::ZERO;
    while left > 0 {
        let n = left.min(log.dirs.room() / flen);
        if n == 0 {
            log.recycle();
            continue;
        }
        let wal = log.wal.as_ref().expect("okaywal open");
        let mut entry = wal.begin_entry().expect("begin_entry");
        let start = Instant::now();
        for _ in 0..n {
            black_box(entry.write_chunk(black_box(payload)).expect("write_chunk"));
        }
        total += start.elapsed();
        entry.commit().expect("commit");
        log.dirs.used += n * flen;
        left -= n;
    }
    total
}

/// The `commitlog` crate, default options. Its `flush` does not sync the segment file (it
/// calls `File::flush`, a no-op, and msyncs only the index), so it appears only here, in the
/// benches without sync.
struct CommitLogLog {
    dirs: LogDirs,
    log: Option<commitlog::CommitLog>,
}

/// commitlog's per-message header: offset (8), size (4), CRC-32C (4), metadata size (4).
const COMMITLOG_HEADER: u64 = 20;

impl CommitLogLog {
    fn new() -> CommitLogLog {
        let mut log = CommitLogLog {
            dirs: LogDirs::new(),
            log: None,
        };
        log.open();
        log
    }

    fn open(&mut self) {
        let opts = commitlog::LogOptions::new(self.dirs.dir());
        self.log = Some(commitlog::CommitLog::new(opts).expect("open commitlog"));
    }
}

impl BenchLog for CommitLogLog {
    fn room(&self) -> u64 {
        self.dirs.room()
    }

    fn append(&mut self, payload: &[u8]) {
        let log = self.log.as_mut().expect("commitlog open");
        black_box(log.append_msg(payload).expect("commitlog append"));
        self.dirs.used += COMMITLOG_HEADER + payload.len() as u64;
    }

    fn recycle(&mut self) {
        self.log = None;
        self.dirs.next();
        self.open();
    }
}

impl Drop for CommitLogLog {
    fn drop(&mut self) {
        self.log = None;
        retire(&self.dirs.dir());
    }
}

/// The physical limit: the payload copied (no framing, no CRC) into 64 MiB of anonymous
/// memory that was faulted in before the timing, cyclically.
struct MemcpyLog {
    buf: Vec<u8>,
    pos: usize,
}

impl MemcpyLog {
    fn new() -> MemcpyLog {
        MemcpyLog {
            buf: vec![0x5a; 64 << 20],
            pos: 0,
        }
    }
}

impl BenchLog for MemcpyLog {
    fn room(&self) -> u64 {
        u64::MAX
    }

    fn append(&mut self, payload: &[u8]) {
        if self.pos + payload.len() > self.buf.len() {
            self.pos = 0;
        }
        self.buf[self.pos..self.pos + payload.len()].copy_from_slice(payload);
        black_box(&self.buf[self.pos]);
        self.pos += payload.len().next_multiple_of(8);
    }

    fn recycle(&mut self) {}
}

/// Short runs: the whole bench takes a few minutes. Command-line options still override.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
}

fn append_benches(c: &mut Criterion) {
    for (size, name) in SIZES {
        let data = payload(size);
        let mut group = c.benchmark_group(format!("append/{name}"));
        group.throughput(Throughput::Elements(1));

        // Pretouch off unless named: the automatic default turns it on for tmpfs.
        let base = || Options::default().pretouch(0);
        let mut variants = vec![("applog", base()), ("applog_grow16", base().grow_pages(16))];
        if size == 128 {
            variants.extend([
                ("applog_pretouch", base().pretouch(8)),
                ("applog_pretouch32", base().pretouch(32)),
                ("applog_coarse_time", base().record_time(RecordTime::Coarse)),
                ("applog_no_time", base().record_time(RecordTime::Off)),
            ]);
        }
        for (variant, opts) in variants {
            let mut log: Option<ApplogLog> = None;
            group.bench_function(variant, |b| {
                let log = log.get_or_insert_with(|| ApplogLog::new(opts.clone()));
                b.iter_custom(|iters| time_appends(log, &data, iters));
            });
            drop(log);
        }
        if size == 128 {
            for k in [16, 64] {
                let mut log: Option<ApplogLog> = None;
                group.bench_function(format!("applog_batch{k}"), |b| {
                    let log = log.get_or_insert_with(|| ApplogLog::new(base()));
                    b.iter_custom(|iters| time_batches(log, &data, k, iters));
                });
                drop(log);
            }
        }

        let mut log: Option<BufLog> = None;
        group.bench_function("bufwriter", |b| {
            let log = log.get_or_insert_with(BufLog::new);
            b.iter_custom(|iters| time_appends(log, &data, iters));
        });
        drop(log);

        let mut log: Option<OkayLog> = None;
        group.bench_function("okaywal", |b| {
            let log = log.get_or_insert_with(OkayLog::new);
            b.iter_custom(|iters| time_okaywal(log, &data, iters));
        });
        if let Some(mut log) = log {
            log.close();
        }

        let mut log: Option<CommitLogLog> = None;
        group.bench_function("commitlog", |b| {
            let log = log.get_or_insert_with(CommitLogLog::new);
            b.iter_custom(|iters| time_appends(log, &data, iters));
        });
        drop(log);

        for (variant, kind) in [
            ("mmap_presized", MapKind::Plain),
            ("mmap_presized_populate", MapKind::Populate),
            ("mmap_presized_hugepage", MapKind::HugePage),
        ] {
            let mut log: Option<MmapLog> = None;
            group.bench_function(variant, |b| {
                let log = log.get_or_insert_with(|| MmapLog::new(kind));
                b.iter_custom(|iters| time_appends(log, &data, iters));
            });
            drop(log);
        }

        let mut log: Option<MemcpyLog> = None;
        group.bench_function("memcpy", |b| {
            let log = log.get_or_insert_with(MemcpyLog::new);
            b.iter_custom(|iters| time_appends(log, &data, iters));
        });
        drop(log);

        group.finish();
    }
}

/// Opens a new file for the `costs/` group (reused: emptied with `set_len(0)`, never unlinked
/// while benchmarks run; see [`retire`]).
fn cost_file(name: &str) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(temp_dir().join(name))
        .expect("create file")
}

/// A file that grows page by page in `costs/`, optionally under a mapping that covers it.
struct GrowingFile {
    file: File,
    map: Option<MmapRaw>,
    size: u64,
    allocated: u64,
    /// The file is recycled at this size.
    cap: u64,
    /// Length of the mapping over the file (0: no mapping).
    map_len: usize,
    /// Reserve all of `cap` with fallocate(KEEP_SIZE) when (re)created.
    preallocate: bool,
}

impl GrowingFile {
    fn new(cap: u64, map_len: usize, preallocate: bool) -> GrowingFile {
        let mut g = GrowingFile {
            file: cost_file("grow.bin"),
            map: None,
            size: 0,
            allocated: 0,
            cap,
            map_len,
            preallocate,
        };
        g.setup();
        g
    }

    /// Like an applog segment: a 1000-page mapping over a file that grows to at most that.
    fn segment_like(preallocate: bool) -> GrowingFile {
        let reservation = SEGMENT_PAGES * PAGE;
        GrowingFile::new(reservation, reservation as usize, preallocate)
    }

    fn setup(&mut self) {
        if self.preallocate {
            fallocate(&self.file, FallocateFlags::KEEP_SIZE, 0, self.cap).expect("fallocate");
            self.allocated = self.cap;
        }
        if self.map_len > 0 {
            let map = MmapOptions::new()
                .len(self.map_len)
                .map_raw(&self.file)
                .expect("map");
            self.map = Some(map);
        }
    }

    /// Empties the file (untimed) and maps it again.
    fn recycle(&mut self) {
        self.map = None;
        self.file.set_len(0).expect("truncate");
        self.size = 0;
        self.allocated = 0;
        self.setup();
    }

    fn pages_left(&self) -> u64 {
        (self.cap - self.size) / PAGE
    }

    /// Runs `step` `iters` times, timed, recycling the file (untimed) whenever it is full.
    fn time_pages(&mut self, iters: u64, mut step: impl FnMut(&mut GrowingFile)) -> Duration {
        let mut left = iters;
        let mut total = Duration::ZERO;
        while left > 0 {
            let n = left.min(self.pages_left());
            if n == 0 {
                self.recycle();
                continue;
            }
            let start = Instant::now();
            for _ in 0..n {
                step(self);
            }
            total += start.elapsed();
            left -= n;
        }
        total
    }

    /// Grows the file by one page as applog does (untimed), then times only the first store
    /// into that page: the fault on a page right below the end of the file.
    fn time_touch_at_eof(&mut self, iters: u64) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            if self.pages_left() == 0 {
                self.recycle();
            }
            self.reserve_ahead();
            self.ftruncate_page();
            let off = self.size - PAGE;
            let start = Instant::now();
            self.touch(off);
            total += start.elapsed();
        }
        total
    }

    fn ftruncate_page(&mut self) {
        self.size += PAGE;
        self.file.set_len(self.size).expect("set_len");
    }

    /// Sets the size one page further with `fallocate` (mode 0), as applog does.
    fn fallocate_page(&mut self) {
        fallocate(&self.file, FallocateFlags::empty(), self.size, PAGE).expect("fallocate");
        self.size += PAGE;
    }

    /// applog's growth rule: keep fallocate(KEEP_SIZE) 64 KiB chunks ahead of the size.
    fn reserve_ahead(&mut self) {
        if self.size + PAGE > self.allocated {
            let to = (self.allocated + ALLOCATE_CHUNK).min(self.cap);
            fallocate(
                &self.file,
                FallocateFlags::KEEP_SIZE,
                self.allocated,
                to - self.allocated,
            )
            .expect("fallocate");
            self.allocated = to;
        }
    }

    /// Stores 8 bytes at the start of the page at `off`.
    fn touch(&self, off: u64) {
        let map = self.map.as_ref().expect("mapped");
        assert!(off + 8 <= self.size.min(self.map_len as u64));
        // SAFETY: `off` is page-aligned and (checked) below the file size and the mapping
        // length, so the 8-byte store is in bounds, aligned, and backed by the file (no
        // SIGBUS). Nothing else references this memory.
        unsafe { ptr::write_volatile(map.as_mut_ptr().add(off as usize).cast::<u64>(), off | 1) };
    }
}

impl Drop for GrowingFile {
    fn drop(&mut self) {
        self.map = None;
        let _ = self.file.set_len(0);
    }
}

/// A fresh, fully sized file of `COST_FILE` bytes mapped at once, for first-touch costs.
struct FreshPages {
    file: File,
    map: Option<MmapRaw>,
    next: u64,
    fallocated: bool,
}

impl FreshPages {
    fn new(fallocated: bool) -> FreshPages {
        let mut p = FreshPages {
            file: cost_file("pages.bin"),
            map: None,
            next: 0,
            fallocated,
        };
        p.setup();
        p
    }

    /// Sizes the (empty) file and maps it.
    fn setup(&mut self) {
        if self.fallocated {
            // Mode 0: allocates unwritten extents and sets the size, like applog's pages.
            fallocate(&self.file, FallocateFlags::empty(), 0, COST_FILE).expect("fallocate");
        } else {
            self.file.set_len(COST_FILE).expect("set_len");
        }
        let map = MmapOptions::new()
            .len(COST_FILE as usize)
            .map_raw(&self.file)
            .expect("map");
        self.map = Some(map);
        self.next = 0;
    }

    fn time_touches(&mut self, iters: u64) -> Duration {
        let mut left = iters;
        let mut total = Duration::ZERO;
        while left > 0 {
            let n = left.min((COST_FILE - self.next) / PAGE);
            if n == 0 {
                self.map = None;
                self.file.set_len(0).expect("truncate");
                self.setup();
                continue;
            }
            let base = self.map.as_ref().expect("mapped").as_mut_ptr();
            let start = Instant::now();
            for _ in 0..n {
                // SAFETY: `next` is a page offset below the file size, which equals the mapping
                // length; the store is aligned and in bounds, and nothing else references it.
                unsafe {
                    ptr::write_volatile(base.add(self.next as usize).cast::<u64>(), self.next | 1)
                };
                self.next += PAGE;
            }
            total += start.elapsed();
            left -= n;
        }
        total
    }
}

impl Drop for FreshPages {
    fn drop(&mut self) {
        self.map = None;
        let _ = self.file.set_len(0);
    }
}

/// Makes the file a `costs/ftruncate_*` benchmark grows.
type MakeFile = fn() -> GrowingFile;

fn cost_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("costs");
    group.throughput(Throughput::Elements(1));

    let growing: [(&str, MakeFile); 4] = [
        ("ftruncate_page_unmapped", || {
            GrowingFile::new(COST_FILE, 0, false)
        }),
        ("ftruncate_page_mapped_4MB", || {
            GrowingFile::segment_like(false)
        }),
        ("ftruncate_page_mapped_1GiB", || {
            GrowingFile::new(COST_FILE, COST_MAP, false)
        }),
        ("ftruncate_page_fallocated_4MB", || {
            GrowingFile::segment_like(true)
        }),
    ];
    for (name, make) in growing {
        let mut f: Option<GrowingFile> = None;
        group.bench_function(name, |b| {
            let f = f.get_or_insert_with(make);
            b.iter_custom(|iters| f.time_pages(iters, GrowingFile::ftruncate_page));
        });
    }

    let mut f: Option<GrowingFile> = None;
    group.bench_function("fallocate_page_fallocated_4MB", |b| {
        let f = f.get_or_insert_with(|| GrowingFile::segment_like(true));
        b.iter_custom(|iters| f.time_pages(iters, GrowingFile::fallocate_page));
    });
    drop(f);

    let mut f: Option<File> = None;
    let mut off = 0u64;
    group.bench_function("fallocate_keep_size_64KiB", |b| {
        let file = f.get_or_insert_with(|| cost_file("alloc.bin"));
        b.iter_custom(|iters| {
            let mut left = iters;
            let mut total = Duration::ZERO;
            while left > 0 {
                let n = left.min(COST_FILE.saturating_sub(off) / ALLOCATE_CHUNK);
                if n == 0 {
                    // Frees the blocks reserved past the end of the (empty) file.
                    file.set_len(0).expect("truncate");
                    off = 0;
                    continue;
                }
                let start = Instant::now();
                for _ in 0..n {
                    fallocate(&*file, FallocateFlags::KEEP_SIZE, off, ALLOCATE_CHUNK)
                        .expect("fallocate");
                    off += ALLOCATE_CHUNK;
                }
                total += start.elapsed();
                left -= n;
            }
            total
        });
    });
    if let Some(file) = f {
        let _ = file.set_len(0);
    }

    for (name, fallocated) in [
        ("first_touch_sparse", false),
        ("first_touch_fallocated", true),
    ] {
        let mut p: Option<FreshPages> = None;
        group.bench_function(name, |b| {
            let p = p.get_or_insert_with(|| FreshPages::new(fallocated));
            b.iter_custom(|iters| p.time_touches(iters));
        });
    }

    let mut g: Option<GrowingFile> = None;
    group.bench_function("first_touch_at_eof", |b| {
        let g = g.get_or_insert_with(|| GrowingFile::segment_like(false));
        b.iter_custom(|iters| g.time_touch_at_eof(iters));
    });
    drop(g);

    for (name, extend) in [
        (
            "grow_and_touch_page",
            GrowingFile::fallocate_page as fn(&mut GrowingFile),
        ),
        ("grow_and_touch_page_ftruncate", GrowingFile::ftruncate_page),
    ] {
        let mut g: Option<GrowingFile> = None;
        group.bench_function(name, |b| {
            let g = g.get_or_insert_with(|| GrowingFile::segment_like(false));
            b.iter_custom(|iters| {
                g.time_pages(iters, |g| {
                    g.reserve_ahead();
                    extend(g);
                    g.touch(g.size - PAGE);
                })
            });
        });
        drop(g);
    }

    let data = payload(128);
    let seed = crc32fast::hash(&0x5eed_u64.to_le_bytes());
    let mut seq = 0u64;
    group.bench_function("crc32_128B", |b| {
        b.iter(|| {
            seq += 1;
            frame_word(black_box(seed), seq, black_box(seq), black_box(&data))
        });
    });

    group.bench_function("clock_realtime", |b| {
        b.iter(|| black_box(std::time::SystemTime::now()));
    });
    group.bench_function("clock_realtime_ns_systemtime", |b| {
        b.iter(|| {
            black_box(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64),
            )
        });
    });
    group.bench_function("clock_realtime_ns_clock_gettime", |b| {
        b.iter(|| {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
            black_box(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
        });
    });

    group.bench_function("clock_realtime_coarse", |b| {
        b.iter(|| {
            black_box(rustix::time::clock_gettime(
                rustix::time::ClockId::RealtimeCoarse,
            ))
        });
    });

    group.bench_function("crc32fast_hash_128B", |b| {
        b.iter(|| crc32fast::hash(black_box(&data)));
    });

    let mut dst = vec![0xA5u8; 1 << 20];
    let mut at = 0usize;
    group.bench_function("memcpy_128B", |b| {
        b.iter(|| {
            if at + 128 > dst.len() {
                at = 0;
            }
            dst[at..at + 128].copy_from_slice(black_box(&data));
            black_box(&dst[at]);
            at += 136;
        });
    });
    group.finish();
}

/// Touches (and frees) a large anonymous region so the host backs that memory again, and
/// reports the fault cost it saw.
fn prewarm() {
    let mib = env_u64("APPLOG_BENCH_PREWARM_MIB", 1024);
    if mib == 0 {
        return;
    }
    let len = (mib << 20) as usize;
    let mut map = MmapOptions::new()
        .len(len)
        .map_anon()
        .expect("map anonymous memory");
    let start = Instant::now();
    for off in (0..len).step_by(PAGE as usize) {
        map[off] = 1;
    }
    let first = start.elapsed();
    let start = Instant::now();
    for off in (0..len).step_by(PAGE as usize) {
        map[off] = 2;
    }
    let again = start.elapsed();
    black_box(&map[..]);
    drop(map);
    let pages = (len as u64 / PAGE) as f64;
    eprintln!(
        "prewarm: touched {mib} MiB: first touch {:.2} us/page, second {:.3} us/page",
        first.as_secs_f64() * 1e6 / pages,
        again.as_secs_f64() * 1e6 / pages,
    );
}

fn check_fs() {
    let root = support::bench_root();
    match rustix::fs::statfs(&root) {
        // TMPFS_MAGIC; `f_type`'s integer type differs between targets.
        #[allow(clippy::unnecessary_cast)]
        Ok(st) if st.f_type as i64 == 0x0102_1994 => {
            eprintln!(
                "warning: {} is on tmpfs; these numbers will not show ext4 behaviour",
                root.display()
            );
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: statfs {}: {e}", root.display()),
    }
    if rustix::param::page_size() as u64 != PAGE {
        eprintln!("warning: the page size is not {PAGE}; costs/ numbers are per {PAGE} bytes");
    }
    eprintln!(
        "bench files under {}, logs recycled every {} MiB",
        root.display(),
        log_cap() >> 20
    );
}

fn benches(c: &mut Criterion) {
    check_fs();
    prewarm();
    append_benches(c);
    append_metrics::metrics_benches(c);
    cost_benches(c);
    delete_temp_dirs();
}

criterion_group! {
    name = append;
    config = config();
    targets = benches
}
criterion_main!(append);

/// A record frame's header word as applog computes it (see docs/format.md): the CRC, seeded
/// with the segment's salt, of the seq, the length word and the payload, beside the length.
fn frame_word(seed: u32, seq: u64, time: u64, payload: &[u8]) -> u64 {
    const PRESENT: u32 = 1 << 31;
    let len = u32::try_from(payload.len()).expect("a record below 1 GiB") | PRESENT;
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    h.update(&seq.to_le_bytes());
    h.update(&len.to_le_bytes());
    h.update(&time.to_le_bytes());
    h.update(payload);
    (u64::from(h.finalize()) << 32) | u64::from(len)
}
