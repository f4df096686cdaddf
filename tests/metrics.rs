//! Metrics (feature `metrics`): each metric of docs/metrics.md moves as documented.
//!
//! Each test installs a `DebuggingRecorder` of its own as the thread's recorder before it opens
//! anything (the library registers its handles at open, in the opening thread; the handles
//! then work from any thread, such as a `SharedWriter`'s sync thread), so tests running side
//! by side do not see each other's metrics. A snapshot takes (and resets) the counters and
//! histogram samples recorded since the last one.
#![cfg(feature = "metrics")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use applog::{Consumer, Options, SharedWriter, Tailer, Writer};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// What a snapshot held, by metric name (and consumer, for the consumer gauges).
#[derive(Debug, Default)]
struct Seen {
    counters: HashMap<String, u64>,
    gauges: HashMap<String, f64>,
    histograms: HashMap<String, Vec<f64>>,
}

impl Seen {
    fn take(snap: &Snapshotter, dir: &std::path::Path) -> Seen {
        let mut seen = Seen::default();
        for (key, _, _, value) in snap.snapshot().into_vec() {
            let key = key.key();
            let mut name = key.name().to_string();
            let mut log = None;
            for label in key.labels() {
                match label.key() {
                    "log" => log = Some(label.value().to_string()),
                    "consumer" => name = format!("{name}/{}", label.value()),
                    "stream" => name = format!("{name}/{}", label.value()),
                    other => panic!("unexpected label {other}"),
                }
            }
            assert_eq!(log.as_deref(), Some(&*dir.display().to_string()), "{name}");
            match value {
                DebugValue::Counter(v) => *seen.counters.entry(name).or_default() += v,
                DebugValue::Gauge(v) => {
                    seen.gauges.insert(name, v.into_inner());
                }
                DebugValue::Histogram(v) => seen
                    .histograms
                    .entry(name)
                    .or_default()
                    .extend(v.into_iter().map(|f| f.into_inner())),
            }
        }
        seen
    }

    fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    fn gauge(&self, name: &str) -> Option<f64> {
        self.gauges.get(name).copied()
    }

    fn samples(&self, name: &str) -> &[f64] {
        self.histograms.get(name).map_or(&[], Vec::as_slice)
    }
}

/// A recorder for this thread, and its snapshotter.
fn recorder() -> (DebuggingRecorder, Snapshotter) {
    let r = DebuggingRecorder::new();
    let s = r.snapshotter();
    (r, s)
}

#[test]
fn appends_and_batches_count_records_and_payload_bytes() {
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    Seen::take(&snap, d.path()); // what opening recorded
    for n in [10, 20, 30] {
        w.append(&vec![1u8; n]).unwrap();
    }
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_appended_records_total"), 3);
    assert_eq!(seen.counter("applog_appended_bytes_total"), 60);
    assert!(seen.samples("applog_batch_records").is_empty());

    w.append_batch(&[&b"abcde"[..], b"fg", b"h", b""]).unwrap();
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_appended_records_total"), 4);
    assert_eq!(seen.counter("applog_appended_bytes_total"), 8);
    assert_eq!(seen.samples("applog_batch_records"), &[4.0]);
}

#[test]
fn a_sync_counts_once_with_its_duration_records_and_durable_seq() {
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append_batch(&[b"a", b"b", b"c"]).unwrap();
    w.sync().unwrap();
    w.sync().unwrap(); // nothing to flush: not a sync
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_syncs_total"), 1);
    let secs = seen.samples("applog_sync_duration_seconds");
    assert_eq!(secs.len(), 1);
    assert!(secs[0] >= 0.0 && secs[0] < 60.0, "{secs:?}");
    assert_eq!(seen.samples("applog_sync_records"), &[3.0]);
    assert_eq!(seen.gauge("applog_durable_seq"), Some(3.0));
    assert_eq!(seen.counter("applog_sync_errors_total"), 0);
    // Under the default limit of one second: not slow. With a zero limit, every flush is.
    assert_eq!(seen.counter("applog_slow_syncs_total"), 0);
    drop(w);
    let mut w = Writer::open(d.path(), Options::new().slow_sync(Duration::ZERO)).unwrap();
    w.append(b"d").unwrap();
    w.sync().unwrap();
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_slow_syncs_total"), 1);
    assert_eq!(w.slow_syncs(), 1);
}

#[test]
fn a_failed_sync_is_an_error_not_a_sync() {
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"a").unwrap();
    w.inject_sync_error(std::io::Error::from_raw_os_error(5));
    w.sync().unwrap_err();
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_syncs_total"), 0);
    assert_eq!(seen.counter("applog_sync_errors_total"), 1);
    assert!(seen.samples("applog_sync_duration_seconds").is_empty());
}

#[test]
fn rolls_create_segments_and_truncation_removes_them() {
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_segments_created_total"), 1); // the new log's first
    let record = vec![0u8; w.max_record_len() as usize / 2 + 8]; // one per segment
    for _ in 0..4 {
        w.append(&record).unwrap();
    }
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_segments_created_total"), 3);
    assert_eq!(w.truncate_front(3).unwrap(), 3);
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_retention_runs_total"), 1);
    assert_eq!(seen.counter("applog_segments_removed_total"), 3);
    assert_eq!(seen.counter("applog_retention_removed_records_total"), 3);
    assert!(seen.counter("applog_retention_removed_bytes_total") >= 3 * record.len() as u64);
    // A pass that removes nothing still counts as a run.
    w.truncate_front(3).unwrap();
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_retention_runs_total"), 1);
    assert_eq!(seen.counter("applog_segments_removed_total"), 0);
}

#[test]
fn trim_counts_what_it_removes() {
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    let record = vec![0u8; w.max_record_len() as usize / 2 + 8];
    for _ in 0..3 {
        w.append(&record).unwrap();
    }
    w.close().unwrap();
    Seen::take(&snap, d.path());
    let report = applog::trim(d.path(), &applog::Trim::new().before(2)).unwrap();
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_retention_runs_total"), 1);
    assert_eq!(
        seen.counter("applog_segments_removed_total"),
        report.removed.len() as u64
    );
    assert_eq!(report.removed.len(), 2);
}

#[test]
fn recovery_of_a_torn_tail_counts_the_cut() {
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append_batch(&[b"one", b"two", b"six"]).unwrap();
    drop(w); // no sync: everything past the header is of unknown durability
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_recovery_torn_tails_total"), 0);
    assert_eq!(seen.samples("applog_recovery_duration_seconds").len(), 1);

    // Garbage right after the third frame: a torn fourth record.
    let at = applog::format::HEADER_LEN + 3 * applog::format::Layout::CURRENT.frame_len(3);
    let seg = d.path().join(applog::segment_name(0));
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0xEE; 8], at).unwrap();
    let size = file.metadata().unwrap().len();
    drop(file);

    let w = Writer::open(d.path(), Options::new()).unwrap();
    assert_eq!(w.next_seq(), 3);
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.counter("applog_recovery_torn_tails_total"), 1);
    assert_eq!(seen.counter("applog_recovery_cut_bytes_total"), size - at);
    assert_eq!(seen.samples("applog_recovery_duration_seconds").len(), 1);
}

#[test]
fn a_tailer_that_slept_counts_its_wakeups() {
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    let mut tailer = Tailer::open(d.path(), 0).unwrap();
    let reader = std::thread::spawn(move || tailer.next().map(|r| r.seq()).unwrap());
    std::thread::sleep(Duration::from_millis(100)); // the tailer is asleep by now
    w.append(b"wake up").unwrap();
    assert_eq!(reader.join().unwrap(), 0);
    let seen = Seen::take(&snap, d.path());
    assert!(seen.counter("applog_tailer_wakeups_total") > 0, "{seen:?}");
}

#[test]
fn consumer_gauges_follow_commits_and_lag() {
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append_batch(&[b"a", b"b", b"c", b"d", b"e"]).unwrap();
    let mut c = Consumer::open(d.path(), "indexer").unwrap();
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.gauge("applog_consumer_lag_records/indexer"), Some(5.0));
    assert_eq!(
        seen.gauge("applog_consumer_committed_seq/indexer"),
        Some(0.0)
    );

    c.next().unwrap();
    c.next().unwrap();
    c.commit().unwrap();
    let seen = Seen::take(&snap, d.path());
    assert_eq!(
        seen.gauge("applog_consumer_committed_seq/indexer"),
        Some(2.0)
    );

    let info = applog::consumers(d.path()).unwrap();
    assert_eq!(info[0].lag, 3);
    let seen = Seen::take(&snap, d.path());
    assert_eq!(seen.gauge("applog_consumer_lag_records/indexer"), Some(3.0));
    assert_eq!(
        seen.gauge("applog_consumer_lag_bytes/indexer"),
        Some(info[0].lag_bytes as f64)
    );
}

#[test]
fn group_commit_records_flushes_from_any_thread() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 50;
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let log = SharedWriter::open(d.path(), Options::new()).unwrap();
    Seen::take(&snap, d.path());
    // The threads have no recorder of their own: the handles registered at open record.
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    log.append_durable(format!("{t}-{i}").as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    log.sync().unwrap();
    let syncs = log.sync_count();
    drop(log);
    let seen = Seen::take(&snap, d.path());
    let total = THREADS * PER_THREAD;
    assert_eq!(seen.counter("applog_appended_records_total"), total);
    // Every flush (a new log needs none at open): a sync with a duration and a record count.
    assert_eq!(seen.counter("applog_syncs_total"), syncs);
    assert_eq!(
        seen.samples("applog_sync_duration_seconds").len() as u64,
        syncs
    );
    let records = seen.samples("applog_sync_records");
    assert_eq!(records.len() as u64, syncs);
    assert_eq!(records.iter().sum::<f64>(), total as f64);
    let waiters = seen.samples("applog_group_commit_waiters");
    assert_eq!(waiters.len(), records.len());
    // Each durable append waited for one flush (a waiter is counted by the flush that
    // covered it; a flush of the sync thread may have none).
    assert!(waiters.iter().all(|&w| w <= THREADS as f64), "{waiters:?}");
    assert!(waiters.iter().sum::<f64>() >= 1.0, "{waiters:?}");
    assert_eq!(seen.gauge("applog_durable_seq"), Some(total as f64));
}

#[cfg(feature = "tokio")]
#[test]
fn an_async_tailer_polled_again_after_it_waited_counts_a_wakeup() {
    use std::future::Future;
    use std::task::Poll;
    let d = tempfile::tempdir().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    let mut tailer = applog::tokio::AsyncTailer::open_blocking(d.path(), 0).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let seq = rt.block_on(async {
        let mut next = std::pin::pin!(tailer.next());
        // Nothing there: the first poll registers the task with the waiter.
        let first = std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        assert_eq!(
            Seen::take(&snap, d.path()).counter("applog_async_tailer_wakeups_total"),
            0
        );
        w.append(b"wake up").unwrap();
        next.await.unwrap().seq()
    });
    assert_eq!(seq, 0);
    let seen = Seen::take(&snap, d.path());
    assert!(
        seen.counter("applog_async_tailer_wakeups_total") >= 1,
        "{seen:?}"
    );
}

#[cfg(feature = "ship")]
#[test]
fn shipping_counts_published_and_acknowledged_records_and_its_lag_ends_at_zero() {
    let Some(nats) = common::nats::Nats::single() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    for i in 0..300u32 {
        w.append(&i.to_le_bytes()).unwrap();
    }
    w.sync().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = applog::ship::ShipOptions::new(vec![nats.urls()], "METRICS");
    let report = rt.block_on(applog::ship::ship(d.path(), &opts)).unwrap();
    assert_eq!((report.shipped, report.next_seq), (300, 300));
    let seen = Seen::take(&snap, d.path());
    assert_eq!(
        seen.counter("applog_ship_published_records_total/METRICS"),
        300,
        "{seen:?}"
    );
    assert_eq!(
        seen.counter("applog_ship_acknowledged_records_total/METRICS"),
        300,
        "{seen:?}"
    );
    assert_eq!(
        seen.gauge("applog_ship_lag_records/METRICS"),
        Some(0.0),
        "{seen:?}"
    );
    assert_eq!(
        seen.counter("applog_ship_errors_total/METRICS"),
        0,
        "{seen:?}"
    );

    // 100 more: a second run ships only those, and catches up again.
    for i in 300..400u32 {
        w.append(&i.to_le_bytes()).unwrap();
    }
    w.sync().unwrap();
    let report = rt.block_on(applog::ship::ship(d.path(), &opts)).unwrap();
    assert_eq!((report.shipped, report.next_seq), (100, 400));
    let seen = Seen::take(&snap, d.path());
    assert_eq!(
        seen.counter("applog_ship_published_records_total/METRICS"),
        100,
        "{seen:?}"
    );
    assert_eq!(
        seen.counter("applog_ship_acknowledged_records_total/METRICS"),
        100,
        "{seen:?}"
    );
    assert_eq!(
        seen.gauge("applog_ship_lag_records/METRICS"),
        Some(0.0),
        "{seen:?}"
    );
}

#[cfg(feature = "ship")]
#[test]
fn a_shipper_that_gives_up_counts_an_error() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"a").unwrap();
    w.sync().unwrap();
    let (rec, snap) = recorder();
    let _local = metrics::set_default_local_recorder(&rec);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Nothing listens on port 1.
    let mut opts = applog::ship::ShipOptions::new(vec!["nats://127.0.0.1:1".into()], "NOWHERE");
    opts.retry_for = Duration::from_millis(200);
    assert!(rt.block_on(applog::ship::ship(d.path(), &opts)).is_err());
    let seen = Seen::take(&snap, d.path());
    assert_eq!(
        seen.counter("applog_ship_errors_total/NOWHERE"),
        1,
        "{seen:?}"
    );
    assert_eq!(
        seen.counter("applog_ship_published_records_total/NOWHERE"),
        0,
        "{seen:?}"
    );
}
