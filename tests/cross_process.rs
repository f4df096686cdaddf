//! A reader in another process reads what the writer appends, while it appends.
//!
//! The parent test opens a writer, starts a child process (this test binary running
//! `reader_child`), and appends records of varied sizes into small segments (many rollovers)
//! while the child polls a `Reader`. Pass criterion: the child receives every record, in
//! order, byte for byte, and did catch up with the writer (saw "nothing yet") at least once
//! before the end, so it really read concurrently. Also: `verify` running while a writer
//! appends reports neither a torn tail nor corruption. A second writer in another process
//! gets `Error::Locked`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use applog::{Error, Options, Reader, Writer};
use common::*;

const N: u64 = 20_000;

fn len_of(seq: u64) -> usize {
    // 0 bytes, page-crossing and multi-page records, mostly small.
    match seq % 97 {
        0 => 0,
        1 => 4096,
        2 => 9000,
        _ => (seq as usize * 31) % 300,
    }
}

#[test]
fn reader_in_another_process_follows_the_writer() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(4)).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "reader_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("APPLOG_XPROC_DIR", d.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the child has opened the log and caught up with the (empty) log.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("child output").unwrap();
        if line.contains("child: ready") {
            break;
        }
    }
    for seq in 0..N {
        assert_eq!(w.append(&payload(seq, len_of(seq))).unwrap(), seq);
        if seq % 2000 == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let out = rest.join("\n");
    assert!(status.success(), "child failed:\n{out}");
    assert!(out.contains(&format!("child: read {N} records")), "{out}");
    let polls_empty: u64 = out
        .lines()
        .find_map(|l| l.split_once("child: caught up ").map(|(_, s)| s))
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap();
    assert!(
        polls_empty > 0,
        "the child never caught up with the writer: {out}"
    );
    assert!(
        std::fs::read_dir(d.path()).unwrap().count() > 10,
        "many segments"
    );
}

#[test]
#[ignore = "run as a child process by reader_in_another_process_follows_the_writer"]
fn reader_child() {
    let dir = std::env::var_os("APPLOG_XPROC_DIR").expect("run by the parent test");
    let mut r = Reader::open(&dir).unwrap();
    println!("child: ready");
    let mut expected = 0u64;
    let mut caught_up = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while expected < N {
        match r.next().unwrap() {
            Some(rec) => {
                assert_eq!(rec.seq(), expected);
                assert!(
                    rec.data() == payload(expected, len_of(expected)),
                    "record {expected} differs"
                );
                expected += 1;
            }
            None => {
                caught_up += 1;
                assert!(Instant::now() < deadline, "timed out at seq {expected}");
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }
    println!("child: caught up {caught_up} times");
    println!("child: read {expected} records");
}

#[test]
fn verify_during_appends_sees_no_torn_tail() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_owned();
    let mut w = Writer::open(&dir, Options::new().segment_pages(16)).unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let done = done.clone();
        std::thread::spawn(move || {
            for seq in 0..4000u64 {
                // Large records (the payload copy is seen in flight) and frequent rollovers.
                let len = [20_000, 3, 7_000, 4096][seq as usize % 4];
                w.append(&payload(seq, len)).unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            drop(w);
            4000
        })
    };
    let mut checks = 0;
    while !done.load(std::sync::atomic::Ordering::Relaxed) {
        let report = applog::verify(&dir).unwrap();
        assert!(
            report.is_clean(),
            "{:?} of {} segments",
            report.corruptions,
            report.segments.len()
        );
        assert!(report.torn_tail.is_none(), "{:?}", report.torn_tail);
        checks += 1;
    }
    assert!(checks > 3, "verify ran {checks} times during the appends");
    let n = writer.join().unwrap();
    let report = applog::verify(&dir).unwrap();
    assert!(!report.writer_active && report.is_clean() && report.next_seq == n);
}

#[test]
fn second_writer_in_another_process_is_locked_out() {
    let _serial = serial();
    if std::env::var_os("APPLOG_TEST_LOCK_CHILD").is_some() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let _w = Writer::open(d.path(), Options::new()).unwrap();
    // A child process (this test binary, running the helper below) tries to open it.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lock_child", "--ignored", "--nocapture"])
        .env("APPLOG_TEST_LOCK_DIR", d.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("child: locked"), "{stdout}");
}

#[test]
#[ignore = "run by second_writer_in_another_process_is_locked_out"]
fn lock_child() {
    let dir = std::env::var_os("APPLOG_TEST_LOCK_DIR").expect("run by the parent test");
    match Writer::open(&dir, Options::new()) {
        Err(Error::Locked { .. }) => println!("child: locked"),
        other => panic!("child expected Locked, got {other:?}"),
    }
}

/// A child forked while this process held the writer lock keeps a copy of it until its
/// `exec`. A writer reopened in that window waits the copy out instead of reporting the log
/// locked by this very process; a writer this process really holds is still refused at once.
#[test]
fn a_child_between_fork_and_exec_does_not_lock_out_the_next_writer() {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let w = Writer::open(d.path(), Options::new()).unwrap();
    let (mut forked, child_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let spawner = std::thread::spawn(move || {
        let mut cmd = Command::new("true");
        // SAFETY: the closure runs in the child between fork and exec; it only writes one
        // byte to a socket and sleeps (write and nanosleep are async-signal-safe system
        // calls) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                (&child_end).write_all(&[1])?;
                std::thread::sleep(Duration::from_millis(300));
                Ok(())
            });
        }
        cmd.status().unwrap()
    });
    // The child exists and holds copies of the writer's lock files.
    forked.read_exact(&mut [0u8; 1]).unwrap();
    drop(w);
    let started = Instant::now();
    let w =
        Writer::open(d.path(), Options::new()).expect("the child's copy of the lock is waited out");
    let waited = started.elapsed();
    assert!(spawner.join().unwrap().success());
    // A writer this process holds is refused without waiting for any child.
    let started = Instant::now();
    let err = Writer::open(d.path(), Options::new()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a lock this process holds was waited on for {:?}",
        started.elapsed()
    );
    drop(w);
    println!("waited {waited:?} for the child's exec");
}
