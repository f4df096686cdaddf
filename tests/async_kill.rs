//! Async tailers in one process follow a writer in another process that is killed (SIGKILL)
//! and restarted.
//!
//! The child writer is this test binary re-run with `--ignored async_writer_child`. The first
//! child appends until it is killed at a random moment; the second recovers the log and
//! appends up to `N`. Pass criterion: every async tailer in the parent receives every record
//! `0..N`, in order, byte for byte, across the kill, the recovery and many rollovers (a kill
//! loses nothing that `append` returned for).
#![cfg(feature = "tokio")]

mod common;

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use applog::tokio::AsyncTailer;
use applog::{Options, Writer};
use common::{payload, serial};

const N: u64 = 1500;
const TAILERS: usize = 50;

fn len_of(seq: u64) -> usize {
    (seq as usize * 53) % 700
}

fn spawn(dir: &std::path::Path, until: Option<u64>) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "async_writer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("APPLOG_ASYNC_KILL_DIR", dir)
        .env(
            "APPLOG_ASYNC_KILL_UNTIL",
            until.map_or("forever".to_owned(), |n| n.to_string()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Reads the child's lines until one starts with `prefix`; returns the number after it.
fn wait_for(lines: &mut Lines<BufReader<ChildStdout>>, prefix: &str) -> u64 {
    loop {
        let line = lines.next().expect("child output").unwrap();
        if let Some(i) = line.find(prefix) {
            return line[i + prefix.len()..].trim().parse().unwrap();
        }
    }
}

#[test]
fn async_tailers_follow_a_writer_killed_and_restarted_in_another_process() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (mut first, mut lines) = spawn(d.path(), None);
    assert_eq!(wait_for(&mut lines, "child: ready "), 0);
    let tasks: Vec<_> = (0..TAILERS)
        .map(|i| {
            let mut t = AsyncTailer::open_blocking(d.path(), 0).unwrap();
            rt.spawn(async move {
                for expect in 0..N {
                    let r = t.next().await.unwrap();
                    assert_eq!(r.seq(), expect, "tailer {i}");
                    assert_eq!(r.data(), &payload(expect, len_of(expect))[..], "tailer {i}");
                }
            })
        })
        .collect();
    // Kill the first writer at a moment that varies from run to run.
    let kill_after = 300 + u64::from(std::process::id() % 400);
    while wait_for(&mut lines, "child: appended ") < kill_after {}
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let (mut second, mut lines) = spawn(d.path(), Some(N));
    let resumed = wait_for(&mut lines, "child: ready ");
    assert!(
        resumed > kill_after,
        "the kill lost records: resumed at {resumed}"
    );
    assert!(second.wait().unwrap().success());
    println!(
        "writer killed after seq {kill_after}, restarted at {resumed}; {TAILERS} async tailers"
    );

    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await
        .expect("every tailer got every record");
    });
    assert!(
        std::fs::read_dir(d.path()).unwrap().count() > 10,
        "many rollovers"
    );
    assert_eq!(applog::tokio::waiting_tasks(), 0);
}

/// The child writer: appends `payload(seq)` from the log's end, forever or up to
/// `APPLOG_ASYNC_KILL_UNTIL`.
#[test]
#[ignore = "child process of the async kill test"]
fn async_writer_child() {
    let Ok(dir) = std::env::var("APPLOG_ASYNC_KILL_DIR") else {
        return;
    };
    let until = std::env::var("APPLOG_ASYNC_KILL_UNTIL")
        .unwrap()
        .parse::<u64>()
        .unwrap_or(u64::MAX);
    let mut w = Writer::open(&dir, Options::new().segment_pages(4)).unwrap();
    let mut seq = w.next_seq();
    println!("child: ready {seq}");
    let started = Instant::now();
    while seq < until {
        assert_eq!(w.append(&payload(seq, len_of(seq))).unwrap(), seq);
        println!("child: appended {seq}");
        if seq % 10 == 0 {
            std::thread::sleep(Duration::from_micros(300));
        }
        seq += 1;
        assert!(started.elapsed() < Duration::from_secs(120), "never killed");
    }
}
