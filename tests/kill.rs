//! Process kills: a child writer process killed with SIGKILL.
//!
//! Fault model: the writer process dies at an arbitrary instruction (SIGKILL: no destructor,
//! no flush), while the kernel and its page cache live on. Kills land at random moments
//! (during start-up and recovery, appends, batches, rollovers, syncs) and at named points
//! through the test-only fault hook (`applog::fault`, feature `fault-injection`): right after
//! a segment grew, between a frame's payload and its publish, just before an msync, and
//! between an msync and the synced mark, each also inside the recovery of the next writer.
//! The same log is killed and reopened many times in a row, with the segment size and growth
//! step changing between writers, while one reader in the test process follows it throughout.
//! Also: a lock holder killed with SIGKILL (the next writer gets the lock at once), and a
//! crash during recovery itself.
//!
//! Pass criterion: no child ends other than by our SIGKILL (P4: a panic or any other signal
//! fails the test); after every kill, `verify` finds no corruption, the next writer opens the
//! log with exactly the records `verify` counted, which include every append the child
//! acknowledged (a kill loses nothing `append` returned for, so P2 holds a fortiori), and the
//! records the reader gets are exactly the records appended, in order, byte for byte (P1, P3).
//! Every batch (`append_batch`) that fits in a segment is in the log whole or not at all: the
//! log never ends inside one, even when the kill lands in the middle of it.
//!
//! Each test prints its seed; `APPLOG_SEED` replays it and `APPLOG_SOAK` multiplies the number
//! of kills (default: 800 at random moments and 240 at named points).
//!
//! The child is this test binary, re-run with `--ignored kill_child`. Tests that spawn
//! processes live in files of their own: a child holds copies of the parent's lock files
//! between fork and exec.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use applog::{Options, Reader, Writer};
use common::*;

/// The record with seq `seq` in the stream of `stream`: its content depends on nothing else,
/// so every writer in a sequence of kills appends the same records.
fn record(stream: u64, seq: u64) -> Vec<u8> {
    let mut r = Rng(stream ^ seq.wrapping_mul(0xA24B_AED4_963E_E407));
    let len = match r.below(100) {
        0..=4 => 0,
        5..=59 => r.below(64),
        60..=89 => 64 + r.below(600),
        90..=96 => 4000 + r.below(300), // crosses pages
        _ => 6000 + r.below(2000),      // several pages; fits the smallest segments (2 pages)
    };
    payload(stream ^ seq, len as usize)
}

/// What the child reported before it died.
#[derive(Default, Debug)]
struct Reported {
    /// next_seq right after `Writer::open` (recovery) returned.
    opened: Option<u64>,
    /// Records appended and acknowledged (next_seq after the last append that returned).
    acked: u64,
    /// next_seq at the last sync that returned Ok.
    synced: u64,
    /// Batches (first seq, end seq) that fit in one segment, announced before they were
    /// appended.
    batches: Vec<(u64, u64)>,
    lines: Vec<String>,
}

struct Child {
    proc: std::process::Child,
    reported: Arc<Mutex<Reported>>,
    reader: std::thread::JoinHandle<()>,
}

/// Starts a child writer on `dir`. `kill_at`: a named point and the hit at which the child
/// kills itself.
fn spawn(dir: &Path, stream: u64, child_seed: u64, kill_at: Option<(&str, u64)>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "kill_child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("APPLOG_KILL_DIR", dir)
    .env("APPLOG_KILL_STREAM", stream.to_string())
    .env("APPLOG_KILL_SEED", child_seed.to_string())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    if let Some((point, n)) = kill_at {
        cmd.env("APPLOG_KILL_AT", format!("{point}:{n}"));
    }
    let mut proc = cmd.spawn().unwrap();
    let out = proc.stdout.take().unwrap();
    let reported = Arc::new(Mutex::new(Reported::default()));
    let r = reported.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            // libtest prints "test kill_child ... " and the child's first line follows it.
            let line = match line.rsplit_once("... ") {
                Some((_, rest)) => rest.to_owned(),
                None => line,
            };
            let mut r = r.lock().unwrap();
            let num = |s: &str| s.trim().parse::<u64>().unwrap();
            if let Some(n) = line.strip_prefix("opened ") {
                r.opened = Some(num(n));
            } else if let Some(n) = line.strip_prefix("a ") {
                r.acked = num(n);
            } else if let Some(n) = line.strip_prefix("s ") {
                r.synced = num(n);
            } else if let Some((a, b)) = line.strip_prefix("b ").and_then(|b| b.split_once(' ')) {
                r.batches.push((num(a), num(b)));
            }
            r.lines.push(line);
        }
    });
    Child {
        proc,
        reported,
        reader,
    }
}

impl Child {
    /// Waits for the child to end (killing it first when `kill`); returns what it reported.
    /// Fails the test unless it ended by SIGKILL or, for a named point never reached, by
    /// finishing its work.
    fn end(mut self, kill: bool) -> Reported {
        use std::os::unix::process::ExitStatusExt;
        if kill {
            self.proc.kill().unwrap(); // SIGKILL
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.proc.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                self.proc.kill().unwrap();
                panic!("child did not end within 60 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        self.reader.join().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(&mut self.proc.stderr.take().unwrap(), &mut err).unwrap();
        let reported = Arc::try_unwrap(self.reported)
            .unwrap()
            .into_inner()
            .unwrap();
        assert!(
            status.signal() == Some(9) || status.success(),
            "P4: the child ended with {status:?}, not by SIGKILL:\n{err}\n{:?}",
            reported.lines.last()
        );
        reported
    }
}

/// Follows one log across kills and checks it after each.
struct Checker {
    dir: PathBuf,
    stream: u64,
    reader: Option<Reader>,
    /// Records verified so far (the log's next_seq after the last kill).
    count: u64,
    /// Seqs inside a batch that fits in a segment (`a + 1..b` for a batch `a..b`): the log
    /// may not end at one of them.
    inside: std::collections::BTreeSet<u64>,
}

impl Checker {
    fn new(dir: PathBuf, stream: u64) -> Checker {
        Checker {
            dir,
            stream,
            reader: None,
            count: 0,
            inside: std::collections::BTreeSet::new(),
        }
    }

    fn after_kill(&mut self, r: &Reported, what: &str) {
        if let Some(opened) = r.opened {
            assert_eq!(
                opened, self.count,
                "{what}: recovery found {opened} records, the log held {} after the last kill",
                self.count
            );
        }
        if !self.dir.exists() || std::fs::read_dir(&self.dir).unwrap().count() == 0 {
            return; // killed before the log existed
        }
        let report = applog::verify(&self.dir).unwrap();
        assert!(report.is_clean(), "{what}: {report:#?}");
        assert!(
            !report.writer_active,
            "{what}: the lock outlived its holder"
        );
        assert!(
            report.next_seq >= r.acked,
            "{what}: {} acknowledged appends, {} records in the log",
            r.acked,
            report.next_seq
        );
        assert!(report.next_seq >= r.synced);
        for &(first, end) in &r.batches {
            self.inside.extend(first + 1..end);
        }
        assert!(
            !self.inside.contains(&report.next_seq),
            "{what}: the log ends at seq {}, inside a batch ({:?})",
            report.next_seq,
            r.batches
                .iter()
                .find(|(a, b)| (a + 1..*b).contains(&report.next_seq))
        );
        // Batches past the end were not appended (the kill came first): the next writer
        // appends other records there.
        self.inside.retain(|&s| s < report.next_seq);
        if self.reader.is_none() {
            self.reader = Some(Reader::open(&self.dir).unwrap());
        }
        let reader = self.reader.as_mut().unwrap();
        let mut n = self.count;
        while let Some(rec) = reader.next().unwrap() {
            assert_eq!(rec.seq(), n, "{what}: P1: seqs in order without gaps");
            assert!(
                rec.data() == record(self.stream, n),
                "{what}: P3: record {n} differs"
            );
            n += 1;
        }
        assert_eq!(
            n, report.next_seq,
            "{what}: the reader and verify disagree on the records"
        );
        assert!(n >= self.count, "{what}: records disappeared");
        self.count = n;
    }
}

/// Kills at random moments: right after spawn (start-up, recovery) or a few milliseconds
/// after the writer opened.
#[test]
fn random_kills() {
    let _serial = serial();
    let seed = seed("random_kills");
    let mut rng = Rng(seed);
    let kills = 800 * soak();
    let per_log = 25;
    let tmp = tempfile::tempdir().unwrap();
    let mut checker = Checker::new(tmp.path().join("log0"), rng.next());
    let (mut during_open, mut acked, mut rolled) = (0, 0, 0);
    for k in 0..kills {
        if k > 0 && k % per_log == 0 {
            rolled += std::fs::read_dir(&checker.dir).map_or(0, |d| d.count());
            checker = Checker::new(tmp.path().join(format!("log{k}")), rng.next());
        }
        let child = spawn(&checker.dir, checker.stream, rng.next(), None);
        if rng.chance(1, 5) {
            // Anywhere in start-up: exec, open, recovery.
            std::thread::sleep(Duration::from_micros(rng.below(15_000)));
        } else {
            // After the child acknowledged some appends (so that the kill does not depend on
            // how loaded the machine is), then a random moment later.
            let target = rng.below(150);
            let t = Instant::now();
            loop {
                let r = child.reported.lock().unwrap();
                let started = r.opened.map(|o| r.acked.saturating_sub(o) >= target);
                if started == Some(true) || r.lines.iter().any(|l| l == "done") {
                    break;
                }
                drop(r);
                assert!(t.elapsed() < Duration::from_secs(60), "child stalled");
                std::thread::sleep(Duration::from_micros(100));
            }
            std::thread::sleep(Duration::from_micros(rng.below(500)));
        }
        let r = child.end(true);
        if r.opened.is_none() {
            during_open += 1;
        }
        acked += r.acked.saturating_sub(checker.count);
        checker.after_kill(&r, &format!("kill {k} (seed {seed})"));
    }
    eprintln!(
        "random_kills: {kills} kills ({during_open} during start-up or recovery), \
         {acked} appends acknowledged, {rolled} segment files checked"
    );
    assert!(
        acked > kills,
        "the children appended too little to test anything"
    );
}

/// Kills at the named fault points, at a random hit of each (counting the hits inside the
/// next writer's recovery too).
#[test]
fn kills_at_named_points() {
    let _serial = serial();
    let seed = seed("kills_at_named_points");
    let mut rng = Rng(seed);
    let per_point = 60 * soak();
    let tmp = tempfile::tempdir().unwrap();
    for point in applog::fault::Point::ALL {
        let name = point.name();
        let mut checker = Checker::new(tmp.path().join(name), rng.next());
        let mut killed = 0;
        let max_hit = match point {
            applog::fault::Point::BeforePublish => 300,
            applog::fault::Point::AfterGrowth => 40,
            _ => 12,
        };
        for k in 0..per_point {
            let hit = 1 + rng.below(max_hit);
            let child = spawn(&checker.dir, checker.stream, rng.next(), Some((name, hit)));
            let r = child.end(false);
            if r.lines.iter().any(|l| l == "killed") {
                killed += 1;
            }
            checker.after_kill(&r, &format!("{name} hit {hit}, kill {k} (seed {seed})"));
        }
        eprintln!("kills_at_named_points: {name}: {killed} of {per_point} children killed there");
        assert!(
            killed * 10 >= per_point * 8,
            "{name}: only {killed} of {per_point} children reached the point"
        );
    }
}

/// The point the child kills itself at, and after how many hits.
static KILL_AT: Mutex<Option<(applog::fault::Point, u64)>> = Mutex::new(None);

fn kill_hook(point: applog::fault::Point) {
    let mut at = KILL_AT.lock().unwrap();
    if let Some((p, n)) = at.as_mut() {
        if *p == point {
            *n -= 1;
            if *n == 0 {
                println!("killed");
                rustix::process::kill_process(
                    rustix::process::getpid(),
                    rustix::process::Signal::KILL,
                )
                .unwrap();
            }
        }
    }
}

#[test]
#[ignore = "run as a child process by the tests of this file"]
fn kill_child() {
    let var = |k: &str| std::env::var(k).expect("run by a test of kill.rs");
    let dir = PathBuf::from(var("APPLOG_KILL_DIR"));
    let stream: u64 = var("APPLOG_KILL_STREAM").parse().unwrap();
    let mut rng = Rng(var("APPLOG_KILL_SEED").parse().unwrap());
    if let Ok(at) = std::env::var("APPLOG_KILL_AT") {
        let (name, n) = at.split_once(':').unwrap();
        let point = applog::fault::Point::from_name(name).unwrap();
        *KILL_AT.lock().unwrap() = Some((point, n.parse().unwrap()));
        assert!(applog::fault::install(kill_hook));
    }
    if rng.chance(1, 2) {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let opts = Options::new()
        .segment_pages([2, 3, 8][rng.below(3) as usize])
        .grow_pages([1, 1, 3][rng.below(3) as usize]);
    let mut w = Writer::open(&dir, opts).unwrap();
    let mut next = w.next_seq();
    println!("opened {next}");
    for _ in 0..400 {
        match rng.below(100) {
            0..=79 => {
                assert_eq!(w.append(&record(stream, next)).unwrap(), next);
                next += 1;
                println!("a {next}");
            }
            80..=91 => {
                let n = 1 + rng.below(6);
                let batch: Vec<Vec<u8>> = (next..next + n).map(|s| record(stream, s)).collect();
                // A batch that fits in one segment must survive whole or not at all.
                let frames: u64 = batch.iter().map(|r| frame_len(r.len())).sum();
                if n > 1 && frames <= w.max_record_len() + 16 {
                    println!("b {next} {}", next + n);
                }
                assert_eq!(w.append_batch(&batch).unwrap(), next..next + n);
                next += n;
                println!("a {next}");
            }
            _ => {
                w.sync().unwrap();
                println!("s {next}");
            }
        }
    }
    println!("done");
}

/// Starts a child that opens the log, appends `n` records, syncs, and then waits to be killed
/// while it holds the lock.
#[test]
fn killed_lock_holder_frees_the_lock_at_once() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    let mut proc = cmd
        .args(["--exact", "hold_lock_child", "--ignored", "--nocapture"])
        .env("APPLOG_KILL_DIR", &dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("child output").unwrap();
        if line == "holding" {
            break;
        }
    }
    assert!(applog::is_locked(&dir).unwrap());
    assert!(matches!(
        Writer::open(&dir, Options::new()),
        Err(applog::Error::Locked { .. })
    ));
    proc.kill().unwrap();
    proc.wait().unwrap();
    // No waiting, no stale lock to clean up: the kernel released the flock with the process.
    let mut w = Writer::open(&dir, Options::new()).expect("the lock is free after the kill");
    assert_eq!(
        w.next_seq(),
        1000,
        "every record the killed holder appended"
    );
    w.append(b"next writer").unwrap();
    drop(w);
    let got = read_all(&dir);
    assert_eq!(got.len(), 1001);
    for (seq, data) in &got[..1000] {
        assert_eq!(data, &record(7, *seq));
    }
}

#[test]
#[ignore = "run as a child process by killed_lock_holder_frees_the_lock_at_once"]
fn hold_lock_child() {
    let dir = PathBuf::from(std::env::var("APPLOG_KILL_DIR").unwrap());
    let mut w = Writer::open(&dir, Options::new()).unwrap();
    for seq in 0..1000 {
        w.append(&record(7, seq)).unwrap();
    }
    // Not synced: a kill loses nothing that append returned for.
    println!("holding");
    std::thread::sleep(Duration::from_secs(120));
}

/// A crash inside recovery: the child's recovery is killed after it zeroed a torn tail and
/// before the msync that makes the cut durable; then another writer recovers.
#[test]
fn crash_during_recovery() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = Writer::open(&dir, Options::new().segment_pages(4)).unwrap();
    for seq in 0..50 {
        w.append(&record(3, seq)).unwrap();
    }
    w.sync().unwrap();
    drop(w);
    // A torn tail: half a frame of garbage after the last record.
    let last = applog::verify(&dir).unwrap().segments.pop().unwrap();
    write_at(&last.path, last.data_end, &[0xAB; 40]);
    let report = applog::verify(&dir).unwrap();
    assert!(report.torn_tail.is_some() && report.is_clean());
    let mut checker = Checker::new(dir.clone(), 3);
    // The first msync of the child's life is the one that makes the cut durable.
    let r = spawn(&dir, 3, 1, Some(("before-msync", 1))).end(false);
    assert!(r.lines.iter().any(|l| l == "killed"), "{:?}", r.lines);
    assert!(r.opened.is_none(), "killed inside Writer::open");
    let mut w = Writer::open(&dir, Options::new().segment_pages(4)).unwrap();
    assert_eq!(w.next_seq(), 50);
    w.append(&record(3, 50)).unwrap();
    drop(w);
    checker.after_kill(&Reported::default(), "after the crashed recovery");
    assert_eq!(checker.count, 51);
    let report = applog::verify(&dir).unwrap();
    assert!(report.torn_tail.is_none());
}
