//! Records carry the time they were appended, and readers find records by time.
//!
//! Fault model: the system clock is behind the log (stepped back, or the log was written on a
//! machine whose clock ran ahead), and logs come from an older applog whose records have no
//! time (format version 1), alone or followed by newer segments. Pass criteria: every record
//! is stamped with the wall-clock time of its append, a batch with one time; times never
//! decrease along a log, across reopens and clock steps; version-1 records read as having no
//! time, a writer keeps appending to such a log (newer segments in version 2), and `copy`
//! upgrades it keeping every time there is; `seek_time` lands on the first record at or after
//! a time, as a linear scan finds it, and skips later records older than the time.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use applog::format::Layout;
use applog::{Options, Reader, Tailer, Writer};
use proptest::prelude::*;

fn ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// A record as read back: seq, bytes, time.
type Read = (u64, Vec<u8>, Option<u64>);

/// Every record of the log.
fn read_all(dir: &std::path::Path) -> Vec<Read> {
    let mut r = Reader::open(dir).unwrap();
    let mut v = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        v.push((rec.seq(), rec.data().to_vec(), rec.time_ns()));
    }
    v
}

#[test]
fn every_record_carries_the_time_it_was_appended_and_a_batch_shares_one() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    let before = ns(SystemTime::now());
    w.append(b"one").unwrap();
    let batch: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; 300]).collect(); // rolls over
    w.append_batch(&batch).unwrap();
    let after = ns(SystemTime::now());
    w.close().unwrap();

    let all = read_all(d.path());
    assert_eq!(all.len(), 51);
    let t0 = all[0].2.expect("a time");
    assert!(
        (before..=after).contains(&t0),
        "{before} <= {t0} <= {after}"
    );
    let batch_time = all[1].2.expect("a time");
    assert!(batch_time >= t0 && batch_time <= after);
    assert!(
        all[1..].iter().all(|r| r.2 == Some(batch_time)),
        "one time for the whole batch, across segments"
    );
    let report = applog::verify(d.path()).unwrap();
    assert!(report.segments.len() > 2);
    assert!(report.segments.iter().all(|s| s.format_version == 2));
    assert_eq!(report.segments[0].first_time, Some(t0));
    assert_eq!(report.segments.last().unwrap().last_time, Some(batch_time));

    // Reopened, the log keeps its times and later records are not older.
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"later").unwrap();
    drop(w);
    let all = read_all(d.path());
    assert_eq!(all[1].2, Some(batch_time));
    assert!(all[51].2.unwrap() >= batch_time);
}

#[test]
fn a_clock_behind_the_log_stamps_new_records_with_the_logs_last_time() {
    let d = tempfile::tempdir().unwrap();
    // The last record was stamped an hour ahead of this machine's clock.
    let ahead = ns(SystemTime::now() + Duration::from_secs(3600));
    let records = vec![(b"a".to_vec(), ahead - 5), (b"b".to_vec(), ahead)];
    common::v1::write_segment_in(Layout::V2, d.path(), 0, 4, &records, false);
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"c").unwrap();
    w.append_batch(&[b"d", b"e"]).unwrap();
    drop(w);
    let times: Vec<Option<u64>> = read_all(d.path()).into_iter().map(|r| r.2).collect();
    assert_eq!(
        times,
        [
            Some(ahead - 5),
            Some(ahead),
            Some(ahead),
            Some(ahead),
            Some(ahead)
        ],
        "times never go backwards"
    );
}

/// A version-1 log of 10 records in sealed one-page segments of 4 records.
fn v1_log(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let records: Vec<Vec<u8>> = (0..10).map(|i| format!("old {i}").into_bytes()).collect();
    common::v1::write_log(dir, &records, 4);
    records
}

#[test]
fn a_version_1_log_reads_without_times_and_grows_in_version_2_segments() {
    let d = tempfile::tempdir().unwrap();
    let old = v1_log(d.path());
    let report = applog::verify(d.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.next_seq, 10);
    assert!(report.segments.iter().all(|s| s.format_version == 1));
    assert!(report.segments.iter().all(|s| s.first_time.is_none()));
    let all = read_all(d.path());
    assert_eq!(all.len(), 10);
    assert!(all.iter().all(|r| r.2.is_none()), "no times in version 1");

    // A writer appends to the version-1 segment in its own layout, then rolls over into
    // version-2 segments, whose records have times.
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    assert_eq!(w.next_seq(), 10);
    let new: Vec<Vec<u8>> = (0..20).map(|i| vec![b'n'; 200 + i]).collect();
    for r in &new {
        w.append(r).unwrap();
    }
    w.close().unwrap();
    let report = applog::verify(d.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let versions: Vec<u32> = report.segments.iter().map(|s| s.format_version).collect();
    assert_eq!(versions[..3], [1, 1, 1]);
    assert!(versions[3..].iter().all(|&v| v == 2), "{versions:?}");
    let all = read_all(d.path());
    let want: Vec<&Vec<u8>> = old.iter().chain(&new).collect();
    assert_eq!(all.iter().map(|r| &r.1).collect::<Vec<_>>(), want);
    let v1_records = report.segments[..3].iter().map(|s| s.records).sum::<u64>() as usize;
    assert!(all[..v1_records].iter().all(|r| r.2.is_none()));
    assert!(all[v1_records..].iter().all(|r| r.2.is_some()));
    // Reopens fine.
    assert_eq!(
        Writer::open(d.path(), Options::new()).unwrap().next_seq(),
        30
    );
}

#[test]
fn copy_upgrades_a_version_1_log_and_keeps_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    v1_log(&log);
    let mut w = Writer::open(&log, Options::new().segment_pages(1)).unwrap();
    for i in 0..12 {
        w.append(&vec![b'x'; 500 + i]).unwrap();
    }
    w.close().unwrap();
    let source = read_all(&log);

    let dest = tmp.path().join("copy");
    applog::copy(&log, &dest).unwrap();
    let report = applog::verify(&dest).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(
        report.segments.iter().all(|s| s.format_version == 2),
        "{report:?}"
    );
    assert_eq!(read_all(&dest), source, "same seqs, bytes and times");

    // A record that fills a version-1 segment to its last byte still fits in the copy.
    let full = tmp.path().join("full");
    let record = vec![7u8; (common::page() - 64 - 8) as usize];
    common::v1::write_segment(&full, 0, 1, std::slice::from_ref(&record), false);
    let dest = tmp.path().join("full-copy");
    applog::copy(&full, &dest).unwrap();
    assert_eq!(read_all(&dest), [(0, record, None)]);
}

/// The seq a linear scan finds for `time`: the first record at or after it (records without
/// a time count as older than any time), or the next seq when there is none.
fn scan_for(all: &[Read], next: u64, time: u64) -> u64 {
    all.iter()
        .find(|r| r.2.unwrap_or(0) >= time)
        .map_or(next, |r| r.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The binary search over segments and the walk in one agree with a linear scan, for
    /// every record's time, the times just around them, and times before and after the log.
    #[test]
    fn seek_time_agrees_with_a_linear_scan(
        with_v1 in any::<bool>(),
        groups in proptest::collection::vec((1usize..6, 0usize..900), 1..25),
    ) {
        let d = tempfile::tempdir().unwrap();
        if with_v1 {
            v1_log(d.path());
        }
        let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
        for (n, len) in &groups {
            // A batch: several records with one time.
            let batch: Vec<Vec<u8>> = (0..*n).map(|i| vec![i as u8; *len]).collect();
            w.append_batch(&batch).unwrap();
        }
        let next = w.next_seq();
        drop(w);
        let all = read_all(d.path());
        let mut targets = vec![0, 1, u64::MAX];
        for r in &all {
            let t = r.2.unwrap_or(0);
            targets.extend([t.saturating_sub(1), t, t.saturating_add(1)]);
        }
        let mut reader = Reader::open(d.path()).unwrap();
        for t in targets {
            let want = scan_for(&all, next, t);
            prop_assert_eq!(reader.seek_time_ns(t).unwrap(), want, "time {}", t);
            let got = reader.next().unwrap().map(|r| r.seq());
            prop_assert_eq!(got, (want < next).then_some(want), "time {}", t);
        }
    }
}

#[test]
fn seek_time_past_the_last_record_skips_records_older_than_the_time() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    let mut r = Reader::open(d.path()).unwrap();
    assert_eq!(r.seek_time(SystemTime::now()).unwrap(), 0, "empty log");
    w.append(b"a").unwrap();
    // An hour from now: nothing yet, and a record appended now is older.
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(r.seek_time(later).unwrap(), 1);
    w.append(b"b").unwrap();
    assert!(r.next().unwrap().is_none(), "b is older than the time");
    // Back in time: from the first record again.
    assert_eq!(r.seek_time(UNIX_EPOCH).unwrap(), 0);
    assert_eq!(r.next().unwrap().unwrap().data(), b"a");
    // A plain seek forgets the time.
    assert_eq!(r.seek_time(later).unwrap(), 2);
    r.seek(1).unwrap();
    assert_eq!(r.next().unwrap().unwrap().data(), b"b");
}

#[test]
fn a_tailer_sought_to_now_waits_for_the_next_record() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"before").unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let now = SystemTime::now();
    let mut t = Tailer::open(d.path(), 0).unwrap();
    assert_eq!(t.seek_time(now).unwrap(), 1);
    assert!(t.next_timeout(Duration::from_millis(10)).unwrap().is_none());
    w.append(b"after").unwrap();
    let rec = t.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!((rec.seq(), rec.data()), (1, &b"after"[..]));
    assert!(rec.time().unwrap() >= now);
}
