//! Named consumers through the library: resuming, exclusive use, commits, damage, lag.

use std::time::Duration;

use applog::{Consumer, ConsumerState, Error, Options, Writer};

fn log_with(n: u64) -> (tempfile::TempDir, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), Options::new().segment_pages(4)).unwrap();
    for i in 0..n {
        w.append(format!("record {i}").as_bytes()).unwrap();
    }
    (dir, w)
}

fn seqs(c: &mut Consumer, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| c.try_next().unwrap().expect("a record").seq())
        .collect()
}

#[test]
fn a_new_consumer_starts_at_the_first_record_and_resumes_after_its_commit() {
    let (dir, _w) = log_with(10);
    let mut c = Consumer::open(dir.path(), "app").unwrap();
    assert_eq!(seqs(&mut c, 3), [0, 1, 2]);
    c.commit().unwrap();
    assert_eq!(c.committed(), 3);
    // Delivered but not committed: delivered again after a restart.
    assert_eq!(seqs(&mut c, 2), [3, 4]);
    drop(c);
    let mut c = Consumer::open(dir.path(), "app").unwrap();
    assert_eq!(c.position(), 3);
    assert_eq!(seqs(&mut c, 7), [3, 4, 5, 6, 7, 8, 9]);
    assert!(c.try_next().unwrap().is_none());
}

#[test]
fn a_second_holder_of_a_name_is_refused_naming_the_process() {
    let (dir, _w) = log_with(1);
    let _c = Consumer::open(dir.path(), "app").unwrap();
    match Consumer::open(dir.path(), "app") {
        Err(Error::ConsumerBusy { name, pid, .. }) => {
            assert_eq!(name, "app");
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("{other:?}"),
    }
    // Another name is free.
    Consumer::open(dir.path(), "other").unwrap();
}

#[test]
fn a_commit_is_seen_by_other_readers_at_once_with_lag() {
    let (dir, _w) = log_with(10);
    let mut c = Consumer::open(dir.path(), "app").unwrap();
    seqs(&mut c, 4);
    c.commit().unwrap();
    let list = applog::consumers(dir.path()).unwrap();
    assert_eq!(list.len(), 1);
    let info = &list[0];
    assert_eq!((info.name.as_str(), info.next_seq, info.lag), ("app", 4, 6));
    assert!(info.lag_bytes > 0, "{info:?}");
    assert!(
        matches!(info.state, ConsumerState::Active { .. }),
        "{info:?}"
    );
    drop(c);
    let info = applog::consumers(dir.path()).unwrap().remove(0);
    assert_eq!(info.state, ConsumerState::Idle);
}

#[test]
fn commit_to_refuses_positions_not_delivered_or_behind_the_commit() {
    let (dir, _w) = log_with(10);
    let mut c = Consumer::open(dir.path(), "app").unwrap();
    seqs(&mut c, 5);
    assert!(matches!(
        c.commit_to(6),
        Err(Error::ConsumerPosition { seq: 6, .. })
    ));
    c.commit_to(3).unwrap();
    assert!(matches!(
        c.commit_to(2),
        Err(Error::ConsumerPosition { seq: 2, .. })
    ));
    drop(c);
    assert_eq!(Consumer::open(dir.path(), "app").unwrap().position(), 3);
}

#[test]
fn bad_names_are_refused() {
    let (dir, _w) = log_with(1);
    for name in ["", ".hidden", "a/b", "sp ace", &"x".repeat(65), "..", "é"] {
        assert!(
            matches!(
                Consumer::open(dir.path(), name),
                Err(Error::InvalidConsumerName { .. })
            ),
            "{name:?}"
        );
    }
}

#[test]
fn a_damaged_consumer_file_is_reported_with_file_and_offset() {
    let (dir, _w) = log_with(3);
    drop(Consumer::open(dir.path(), "app").unwrap());
    let path = applog::consumer_path(dir.path(), "app");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[64] ^= 0xFF;
    bytes[112] ^= 0xFF;
    std::fs::write(&path, &bytes).unwrap();
    let err = Consumer::open(dir.path(), "app").unwrap_err();
    match &err {
        Error::ConsumerCorrupt {
            name,
            path: p,
            offset,
            ..
        } => {
            assert_eq!((name.as_str(), p, *offset), ("app", &path, 64));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("byte offset 64"), "{err}");
    // Nothing was rewritten.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_position_past_the_end_of_the_log_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::open(dir.path(), Options::new()).unwrap();
    for _ in 0..5 {
        w.append(b"x").unwrap();
    }
    let mut c = Consumer::open(dir.path(), "app").unwrap();
    seqs(&mut c, 5);
    c.commit().unwrap();
    drop(c);
    drop(w);
    // The log loses its last records (as a power cut loses unsynced ones).
    let other = tempfile::tempdir().unwrap();
    let mut w2 = Writer::open(other.path(), Options::new()).unwrap();
    w2.append(b"x").unwrap();
    drop(w2);
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "seg") {
            std::fs::copy(other.path().join(p.file_name().unwrap()), &p).unwrap();
        }
    }
    match Consumer::open(dir.path(), "app") {
        Err(Error::ConsumerPosition {
            seq: 5,
            next_seq: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // An operator resets it.
    applog::reset_consumer(dir.path(), "app", 1).unwrap();
    assert_eq!(Consumer::open(dir.path(), "app").unwrap().position(), 1);
}

#[test]
fn truncate_front_keeps_what_a_consumer_has_not_committed() {
    let (dir, mut w) = log_with(0);
    let mut c = Consumer::open(dir.path(), "slow").unwrap();
    for i in 0..200u64 {
        w.append(&[i as u8; 200]).unwrap();
    }
    w.sync().unwrap();
    // 16 KiB segments hold about 78 of these records.
    seqs(&mut c, 100);
    c.commit().unwrap();
    let first = w.truncate_front(190).unwrap();
    assert!(
        first <= 100,
        "removed records the consumer needs: first_seq {first}"
    );
    assert!(first > 0, "removed nothing");
    // The consumer reads on without a gap.
    assert_eq!(c.try_next().unwrap().unwrap().seq(), 100);
    drop(c);
    applog::delete_consumer(dir.path(), "slow").unwrap();
    let first = w.truncate_front(190).unwrap();
    assert!(first > 100, "{first}");
}

#[test]
fn a_parked_consumer_gets_an_error_and_retention_goes_on() {
    let (dir, mut w) = log_with(0);
    let mut c = Consumer::open(dir.path(), "slow").unwrap();
    for i in 0..200u64 {
        w.append(&[i as u8; 200]).unwrap();
    }
    w.sync().unwrap();
    let report = applog::trim(
        dir.path(),
        &applog::Trim::new()
            .before(150)
            .policy(applog::Retention::new().park_lag_bytes(4096)),
    )
    .unwrap();
    assert_eq!(report.parked, ["slow"]);
    assert!(
        report.first_seq > 0 && report.first_seq <= 150,
        "{report:?}"
    );
    match c.try_next() {
        Err(Error::ConsumerParked { name, seq: 0, .. }) => assert_eq!(name, "slow"),
        other => panic!("{other:?}"),
    }
    drop(c);
    let info = applog::consumers(dir.path()).unwrap().remove(0);
    assert!(
        matches!(info.state, ConsumerState::Parked { .. }),
        "{info:?}"
    );
    applog::reset_consumer(dir.path(), "slow", report.first_seq).unwrap();
    let mut c = Consumer::open(dir.path(), "slow").unwrap();
    assert_eq!(c.try_next().unwrap().unwrap().seq(), report.first_seq);
}

#[test]
fn a_waiting_consumer_is_woken_by_an_append() {
    let (dir, mut w) = log_with(1);
    let mut c = Consumer::open(dir.path(), "app").unwrap();
    assert_eq!(c.next().unwrap().seq(), 0);
    assert!(c.next_timeout(Duration::from_millis(5)).unwrap().is_none());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        w.append(b"late").unwrap();
        w
    });
    assert_eq!(c.next().unwrap().data(), b"late");
    t.join().unwrap();
}

#[test]
fn open_at_starts_from_the_callers_own_position_and_never_moves_the_commit_back() {
    let (dir, _w) = log_with(10);
    let mut c = Consumer::open(dir.path(), "app").unwrap();
    seqs(&mut c, 6);
    c.commit().unwrap();
    drop(c);
    // The service's own state says it processed up to 4 (exactly-once pattern).
    let mut c = Consumer::open_at(dir.path(), "app", 4).unwrap();
    assert_eq!((c.position(), c.committed()), (4, 6));
    assert_eq!(seqs(&mut c, 1), [4]);
    c.commit().unwrap();
    assert_eq!(c.committed(), 6, "a commit moved the position backwards");
    assert_eq!(seqs(&mut c, 3), [5, 6, 7]);
    c.commit().unwrap();
    assert_eq!(c.committed(), 8);
    drop(c);
    assert!(matches!(
        Consumer::open_at(dir.path(), "app", 11),
        Err(Error::ConsumerPosition { seq: 11, .. })
    ));
}

#[test]
fn reset_and_delete_refuse_unknown_and_busy_consumers() {
    let (dir, _w) = log_with(5);
    assert!(matches!(
        applog::reset_consumer(dir.path(), "nobody", 0),
        Err(Error::UnknownConsumer { .. })
    ));
    assert!(matches!(
        applog::delete_consumer(dir.path(), "nobody"),
        Err(Error::UnknownConsumer { .. })
    ));
    let c = Consumer::open(dir.path(), "app").unwrap();
    assert!(matches!(
        applog::reset_consumer(dir.path(), "app", 0),
        Err(Error::ConsumerBusy { .. })
    ));
    assert!(matches!(
        applog::delete_consumer(dir.path(), "app"),
        Err(Error::ConsumerBusy { .. })
    ));
    drop(c);
    assert!(matches!(
        applog::reset_consumer(dir.path(), "app", 6),
        Err(Error::ConsumerPosition {
            seq: 6,
            next_seq: 5,
            ..
        })
    ));
    applog::reset_consumer(dir.path(), "app", 5).unwrap();
    assert_eq!(applog::consumers(dir.path()).unwrap()[0].next_seq, 5);
    applog::delete_consumer(dir.path(), "app").unwrap();
    assert!(applog::consumers(dir.path()).unwrap().is_empty());
    // A deleted name starts afresh at the first record.
    assert_eq!(Consumer::open(dir.path(), "app").unwrap().position(), 0);
}

#[test]
fn a_consumer_file_removed_by_hand_is_reported_to_its_holder_at_its_next_sync() {
    let (dir, _w) = log_with(3);
    let mut c = Consumer::open(dir.path(), "app").unwrap();
    seqs(&mut c, 2);
    c.commit().unwrap();
    c.sync().unwrap();
    // Removed by hand while in use (the library refuses to delete a consumer in use): a
    // new open makes a new consumer, and the old holder learns of it when it syncs.
    std::fs::remove_file(applog::consumer_path(dir.path(), "app")).unwrap();
    let again = Consumer::open(dir.path(), "app").unwrap();
    assert_eq!(again.position(), 0);
    c.commit().unwrap();
    match c.sync() {
        Err(Error::UnknownConsumer { name, .. }) => assert_eq!(name, "app"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn consumer_calls_on_a_directory_that_is_not_a_log_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    assert!(matches!(
        Consumer::open(dir.path(), "app"),
        Err(Error::NotALog { .. })
    ));
    assert!(matches!(
        applog::trim(dir.path(), &applog::Trim::new()),
        Err(Error::NotALog { .. })
    ));
    assert!(matches!(
        applog::reset_consumer(dir.path(), "app", 0),
        Err(Error::NotALog { .. })
    ));
    assert!(!dir.path().join(applog::CONSUMERS_DIR).exists());
}

#[test]
fn trimming_up_to_the_consumers_parks_nobody_when_that_would_remove_nothing() {
    let (dir, mut w) = log_with(0);
    drop(Consumer::open(dir.path(), "slow").unwrap());
    for i in 0..400u64 {
        w.append(&[i as u8; 200]).unwrap();
    }
    w.sync().unwrap();
    let policy = applog::Retention::new().park_lag_bytes(4096);
    let dry = applog::trim(
        dir.path(),
        &applog::Trim::new().policy(policy.clone()).dry_run(true),
    )
    .unwrap();
    assert!(dry.parked.is_empty(), "{dry:?}");
    let report = applog::trim(dir.path(), &applog::Trim::new().policy(policy)).unwrap();
    assert!(
        report.parked.is_empty(),
        "parked though nothing would go: {report:?}"
    );
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(applog::verify(dir.path()).unwrap().first_seq, 0);
}

#[test]
fn a_lagging_consumer_that_holds_back_nothing_removable_is_not_parked() {
    let (dir, mut w) = log_with(0);
    let mut c = Consumer::open(dir.path(), "near").unwrap();
    for i in 0..400u64 {
        w.append(&[i as u8; 200]).unwrap();
    }
    w.sync().unwrap();
    // Into the newest segment, which no pass removes, with records still after it.
    for _ in 0..390 {
        c.try_next().unwrap().unwrap();
    }
    c.commit().unwrap();
    let report = applog::trim(
        dir.path(),
        &applog::Trim::new()
            .before(u64::MAX)
            .policy(applog::Retention::new().park_lag_bytes(1)),
    )
    .unwrap();
    assert!(report.parked.is_empty(), "{report:?}");
    assert!(!report.removed.is_empty(), "{report:?}");
    assert_eq!(c.try_next().unwrap().unwrap().seq(), 390);
}
