//! Retention: `truncate_front(seq)` removes whole old segments.
//!
//! Fault model: segments are unlinked while readers read them and a writer appends; a crash
//! after the truncation. Pass criteria: only segments whose records are all below `seq` go
//! (never the active one); `first_seq` (writer, reopened writer, reader, verify) reflects it;
//! a seek before it is `SeqBeforeStart`; a reader that keeps up never notices; a reader that
//! holds a removed segment reads all of it, then gets `SeqBeforeStart` where the log moved on;
//! the writer keeps appending, `verify` running meanwhile sees a clean log, and so does the
//! final one.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use applog::{Error, Options, Reader, SharedWriter, Writer};
use common::*;

fn bases(dir: &std::path::Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".seg").map(|n| n.parse().unwrap())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn truncate_front_removes_only_whole_segments_below_seq() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    for seq in 0..500u64 {
        w.append(&payload(seq, 100)).unwrap();
    }
    w.sync().unwrap();
    let before = bases(d.path());
    assert!(before.len() > 10);
    assert_eq!(w.truncate_front(0).unwrap(), 0);
    assert_eq!(bases(d.path()), before);

    // The segment holding 200 and every later one stay; every earlier one goes.
    let holder = *before.iter().rev().find(|&&b| b <= 200).unwrap();
    assert!(
        holder < 200,
        "200 is inside a segment, not its first record"
    );
    assert_eq!(w.truncate_front(200).unwrap(), holder);
    assert_eq!(w.first_seq(), holder);
    let after = bases(d.path());
    assert_eq!(
        after,
        before
            .iter()
            .copied()
            .filter(|&b| b >= holder)
            .collect::<Vec<_>>()
    );

    let mut r = Reader::open(d.path()).unwrap();
    assert_eq!(r.next().unwrap().unwrap().seq(), holder);
    assert!(matches!(
        r.seek(holder - 1),
        Err(Error::SeqBeforeStart { first_seq, .. }) if first_seq == holder
    ));
    r.seek(200).unwrap();
    let rec = r.next().unwrap().unwrap();
    assert_eq!((rec.seq(), rec.data()), (200, &payload(200, 100)[..]));
    let report = applog::verify(d.path()).unwrap();
    assert!(report.is_clean());
    assert_eq!((report.first_seq, report.next_seq), (holder, 500));

    // Everything but the active segment.
    let active = *after.last().unwrap();
    assert_eq!(w.truncate_front(u64::MAX).unwrap(), active);
    assert_eq!(bases(d.path()), vec![active]);
    w.append(b"after").unwrap();
    drop(w);

    // Reopening (recovery) agrees.
    let w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    assert_eq!((w.first_seq(), w.next_seq()), (active, 501));
    let all = read_all(d.path());
    assert_eq!(all.first().unwrap().0, active);
    assert_eq!(all.last().unwrap(), &(500, b"after".to_vec()));
}

const N: u64 = 20_000;

fn len_of(seq: u64) -> usize {
    (seq as usize * 13) % 120
}

#[test]
fn retention_under_concurrent_readers_and_a_writer_that_keeps_appending() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_owned();
    let log = SharedWriter::open(&dir, Options::new().segment_pages(2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);

    let appender = {
        let log = log.clone();
        std::thread::spawn(move || {
            for seq in 0..N {
                let data = payload(seq, len_of(seq));
                let got = if seq % 50 == 0 {
                    log.append_durable(&data)
                } else {
                    log.append(&data)
                };
                assert_eq!(got.unwrap(), seq);
            }
            log.sync().unwrap();
        })
    };

    // A reader that keeps up: retention never goes past it, so it sees every record.
    let tail_pos = Arc::new(AtomicU64::new(0));
    let tailer = {
        let (dir, tail_pos) = (dir.clone(), tail_pos.clone());
        std::thread::spawn(move || {
            let mut r = Reader::open(&dir).unwrap();
            let mut expected = 0;
            while expected < N {
                match r.next().unwrap() {
                    Some(rec) => {
                        assert_eq!(rec.seq(), expected);
                        assert!(rec.data() == payload(expected, len_of(expected)));
                        expected += 1;
                        tail_pos.store(expected, Ordering::Release);
                    }
                    None => {
                        assert!(Instant::now() < deadline, "tailer stuck at {expected}");
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
        })
    };

    // A reader that stops inside the first segment and resumes after retention removed it
    // and the one after it.
    let (paused_tx, paused_rx) = mpsc::channel();
    let resume = Arc::new(AtomicBool::new(false));
    let lagger = {
        let (dir, resume) = (dir.clone(), resume.clone());
        std::thread::spawn(move || {
            let mut r = Reader::open(&dir).unwrap();
            let mut next = 0;
            while next < 10 {
                if let Some(rec) = r.next().unwrap() {
                    assert_eq!(rec.seq(), next);
                    next += 1;
                }
            }
            paused_tx.send(()).unwrap();
            while !resume.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // The rest of its (removed) segment, then the gap.
            loop {
                match r.next() {
                    Ok(Some(rec)) => {
                        assert_eq!(rec.seq(), next);
                        assert!(rec.data() == payload(next, len_of(next)));
                        next += 1;
                    }
                    Ok(None) => panic!("reader stopped at {next} without an error"),
                    Err(Error::SeqBeforeStart { seq, first_seq }) => {
                        assert_eq!(seq, next);
                        return (next, first_seq);
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    // verify, over and over, racing the removals and the appends: it sees a clean log.
    let stop_verifying = Arc::new(AtomicBool::new(false));
    let verifier = {
        let (dir, stop) = (dir.clone(), stop_verifying.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Acquire) {
                let report = applog::verify(&dir).unwrap();
                assert!(report.is_clean(), "{:?}", report.corruptions);
                assert!(report.torn_tail.is_none(), "{:?}", report.torn_tail);
                runs += 1;
            }
            runs
        })
    };
    paused_rx.recv().unwrap();
    // The base of the segment after the lagging reader's: learnt before retention removes it.
    let mut second_base = None;

    // Retention behind the tailer, while everything runs.
    let mut truncations = 0;
    let mut resumed = false;
    while !appender.is_finished() || tail_pos.load(Ordering::Acquire) < N {
        assert!(Instant::now() < deadline, "the run did not finish");
        if second_base.is_none() {
            let b = bases(&dir);
            assert_eq!(b[0], 0, "the first segment went before the second was seen");
            second_base = b.get(1).copied();
            if second_base.is_none() {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        }
        let keep = tail_pos.load(Ordering::Acquire).min(log.durable_seq());
        let before = log.first_seq();
        let first = log.truncate_front(keep).unwrap();
        assert!(first <= keep.max(before));
        if first > before {
            truncations += 1;
        }
        if !resumed && second_base.is_some_and(|b| first > b) {
            resume.store(true, Ordering::Release);
            resumed = true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    appender.join().unwrap();
    tailer.join().unwrap();
    stop_verifying.store(true, Ordering::Release);
    assert!(verifier.join().unwrap() > 0);
    assert!(
        resumed,
        "retention never passed the lagging reader's next segment"
    );
    let (stopped_at, first_then) = lagger.join().unwrap();
    assert_eq!(
        Some(stopped_at),
        second_base,
        "the lagging reader read all of its removed segment"
    );
    assert!(first_then > stopped_at);
    assert!(
        truncations > 5,
        "{truncations} truncations removed segments, {:?}",
        bases(&dir)
    );

    log.truncate_front(N).unwrap();
    let report = applog::verify(&dir).unwrap();
    assert!(report.is_clean(), "{:?}", report.corruptions);
    assert_eq!(report.next_seq, N);
    assert_eq!(report.first_seq, log.first_seq());
    assert_eq!(bases(&dir).len(), 1);
}

/// `chattr` on `path`; false (with the reason printed) where it is not available.
fn chattr(flag: &str, path: &std::path::Path) -> bool {
    match std::process::Command::new("chattr")
        .arg(flag)
        .arg(path)
        .output()
    {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            skip(format_args!(
                "chattr {flag} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            false
        }
        Err(e) => {
            skip(format_args!("chattr is not available: {e}"));
            false
        }
    }
}

#[test]
fn a_segment_that_cannot_be_removed_stops_retention_with_its_name() {
    let _serial = serial();
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    for seq in 0..300u64 {
        w.append(&payload(seq, 100)).unwrap();
    }
    let b = bases(d.path());
    assert!(b.len() > 4);
    // An immutable file cannot be unlinked, not even by root.
    let stuck = seg_path(d.path(), b[2]);
    if !chattr("+i", &stuck) {
        return;
    }
    let err = w.truncate_front(u64::MAX).unwrap_err();
    assert!(chattr("-i", &stuck));
    assert!(
        matches!(&err, Error::Io { path, .. } if path == &stuck),
        "{err:?}"
    );
    // The two before it are gone, and first_seq says so; the writer is not poisoned.
    assert_eq!(w.first_seq(), b[2]);
    assert_eq!(bases(d.path()), b[2..].to_vec());
    w.append(b"still appending").unwrap();
    w.sync().unwrap();
    assert_eq!(w.truncate_front(u64::MAX).unwrap(), *b.last().unwrap());
}
