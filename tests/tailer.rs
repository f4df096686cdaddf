//! `Tailer` in one process: waiting, timeouts, rollovers, starting points, the wake word, and
//! segments removed under a tailer. (Cross-process tailing: tests/tailing.rs.)

mod common;

use std::thread;
use std::time::{Duration, Instant};

use applog::{Error, Options, Tailer, WaitStrategy, Writer};
use common::*;

const STRATEGIES: [WaitStrategy; 3] = [
    WaitStrategy::Block,
    WaitStrategy::Spin,
    WaitStrategy::Backoff,
];

#[test]
fn every_strategy_follows_a_writer_thread_across_rollovers() {
    for wait in STRATEGIES {
        let d = tempfile::tempdir().unwrap();
        let mut w = Writer::open(d.path(), Options::new().segment_pages(2)).unwrap();
        let mut t = Tailer::open(d.path(), 0).unwrap().wait_strategy(wait);
        assert!(t.next_timeout(Duration::from_millis(5)).unwrap().is_none());
        let n = 3000u64;
        let writer = thread::spawn(move || {
            for seq in 0..n {
                let len = (seq as usize * 37) % 1500;
                assert_eq!(w.append(&payload(seq, len)).unwrap(), seq);
                if seq % 500 == 0 {
                    thread::sleep(Duration::from_millis(2));
                }
            }
            w
        });
        for seq in 0..n {
            let rec = t.next().unwrap();
            assert_eq!(rec.seq(), seq, "{wait:?}");
            assert_eq!(rec.data(), payload(seq, (seq as usize * 37) % 1500));
        }
        assert_eq!(t.position(), n);
        let w = writer.join().unwrap();
        assert!(t.next_timeout(Duration::from_millis(1)).unwrap().is_none());
        assert!(
            std::fs::read_dir(d.path()).unwrap().count() > 100,
            "rollovers"
        );
        drop(w);
    }
}

#[test]
fn next_timeout_returns_none_after_about_the_timeout() {
    let d = tempfile::tempdir().unwrap();
    let _w = Writer::open(d.path(), Options::new()).unwrap();
    for wait in STRATEGIES {
        let mut t = Tailer::open(d.path(), 0).unwrap().wait_strategy(wait);
        let start = Instant::now();
        assert!(t.next_timeout(Duration::from_millis(30)).unwrap().is_none());
        assert!(start.elapsed() >= Duration::from_millis(30), "{wait:?}");
        assert!(t.next_timeout(Duration::ZERO).unwrap().is_none());
    }
}

#[test]
fn a_tailer_can_start_in_the_future_and_skips_to_it() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"0").unwrap();
    let mut t = Tailer::open(d.path(), 3).unwrap();
    assert_eq!(t.position(), 3);
    for s in [b"1", b"2", b"3", b"4"] {
        w.append(s).unwrap();
    }
    let rec = t.next().unwrap();
    assert_eq!((rec.seq(), rec.data()), (3, &b"3"[..]));
    assert_eq!(t.next().unwrap().seq(), 4);
}

#[test]
fn a_tailer_on_a_log_without_segments_waits_for_the_first() {
    let d = tempfile::tempdir().unwrap();
    // A log whose writer has not created its first segment yet: only the lock file.
    std::fs::write(d.path().join(applog::LOCK_FILE), b"").unwrap();
    let mut t = Tailer::open(d.path(), 0).unwrap();
    assert!(t.next_timeout(Duration::from_millis(5)).unwrap().is_none());
    let dir = d.path().to_owned();
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        let mut w = Writer::open(&dir, Options::new()).unwrap();
        w.append(b"first").unwrap();
        w
    });
    let rec = t.next_timeout(Duration::from_secs(30)).unwrap().unwrap();
    assert_eq!(rec.data(), b"first");
    drop(writer.join().unwrap());
}

#[test]
fn opening_errors_are_those_of_a_reader() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("missing");
    assert!(matches!(
        Tailer::open(&missing, 0),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound
    ));
    assert!(matches!(
        Tailer::open(d.path(), 0),
        Err(Error::NotALog { .. })
    ));
    // Records 0..n in 1-page segments; remove the first segment (as retention would).
    let log = d.path().join("log");
    let mut w = Writer::open(&log, Options::new().segment_pages(1)).unwrap();
    for seq in 0..200u64 {
        w.append(&payload(seq, 300)).unwrap();
    }
    std::fs::remove_file(seg_path(&log, 0)).unwrap();
    match Tailer::open(&log, 0) {
        Err(Error::SeqBeforeStart { seq: 0, first_seq }) => assert!(first_seq > 0),
        other => panic!("expected SeqBeforeStart, got {other:?}"),
    }
}

#[test]
fn a_tailer_keeps_reading_a_segment_removed_under_it() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    for seq in 0..100u64 {
        w.append(&payload(seq, 300)).unwrap();
    }
    let mut t = Tailer::open(d.path(), 0).unwrap();
    assert_eq!(t.next().unwrap().seq(), 0);
    // Retention removes the segment the tailer is reading: its mapping stays valid.
    std::fs::remove_file(seg_path(d.path(), 0)).unwrap();
    for seq in 1..100 {
        let rec = t.next().unwrap();
        assert_eq!((rec.seq(), rec.data()), (seq, &payload(seq, 300)[..]));
    }
}

/// The writer wakes a blocked tailer through the wake word: the tailer sets its WAITING bit
/// before it sleeps, and the publish clears it and moves the epoch on.
#[test]
fn the_wake_word_announces_a_sleeping_tailer_and_the_writer_clears_it() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    let seg = seg_path(d.path(), 0);
    let wake_word = || {
        let b = std::fs::read(&seg).unwrap();
        u32::from_le_bytes(b[56..60].try_into().unwrap())
    };
    assert_eq!(wake_word(), 0, "nobody waits yet");
    let dir = d.path().to_owned();
    let tailer = thread::spawn(move || {
        let mut t = Tailer::open(&dir, 0).unwrap();
        t.next().unwrap().data().to_vec()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while wake_word() & 1 == 0 {
        assert!(
            Instant::now() < deadline,
            "the tailer never announced its wait"
        );
        thread::sleep(Duration::from_millis(1));
    }
    w.append(b"wake up").unwrap();
    let after = wake_word();
    assert_eq!(after & 1, 0, "the publish clears WAITING");
    assert!(after >= 2, "the publish moves the epoch on");
    assert_eq!(tailer.join().unwrap(), b"wake up");
    // Nobody waits now: another append leaves the word alone (no wake-up, no system call).
    w.append(b"quiet").unwrap();
    assert_eq!(wake_word(), after);
}
