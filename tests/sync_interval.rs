//! `SyncPolicy::Interval`: a background flusher (the writer's sync thread) checkpoints on a
//! timer.
//!
//! Fault model: records appended without waiting must become durable on their own, and a
//! failed background flush must not go unnoticed. Pass criteria: an appended record becomes
//! durable within a (generous) bound without any sync call; the flusher thread exists while
//! the writer lives and is gone once the last handle is dropped (the lock is released, so the
//! log reopens at once); a failed background flush poisons the writer for every later call;
//! `Writer::open` rejects the policy.
//!
//! One test function: it counts this process's threads by name.

use std::io;
use std::time::{Duration, Instant};

use applog::{Error, Options, SharedWriter, SyncPolicy, Writer};

fn flusher_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|t| {
            let comm = t.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == "applog-sync")
        })
        .count()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn background_flusher_syncs_on_a_timer_stops_on_drop_and_poisons_on_error() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options::new().sync(SyncPolicy::Interval(Duration::from_millis(10)));

    assert!(matches!(
        Writer::open(d.path(), opts.clone()),
        Err(Error::InvalidOptions(_))
    ));
    assert!(matches!(
        SharedWriter::open(
            d.path(),
            Options::new().sync(SyncPolicy::Interval(Duration::ZERO))
        ),
        Err(Error::InvalidOptions(_))
    ));

    assert_eq!(flusher_threads(), 0);
    let log = SharedWriter::open(d.path(), opts.clone()).unwrap();
    // The thread names itself when it starts.
    wait_for("the flusher thread", || flusher_threads() == 1);
    let syncs = log.sync_count();
    for i in 0..100u64 {
        assert_eq!(log.append(format!("r{i}").as_bytes()).unwrap(), i);
    }
    // No sync call: the flusher makes them durable.
    wait_for("the flusher", || log.durable_seq() == 100);
    assert!(log.sync_count() > syncs);
    // Idle: nothing appended, nothing flushed.
    std::thread::sleep(Duration::from_millis(50));
    let idle = log.sync_count();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(log.sync_count(), idle, "an idle flusher does not flush");

    // Dropping the last handle stops and joins the thread and releases the lock.
    let clone = log.clone();
    drop(log);
    assert_eq!(flusher_threads(), 1, "a clone still holds the writer");
    drop(clone);
    assert_eq!(flusher_threads(), 0);
    let log = SharedWriter::open(d.path(), opts).unwrap();
    assert_eq!(log.next_seq(), 100);

    // A failed background flush poisons the writer.
    log.set_sync_hook(|_| Err(io::Error::from_raw_os_error(5)));
    log.append(b"not durable").unwrap();
    wait_for("the failed flush", || {
        matches!(log.append(b"x"), Err(Error::Poisoned { .. }))
    });
    assert!(matches!(log.sync(), Err(Error::Poisoned { .. })));
    // The flusher stopped on its own; dropping the writer still works.
    wait_for("the flusher to stop", || flusher_threads() == 0);
    drop(log);
    let w = Writer::open(d.path(), Options::new()).unwrap();
    assert!(w.next_seq() >= 101);
}
