//! Tracing spans: opening (and recovering) a log, rolls, syncs, retention and shipping
//! batches each run in a span named `applog.*` that carries the log directory and the seqs
//! concerned. A small capturing subscriber records every span with its fields; the library
//! installs no subscriber of its own.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use applog::{Options, Writer};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A span as captured: its name and fields (values as text), and its parent's name.
#[derive(Clone, Debug)]
struct Captured {
    name: &'static str,
    parent: Option<&'static str>,
    fields: BTreeMap<&'static str, String>,
}

impl Captured {
    fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or_else(
            || panic!("span {} has no field {name}: {self:?}", self.name),
            String::as_str,
        )
    }
}

struct Fields<'a>(&'a mut BTreeMap<&'static str, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name(), value.to_owned());
    }
}

/// Captures every span: the fields it was created with and those recorded later.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<Captured>>>,
    ids: Arc<Mutex<BTreeMap<u64, usize>>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = ctx
            .span(id)
            .and_then(|s| s.parent())
            .map(|p| p.metadata().name());
        let mut spans = self.spans.lock().unwrap();
        spans.push(Captured {
            name: attrs.metadata().name(),
            parent,
            fields,
        });
        self.ids
            .lock()
            .unwrap()
            .insert(id.into_u64(), spans.len() - 1);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(&i) = self.ids.lock().unwrap().get(&id.into_u64()) {
            values.record(&mut Fields(&mut self.spans.lock().unwrap()[i].fields));
        }
    }
}

impl Capture {
    /// Runs `f` with this capture as the thread's subscriber.
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let subscriber = tracing_subscriber::registry().with(self.clone());
        tracing::subscriber::with_default(subscriber, f)
    }

    /// The spans named `name`, in order of creation.
    fn named(&self, name: &str) -> Vec<Captured> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }
}

fn dir_text(dir: &Path) -> String {
    dir.display().to_string()
}

#[test]
fn open_recovery_sync_and_roll_run_in_spans_with_the_directory_and_seqs() {
    let d = tempfile::tempdir().unwrap();
    let dir = dir_text(d.path());
    let capture = Capture::default();
    capture.run(|| {
        let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
        w.append_batch(&[&b"a"[..], b"b", b"c"]).unwrap();
        w.sync().unwrap();
        // Records of half a segment each: the second rolls.
        let big = vec![0u8; w.max_record_len() as usize / 2 + 8];
        w.append(&big).unwrap();
        w.append(&big).unwrap();
        w.close().unwrap();
        // Reopen: recovery of a log with records.
        drop(Writer::open(d.path(), Options::new()).unwrap());
    });

    let opens = capture.named("applog.open");
    assert_eq!(opens.len(), 2, "{opens:?}");
    assert_eq!(opens[0].field("dir"), dir);
    assert_eq!(
        (opens[0].field("segments"), opens[0].field("next_seq")),
        ("0", "0")
    );
    assert_eq!(
        (
            opens[1].field("segments"),
            opens[1].field("first_seq"),
            opens[1].field("next_seq")
        ),
        ("2", "0", "5")
    );

    let recoveries = capture.named("applog.recover");
    assert_eq!(recoveries.len(), 2, "{recoveries:?}");
    assert_eq!(recoveries[1].parent, Some("applog.open"));
    assert_eq!(recoveries[1].field("dir"), dir);
    assert_eq!(
        (
            recoveries[1].field("first_seq"),
            recoveries[1].field("next_seq")
        ),
        ("0", "5")
    );

    let syncs = capture.named("applog.sync");
    assert_eq!(syncs.len(), 2, "{syncs:?}"); // sync(), close()
    assert_eq!(syncs[0].field("dir"), dir);
    assert_eq!(
        (syncs[0].field("from_seq"), syncs[0].field("next_seq")),
        ("0", "3")
    );
    assert_eq!(
        (syncs[1].field("from_seq"), syncs[1].field("next_seq")),
        ("3", "5")
    );
    assert_eq!(syncs[1].field("sealed_segments"), "1");

    let rolls = capture.named("applog.roll");
    assert_eq!(rolls.len(), 1, "{rolls:?}");
    assert_eq!(rolls[0].field("dir"), dir);
    assert_eq!(
        (
            rolls[0].field("sealed_base_seq"),
            rolls[0].field("next_seq")
        ),
        ("0", "4")
    );
}

#[test]
fn retention_runs_in_a_span_with_what_it_removed() {
    let d = tempfile::tempdir().unwrap();
    let capture = Capture::default();
    let first = capture.run(|| {
        let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
        let big = vec![0u8; w.max_record_len() as usize / 2 + 8];
        for _ in 0..4 {
            w.append(&big).unwrap(); // one per segment
        }
        w.truncate_front(3).unwrap()
    });
    assert_eq!(first, 3);
    let passes = capture.named("applog.retention");
    assert_eq!(passes.len(), 1, "{passes:?}");
    let p = &passes[0];
    assert_eq!(p.field("dir"), dir_text(d.path()));
    assert_eq!(p.field("target"), "3");
    assert_eq!(p.field("dry_run"), "false");
    assert_eq!(
        (
            p.field("removed_segments"),
            p.field("removed_records"),
            p.field("first_seq")
        ),
        ("3", "3", "3")
    );
}

#[cfg(feature = "ship")]
#[test]
fn shipping_publishes_in_batch_spans_with_the_seq_range() {
    let Some(nats) = common::nats::Nats::single() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    for i in 0..50u32 {
        w.append(&i.to_le_bytes()).unwrap();
    }
    w.sync().unwrap();
    let capture = Capture::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut opts = applog::ship::ShipOptions::new(vec![nats.urls()], "SPANS");
    opts.in_flight = 20;
    let report = capture.run(|| rt.block_on(applog::ship::ship(d.path(), &opts)).unwrap());
    assert_eq!(report.next_seq, 50);
    let batches = capture.named("applog.ship_batch");
    assert!(!batches.is_empty());
    // The batches cover 0..50 without a gap or an overlap, none more than the window.
    let mut next = 0u64;
    for b in &batches {
        assert_eq!(b.field("dir"), dir_text(d.path()));
        assert_eq!(b.field("stream"), "SPANS");
        let (first, end): (u64, u64) = (
            b.field("first_seq").parse().unwrap(),
            b.field("end_seq").parse().unwrap(),
        );
        assert_eq!(first, next, "{batches:?}");
        assert!(end > first && end - first <= 20, "{batches:?}");
        next = end;
    }
    assert_eq!(next, 50);
}

#[test]
fn the_library_installs_no_subscriber() {
    // Events and spans from the library go nowhere unless the application installs a
    // subscriber: none is set globally by opening, appending or syncing.
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"a").unwrap();
    w.sync().unwrap();
    assert!(tracing::dispatcher::get_default(|d| {
        d.is::<tracing::subscriber::NoSubscriber>()
    }));
}
