//! Live tailing across processes: `Tailer`s in child processes follow a writer in another
//! child process.
//!
//! Fault model: the writer appends records of random sizes (empty, page-crossing, exactly a
//! page, segment-filling) into 4-page segments, so it rolls every few records; it is killed
//! with SIGKILL at random moments and restarted (its recovery cuts what it tore), or stopped
//! with SIGSTOP in the middle of writing a record. Readers tail with each `WaitStrategy`.
//!
//! Pass criterion: every reader receives exactly the records the final log holds, in order,
//! byte for byte (each record is also checked against the payload its seq determines); no
//! reader reports an error, exits early or dies of a signal; a stopped writer makes readers
//! wait, not fail. An idle `Block` tailer uses under 1% of a core.
//!
//! Every process here is a child: the parent holds no writer while it spawns (a forked child
//! would inherit the writer's lock until it execs), and the tests run one at a time
//! (`common::serial`), so that no test forks while another holds a writer.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use applog::{Options, Reader, Tailer, WaitStrategy, Writer};
use common::*;

const SEGMENT_PAGES: u32 = 4;

/// The length of record `seq`: mostly small and random, with empty, exactly-a-page,
/// page-crossing and segment-filling records mixed in.
fn len_of(seq: u64) -> usize {
    let page = page() as usize;
    let max = (page as u64 * u64::from(SEGMENT_PAGES) - 80) as usize;
    let h = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    match h % 61 {
        0 => 0,
        1 => page,
        2 => page + 1 + (h as usize % 2000),
        3 => max,
        4 => page - 8,
        _ => (h as usize) % 400,
    }
}

/// FNV-1a over (seq, len, bytes) of a sequence of records.
#[derive(Clone, Copy)]
struct Digest(u64);

impl Digest {
    fn new() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, seq: u64, data: &[u8]) {
        for b in seq
            .to_le_bytes()
            .iter()
            .chain(&(data.len() as u64).to_le_bytes())
            .chain(data)
        {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn child(role: &str, dir: &Path, extra: &[(&str, String)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "tail_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("APPLOG_TAIL_ROLE", role)
    .env("APPLOG_TAIL_DIR", dir)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in extra {
        c.env(k, v);
    }
    c
}

/// Waits for a child with a deadline; kills it and fails the test past the deadline.
fn finish(mut c: Child, what: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = c.try_wait().unwrap() {
            let mut out = String::new();
            c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
            let mut err = String::new();
            c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
            assert!(status.success(), "{what} failed ({status}):\n{out}\n{err}");
            return out;
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            panic!("{what} did not finish within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for a line containing `marker` on a child's stdout (the rest stays readable).
fn wait_for_line(c: &mut Child, marker: &str) -> BufReader<std::process::ChildStdout> {
    let mut lines = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(lines.read_line(&mut line).unwrap() > 0, "child exited");
        if line.contains(marker) {
            return lines;
        }
    }
}

fn digest_of_log(dir: &Path) -> (u64, u64) {
    let mut r = Reader::open(dir).unwrap();
    let mut d = Digest::new();
    let mut n = 0;
    while let Some(rec) = r.next().unwrap() {
        assert_eq!(rec.seq(), n);
        d.add(rec.seq(), rec.data());
        n += 1;
    }
    (n, d.0)
}

fn parse_reader(out: &str) -> (u64, u64) {
    let f = numbers_after(out, "reader: done");
    (f[0], f[1])
}

fn strategy_name(s: WaitStrategy) -> &'static str {
    match s {
        WaitStrategy::Spin => "spin",
        WaitStrategy::Backoff => "backoff",
        _ => "block",
    }
}

fn spawn_readers(dir: &Path, strategies: &[WaitStrategy], end: &str, big: bool) -> Vec<Child> {
    strategies
        .iter()
        .map(|&s| {
            let mut c = child(
                "reader",
                dir,
                &[
                    ("APPLOG_TAIL_WAIT", strategy_name(s).into()),
                    ("APPLOG_TAIL_END", end.into()),
                ],
            );
            if big {
                c.env("APPLOG_TAIL_BIG", "1");
            }
            c.spawn().unwrap()
        })
        .collect()
}

/// The numbers after `marker` on the first output line that contains it.
fn numbers_after(out: &str, marker: &str) -> Vec<u64> {
    let line = out
        .lines()
        .find_map(|l| l.split_once(marker).map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no '{marker}' in the child's output:\n{out}"));
    line.split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect()
}

#[test]
fn three_readers_in_other_processes_receive_exactly_what_the_writer_wrote() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let n: u64 = 6_000;
    // The log exists (with its first segment) before the readers start.
    drop(Writer::open(d.path(), Options::new().segment_pages(SEGMENT_PAGES)).unwrap());
    let readers = spawn_readers(
        d.path(),
        &[
            WaitStrategy::Block,
            WaitStrategy::Spin,
            WaitStrategy::Backoff,
        ],
        &n.to_string(),
        false,
    );
    let writer = child("writer", d.path(), &[("APPLOG_TAIL_COUNT", n.to_string())])
        .spawn()
        .unwrap();
    finish(writer, "writer", Duration::from_secs(120));
    let (count, digest) = digest_of_log(d.path());
    assert_eq!(count, n);
    for (i, r) in readers.into_iter().enumerate() {
        let out = finish(r, &format!("reader {i}"), Duration::from_secs(120));
        assert_eq!(parse_reader(&out), (n, digest), "reader {i}:\n{out}");
    }
    let segments = std::fs::read_dir(d.path()).unwrap().count();
    assert!(
        segments > 100,
        "only {segments} segments: too few rollovers"
    );
}

#[test]
fn readers_follow_a_writer_killed_and_restarted_twenty_times() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    drop(Writer::open(d.path(), Options::new().segment_pages(SEGMENT_PAGES)).unwrap());
    let readers = spawn_readers(
        d.path(),
        &[
            WaitStrategy::Block,
            WaitStrategy::Block,
            WaitStrategy::Backoff,
        ],
        "sentinel",
        false,
    );
    let seed = std::env::var("APPLOG_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("seed {seed} (set APPLOG_TEST_SEED to repeat)");
    let mut rng = seed | 1;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..20 {
        let mut w = child("writer", d.path(), &[("APPLOG_TAIL_COUNT", "0".into())])
            .spawn()
            .unwrap();
        // Let it recover and append a few records (a loaded machine may be slow to get there),
        // then let it go on for a random while and kill it wherever it is.
        let _ = wait_for_line(&mut w, "writer: under way");
        std::thread::sleep(Duration::from_micros(2_000 + next() % 30_000));
        w.kill().unwrap();
        let status = w.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the writer ended by itself"
        );
    }
    // A last writer appends the sentinel the readers stop at.
    let w = child("writer", d.path(), &[("APPLOG_TAIL_SENTINEL", "1".into())])
        .spawn()
        .unwrap();
    finish(w, "final writer", Duration::from_secs(60));
    let (count, digest) = digest_of_log(d.path());
    assert!(count > 60, "only {count} records in 20 rounds");
    for (i, r) in readers.into_iter().enumerate() {
        let out = finish(r, &format!("reader {i}"), Duration::from_secs(60));
        assert_eq!(parse_reader(&out), (count, digest), "reader {i}:\n{out}");
    }
    let report = applog::verify(d.path()).unwrap();
    assert!(
        report.is_clean() && report.torn_tail.is_none(),
        "{report:?}"
    );
}

#[test]
fn a_writer_stopped_in_the_middle_of_a_record_makes_readers_wait_not_fail() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let n: u64 = 400;
    drop(Writer::open(d.path(), Options::new().segment_pages(2048)).unwrap());
    let readers = spawn_readers(
        d.path(),
        &[WaitStrategy::Block, WaitStrategy::Spin],
        &n.to_string(),
        true,
    );
    let mut w = child(
        "writer",
        d.path(),
        &[
            ("APPLOG_TAIL_COUNT", n.to_string()),
            ("APPLOG_TAIL_BIG", "1".into()),
            ("APPLOG_TAIL_STOP_AT", STOP_AT.to_string()),
        ],
    )
    .spawn()
    .unwrap();
    let pid = w.id() as i32;
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    // A stopped writer makes readers wait, and they get the record after SIGCONT.
    let hold_and_resume = |w: &mut Child| {
        std::thread::sleep(Duration::from_millis(100));
        assert!(w.try_wait().unwrap().is_none());
        signal("-CONT");
    };
    // First, one stop that always lands mid-record: the writer stops itself (SIGSTOP) when
    // the payload of record STOP_AT is in place and its header not yet stored.
    let t = Instant::now();
    while !is_stopped(pid) {
        assert!(w.try_wait().unwrap().is_none(), "the writer exited");
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the writer never stopped"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(
        stopped_mid_record(d.path()),
        "stopped before the publish of record {STOP_AT}, yet no payload beyond the data end: {:?}",
        applog::verify(d.path())
    );
    let mut mid_record = 1;
    hold_and_resume(&mut w);
    // Then stops from outside at random moments, which land anywhere: in the growth step,
    // in the copy of a payload, between records. (A stop signal that arrives inside a system
    // call takes effect when it returns, so a stop in the copy itself is not certain.)
    let mut random_mid_record = 0;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(3));
        signal("-STOP");
        // Give the kernel a moment to stop it, then look at the log from outside.
        std::thread::sleep(Duration::from_millis(20));
        if stopped_mid_record(d.path()) {
            random_mid_record += 1;
            hold_and_resume(&mut w);
        } else {
            signal("-CONT");
        }
        if random_mid_record >= 3 || w.try_wait().unwrap().is_some() {
            break;
        }
    }
    println!("stops in the middle of a record: 1 at a fault point, {random_mid_record} at random");
    mid_record += random_mid_record;
    finish(w, "writer", Duration::from_secs(120));
    assert!(
        mid_record > 0,
        "never caught the writer in the middle of a record"
    );
    let (count, digest) = digest_of_log(d.path());
    assert_eq!(count, n);
    for (i, r) in readers.into_iter().enumerate() {
        let out = finish(r, &format!("reader {i}"), Duration::from_secs(60));
        assert_eq!(parse_reader(&out), (n, digest), "reader {i}:\n{out}");
    }
}

/// Whether the newest segment has payload bytes after its last published frame: the writer
/// is between copying a record's payload and publishing its header.
/// The record before whose publish the writer of the SIGSTOP test stops itself (counting
/// frames published by this writer, seals included).
const STOP_AT: u64 = 50;

/// The writer's fault hook in the SIGSTOP test: SIGSTOP to itself at the `STOP_AT`-th publish.
fn stop_before_publish(point: applog::fault::Point) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PUBLISHES: AtomicU64 = AtomicU64::new(0);
    if point == applog::fault::Point::BeforePublish
        && PUBLISHES.fetch_add(1, Ordering::Relaxed) == STOP_AT
    {
        let me = rustix::process::getpid();
        rustix::process::kill_process(me, rustix::process::Signal::STOP).unwrap();
        // The stop is process-wide: another thread of this process may take the signal and
        // stop the others a little later. Sleep (a system call the stop interrupts) so that
        // this thread does not go on to the publish meanwhile.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` is stopped (state `T` in /proc).
fn is_stopped(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses.
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
}

fn stopped_mid_record(dir: &Path) -> bool {
    let report = applog::verify(dir).unwrap();
    let Some(last) = report.segments.last() else {
        return false;
    };
    let bytes = std::fs::read(&last.path).unwrap();
    let from = (last.data_end + 8) as usize;
    bytes.len() > from + 64 && bytes[from..from + 64].iter().any(|&b| b != 0)
}

#[test]
fn an_idle_blocked_tailer_uses_almost_no_cpu() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    {
        let mut w = Writer::open(d.path(), Options::new()).unwrap();
        w.append(b"only").unwrap();
    }
    let r = child("idle", d.path(), &[]).spawn().unwrap();
    let out = finish(r, "idle tailer", Duration::from_secs(60));
    let f = numbers_after(out.as_str(), "idle:");
    let (cpu_ns, wall_ns) = (f[0], f[1]);
    let share = cpu_ns as f64 / wall_ns as f64;
    println!("idle Block tailer: {cpu_ns} ns of CPU in {wall_ns} ns = {share:.5} of a core");
    assert!(share < 0.01, "an idle tailer used {share:.4} of a core");
}

/// CPU time the calling thread has used, in nanoseconds.
fn cpu_time_ns() -> u64 {
    // schedstat: time on the CPU in ns, first field.
    if let Ok(s) = std::fs::read_to_string("/proc/thread-self/schedstat") {
        if let Some(ns) = s.split_whitespace().next().and_then(|x| x.parse().ok()) {
            return ns;
        }
    }
    // Fallback: utime + stime in clock ticks (usually 100 per second).
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|x| x.parse().unwrap())
        .collect();
    (f[0] + f[1]) * 10_000_000
}

/// The child processes: a writer, a reader, an idle tailer.
#[test]
#[ignore = "run as a child process by the tests above"]
fn tail_child() {
    let dir = std::env::var("APPLOG_TAIL_DIR").expect("run by a parent test");
    let dir = Path::new(&dir);
    let var = |k: &str| std::env::var(k).ok();
    match var("APPLOG_TAIL_ROLE").as_deref() {
        Some("writer") => {
            let big = var("APPLOG_TAIL_BIG").is_some();
            if var("APPLOG_TAIL_STOP_AT").is_some() {
                assert!(applog::fault::install(stop_before_publish));
            }
            let pages = if big { 2048 } else { SEGMENT_PAGES };
            let mut w = Writer::open(dir, Options::new().segment_pages(pages)).unwrap();
            println!("writer: open at {}", w.next_seq());
            if var("APPLOG_TAIL_SENTINEL").is_some() {
                w.append(b"sentinel").unwrap();
                return;
            }
            let count: u64 = var("APPLOG_TAIL_COUNT").unwrap().parse().unwrap();
            let first = w.next_seq();
            loop {
                let seq = w.next_seq();
                if seq == first + 3 {
                    println!("writer: under way");
                }
                if count > 0 && seq >= count {
                    break;
                }
                let rec = if big {
                    big_payload(seq)
                } else {
                    payload(seq, len_of(seq))
                };
                w.append(&rec).unwrap();
            }
        }
        Some("reader") => {
            let wait = match var("APPLOG_TAIL_WAIT").as_deref() {
                Some("spin") => WaitStrategy::Spin,
                Some("backoff") => WaitStrategy::Backoff,
                _ => WaitStrategy::Block,
            };
            let end = var("APPLOG_TAIL_END").unwrap();
            let big = var("APPLOG_TAIL_BIG").is_some();
            let mut t = Tailer::open(dir, 0).unwrap().wait_strategy(wait);
            let mut d = Digest::new();
            let mut n = 0u64;
            loop {
                if end != "sentinel" && n == end.parse::<u64>().unwrap() {
                    break;
                }
                let rec = t.next_timeout(Duration::from_secs(60)).unwrap();
                let rec = rec.unwrap_or_else(|| panic!("nothing for 60 s after seq {n}"));
                assert_eq!(rec.seq(), n, "gap or duplicate");
                if end == "sentinel" && rec.data() == b"sentinel" {
                    d.add(rec.seq(), rec.data());
                    n += 1;
                    break;
                }
                let want = if big {
                    big_payload(n)
                } else {
                    payload(n, len_of(n))
                };
                assert!(rec.data() == want, "record {n} differs");
                d.add(rec.seq(), rec.data());
                n += 1;
            }
            println!("reader: done {n} {}", d.0);
        }
        Some("idle") => {
            let mut t = Tailer::open(dir, 1).unwrap();
            // Warm up (map the wake word), then measure a few seconds of waiting.
            assert!(t.next_timeout(Duration::from_millis(50)).unwrap().is_none());
            let (cpu0, wall0) = (cpu_time_ns(), Instant::now());
            assert!(t.next_timeout(Duration::from_secs(3)).unwrap().is_none());
            let (cpu, wall) = (cpu_time_ns() - cpu0, wall0.elapsed().as_nanos());
            println!("idle: cpu_ns {cpu} wall_ns {wall}");
        }
        other => panic!("unknown role {other:?}"),
    }
}

/// A 256 KiB record with no zero byte, so that a payload copied but not yet published is
/// visible from outside.
fn big_payload(seq: u64) -> Vec<u8> {
    let mut p = payload(seq, 256 * 1024);
    for b in &mut p {
        *b |= 1;
    }
    p
}

/// The producer/consumer example (examples/ipc.rs) runs as documented: a consumer process
/// receives every message in order.
#[test]
fn the_ipc_example_runs() {
    let _serial = serial();
    // cargo test builds examples next to the test binaries: target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let example = exe
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("examples").join("ipc"))
        .unwrap();
    if !example.exists() {
        skip(format_args!(
            "{} was not built (cargo test builds it; cargo test --test tailing does not)",
            example.display()
        ));
        return;
    }
    let out = Command::new(&example).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("consumer: received 10000 messages in order"),
        "{stdout}"
    );
}
