//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature `metrics`; the
//! table of every metric is in `docs/metrics.md`).
//!
//! The library only records: the application installs a recorder (an exporter) of its own.
//! Handles are registered once, when a writer or tailer opens (with the recorder installed
//! then), and kept: an append then costs two counter increments through its handles, and
//! nothing else. Without the feature every type here is empty and every method an empty
//! inline function, so the append path compiles to what it was.
//!
//! Every metric carries the label `log`, the log directory as the writer or reader was given
//! it: one series per log a process opens, which stays small (a process opens few logs). The
//! consumer gauges add `consumer`, the consumer's name (bounded by the consumers registered).

use std::path::Path;
use std::time::Duration;

#[cfg(feature = "metrics")]
use ::metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

/// The label that names the log.
#[cfg(feature = "metrics")]
fn log_label(dir: &Path) -> String {
    dir.display().to_string()
}

/// The writer's handles, registered when it opens. Used by [`Writer`](crate::Writer) and,
/// through it, by [`SharedWriter`](crate::SharedWriter) (from any of its threads).
#[derive(Default)]
pub(crate) struct WriterMetrics {
    #[cfg(feature = "metrics")]
    handles: Option<Handles>,
    /// The seq below which the last sync made records durable (for records per sync).
    #[cfg(feature = "metrics")]
    synced_seq: u64,
}

#[cfg(feature = "metrics")]
struct Handles {
    records: Counter,
    bytes: Counter,
    batch: Histogram,
    syncs: Counter,
    sync_errors: Counter,
    sync_seconds: Histogram,
    sync_records: Histogram,
    slow_syncs: Counter,
    durable_seq: Gauge,
    flush_waiters: Histogram,
    segments_created: Counter,
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
impl WriterMetrics {
    /// Registers the writer's handles for the log in `dir`, whose next record is `next_seq`.
    pub(crate) fn new(dir: &Path, next_seq: u64) -> WriterMetrics {
        #[cfg(feature = "metrics")]
        {
            let log = log_label(dir);
            let l = [("log", log)];
            WriterMetrics {
                handles: Some(Handles {
                    records: counter!("applog_appended_records_total", &l),
                    bytes: counter!("applog_appended_bytes_total", &l),
                    batch: histogram!("applog_batch_records", &l),
                    syncs: counter!("applog_syncs_total", &l),
                    sync_errors: counter!("applog_sync_errors_total", &l),
                    sync_seconds: histogram!("applog_sync_duration_seconds", &l),
                    sync_records: histogram!("applog_sync_records", &l),
                    slow_syncs: counter!("applog_slow_syncs_total", &l),
                    durable_seq: gauge!("applog_durable_seq", &l),
                    flush_waiters: histogram!("applog_group_commit_waiters", &l),
                    segments_created: counter!("applog_segments_created_total", &l),
                }),
                synced_seq: next_seq,
            }
        }
        #[cfg(not(feature = "metrics"))]
        WriterMetrics {}
    }

    /// `records` records of `bytes` payload bytes in all were appended.
    #[inline]
    pub(crate) fn appended(&self, records: u64, bytes: u64) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.records.increment(records);
            h.bytes.increment(bytes);
        }
    }

    /// An `append_batch` of `records` records.
    #[inline]
    pub(crate) fn batch(&self, records: usize) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            #[allow(clippy::cast_precision_loss)]
            h.batch.record(records as f64);
        }
    }

    /// A sync made every record below `next_seq` durable; its flush took `elapsed`.
    pub(crate) fn synced(&mut self, next_seq: u64, elapsed: Duration) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.syncs.increment(1);
            h.sync_seconds.record(elapsed.as_secs_f64());
            #[allow(clippy::cast_precision_loss)]
            h.sync_records
                .record(next_seq.saturating_sub(self.synced_seq) as f64);
            self.synced_seq = self.synced_seq.max(next_seq);
            #[allow(clippy::cast_precision_loss)]
            h.durable_seq.set(self.synced_seq as f64);
        }
    }

    /// A sync failed (the writer is poisoned).
    pub(crate) fn sync_failed(&self) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.sync_errors.increment(1);
        }
    }

    /// A flush took longer than `Options::slow_sync`.
    pub(crate) fn slow_sync(&self) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.slow_syncs.increment(1);
        }
    }

    /// A group-commit flush of a `SharedWriter` ended with `waiters` threads waiting for it.
    pub(crate) fn flush_waiters(&self, waiters: u64) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            #[allow(clippy::cast_precision_loss)]
            h.flush_waiters.record(waiters as f64);
        }
    }

    /// The writer created a segment file.
    pub(crate) fn segment_created(&self) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.segments_created.increment(1);
        }
    }
}

/// Recovery at a writer's open took `elapsed` and cut `cut_bytes` of a torn tail (`None`
/// when it found none).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn recovered(dir: &Path, elapsed: Duration, cut_bytes: Option<u64>) {
    #[cfg(feature = "metrics")]
    {
        let l = [("log", log_label(dir))];
        histogram!("applog_recovery_duration_seconds", &l).record(elapsed.as_secs_f64());
        if let Some(bytes) = cut_bytes {
            counter!("applog_recovery_torn_tails_total", &l).increment(1);
            counter!("applog_recovery_cut_bytes_total", &l).increment(bytes);
        }
    }
}

/// A retention pass (a writer's, `truncate_front`, or `trim`) ran and removed `segments`
/// files holding `records` records and `bytes` bytes.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn retention_ran(dir: &Path, segments: u64, records: u64, bytes: u64) {
    #[cfg(feature = "metrics")]
    {
        let l = [("log", log_label(dir))];
        counter!("applog_retention_runs_total", &l).increment(1);
        counter!("applog_segments_removed_total", &l).increment(segments);
        counter!("applog_retention_removed_records_total", &l).increment(records);
        counter!("applog_retention_removed_bytes_total", &l).increment(bytes);
    }
}

/// The lag of consumer `name` of the log in `dir` (records, and bytes when known), where the
/// library learns it without extra work: when the consumer opens, in every retention pass,
/// and in `applog::consumers`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn consumer_lag(dir: &Path, name: &str, records: u64, bytes: Option<u64>) {
    #[cfg(feature = "metrics")]
    {
        let l = [("log", log_label(dir)), ("consumer", name.to_owned())];
        #[allow(clippy::cast_precision_loss)]
        {
            gauge!("applog_consumer_lag_records", &l).set(records as f64);
            if let Some(bytes) = bytes {
                gauge!("applog_consumer_lag_bytes", &l).set(bytes as f64);
            }
        }
    }
}

/// A consumer's handle, registered when it opens.
#[derive(Default)]
pub(crate) struct ConsumerMetrics {
    #[cfg(feature = "metrics")]
    committed: Option<Gauge>,
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
impl ConsumerMetrics {
    /// Registers the committed-position gauge of consumer `name`, now at `committed`.
    pub(crate) fn new(dir: &Path, name: &str, committed: u64) -> ConsumerMetrics {
        #[cfg(feature = "metrics")]
        {
            let l = [("log", log_label(dir)), ("consumer", name.to_owned())];
            let g = gauge!("applog_consumer_committed_seq", &l);
            #[allow(clippy::cast_precision_loss)]
            g.set(committed as f64);
            ConsumerMetrics { committed: Some(g) }
        }
        #[cfg(not(feature = "metrics"))]
        ConsumerMetrics {}
    }

    /// The consumer committed the records below `seq`.
    #[inline]
    pub(crate) fn committed(&self, seq: u64) {
        #[cfg(feature = "metrics")]
        if let Some(g) = &self.committed {
            #[allow(clippy::cast_precision_loss)]
            g.set(seq as f64);
        }
    }
}

/// A tailer's handle, registered when it opens.
#[derive(Debug, Default)]
pub(crate) struct TailerMetrics {
    #[cfg(feature = "metrics")]
    wakeups: Option<Counter>,
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
impl TailerMetrics {
    /// Registers the handle for a tailer of the log in `dir`.
    pub(crate) fn new(dir: &Path) -> TailerMetrics {
        Self::named(dir, "applog_tailer_wakeups_total")
    }

    /// Registers the handle for an async tailer or consumer (`applog::tokio`) of the log in
    /// `dir`.
    #[cfg(feature = "tokio")]
    pub(crate) fn new_async(dir: &Path) -> TailerMetrics {
        Self::named(dir, "applog_async_tailer_wakeups_total")
    }

    fn named(dir: &Path, name: &'static str) -> TailerMetrics {
        #[cfg(feature = "metrics")]
        {
            TailerMetrics {
                wakeups: Some(counter!(name, "log" => log_label(dir))),
            }
        }
        #[cfg(not(feature = "metrics"))]
        TailerMetrics {}
    }

    /// The tailer woke from a sleep on its wake word.
    #[inline]
    pub(crate) fn woke(&self) {
        #[cfg(feature = "metrics")]
        if let Some(c) = &self.wakeups {
            c.increment(1);
        }
    }
}

/// A shipper's handles (`applog::ship`), registered when it starts.
#[cfg(feature = "ship")]
#[derive(Default)]
pub(crate) struct ShipMetrics {
    #[cfg(feature = "metrics")]
    handles: Option<ShipHandles>,
    /// Where the log's durable records end, as last read from the writer's stats file.
    #[cfg(feature = "metrics")]
    durable_end: std::sync::atomic::AtomicU64,
    /// When the stats file was last read (`Instant` since `started`, in ms).
    #[cfg(feature = "metrics")]
    read_at_ms: std::sync::atomic::AtomicU64,
    #[cfg(feature = "metrics")]
    started: Option<std::time::Instant>,
    #[cfg(feature = "metrics")]
    dir: std::path::PathBuf,
}

#[cfg(all(feature = "ship", feature = "metrics"))]
struct ShipHandles {
    published: Counter,
    acknowledged: Counter,
    lag: Gauge,
    retries: Counter,
    errors: Counter,
}

/// How often a shipper reads the log's stats file for its lag.
#[cfg(all(feature = "ship", feature = "metrics"))]
const LAG_READ_EVERY_MS: u64 = 250;

#[cfg(feature = "ship")]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
impl ShipMetrics {
    /// Registers a shipper's handles for the log in `dir` and the stream `stream`.
    pub(crate) fn new(dir: &Path, stream: &str) -> ShipMetrics {
        #[cfg(feature = "metrics")]
        {
            let l = [("log", log_label(dir)), ("stream", stream.to_owned())];
            ShipMetrics {
                handles: Some(ShipHandles {
                    published: counter!("applog_ship_published_records_total", &l),
                    acknowledged: counter!("applog_ship_acknowledged_records_total", &l),
                    lag: gauge!("applog_ship_lag_records", &l),
                    retries: counter!("applog_ship_retries_total", &l),
                    errors: counter!("applog_ship_errors_total", &l),
                }),
                durable_end: std::sync::atomic::AtomicU64::new(0),
                read_at_ms: std::sync::atomic::AtomicU64::new(0),
                started: Some(std::time::Instant::now()),
                dir: dir.to_owned(),
            }
        }
        #[cfg(not(feature = "metrics"))]
        ShipMetrics {}
    }

    /// `records` records were published.
    pub(crate) fn published(&self, records: u64) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.published.increment(records);
        }
    }

    /// The stream acknowledged a record, and the shipper committed every record below
    /// `next_seq`: updates the lag (the log's durable end, from the writer's stats file read
    /// at most every 250 ms, minus `next_seq`).
    pub(crate) fn acknowledged(&self, next_seq: u64) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            use std::sync::atomic::Ordering::Relaxed;
            h.acknowledged.increment(1);
            let now = self.started.map_or(0, |s| {
                u64::try_from(s.elapsed().as_millis()).unwrap_or(u64::MAX)
            });
            let last = self.read_at_ms.load(Relaxed);
            if last == 0 || now >= last + LAG_READ_EVERY_MS {
                self.read_at_ms.store(now.max(1), Relaxed);
                let path = self.dir.join(crate::stats::STATS_FILE);
                if let Ok(s) = crate::stats::file::read(&path) {
                    self.durable_end.fetch_max(s.figures.durable_seq, Relaxed);
                }
            }
            let end = self.durable_end.load(Relaxed).max(next_seq);
            #[allow(clippy::cast_precision_loss)]
            h.lag.set((end - next_seq) as f64);
        }
    }

    /// A failure the shipper retries.
    pub(crate) fn retry(&self) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.retries.increment(1);
        }
    }

    /// The shipper stopped with an error.
    pub(crate) fn failed(&self) {
        #[cfg(feature = "metrics")]
        if let Some(h) = &self.handles {
            h.errors.increment(1);
        }
    }
}
