//! `SharedWriter`: many threads appending and waiting for durability (group commit).
//!
//! Fault model: a flush (msync) can be slow or fail. The test hook `set_sync_hook` runs after
//! each flush's msyncs returned, before any waiter is told; it sleeps to make flushes slow
//! (so waiters pile up, as they do on a real device) and records the seq each flush covered.
//! Pass criteria: every returned seq is unique and the log holds each record exactly once;
//! every `append_durable` returns only after a completed flush that covered its record; flushes
//! are shared (far fewer than the records), and when many waiters are left behind a flush the
//! next one runs on the sync thread; appends go on while a flush runs; a segment sealed
//! during a flush is flushed by the next one; a failed flush fails every waiter, and every
//! later call, until the log is reopened.

mod common;

use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use applog::{Error, Options, SharedWriter, SyncPolicy, Writer};
use common::*;

const THREADS: u64 = 8;
const PER_THREAD: u64 = 150;

fn record(thread: u64, i: u64) -> Vec<u8> {
    let mut r = format!("t{thread}-{i}-").into_bytes();
    r.extend(payload(thread * 1000 + i, (i % 40) as usize));
    r
}

#[test]
fn eight_threads_appending_and_waiting_share_flushes_that_cover_them() {
    let d = tempfile::tempdir().unwrap();
    // Small segments: the log rolls many times during the run, also during flushes.
    let log = SharedWriter::open(d.path(), Options::new().segment_pages(2)).unwrap();
    let covered = Arc::new(AtomicU64::new(0));
    let flushes = Arc::new(AtomicU64::new(0));
    let on_sync_thread = Arc::new(AtomicU64::new(0));
    let syncs_before = log.sync_count();
    {
        let (covered, flushes, on_sync_thread) =
            (covered.clone(), flushes.clone(), on_sync_thread.clone());
        log.set_sync_hook(move |seq| {
            // A slow device: waiters pile up behind each flush.
            std::thread::sleep(Duration::from_millis(1));
            if std::thread::current().name() == Some("applog-sync") {
                on_sync_thread.fetch_add(1, Ordering::SeqCst);
            }
            covered.fetch_max(seq, Ordering::SeqCst);
            flushes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    let start = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (log, covered, start) = (log.clone(), covered.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let mut seqs = Vec::new();
                for i in 0..PER_THREAD {
                    let seq = log.append_durable(&record(t, i)).unwrap();
                    // A flush that covers this record completed before the call returned.
                    let c = covered.load(Ordering::SeqCst);
                    assert!(
                        seq < c,
                        "seq {seq} returned, but flushes covered only < {c}"
                    );
                    assert!(seq < log.durable_seq());
                    seqs.push((seq, t, i));
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<(u64, u64, u64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let n = THREADS * PER_THREAD;
    let unique: HashSet<u64> = all.iter().map(|s| s.0).collect();
    assert_eq!(unique.len() as u64, n, "every returned seq is unique");
    all.sort();
    assert_eq!(all.first().unwrap().0, 0);
    assert_eq!(all.last().unwrap().0, n - 1);

    let flushes = flushes.load(Ordering::SeqCst);
    assert_eq!(flushes, log.sync_count() - syncs_before);
    assert!(
        flushes * 2 < n,
        "{flushes} flushes for {n} durable appends: they were not shared"
    );
    // With many waiters left behind each flush, its leader hands the next one to the sync
    // thread; the first flush is led by a caller.
    let handed_off = on_sync_thread.load(Ordering::SeqCst);
    assert!(
        handed_off > 0 && handed_off < flushes,
        "{handed_off} of {flushes} flushes ran on the sync thread"
    );
    println!(
        "{n} durable appends from {THREADS} threads took {flushes} flushes \
         ({handed_off} on the sync thread)"
    );

    // The log holds each record exactly once, at the seq its append returned.
    drop(log);
    let records = read_all(d.path());
    assert_eq!(records.len() as u64, n);
    for ((seq, data), (want_seq, t, i)) in records.iter().zip(&all) {
        assert_eq!(seq, want_seq);
        assert_eq!(*data, record(*t, *i), "record {seq}");
    }
    assert!(applog::verify(d.path()).unwrap().is_clean());
}

/// Where a sealed segment's seal ends (a segment filled to the last byte has none).
fn seal_end(s: &applog::SegmentReport) -> u64 {
    if s.data_end + 8 <= s.reservation {
        s.data_end + 8
    } else {
        s.data_end
    }
}

/// Waits on a channel inside the flush, so the test controls when it ends.
fn gated_hook(log: &SharedWriter) -> (mpsc::Receiver<u64>, mpsc::Sender<()>) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    log.set_sync_hook(move |seq| {
        entered_tx.send(seq).ok();
        release_rx.lock().unwrap().recv().ok();
        Ok(())
    });
    (entered_rx, release_tx)
}

#[test]
fn appends_go_on_while_a_flush_runs_and_rolled_segments_are_flushed_next() {
    let d = tempfile::tempdir().unwrap();
    let log = SharedWriter::open(d.path(), Options::new().segment_pages(2)).unwrap();
    log.append(b"first").unwrap();
    let (entered, release) = gated_hook(&log);
    let waiter = {
        let log = log.clone();
        std::thread::spawn(move || log.wait_durable(0))
    };
    // The flush for seq 0 is now stuck in the middle (after its msync, before publish).
    assert_eq!(entered.recv_timeout(Duration::from_secs(30)).unwrap(), 1);
    // Appends do not wait for it, and roll over several segments meanwhile.
    for seq in 1..400u64 {
        assert_eq!(log.append(&payload(seq, 100)).unwrap(), seq);
    }
    assert!(std::fs::read_dir(d.path()).unwrap().count() > 5);
    assert_eq!(
        log.durable_seq(),
        0,
        "the stuck flush has not published yet"
    );
    release.send(()).unwrap();
    waiter.join().unwrap().unwrap();
    assert_eq!(log.durable_seq(), 1);
    // The next flush covers the segment that was active during the first one (sealed since)
    // and every later one.
    release.send(()).unwrap();
    log.sync().unwrap();
    assert_eq!(entered.recv().unwrap(), 400);
    assert_eq!(log.durable_seq(), 400);
    let report = applog::verify(d.path()).unwrap();
    let (active, sealed) = report.segments.split_last().unwrap();
    for s in sealed {
        assert_eq!(
            s.synced_mark,
            seal_end(s),
            "sealed segment {} is durable up to its seal",
            s.path.display()
        );
    }
    assert_eq!(active.synced_mark, active.data_end);
}

#[test]
fn a_failed_flush_fails_every_waiter_and_every_later_call_until_reopen() {
    let d = tempfile::tempdir().unwrap();
    let log = SharedWriter::open(d.path(), Options::new()).unwrap();
    log.append_durable(b"durable before the failure").unwrap();
    let (entered, release) = gated_hook(&log);
    let leader = {
        let log = log.clone();
        std::thread::spawn(move || log.append_durable(b"covered by the stuck flush"))
    };
    // The flush covering seq 1 is stuck after its msync; these appends come after its capture.
    assert_eq!(entered.recv_timeout(Duration::from_secs(30)).unwrap(), 2);
    let waiters: Vec<_> = (0..4)
        .map(|i| {
            let log = log.clone();
            std::thread::spawn(move || log.append_durable(format!("waiter {i}").as_bytes()))
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while log.next_seq() < 6 {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(1));
    }
    log.set_sync_hook(|_| Err(io::Error::from_raw_os_error(5))); // EIO for the next flush
    drop(release); // the stuck flush's hook returns Ok
    assert_eq!(leader.join().unwrap().unwrap(), 1);
    for w in waiters {
        let err = w.join().unwrap().unwrap_err();
        assert!(
            matches!(&err, Error::Poisoned { .. })
                || matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(5)),
            "{err:?}"
        );
    }
    // Every later call fails, even though a flush would now "succeed".
    log.set_sync_hook(|_| Ok(()));
    assert!(matches!(log.append(b"x"), Err(Error::Poisoned { .. })));
    assert!(matches!(log.sync(), Err(Error::Poisoned { .. })));
    assert!(matches!(log.wait_durable(0), Err(Error::Poisoned { .. })));
    assert!(matches!(log.truncate_front(1), Err(Error::Poisoned { .. })));
    drop(log);
    // Reopening recovers every record that reached the page cache.
    let log = SharedWriter::open(d.path(), Options::new()).unwrap();
    assert_eq!(log.next_seq(), 6);
    assert_eq!(log.durable_seq(), 6);
}

#[test]
fn always_policy_makes_each_append_durable_and_wait_checks_its_seq() {
    let d = tempfile::tempdir().unwrap();
    let log = SharedWriter::open(d.path(), Options::new().sync(SyncPolicy::Always)).unwrap();
    for i in 0..10u64 {
        assert_eq!(log.append(&payload(i, 10)).unwrap(), i);
        assert_eq!(log.durable_seq(), i + 1);
    }
    let r = log.append_batch(&[&b"a"[..], &b"b"[..]]).unwrap();
    assert_eq!(log.durable_seq(), r.end);
    assert!(matches!(
        log.wait_durable(12),
        Err(Error::SeqNotAppended {
            seq: 12,
            next_seq: 12
        })
    ));
    // The log's lock is held until the last handle goes.
    let other = log.clone();
    log.close().unwrap();
    assert!(matches!(
        Writer::open(d.path(), Options::new()),
        Err(Error::Locked { .. })
    ));
    drop(other);
    assert_eq!(
        Writer::open(d.path(), Options::new()).unwrap().next_seq(),
        12
    );
}

#[test]
fn every_bytes_policy_syncs_once_enough_was_appended() {
    let d = tempfile::tempdir().unwrap();
    let log =
        SharedWriter::open(d.path(), Options::new().sync(SyncPolicy::EveryBytes(1000))).unwrap();
    let before = log.sync_count();
    for i in 0..9u64 {
        log.append(&[0u8; 88]).unwrap(); // 104-byte frames
        assert_eq!(log.sync_count(), before, "after {} frames", i + 1);
    }
    log.append(&[0u8; 88]).unwrap();
    assert_eq!(log.sync_count(), before + 1);
    assert_eq!(log.durable_seq(), 10);
}

#[test]
fn open_flushes_what_a_crashed_writer_left_unsynced_before_it_claims_durability() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    for seq in 0..200u64 {
        w.append(&payload(seq, 100)).unwrap();
    }
    drop(w); // like a crash: nothing was synced
    let report = applog::verify(d.path()).unwrap();
    assert!(report.segments.len() > 3);
    assert!(report.segments.iter().all(|s| s.synced_mark == 0));

    let log = SharedWriter::open(d.path(), Options::new().segment_pages(1)).unwrap();
    assert_eq!(
        log.durable_seq(),
        200,
        "the open claims every record durable..."
    );
    let report = applog::verify(d.path()).unwrap();
    let (active, sealed) = report.segments.split_last().unwrap();
    for s in sealed {
        // ...because its sync flushed the sealed segments the crashed writer left behind.
        assert_eq!(s.synced_mark, seal_end(s), "{}", s.path.display());
    }
    assert_eq!(active.synced_mark, active.data_end);
}

/// Lost wake-ups: threads mix every way of waiting (`append_durable`, `wait_durable` of their
/// own or an older seq, `sync`) with plain appends, against flushes of random length, so that
/// waiters arrive before, during and after captures, handoffs to the sync thread, and flushes
/// that end with fewer or more waiters left. Every call must return (a waiter that sleeps on
/// after the flush that covers it would hang here), and return only once its record is durable.
#[test]
fn no_waiter_sleeps_through_the_flush_that_covers_it() {
    const THREADS: u64 = 12;
    let ops = 300 * soak();
    let seed = seed("group_commit_wakeups");
    let d = tempfile::tempdir().unwrap();
    let log = SharedWriter::open(d.path(), Options::new().segment_pages(4)).unwrap();
    {
        let state = Arc::new(AtomicU64::new(seed | 1));
        log.set_sync_hook(move |_| {
            let mut x = state.load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            state.store(x, Ordering::Relaxed);
            // 0 to 300 us: some flushes end before the next waiter arrives, some after many.
            std::thread::sleep(Duration::from_micros(x % 300));
            Ok(())
        });
    }
    let (done_tx, done_rx) = mpsc::channel();
    for t in 0..THREADS {
        let (log, done) = (log.clone(), done_tx.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for i in 0..ops {
                let rec = record(t, i);
                let durable_seq = match rng.below(10) {
                    0..=4 => Some(log.append_durable(&rec).unwrap()),
                    5 | 6 => {
                        let seq = log.append(&rec).unwrap();
                        log.wait_durable(seq).unwrap();
                        Some(seq)
                    }
                    7 => {
                        let seq = log.append(&rec).unwrap();
                        let older = rng.below(seq + 1);
                        log.wait_durable(older).unwrap();
                        Some(older)
                    }
                    8 => {
                        let seq = log.append(&rec).unwrap();
                        log.sync().unwrap();
                        Some(seq)
                    }
                    _ => {
                        log.append(&rec).unwrap();
                        None
                    }
                };
                if let Some(seq) = durable_seq {
                    assert!(seq < log.durable_seq(), "seq {seq} returned before durable");
                }
            }
            done.send(t).unwrap();
        });
    }
    drop(done_tx);
    for _ in 0..THREADS {
        // Generous: the whole test takes well under a second when nothing hangs.
        let t = done_rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("a waiter hung: lost wake-up (seed {seed})"));
        assert!(t < THREADS);
    }
    log.sync().unwrap();
    assert_eq!(log.durable_seq(), THREADS * ops);
    println!(
        "{} calls from {THREADS} threads, {} flushes (seed {seed})",
        THREADS * ops,
        log.sync_count()
    );
}
