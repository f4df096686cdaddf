//! Consumers across processes: retention racing a consumer's commits, and consumers killed
//! with SIGKILL in the middle of committing.
//!
//! Fault models and pass criteria:
//! - `trim` (in this process) races a consumer following the log in another process, which
//!   commits after every record: the consumer reads every record, in order, without a gap
//!   (`SeqBeforeStart` would mean retention removed a record it had not committed), while
//!   retention does remove segments behind it.
//! - A consumer process is killed with SIGKILL at a random moment while it reads and commits:
//!   the position it resumes at is never past what it was delivered, and never before what
//!   it said it had committed (a commit is in the page cache the moment it returns).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use applog::{Consumer, Options, Trim, Writer};
use common::*;

const N: u64 = 6000;

fn child(test: &str, dir: &std::path::Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("APPLOG_CONSUMER_DIR", dir)
    .stdout(Stdio::piped());
    c
}

fn child_dir() -> std::path::PathBuf {
    std::env::var_os("APPLOG_CONSUMER_DIR")
        .expect("run by the parent test")
        .into()
}

#[test]
fn trim_racing_a_consumer_in_another_process_never_removes_what_it_needs() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    w.append(&payload(0, 100)).unwrap();
    w.sync().unwrap();
    // Registered before the race starts, so that retention waits for it from record 0.
    drop(Consumer::open(d.path(), "racer").unwrap());
    let mut reader = child("race_consumer_child", d.path()).spawn().unwrap();
    let out = reader.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut removed = 0usize;
    for seq in 1..N {
        w.append(&payload(seq, 100)).unwrap();
        if seq % 50 == 0 {
            w.sync().unwrap();
            removed += applog::trim(d.path(), &Trim::new()).unwrap().removed.len();
        }
    }
    w.sync().unwrap();
    while reader.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the consumer never finished");
        removed += applog::trim(d.path(), &Trim::new()).unwrap().removed.len();
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = reader.wait().unwrap();
    let out = lines.join().unwrap().join("\n");
    assert!(status.success(), "consumer failed:\n{out}");
    assert!(out.contains(&format!("child: read {N}")), "{out}");
    assert!(removed > 10, "retention removed only {removed} segments");
    // Everything the consumer committed is gone but the segment it is in.
    let first = applog::verify(d.path()).unwrap().first_seq;
    assert!(first > N / 2, "first seq {first}");
}

#[test]
#[ignore = "run as a child process by trim_racing_a_consumer_in_another_process_never_removes_what_it_needs"]
fn race_consumer_child() {
    let dir = child_dir();
    let mut c = Consumer::open(&dir, "racer").unwrap();
    let mut next = 0;
    while next < N {
        let rec = c
            .next_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("at {next}: {e}"))
            .expect("the writer went quiet");
        assert_eq!(rec.seq(), next);
        assert!(rec.data() == payload(next, 100), "record {next}");
        next += 1;
        c.commit().unwrap();
    }
    println!("child: read {next}");
}

#[test]
fn a_consumer_killed_mid_commit_resumes_between_its_last_commit_and_what_it_was_delivered() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(4)).unwrap();
    for seq in 0..200_000u64 {
        w.append(&payload(seq, 20)).unwrap();
    }
    drop(w);
    let seed = seed("consumer_kill");
    let mut rng = Rng(seed);
    let mut committed = 0u64;
    for round in 0..8 {
        let mut c = child("kill_consumer_child", d.path()).spawn().unwrap();
        let out = c.stdout.take().unwrap();
        let lines = std::thread::spawn(move || {
            // The last seq the child said it was delivered ("d"), and committed ("c").
            let (mut delivered, mut said_committed) = (None, None);
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("d ") {
                    delivered = n.trim().parse::<u64>().ok();
                } else if let Some(n) = line.strip_prefix("c ") {
                    said_committed = n.trim().parse::<u64>().ok();
                }
            }
            (delivered, said_committed)
        });
        std::thread::sleep(Duration::from_millis(20 + rng.below(80)));
        c.kill().unwrap();
        c.wait().unwrap();
        let (delivered, said) = lines.join().unwrap();
        let reopened = Consumer::open(d.path(), "k").unwrap();
        let pos = reopened.committed();
        let what = format!("round {round} (seed {seed}): delivered {delivered:?}, said committed {said:?}, resumes at {pos}");
        // Never after what was delivered: at most one past the last record handed out
        // (which a commit may have covered just before the kill, unprinted).
        if let Some(d) = delivered {
            assert!(pos <= d + 1, "{what}");
        }
        // Never before what it said it had committed, nor before an earlier round's.
        assert!(pos >= said.unwrap_or(0).max(committed), "{what}");
        committed = pos;
        eprintln!("{what}");
    }
    assert!(committed > 0, "no round committed anything");
}

#[test]
#[ignore = "run as a child process by a_consumer_killed_mid_commit_resumes_between_its_last_commit_and_what_it_was_delivered"]
fn kill_consumer_child() {
    use std::io::Write;
    let dir = child_dir();
    let mut c = Consumer::open(&dir, "k").unwrap();
    let mut out = std::io::stdout().lock();
    while let Some(seq) = c.try_next().unwrap().map(|r| r.seq()) {
        // Said before the commit, so that the parent's "delivered" is never behind.
        writeln!(out, "d {seq}").unwrap();
        out.flush().unwrap();
        c.commit().unwrap();
        writeln!(out, "c {}", seq + 1).unwrap();
    }
}
