//! Where record times come from: `Options::record_time`.
//!
//! Fault model: none; the behaviour pinned is each time source's contract. Pass criteria:
//! `Coarse` stamps records with the kernel's coarse wall clock (within a tick of the precise
//! one, never decreasing); `Off` stores no time (`Record::time` is `None`, `verify` reports
//! none), and `seek_time` on such a log positions the reader at the end and then yields the
//! records appended later (they have no time to be skipped for); a log whose writer changes
//! its time source keeps records in order and readable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use applog::{Options, Reader, RecordTime, Tailer, Writer};

fn ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

fn times(dir: &std::path::Path) -> Vec<Option<u64>> {
    let mut r = Reader::open(dir).unwrap();
    let mut v = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        v.push(rec.time_ns());
    }
    v
}

#[test]
fn coarse_time_stamps_records_with_the_coarse_clock_never_decreasing() {
    let d = tempfile::tempdir().unwrap();
    let opts = Options::new()
        .segment_pages(1)
        .record_time(RecordTime::Coarse);
    let before = ns(SystemTime::now());
    let mut w = Writer::open(d.path(), opts).unwrap();
    for i in 0..200u32 {
        w.append(&i.to_le_bytes()).unwrap();
    }
    w.append_batch(&[b"x".as_slice(), b"y"]).unwrap();
    let after = ns(SystemTime::now());
    w.close().unwrap();
    let all = times(d.path());
    assert_eq!(all.len(), 202);
    let all: Vec<u64> = all.into_iter().map(|t| t.expect("a time")).collect();
    // The coarse clock trails the precise one by at most a tick (a second is far more).
    let tick_margin = 1_000_000_000;
    assert!(all.iter().all(|&t| t + tick_margin >= before && t <= after));
    assert!(all.windows(2).all(|w| w[0] <= w[1]), "never decreasing");
    assert_eq!(all[200], all[201], "a batch shares one time");
}

#[test]
fn no_time_records_read_without_a_time_and_verify_reports_none() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().record_time(RecordTime::Off)).unwrap();
    w.append(b"one").unwrap();
    w.append_batch(&[b"two".as_slice(), b"three"]).unwrap();
    w.close().unwrap();
    assert_eq!(times(d.path()), vec![None, None, None]);
    let report = applog::verify(d.path()).unwrap();
    assert!(report.segments.iter().all(|s| s.first_time.is_none()));
    assert!(report.segments.iter().all(|s| s.last_time.is_none()));
}

#[test]
fn seek_time_on_a_log_without_times_goes_to_the_end_and_yields_later_records() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().record_time(RecordTime::Off)).unwrap();
    w.append(b"a").unwrap();
    w.append(b"b").unwrap();
    let mut r = Reader::open(d.path()).unwrap();
    assert_eq!(
        r.seek_time(UNIX_EPOCH + Duration::from_nanos(1)).unwrap(),
        2
    );
    assert!(r.next().unwrap().is_none());
    w.append(b"c").unwrap();
    let rec = r
        .next()
        .unwrap()
        .expect("a record without a time is not skipped");
    assert_eq!((rec.seq(), rec.data(), rec.time()), (2, &b"c"[..], None));

    // A tailer sought to now waits and then gets the next record.
    let mut t = Tailer::open(d.path(), 0).unwrap();
    assert_eq!(t.seek_time(SystemTime::now()).unwrap(), 3);
    assert!(t.next_timeout(Duration::from_millis(10)).unwrap().is_none());
    w.append(b"d").unwrap();
    let rec = t.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!((rec.seq(), rec.data()), (3, &b"d"[..]));
}

#[test]
fn a_writer_switching_time_sources_keeps_the_log_readable_and_in_order() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"precise").unwrap();
    drop(w);
    let mut w = Writer::open(d.path(), Options::new().record_time(RecordTime::Off)).unwrap();
    w.append(b"none").unwrap();
    drop(w);
    let mut w = Writer::open(d.path(), Options::new().record_time(RecordTime::Coarse)).unwrap();
    w.append(b"coarse").unwrap();
    drop(w);
    let all = times(d.path());
    assert_eq!(all.len(), 3);
    assert!(all[0].is_some() && all[1].is_none() && all[2].is_some());
    assert!(applog::verify(d.path()).unwrap().segments.len() == 1);
}
