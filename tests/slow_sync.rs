//! Slow syncs: a checkpoint whose flush takes longer than `Options::slow_sync` is reported.
//!
//! Fault model: the device is slow, not failing: every msync through the I/O seam sleeps
//! before it runs (`FaultFs` with a `Fault::Delay`). Pass criteria: a flush
//! slower than the limit emits a `WARN` event naming the segment file, the bytes and the
//! duration, and moves `slow_syncs()` by one per slow flush (for a `Writer` and for a
//! `SharedWriter`, whose flush runs without the lock); a flush under the limit does neither;
//! the synced records are durable as usual.

mod common;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use applog::internals::{Call, Fault, FaultFs};
use applog::{Options, SharedWriter, Writer};

/// A file system whose msync is slow from now on (`Fault::Delay`), or fast again.
fn set_delay(fs: &FaultFs, d: Duration) {
    fs.clear_faults();
    if !d.is_zero() {
        fs.inject_all(Call::Msync, Fault::Delay(d));
    }
}

/// The fault-injecting file system over `dir`, with no fault planned yet.
fn fault_fs(dir: &Path) -> Arc<FaultFs> {
    Arc::new(FaultFs::new(dir).unwrap())
}

/// Collects what a tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    /// A subscriber that writes `WARN` and above into this buffer.
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let sink = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .finish()
    }
}

const LIMIT: Duration = Duration::from_millis(20);

#[test]
fn a_slow_sync_is_logged_and_counted() {
    let d = tempfile::tempdir().unwrap();
    let fs = fault_fs(d.path());
    let opts = Options::new().file_system(fs.clone()).slow_sync(LIMIT);
    let out = Captured::default();
    tracing::subscriber::with_default(out.subscriber(), || {
        let mut w = Writer::open(d.path(), opts).unwrap();
        w.append(b"fast").unwrap();
        w.sync().unwrap();
        assert_eq!(w.slow_syncs(), 0);
        assert!(!out.text().contains("slow sync"), "{}", out.text());

        set_delay(&fs, LIMIT * 3);
        w.append(&[7u8; 100]).unwrap();
        w.sync().unwrap();
        assert_eq!(w.slow_syncs(), 1);
        assert_eq!(applog::durable_seq(d.path()).unwrap(), 2);

        // Nothing appended: no flush, nothing slow.
        w.sync().unwrap();
        assert_eq!(w.slow_syncs(), 1);
    });
    let text = out.text();
    assert_eq!(text.matches("slow sync").count(), 1, "{text}");
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("00000000000000000000.seg"), "{text}");
    // The frame of a 100-byte record: 16 bytes of header and time, the payload, padding to 8.
    assert!(text.contains("bytes=120"), "{text}");
    assert!(text.contains("limit_ms=20"), "{text}");
    assert!(text.contains("elapsed_ms="), "{text}");
}

#[test]
fn a_shared_writer_counts_its_slow_flushes() {
    let d = tempfile::tempdir().unwrap();
    let fs = fault_fs(d.path());
    let opts = Options::new().file_system(fs.clone()).slow_sync(LIMIT);
    let out = Captured::default();
    tracing::subscriber::with_default(out.subscriber(), || {
        let log = SharedWriter::open(d.path(), opts).unwrap();
        log.append_durable(b"fast").unwrap();
        assert_eq!(log.slow_syncs(), 0);
        set_delay(&fs, LIMIT * 3);
        log.append_durable(b"slow").unwrap();
        log.append_durable(b"slow again").unwrap();
        assert_eq!(log.slow_syncs(), 2);
        set_delay(&fs, Duration::ZERO);
        log.close().unwrap();
    });
    assert_eq!(out.text().matches("slow sync").count(), 2, "{}", out.text());
}

#[test]
fn the_default_limit_is_one_second() {
    let d = tempfile::tempdir().unwrap();
    let fs = fault_fs(d.path());
    set_delay(&fs, LIMIT * 3);
    let mut w = Writer::open(d.path(), Options::new().file_system(fs)).unwrap();
    w.append(b"a").unwrap();
    w.sync().unwrap();
    assert_eq!(w.slow_syncs(), 0);
}

/// The tool's limit: `--slow-sync 0` reports every sync (each takes some time), naming the
/// segment file; `APPLOG_SLOW_SYNC` sets the same; a value that is not a number of seconds is
/// a usage error, and nothing is appended.
#[test]
fn the_tool_takes_its_slow_sync_limit_from_a_flag_or_the_environment() {
    use common::cli::{applog, run, Run};
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let log = log.to_str().unwrap();

    let out = run(&["append", log, "a", "b", "--slow-sync", "0"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("slow sync"), "{out:?}");
    assert!(out.stderr.contains(common::cli::SEG0), "{out:?}");

    let out: Run = applog()
        .args(["append", log, "c"])
        .env("APPLOG_SLOW_SYNC", "0")
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("slow sync"), "{out:?}");

    // The tests' own default (an hour) keeps it quiet.
    run(&["append", log, "d"]).ok();

    for bad in ["soon", "-1", ""] {
        run(&["append", log, "e", "--slow-sync", bad]).usage_error();
    }
    let mut reader = applog::Reader::open(log).unwrap();
    let mut records = Vec::new();
    while let Some(r) = reader.next().unwrap() {
        records.push(r.data().to_vec());
    }
    assert_eq!(records, [b"a", b"b", b"c", b"d"]);
}
