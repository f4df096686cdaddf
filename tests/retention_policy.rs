//! The writer's retention policy (`Options::retention`), applied at each rollover: size and
//! age limits, consumers holding it back, parking, and the free-space floor.

mod common;

use std::time::Duration;

use applog::{Consumer, ConsumerState, Error, Options, Retention, Writer};
use common::*;

fn log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            (e.path().extension().is_some_and(|x| x == "seg")).then(|| e.metadata().unwrap().len())
        })
        .sum()
}

#[test]
fn a_size_limit_keeps_the_log_bounded_as_it_rolls() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options::new()
        .segment_pages(2)
        .retention(Retention::new().max_bytes(64 << 10));
    let mut w = Writer::open(d.path(), opts).unwrap();
    for seq in 0..5000u64 {
        w.append(&payload(seq, 100)).unwrap();
    }
    let bytes = log_bytes(d.path());
    assert!(bytes <= (64 << 10) + 8192, "{bytes} bytes kept");
    let report = applog::verify(d.path()).unwrap();
    assert!(report.is_clean());
    assert!(report.first_seq > 4000, "{report:?}");
    assert_eq!(report.next_seq, 5000);
    assert_eq!(w.first_seq(), report.first_seq);
}

#[test]
fn a_size_limit_waits_for_a_consumer_then_goes_on_when_it_commits() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options::new()
        .segment_pages(2)
        .retention(Retention::new().max_bytes(64 << 10));
    let mut w = Writer::open(d.path(), opts).unwrap();
    w.append(&payload(0, 100)).unwrap();
    let mut c = Consumer::open(d.path(), "slow").unwrap();
    for seq in 1..3000u64 {
        w.append(&payload(seq, 100)).unwrap();
    }
    // Nothing it has not committed is gone: the whole log is still there.
    assert_eq!(applog::verify(d.path()).unwrap().first_seq, 0);
    assert!(log_bytes(d.path()) > 200 << 10);
    for _ in 0..2000 {
        c.try_next().unwrap().unwrap();
    }
    c.commit().unwrap();
    // The next rollover catches up to the consumer.
    for seq in 3000..3100u64 {
        w.append(&payload(seq, 100)).unwrap();
    }
    let first = applog::verify(d.path()).unwrap().first_seq;
    assert!(first > 1000 && first <= 2000, "first seq {first}");
    assert_eq!(c.try_next().unwrap().unwrap().seq(), 2000);
}

#[test]
fn a_consumer_past_the_lag_cap_is_parked_and_retention_goes_on() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options::new().segment_pages(2).retention(
        Retention::new()
            .max_bytes(64 << 10)
            .park_lag_bytes(128 << 10),
    );
    let mut w = Writer::open(d.path(), opts).unwrap();
    w.append(&payload(0, 100)).unwrap();
    let mut c = Consumer::open(d.path(), "stuck").unwrap();
    for seq in 1..5000u64 {
        w.append(&payload(seq, 100)).unwrap();
    }
    let bytes = log_bytes(d.path());
    assert!(bytes <= (64 << 10) + 8192, "{bytes} bytes kept");
    match c.try_next() {
        Err(e @ Error::ConsumerParked { .. }) => {
            assert!(e.to_string().contains("\"stuck\""), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // Commits fail too: its position no longer means anything to retention.
    assert!(matches!(c.commit(), Err(Error::ConsumerParked { .. })));
    drop(c);
    let info = applog::consumers(d.path()).unwrap().remove(0);
    assert!(
        matches!(info.state, ConsumerState::Parked { .. }),
        "{info:?}"
    );
}

#[test]
fn an_idle_consumer_is_parked_after_the_idle_limit() {
    let d = tempfile::tempdir().unwrap();
    let policy = |idle| {
        Options::new()
            .segment_pages(2)
            .retention(Retention::new().max_bytes(32 << 10).park_idle(idle))
    };
    // Idle for less than the limit (an hour): held back.
    let mut w = Writer::open(d.path(), policy(Duration::from_secs(3600))).unwrap();
    w.append(&payload(0, 100)).unwrap();
    drop(Consumer::open(d.path(), "gone").unwrap());
    for seq in 1..400u64 {
        w.append(&payload(seq, 100)).unwrap();
    }
    assert_eq!(applog::verify(d.path()).unwrap().first_seq, 0);
    drop(w);
    // Idle for longer than the limit: parked at the next rollover, and retention goes on.
    let mut w = Writer::open(d.path(), policy(Duration::from_millis(50))).unwrap();
    // The coarse clock ticks every few ms: wait well past the limit.
    std::thread::sleep(Duration::from_millis(200));
    for seq in 400..1000u64 {
        w.append(&payload(seq, 100)).unwrap();
    }
    let info = applog::consumers(d.path()).unwrap().remove(0);
    assert!(
        matches!(info.state, ConsumerState::Parked { .. }),
        "{info:?}"
    );
    assert!(applog::verify(d.path()).unwrap().first_seq > 0);
}

#[test]
fn below_the_free_space_floor_appends_stop_with_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    // A floor no disk here meets.
    let opts = Options::new()
        .segment_pages(1)
        .retention(Retention::new().min_free_bytes(u64::MAX / 2));
    let mut w = Writer::open(d.path(), opts).unwrap();
    let mut seq = 0;
    let err = loop {
        match w.append(&payload(seq, 100)) {
            Ok(s) => assert_eq!(s, seq),
            Err(e) => break e,
        }
        seq += 1;
        assert!(seq < 1000, "never refused");
    };
    assert!(seq > 0, "the first segment takes appends");
    assert!(err.is_no_space(), "{err:?}");
    match &err {
        Error::FreeSpaceFloor { path, floor, .. } => {
            assert_eq!(path, d.path());
            assert_eq!(*floor, u64::MAX / 2);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("below the floor"), "{err}");
    // Nothing was lost, and the writer is not poisoned: what is there reads back.
    w.sync().unwrap();
    assert_eq!(read_all(d.path()).len() as u64, seq);
}
