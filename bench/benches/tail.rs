//! Cross-process tailing: one-way latency and throughput of 128 B records from a writer in
//! this process to a `Tailer` in another, against a Unix pipe and a Unix domain socket moving
//! the same 128 B messages, measured in the same run.
//!
//! - `tail_latency/*`: ping-pong. The child echoes each record (message) back on a second log
//!   (pipe, socket); criterion's time per iteration is one round trip, so one-way latency is
//!   half of it. After the criterion groups, the bench also prints p50/p99 of the one-way
//!   latency over 20,000 individually timed round trips (`tail_oneway/*`).
//! - `tail_throughput/*`: the writer appends N records without pausing, the child reads all N
//!   and acknowledges; criterion's throughput is messages per second. `applog_batch16/*`
//!   and `applog_batch64/*`: the same records appended with `append_batch` of 16 or 64 (one
//!   growth check, one clock read and one publish per batch).
//! - After the groups, a one-way measurement that is not half of a round trip
//!   (`tail_stamped/<schedule>/<transport>`): the writer sends messages on a fixed schedule,
//!   message i due at `start + i * interval`, and each message carries that intended send
//!   time (`CLOCK_MONOTONIC` ns, one clock for every process), not the time it was actually
//!   sent. The writer busy-waits for each slot, as a producer that keeps working would; when
//!   it is behind schedule it sends at once, never skipping a slot. The child takes the time
//!   when it has the message and reports p50, p99, p99.9 and the maximum of the difference.
//!   Measuring from the intended time corrects for coordinated omission (as wrk2 and
//!   HdrHistogram do): a stall of the sender, or a transport slower than the schedule, delays
//!   every message due meanwhile, and all of that delay counts as latency. Two schedules:
//!   - `idle`: one message per 50 µs, 20,000 messages (1 s): the receiver goes to sleep (or
//!     spins idle) before each message;
//!   - `busy`: one message per 2 µs (500,000 messages/s), 200,000 messages (0.4 s): the
//!     writer is busy all the time and the receiver rarely sleeps.
//!
//!   `APPLOG_BENCH_TAIL_IDLE_MSGS` and `APPLOG_BENCH_TAIL_BUSY_MSGS` change the counts. Each
//!   transport is warmed up with a tenth of the count on the same schedule first. In a round
//!   trip both sides go to sleep right after they send; here only the receiver may.
//!
//! The child process is this bench binary itself, started with `APPLOG_BENCH_CHILD` set. Logs
//! live in fresh temporary directories (one pair per measurement batch) under
//! `$APPLOG_BENCH_DIR` when set (see `support::bench_root`), 64 MiB segments.
//! Run: `cargo bench -p applog-bench --bench tail` (add `-- --warm-up-time 1 --measurement-time 3` to shorten).

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use applog::{Options, Tailer, WaitStrategy, Writer};
use criterion::{BenchmarkId, Criterion, Throughput};

const MSG: usize = 128;
const SEGMENT_PAGES: u32 = 16 * 1024;

fn opts() -> Options {
    Options::new().segment_pages(SEGMENT_PAGES)
}

fn strategy(name: &str) -> WaitStrategy {
    match name {
        "spin" => WaitStrategy::Spin,
        "backoff" => WaitStrategy::Backoff,
        _ => WaitStrategy::Block,
    }
}

// ---------------------------------------------------------------- the child process

fn child_main(role: &str) {
    match role {
        "applog" => applog_child(),
        "pipe" => stream_child(std::io::stdin().lock(), std::io::stdout().lock()),
        "socket" => {
            // stdin is one end of a socket pair: read and write on it.
            use std::os::fd::FromRawFd;
            // SAFETY: fd 0 is open (the parent passed the socket as stdin) and nothing else
            // in this process uses it; the File takes it over for the process's lifetime.
            let sock = unsafe { std::fs::File::from_raw_fd(0) };
            let out = sock.try_clone().expect("dup socket");
            stream_child(sock, out);
        }
        other => panic!("unknown child role {other}"),
    }
}

/// Opens a tailer on log `a`, then tells the parent it is ready.
fn ready_tailer(a: &str, wait: &str, out: &mut impl Write) -> Tailer {
    let t = Tailer::open(a, 0)
        .expect("tail A")
        .wait_strategy(strategy(wait));
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    t
}

/// Commands on stdin, one per line: `echo A B WAIT` (tail log A, append each record to log B,
/// until an empty record), `sink A N WAIT` (read N records of A, then print `ok`) or
/// `stamped A N WAIT` (read N stamped records of A, then print `ok P50 P99 P999 MAX`, the
/// one-way latency from each record's intended send time, in ns).
fn applog_child() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line.expect("command");
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["echo", a, b, wait] => {
                let mut w = Writer::open(b, opts()).expect("open B");
                let mut t = ready_tailer(a, wait, &mut out);
                loop {
                    let rec = t.next().expect("record");
                    w.append(rec.data()).expect("append B");
                    if rec.data().is_empty() {
                        break;
                    }
                }
            }
            ["stamped", a, n, wait] => {
                let n: usize = n.parse().unwrap();
                let mut t = ready_tailer(a, wait, &mut out);
                let mut lat = Vec::with_capacity(n);
                for _ in 0..n {
                    let rec = t.next().expect("record");
                    lat.push(since(stamp_of(rec.data())));
                }
                let [p50, p99, p999, max] = summary(&mut lat);
                writeln!(out, "ok {p50} {p99} {p999} {max}").unwrap();
                out.flush().unwrap();
            }
            ["sink", a, n, wait] => {
                let n: u64 = n.parse().unwrap();
                let mut t = ready_tailer(a, wait, &mut out);
                let mut sum = 0u64;
                for _ in 0..n {
                    sum = sum.wrapping_add(u64::from(t.next().expect("record").data()[0]));
                }
                writeln!(out, "ok {sum}").unwrap();
                out.flush().unwrap();
            }
            _ => panic!("bad command {line}"),
        }
    }
}

/// Pipe or socket: each batch starts with a 9-byte header: count N and mode (1, echo: send
/// each message back; 0, sink: read N messages, then send one byte; 2, stamped: read N
/// stamped messages, then send p50, p99, p99.9 and the maximum of their one-way latency from
/// the intended send time, in ns, as 4 little-endian u64s).
fn stream_child(mut input: impl Read, mut output: impl Write) {
    let mut head = [0u8; 9];
    let mut msg = [0u8; MSG];
    while input.read_exact(&mut head).is_ok() {
        let n = u64::from_le_bytes(head[..8].try_into().unwrap());
        if head[8] == 2 {
            let mut lat = Vec::with_capacity(n as usize);
            for _ in 0..n {
                input.read_exact(&mut msg).unwrap();
                lat.push(since(stamp_of(&msg)));
            }
            for v in summary(&mut lat) {
                output.write_all(&v.to_le_bytes()).unwrap();
            }
            output.flush().unwrap();
            continue;
        }
        let echo = head[8] == 1;
        for _ in 0..n {
            input.read_exact(&mut msg).unwrap();
            if echo {
                output.write_all(&msg).unwrap();
                output.flush().unwrap();
            }
        }
        if !echo {
            output.write_all(&[1]).unwrap();
            output.flush().unwrap();
        }
    }
}

// ---------------------------------------------------------------- scheduled messages

/// A schedule of stamped messages: one every `interval`, `msgs` of them.
#[derive(Clone, Copy)]
struct Schedule {
    name: &'static str,
    interval: Duration,
    msgs: u64,
}

impl Schedule {
    /// The two schedules, each with its count (from the environment when set there).
    fn all() -> [Schedule; 2] {
        let count = |var: &str, default: u64| {
            std::env::var(var)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        [
            // Long enough between messages that the receiver sleeps before each one.
            Schedule {
                name: "idle",
                interval: Duration::from_micros(50),
                msgs: count("APPLOG_BENCH_TAIL_IDLE_MSGS", 20_000),
            },
            // 500,000 messages/s: the writer is always busy, the receiver rarely sleeps.
            Schedule {
                name: "busy",
                interval: Duration::from_micros(2),
                msgs: count("APPLOG_BENCH_TAIL_BUSY_MSGS", 200_000),
            },
        ]
    }

    /// A tenth of the count on the same schedule.
    fn warm_up(self) -> Schedule {
        Schedule {
            msgs: (self.msgs / 10).max(1),
            ..self
        }
    }

    /// Calls `send` `msgs` times with a message that carries its intended send time, `start +
    /// i * interval` (`CLOCK_MONOTONIC` ns), busy-waiting until that time. A send that is
    /// behind schedule goes at once; no slot is skipped, so the delay of a late message
    /// counts against its latency (no coordinated omission).
    fn send(self, mut send: impl FnMut(&[u8])) {
        let interval = self.interval.as_nanos() as u64;
        let mut msg = [7u8; MSG];
        let start = mono_ns();
        for i in 0..self.msgs {
            let due = start + i * interval;
            while mono_ns() < due {
                std::hint::spin_loop();
            }
            msg[..8].copy_from_slice(&due.to_le_bytes());
            send(&msg);
        }
    }
}

/// `CLOCK_MONOTONIC` in ns: the same clock in every process of the machine.
fn mono_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn stamp_of(msg: &[u8]) -> u64 {
    u64::from_le_bytes(msg[..8].try_into().unwrap())
}

/// ns from `stamp` to now.
fn since(stamp: u64) -> u64 {
    mono_ns().saturating_sub(stamp)
}

/// p50, p99, p99.9 and the maximum of latencies (ns).
fn summary(v: &mut [u64]) -> [u64; 4] {
    v.sort_unstable();
    [
        support::quantile(v, 0.5),
        support::quantile(v, 0.99),
        support::quantile(v, 0.999),
        v.last().copied().unwrap_or(0),
    ]
}

// ---------------------------------------------------------------- the parent side

fn spawn(role: &str, stdin: Stdio) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env("APPLOG_BENCH_CHILD", role)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child")
}

struct ApplogPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl ApplogPeer {
    fn new() -> ApplogPeer {
        let mut child = spawn("applog", Stdio::piped());
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        ApplogPeer {
            child,
            stdin,
            stdout,
        }
    }

    fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        self.expect("ready");
    }

    fn expect(&mut self, what: &str) {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(
            line.starts_with(what),
            "child said {line:?}, expected {what}"
        );
    }

    /// `iters` round trips through two logs; returns the time of each (or the total).
    fn ping_pong(&mut self, wait: &str, iters: u64, each: Option<&mut Vec<Duration>>) -> Duration {
        let dir = tempfile::tempdir_in(support::bench_root()).unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut w = Writer::open(&a, opts()).unwrap();
        drop(Writer::open(&b, opts()).unwrap());
        self.command(&format!("echo {} {} {wait}", a.display(), b.display()));
        let mut t = Tailer::open(&b, 0).unwrap().wait_strategy(strategy(wait));
        let msg = [7u8; MSG];
        let mut each = each;
        let start = Instant::now();
        for _ in 0..iters {
            let t0 = Instant::now();
            w.append(&msg).unwrap();
            let rec = t.next().unwrap();
            debug_assert_eq!(rec.data().len(), MSG);
            if let Some(v) = each.as_deref_mut() {
                v.push(t0.elapsed());
            }
        }
        let total = start.elapsed();
        w.append(b"").unwrap();
        t.next().unwrap();
        total
    }

    /// Stamped messages on `schedule`; returns p50, p99, p99.9 and the maximum of the one-way
    /// latency from the intended send time, in ns.
    fn stamped(&mut self, wait: &str, schedule: Schedule) -> [u64; 4] {
        let dir = tempfile::tempdir_in(support::bench_root()).unwrap();
        let a = dir.path().join("a");
        let mut w = Writer::open(&a, opts()).unwrap();
        self.command(&format!("stamped {} {} {wait}", a.display(), schedule.msgs));
        schedule.send(|msg| {
            w.append(msg).unwrap();
        });
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        f.try_into()
            .unwrap_or_else(|_| panic!("child said {line:?}, expected ok P50 P99 P999 MAX"))
    }

    /// `iters` records appended without pausing, one `append` each (`batch` 1) or
    /// `append_batch` of `batch` records; returns the time until the child has read them all.
    fn stream(&mut self, wait: &str, iters: u64, batch: usize) -> Duration {
        let dir = tempfile::tempdir_in(support::bench_root()).unwrap();
        let a = dir.path().join("a");
        let mut w = Writer::open(&a, opts()).unwrap();
        self.command(&format!("sink {} {iters} {wait}", a.display()));
        let msg = [7u8; MSG];
        let msgs = vec![msg; batch];
        let start = Instant::now();
        if batch <= 1 {
            for _ in 0..iters {
                w.append(&msg).unwrap();
            }
        } else {
            let mut left = iters;
            while left > 0 {
                let n = left.min(batch as u64) as usize;
                w.append_batch(&msgs[..n]).unwrap();
                left -= n as u64;
            }
        }
        self.expect("ok");
        start.elapsed()
    }
}

impl Drop for ApplogPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pipe pair or a socket to a child that echoes or sinks 128 B messages.
struct StreamPeer {
    child: Child,
    tx: Box<dyn Write>,
    rx: Box<dyn Read>,
}

impl StreamPeer {
    fn pipe() -> StreamPeer {
        let mut child = spawn("pipe", Stdio::piped());
        let tx = Box::new(child.stdin.take().unwrap());
        let rx = Box::new(child.stdout.take().unwrap());
        StreamPeer { child, tx, rx }
    }

    fn socket() -> StreamPeer {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let child = spawn("socket", Stdio::from(std::os::fd::OwnedFd::from(theirs)));
        let rx = Box::new(ours.try_clone().unwrap());
        StreamPeer {
            child,
            tx: Box::new(ours),
            rx,
        }
    }

    fn header(&mut self, n: u64, echo: bool) {
        let mut h = [0u8; 9];
        h[..8].copy_from_slice(&n.to_le_bytes());
        h[8] = u8::from(echo);
        self.tx.write_all(&h).unwrap();
    }

    fn ping_pong(&mut self, iters: u64, each: Option<&mut Vec<Duration>>) -> Duration {
        self.header(iters, true);
        let msg = [7u8; MSG];
        let mut back = [0u8; MSG];
        let mut each = each;
        let start = Instant::now();
        for _ in 0..iters {
            let t0 = Instant::now();
            self.tx.write_all(&msg).unwrap();
            self.rx.read_exact(&mut back).unwrap();
            if let Some(v) = each.as_deref_mut() {
                v.push(t0.elapsed());
            }
        }
        start.elapsed()
    }

    /// Stamped messages on `schedule`; returns p50, p99, p99.9 and the maximum of the one-way
    /// latency from the intended send time, in ns.
    fn stamped(&mut self, schedule: Schedule) -> [u64; 4] {
        let mut h = [2u8; 9];
        h[..8].copy_from_slice(&schedule.msgs.to_le_bytes());
        self.tx.write_all(&h).unwrap();
        schedule.send(|msg| self.tx.write_all(msg).unwrap());
        let mut back = [0u8; 32];
        self.rx.read_exact(&mut back).unwrap();
        std::array::from_fn(|i| u64::from_le_bytes(back[i * 8..][..8].try_into().unwrap()))
    }

    fn stream(&mut self, iters: u64) -> Duration {
        self.header(iters, false);
        let msg = [7u8; MSG];
        let start = Instant::now();
        for _ in 0..iters {
            self.tx.write_all(&msg).unwrap();
        }
        let mut ack = [0u8; 1];
        self.rx.read_exact(&mut ack).unwrap();
        start.elapsed()
    }
}

impl Drop for StreamPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn latency(c: &mut Criterion) {
    let mut g = c.benchmark_group("tail_latency");
    g.throughput(Throughput::Elements(1));
    for wait in ["spin", "block"] {
        let mut peer = ApplogPeer::new();
        g.bench_function(BenchmarkId::new("applog_round_trip", wait), |b| {
            b.iter_custom(|iters| peer.ping_pong(wait, iters, None))
        });
    }
    let mut pipe = StreamPeer::pipe();
    g.bench_function("pipe_round_trip", |b| {
        b.iter_custom(|iters| pipe.ping_pong(iters, None))
    });
    let mut sock = StreamPeer::socket();
    g.bench_function("unix_socket_round_trip", |b| {
        b.iter_custom(|iters| sock.ping_pong(iters, None))
    });
    g.finish();
}

fn throughput(c: &mut Criterion) {
    let mut g = c.benchmark_group("tail_throughput");
    g.throughput(Throughput::Elements(1));
    for wait in ["spin", "block"] {
        let mut peer = ApplogPeer::new();
        g.bench_function(BenchmarkId::new("applog", wait), |b| {
            b.iter_custom(|iters| peer.stream(wait, iters, 1))
        });
        g.bench_function(BenchmarkId::new("applog_batch16", wait), |b| {
            b.iter_custom(|iters| peer.stream(wait, iters, 16))
        });
        g.bench_function(BenchmarkId::new("applog_batch64", wait), |b| {
            b.iter_custom(|iters| peer.stream(wait, iters, 64))
        });
    }
    let mut pipe = StreamPeer::pipe();
    g.bench_function("pipe", |b| b.iter_custom(|iters| pipe.stream(iters)));
    let mut sock = StreamPeer::socket();
    g.bench_function("unix_socket", |b| b.iter_custom(|iters| sock.stream(iters)));
    g.finish();
}

/// p50 and p99 of the one-way latency (half a round trip), from individually timed round
/// trips, for each transport.
fn percentiles(n: u64) {
    let report = |name: &str, mut v: Vec<Duration>| {
        v.sort_unstable();
        let at = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)].as_nanos() as f64 / 2000.0;
        println!(
            "one-way latency {name:<16} p50 {:>8.2} us   p99 {:>8.2} us   ({} round trips)",
            at(50),
            at(99),
            v.len()
        );
        // For the report command (bench/benches/support/mod.rs), in ns.
        let key = format!("tail_oneway/{}", name.replace(' ', "_"));
        support::record(&key, "p50_ns", at(50) * 1e3);
        support::record(&key, "p99_ns", at(99) * 1e3);
        support::record(&key, "samples", v.len() as f64);
    };
    for wait in ["spin", "block"] {
        let mut peer = ApplogPeer::new();
        peer.ping_pong(wait, n / 10, None); // warm up
        let mut v = Vec::with_capacity(n as usize);
        peer.ping_pong(wait, n, Some(&mut v));
        report(&format!("applog {wait}"), v);
    }
    for (name, mut peer) in [
        ("pipe", StreamPeer::pipe()),
        ("unix socket", StreamPeer::socket()),
    ] {
        peer.ping_pong(n / 10, None);
        let mut v = Vec::with_capacity(n as usize);
        peer.ping_pong(n, Some(&mut v));
        report(name, v);
    }
}

/// p50, p99, p99.9 and the maximum of the one-way latency from the intended send time of
/// stamped messages, measured by the receiver, for each schedule and transport.
fn stamped_percentiles() {
    for schedule in Schedule::all() {
        let report = |name: &str, [p50, p99, p999, max]: [u64; 4]| {
            let us = |ns: u64| ns as f64 / 1e3;
            println!(
                "one-way latency {:<4} {name:<12} p50 {:>8.2} us   p99 {:>8.2} us   p99.9 {:>8.2} us   \
                 max {:>9.2} us   ({} messages, one per {} us, from the intended send time)",
                schedule.name,
                us(p50),
                us(p99),
                us(p999),
                us(max),
                schedule.msgs,
                schedule.interval.as_micros()
            );
            let key = format!("tail_stamped/{}/{}", schedule.name, name.replace(' ', "_"));
            support::record(&key, "p50_ns", p50 as f64);
            support::record(&key, "p99_ns", p99 as f64);
            support::record(&key, "p999_ns", p999 as f64);
            support::record(&key, "max_ns", max as f64);
            support::record(&key, "samples", schedule.msgs as f64);
        };
        for wait in ["spin", "block"] {
            let mut peer = ApplogPeer::new();
            peer.stamped(wait, schedule.warm_up());
            report(&format!("applog {wait}"), peer.stamped(wait, schedule));
        }
        for (name, mut peer) in [
            ("pipe", StreamPeer::pipe()),
            ("unix socket", StreamPeer::socket()),
        ] {
            peer.stamped(schedule.warm_up());
            report(name, peer.stamped(schedule));
        }
    }
}

fn main() {
    if let Ok(role) = std::env::var("APPLOG_BENCH_CHILD") {
        child_main(&role);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    latency(&mut c);
    throughput(&mut c);
    c.final_summary();
    // Not under `cargo test --benches` / `--test` (criterion's smoke-test mode).
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        percentiles(20_000);
        stamped_percentiles();
    }
}
