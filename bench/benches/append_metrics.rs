//! `metrics/128B/*`: what the `metrics` feature costs an unsynced 128 B append (see
//! `docs/metrics.md`). Part of the `append` bench.
//!
//! - `applog`: a writer opened with no recorder installed. Built without the bench's
//!   `metrics` feature (the library's feature off), this is the append path with no metrics
//!   code at all; with it, the handles a writer registers with no recorder are no-ops.
//! - `applog_recorder` (only with the bench's `metrics` feature): a writer opened after a
//!   recorder is installed whose counters are shared atomics, as `metrics-exporter-prometheus`
//!   keeps them: each append pays two `fetch_add`s through the writer's handles.
//!
//! What a user pays is `applog_recorder` (feature on, exporter installed) against `applog`
//! built without the feature:
//!
//! ```text
//! cargo bench -p applog-bench --bench append -- metrics/                      # feature off
//! cargo bench -p applog-bench --bench append --features metrics -- metrics/   # feature on
//! ```
//!
//! Criterion runs `applog` before it installs the recorder (a recorder is global and cannot
//! be taken back), so in a run with the feature both variants appear side by side.

use criterion::{Criterion, Throughput};

use crate::{payload, time_appends, ApplogLog};
use applog::Options;

pub fn metrics_benches(c: &mut Criterion) {
    let data = payload(128);
    let mut group = c.benchmark_group("metrics/128B");
    group.throughput(Throughput::Elements(1));
    let mut log: Option<ApplogLog> = None;
    group.bench_function("applog", |b| {
        let log = log.get_or_insert_with(|| ApplogLog::new(Options::default()));
        b.iter_custom(|iters| time_appends(log, &data, iters));
    });
    drop(log);
    #[cfg(feature = "metrics")]
    {
        recorder::install();
        let mut log: Option<ApplogLog> = None;
        group.bench_function("applog_recorder", |b| {
            let log = log.get_or_insert_with(|| ApplogLog::new(Options::default()));
            b.iter_custom(|iters| time_appends(log, &data, iters));
        });
        drop(log);
    }
    group.finish();
}

/// A recorder whose counters and gauges are shared atomics (what the Prometheus exporter's
/// registry keeps) and whose histograms count their samples.
#[cfg(feature = "metrics")]
mod recorder {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use metrics::{
        Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString,
        Unit,
    };

    struct Samples(AtomicU64);

    impl HistogramFn for Samples {
        fn record(&self, _value: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    struct Atomics;

    impl Recorder for Atomics {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(Arc::new(AtomicU64::new(0)))
        }

        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(Arc::new(AtomicU64::new(0)))
        }

        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Samples(AtomicU64::new(0))))
        }
    }

    pub fn install() {
        // Installed once per process; a second bench run in it keeps the first.
        let _ = metrics::set_global_recorder(Atomics);
    }
}
