//! Named consumers: what a commit costs per record, what a durable commit costs, what resuming
//! costs on a large log, and whether a consumer keeps up with a writer, each against a peer
//! measured in the same run.
//!
//! All logs hold 128 B records, live in fresh temporary directories under the bench directory
//! (see `support::bench_root`) and are written with default options (1000-page segments)
//! before anything is timed.
//!
//! - `consumer_commit/*`: one iteration is one record read (and committed), from a closed log
//!   of 2^20 records, hot in the page cache. Each reader goes back to the first record when it
//!   reaches the end (untimed: a consumer is reset to 0 and opened again).
//!   - `reader_next`: `Reader::next` alone (the baseline: reading without committing);
//!   - `consumer_try_next`: `Consumer::try_next` alone (a consumer's read path);
//!   - `consumer_try_next_commit`: `try_next` then `commit` for every record;
//!   - `reader_next_pwrite`: `Reader::next` then the position written to a file of its own
//!     with `pwrite` (8 bytes): the obvious alternative, which also survives a crash of the
//!     process (not a power cut) and is visible to other processes at once;
//!   - `reader_next_mmap_store`: `Reader::next` then the position stored (`AtomicU64`,
//!     `Release`) into a plain shared mapping of a one-page file: the floor for any commit
//!     through a mapping.
//! - `commit_alone/*`: one iteration is one position stored, nothing read:
//!   `Consumer::commit_to` of a position between the committed one and the delivered one
//!   (the same store `commit` makes: the parked check, the coarse clock, five stores), against
//!   `pwrite` of 8 bytes and one `AtomicU64` store into a plain mapping.
//! - `commit_durable/*`: one iteration is a record read and its position made durable:
//!   `try_next` + `commit_durable` (`msync` of the consumer's page), against `Reader::next` +
//!   `pwrite` + `fdatasync` of a position file, and `Reader::next` + an `AtomicU64` store +
//!   `msync` of a plain mapping; and that last one with a `stat` of the file before the
//!   `msync` (`mmap_store_stat_msync`), which is what `Consumer::sync` does (it checks that the
//!   file at the consumer's path is still the one it holds): on kernels with fine-grained
//!   timestamps, a `stat` makes the next write fault stamp a new mtime, and the `msync` then
//!   writes the inode too. After the group, each is timed 2,000 times one by one for
//!   p50/p99/p99.9, with the bytes written to the block device per commit (every writer of
//!   the device counts: on a shared machine, an upper bound).
//! - `consumer_open/<n>seg/*`: resuming. Two logs, of 64 and 256 segments (about 256 MiB and
//!   1 GiB; the last segment about half full in both), with consumer `resume` committed 1,000
//!   records before the end (in the last segment). One iteration:
//!   - `consumer_open`: `Consumer::open(dir, "resume")` and its drop;
//!   - `reader_open`: `Reader::open(dir)` alone;
//!   - `tailer_open`: `Tailer::open(dir, position)` alone (a reader opened and sought there);
//!   - `consumers`: `applog::consumers(dir)` (what `applog consumers LOG` reads);
//!   - `scan_all` (a peer, not what open does): a `Reader` through every record of the log.
//! - Then, outside criterion, a follower: a writer thread appends 4 M records of 128 B one
//!   `append` at a time at full speed (and then paced at 1 M records/s, 4 s), while this
//!   thread follows with `Consumer::next` + `commit` per record (`WaitStrategy::Block`, and at
//!   full speed `Spin` too), and, as the peers in the same run, the writer alone and a
//!   `Tailer::next` (`Block`) without commits. It prints the writer's rate,
//!   the follower's rate (records over the time from the writer's first append to the
//!   follower's last record), how long the follower took to finish after the writer did, and
//!   the largest lag it saw (sampled every 4,096 records).
//!
//! Run: `cargo bench -p applog-bench --bench consumer -- --warm-up-time 1 --measurement-time 2` (about 3
//! minutes). `APPLOG_BENCH_CONSUMER_SEGMENTS=16,64` for smaller resume logs;
//! `APPLOG_BENCH_FOLLOW=0` skips the follower; `APPLOG_BENCH_FOLLOW_ONLY=1` runs only it.

#[path = "support/mod.rs"]
mod support;

use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use applog::{Consumer, Options, Reader, Tailer, WaitStrategy, Writer};
use criterion::{BenchmarkId, Criterion, Throughput};

const RECORD: usize = 128;
/// Records in the commit benches' log.
const COMMIT_LOG_RECORDS: u64 = 1 << 20;

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(support::bench_root())
        .expect("temporary directory")
}

fn payload() -> Vec<u8> {
    (0..RECORD).map(|i| (i * 13 + 1) as u8).collect()
}

/// Appends `n` records of 128 B (in batches of 64) and closes the writer.
fn write_log(dir: &Path, n: u64) {
    let mut w = Writer::open(dir, Options::new()).expect("open writer");
    let data = payload();
    let batch: Vec<&[u8]> = vec![&data[..]; 64];
    let mut left = n;
    while left > 0 {
        let k = left.min(64) as usize;
        w.append_batch(&batch[..k]).expect("append");
        left -= k as u64;
    }
    w.close().expect("close");
}

fn segment_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count()
}

/// A position file for the `pwrite` peer.
fn position_file(dir: &Path) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("position"))
        .expect("position file");
    f.set_len(4096).expect("size position file");
    f
}

/// A one-page file mapped shared, for the mmap peer: one `AtomicU64` at its start.
struct PosMap {
    map: memmap2::MmapMut,
    word: *mut u64,
}

impl PosMap {
    fn new(dir: &Path) -> PosMap {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("position.map"))
            .expect("position map file");
        f.set_len(4096).expect("size position map");
        // SAFETY: the file is ours, one page long, and nothing truncates it while it is mapped.
        let mut map = unsafe { memmap2::MmapMut::map_mut(&f) }.expect("map position file");
        let word = map.as_mut_ptr().cast::<u64>();
        PosMap { map, word }
    }

    fn word(&self) -> &AtomicU64 {
        // SAFETY: `word` is the page-aligned start of the mapping, which lives as long as
        // `self`; every access to it goes through this atomic.
        unsafe { AtomicU64::from_ptr(self.word) }
    }

    /// `msync(MS_SYNC)` of the page.
    fn sync(&self) {
        self.map.flush().expect("msync");
    }
}

/// A consumer at the first record of `dir` with nothing committed (reset, then opened).
fn fresh_consumer(dir: &Path, name: &str) -> Consumer {
    drop(Consumer::open(dir, name).expect("create consumer"));
    applog::reset_consumer(dir, name, 0).expect("reset consumer");
    Consumer::open(dir, name).expect("open consumer")
}

/// Benchmarks reading the log in `dir` (of `n` records) with a `Reader` from the start, again
/// and again, doing `after` after each record.
fn reader_loop(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    dir: &Path,
    n: u64,
    id: &str,
    mut after: impl FnMut(&Reader),
) {
    group.bench_function(id, |b| {
        let mut r = Reader::open(dir).expect("reader");
        b.iter_custom(|iters| {
            chunked(
                &mut r,
                iters,
                n,
                Reader::position,
                |r| r.seek(0).expect("seek"),
                |r| {
                    black_box(r.next().expect("next").expect("record").data()[0]);
                    after(r);
                },
            )
        })
    });
}

/// Benchmarks `per_record` on a consumer named `name` that reads the log in `dir` (of `n`
/// records) from the start, again and again.
fn consumer_loop(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    dir: &Path,
    n: u64,
    id: &str,
    name: &str,
    mut per_record: impl FnMut(&mut Consumer),
) {
    group.bench_function(id, |b| {
        let mut cons = Some(fresh_consumer(dir, name));
        b.iter_custom(|iters| {
            chunked(
                &mut cons,
                iters,
                n,
                |c| c.as_ref().expect("consumer").position(),
                |c| {
                    drop(c.take());
                    *c = Some(fresh_consumer(dir, name));
                },
                |c| per_record(c.as_mut().expect("consumer")),
            )
        })
    });
}

/// Runs `per_record` `iters` times in chunks that end at the end of the log; `rewind` (untimed)
/// runs when the position reaches `n`. Returns the time spent in `per_record`.
fn chunked<S>(
    state: &mut S,
    iters: u64,
    n: u64,
    position: impl Fn(&S) -> u64,
    mut rewind: impl FnMut(&mut S),
    mut per_record: impl FnMut(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        if position(state) >= n {
            rewind(state);
        }
        let k = left.min(n - position(state));
        let t = Instant::now();
        for _ in 0..k {
            per_record(state);
        }
        total += t.elapsed();
        left -= k;
    }
    total
}

fn commit_benches(c: &mut Criterion) {
    let tmp = tempdir("applog-consumer-commit-");
    let dir = tmp.path().join("log");
    let n = COMMIT_LOG_RECORDS;
    write_log(&dir, n);
    let peers = tempdir("applog-consumer-peers-");

    let mut group = c.benchmark_group("consumer_commit");
    group.throughput(Throughput::Elements(1));
    reader_loop(&mut group, &dir, n, "reader_next", |_| {});
    consumer_loop(
        &mut group,
        &dir,
        n,
        "consumer_try_next",
        "bench-read",
        |c| {
            black_box(c.try_next().expect("next").expect("record").data()[0]);
        },
    );
    consumer_loop(
        &mut group,
        &dir,
        n,
        "consumer_try_next_commit",
        "bench-commit",
        |c| {
            black_box(c.try_next().expect("next").expect("record").data()[0]);
            c.commit().expect("commit");
        },
    );
    let file = position_file(peers.path());
    reader_loop(&mut group, &dir, n, "reader_next_pwrite", |r| {
        file.write_at(&r.position().to_le_bytes(), 64)
            .expect("pwrite");
    });
    let map = PosMap::new(peers.path());
    let w = map.word();
    reader_loop(&mut group, &dir, n, "reader_next_mmap_store", |r| {
        w.store(r.position(), Ordering::Release);
    });
    group.finish();

    let mut group = c.benchmark_group("commit_alone");
    group.throughput(Throughput::Elements(1));
    group.bench_function("consumer_commit_to", |b| {
        let mut cons = fresh_consumer(&dir, "bench-alone");
        for _ in 0..10 {
            cons.try_next().expect("next").expect("record");
        }
        cons.commit_to(5).expect("commit_to");
        // 5 is between the committed position (5) and the delivered one (10): each call
        // stores it again.
        b.iter(|| cons.commit_to(black_box(5)).expect("commit_to"))
    });
    group.bench_function("pwrite_8B", |b| {
        let file = position_file(peers.path());
        let mut pos = 0u64;
        b.iter(|| {
            pos += 1;
            file.write_at(&pos.to_le_bytes(), 64).expect("pwrite")
        })
    });
    group.bench_function("mmap_atomic_store", |b| {
        let map = PosMap::new(peers.path());
        let w = map.word();
        let mut pos = 0u64;
        b.iter(|| {
            pos += 1;
            w.store(black_box(pos), Ordering::Release)
        })
    });
    group.finish();

    durable_benches(c, &dir, peers.path());
}

/// The three durable commits, each an operation that reads one record and makes its position
/// durable.
fn durable_benches(c: &mut Criterion, dir: &Path, peers: &Path) {
    let mut cons = fresh_consumer(dir, "bench-durable");
    let file = position_file(peers);
    let map = PosMap::new(peers);
    let mut r1 = Reader::open(dir).expect("reader");
    let mut r2 = Reader::open(dir).expect("reader");
    let mut consumer_op = || {
        black_box(cons.try_next().expect("next").expect("record").data()[0]);
        cons.commit_durable().expect("commit_durable");
    };
    let mut pwrite_op = || {
        black_box(r1.next().expect("next").expect("record").data()[0]);
        file.write_at(&r1.position().to_le_bytes(), 64)
            .expect("pwrite");
        file.sync_data().expect("fdatasync");
    };
    let mut mmap_op = || {
        black_box(r2.next().expect("next").expect("record").data()[0]);
        map.word().store(r2.position(), Ordering::Release);
        map.sync();
    };
    let map_path = peers.join("position.map");
    let mut r3 = Reader::open(dir).expect("reader");
    let mut mmap_stat_op = || {
        black_box(r3.next().expect("next").expect("record").data()[0]);
        map.word().store(r3.position(), Ordering::Release);
        black_box(std::fs::metadata(&map_path).expect("stat"));
        map.sync();
    };
    let mut group = c.benchmark_group("commit_durable");
    group.throughput(Throughput::Elements(1));
    group.bench_function("consumer_commit_durable", |b| b.iter(&mut consumer_op));
    group.bench_function("pwrite_fdatasync", |b| b.iter(&mut pwrite_op));
    group.bench_function("mmap_store_msync", |b| b.iter(&mut mmap_op));
    group.bench_function("mmap_store_stat_msync", |b| b.iter(&mut mmap_stat_op));
    group.finish();

    // Percentiles, each operation timed on its own.
    let samples = 2000;
    let time = |name: &str, op: &mut dyn FnMut()| {
        let mut lat = Vec::with_capacity(samples);
        let before = support::device_bytes_written(peers);
        for _ in 0..samples {
            let t = Instant::now();
            op();
            lat.push(t.elapsed().as_nanos() as u64);
        }
        let after = support::device_bytes_written(peers);
        support::report_latency(name, &mut lat);
        // Counts every writer of the device: on a shared machine, an upper bound.
        if let (Some(b), Some(a)) = (before, after) {
            let per_op = a.saturating_sub(b) as f64 / samples as f64;
            println!(
                "{name}: {:.1} KiB written to the device per durable commit",
                per_op / 1024.0
            );
            support::record(name, "device_bytes_per_op", per_op);
        }
    };
    time("commit_durable/consumer_commit_durable", &mut consumer_op);
    time("commit_durable/pwrite_fdatasync", &mut pwrite_op);
    time("commit_durable/mmap_store_msync", &mut mmap_op);
    time("commit_durable/mmap_store_stat_msync", &mut mmap_stat_op);
}

/// Segment counts of the resume logs.
fn resume_segments() -> Vec<usize> {
    std::env::var("APPLOG_BENCH_CONSUMER_SEGMENTS")
        .ok()
        .map(|v| {
            v.split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|s| s.trim().parse().expect("segment count"))
                .collect()
        })
        .unwrap_or_else(|| vec![64, 256])
}

/// Writes a log of `segments` segments, the last one about half full, and a consumer
/// `resume` committed 1,000 records before the end. Returns (records, position).
fn build_resume_log(dir: &Path, segments: usize) -> (u64, u64) {
    // Records per segment: fill one segment and see where the second starts.
    let probe = tempdir("applog-consumer-probe-");
    let pdir = probe.path().join("log");
    let mut w = Writer::open(&pdir, Options::new()).expect("open writer");
    let data = payload();
    while segment_count(&pdir) < 2 {
        for _ in 0..1024 {
            w.append(&data).expect("append");
        }
    }
    drop(w);
    let mut bases: Vec<u64> = std::fs::read_dir(&pdir)
        .expect("list")
        .filter_map(|e| {
            let name = e.expect("entry").file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    bases.sort_unstable();
    let per_segment = bases[1];
    let records = (segments as u64 - 1) * per_segment + per_segment / 2;
    write_log(dir, records);
    assert_eq!(segment_count(dir), segments);
    let position = records - 1000;
    drop(Consumer::open(dir, "resume").expect("create consumer"));
    applog::reset_consumer(dir, "resume", position).expect("reset consumer");
    (records, position)
}

fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .map(|p| std::fs::metadata(p).expect("stat").len())
        .sum()
}

fn open_benches(c: &mut Criterion) {
    for segments in resume_segments() {
        let tmp = tempdir("applog-consumer-open-");
        let dir = tmp.path().join("log");
        let built = Instant::now();
        let (records, position) = build_resume_log(&dir, segments);
        println!(
            "consumer_open/{segments}seg: {records} records, {:.0} MiB of segment files, consumer at {position} (built in {:.1} s)",
            log_bytes(&dir) as f64 / f64::from(1 << 20),
            built.elapsed().as_secs_f64()
        );
        let mut group = c.benchmark_group(format!("consumer_open/{segments}seg"));
        group.sample_size(20);
        group.bench_function("consumer_open", |b| {
            b.iter(|| {
                let c = Consumer::open(&dir, "resume").expect("open");
                assert_eq!(c.position(), position);
                drop(c);
            })
        });
        group.bench_function("reader_open", |b| {
            b.iter(|| black_box(Reader::open(&dir).expect("reader")))
        });
        group.bench_function("tailer_open", |b| {
            b.iter(|| black_box(Tailer::open(&dir, position).expect("tailer")))
        });
        group.bench_function("consumers", |b| {
            b.iter(|| black_box(applog::consumers(&dir).expect("consumers")))
        });
        group.sample_size(10);
        group.bench_function(BenchmarkId::new("scan_all", records), |b| {
            b.iter(|| {
                let mut r = Reader::open(&dir).expect("reader");
                let mut k = 0u64;
                while let Some(rec) = r.next().expect("next") {
                    k += u64::from(rec.data()[0]);
                }
                black_box(k)
            })
        });
        group.finish();
    }
}

/// Who follows the writer in a follower run.
#[derive(Clone, Copy)]
enum Follower {
    /// Nobody: the writer alone (the writer's own rate in the same run).
    None,
    /// `Consumer::next` + `commit` per record, with this wait strategy.
    Consumer(WaitStrategy),
    /// `Tailer::next` per record (`Block`), no commits.
    Tailer,
}

/// What one follower run measured.
struct Followed {
    writer_secs: f64,
    follower_secs: f64,
    after_writer_secs: f64,
    max_lag: u64,
}

/// A writer thread appends `n` records (paced at `rate` records/s when given) while this
/// thread follows them.
fn follow_once(n: u64, rate: Option<f64>, who: Follower) -> Followed {
    let tmp = tempdir("applog-consumer-follow-");
    let dir: PathBuf = tmp.path().join("log");
    let mut w = Writer::open(&dir, Options::new()).expect("open writer");
    let written = Arc::new(AtomicU64::new(0));
    let go = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, go) = (Arc::clone(&written), Arc::clone(&go));
        std::thread::spawn(move || {
            let data = payload();
            while !go.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            let start = Instant::now();
            for i in 0..n {
                if let Some(rate) = rate {
                    if i % 16 == 0 {
                        let due = Duration::from_secs_f64(i as f64 / rate);
                        while start.elapsed() < due {
                            std::hint::spin_loop();
                        }
                    }
                }
                w.append(&data).expect("append");
                if i % 1024 == 1023 {
                    written.store(i + 1, Ordering::Release);
                }
            }
            written.store(n, Ordering::Release);
            let end = Instant::now();
            drop(w);
            (start, end)
        })
    };
    let mut max_lag = 0u64;
    let mut sample = |pos: u64| {
        if pos % 4096 == 0 {
            max_lag = max_lag.max(written.load(Ordering::Acquire).saturating_sub(pos));
        }
    };
    let done = match who {
        Follower::None => {
            go.store(true, Ordering::Release);
            None
        }
        Follower::Consumer(wait) => {
            let mut c = Consumer::open(&dir, "follower")
                .expect("consumer")
                .wait_strategy(wait);
            go.store(true, Ordering::Release);
            for _ in 0..n {
                black_box(c.next().expect("next").data()[0]);
                c.commit().expect("commit");
                sample(c.position());
            }
            Some(Instant::now())
        }
        Follower::Tailer => {
            let mut t = Tailer::open(&dir, 0).expect("tailer");
            go.store(true, Ordering::Release);
            for _ in 0..n {
                black_box(t.next().expect("next").data()[0]);
                sample(t.position());
            }
            Some(Instant::now())
        }
    };
    let (start, end) = writer.join().expect("writer thread");
    let done = done.unwrap_or(end);
    Followed {
        writer_secs: (end - start).as_secs_f64(),
        follower_secs: (done - start).as_secs_f64(),
        after_writer_secs: done.saturating_duration_since(end).as_secs_f64(),
        max_lag,
    }
}

fn follow() {
    let n = 4_000_000u64;
    let runs = [
        ("full_speed", None, "writer_alone", Follower::None),
        (
            "full_speed",
            None,
            "consumer_next_commit",
            Follower::Consumer(WaitStrategy::Block),
        ),
        (
            "full_speed",
            None,
            "consumer_next_commit_spin",
            Follower::Consumer(WaitStrategy::Spin),
        ),
        ("full_speed", None, "tailer_next", Follower::Tailer),
        (
            "paced_1M_per_s",
            Some(1e6),
            "consumer_next_commit",
            Follower::Consumer(WaitStrategy::Block),
        ),
        ("paced_1M_per_s", Some(1e6), "tailer_next", Follower::Tailer),
    ];
    for (label, rate, who_name, who) in runs {
        let f = follow_once(n, rate, who);
        let name = format!("follow/{label}/{who_name}");
        let wrate = n as f64 / f.writer_secs;
        let frate = n as f64 / f.follower_secs;
        if matches!(who, Follower::None) {
            println!("{name}: {n} records: writer {:.2} M/s", wrate / 1e6);
        } else {
            println!(
                "{name}: {n} records: writer {:.2} M/s, follower {:.2} M/s, finished {:.1} ms after the writer, largest lag {} records",
                wrate / 1e6,
                frate / 1e6,
                f.after_writer_secs * 1e3,
                f.max_lag
            );
            support::record(&name, "follower_per_s", frate);
            support::record(&name, "after_writer_ms", f.after_writer_secs * 1e3);
            support::record(&name, "max_lag", f.max_lag as f64);
        }
        support::record(&name, "writer_per_s", wrate);
    }
}

fn main() {
    let follow_only = std::env::var_os("APPLOG_BENCH_FOLLOW_ONLY").is_some_and(|v| v == "1");
    if !follow_only {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2))
            .configure_from_args();
        commit_benches(&mut c);
        open_benches(&mut c);
        c.final_summary();
    }
    if std::env::var_os("APPLOG_BENCH_FOLLOW").is_none_or(|v| v != "0") {
        follow();
    }
}
