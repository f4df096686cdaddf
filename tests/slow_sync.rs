//! Slow syncs: a checkpoint whose flush takes longer than `Options::slow_sync` is reported.
//!
//! Fault model: the device is slow, not failing: every msync through the I/O seam sleeps
//! before it runs (a file system that delegates to the real one). Pass criteria: a flush
//! slower than the limit emits a `WARN` event naming the segment file, the bytes and the
//! duration, and moves `slow_syncs()` by one per slow flush (for a `Writer` and for a
//! `SharedWriter`, whose flush runs without the lock); a flush under the limit does neither;
//! the synced records are durable as usual.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use applog::internals::{FileSystem, Msync, RealFs};
use applog::{Options, SharedWriter, Writer};

/// The real file system, whose msync sleeps first for as many milliseconds as `delay_ms` says.
#[derive(Debug, Default)]
struct SlowFs {
    delay_ms: AtomicU64,
}

impl SlowFs {
    fn set_delay(&self, d: Duration) {
        self.delay_ms
            .store(d.as_millis().try_into().unwrap(), Ordering::SeqCst);
    }
}

impl FileSystem for SlowFs {
    fn create_new(&self, path: &Path) -> io::Result<File> {
        RealFs.create_new(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        RealFs.create_dir(path)
    }
    fn allocate(
        &self,
        file: &File,
        path: &Path,
        offset: u64,
        len: u64,
        keep_size: bool,
    ) -> io::Result<()> {
        RealFs.allocate(file, path, offset, len, keep_size)
    }
    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        RealFs.set_len(file, path, len)
    }
    fn write_at(&self, file: &File, path: &Path, bytes: &[u8], offset: u64) -> io::Result<()> {
        RealFs.write_at(file, path, bytes, offset)
    }
    fn msync(&self, range: &Msync<'_>) -> io::Result<()> {
        std::thread::sleep(Duration::from_millis(self.delay_ms.load(Ordering::SeqCst)));
        RealFs.msync(range)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        RealFs.sync_dir(dir)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealFs.remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealFs.rename(from, to)
    }
    fn try_lock(&self, file: &File, path: &Path) -> io::Result<()> {
        RealFs.try_lock(file, path)
    }
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
    let fs = Arc::new(SlowFs::default());
    let opts = Options::new().file_system(fs.clone()).slow_sync(LIMIT);
    let out = Captured::default();
    tracing::subscriber::with_default(out.subscriber(), || {
        let mut w = Writer::open(d.path(), opts).unwrap();
        w.append(b"fast").unwrap();
        w.sync().unwrap();
        assert_eq!(w.slow_syncs(), 0);
        assert!(!out.text().contains("slow sync"), "{}", out.text());

        fs.set_delay(LIMIT * 3);
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
    // The frame of a 100-byte record: 8 bytes of header, the payload, padding to 8.
    assert!(text.contains("bytes=112"), "{text}");
    assert!(text.contains("limit_ms=20"), "{text}");
    assert!(text.contains("elapsed_ms="), "{text}");
}

#[test]
fn a_shared_writer_counts_its_slow_flushes() {
    let d = tempfile::tempdir().unwrap();
    let fs = Arc::new(SlowFs::default());
    let opts = Options::new().file_system(fs.clone()).slow_sync(LIMIT);
    let out = Captured::default();
    tracing::subscriber::with_default(out.subscriber(), || {
        let log = SharedWriter::open(d.path(), opts).unwrap();
        log.append_durable(b"fast").unwrap();
        assert_eq!(log.slow_syncs(), 0);
        fs.set_delay(LIMIT * 3);
        log.append_durable(b"slow").unwrap();
        log.append_durable(b"slow again").unwrap();
        assert_eq!(log.slow_syncs(), 2);
        fs.set_delay(Duration::ZERO);
        log.close().unwrap();
    });
    assert_eq!(out.text().matches("slow sync").count(), 2, "{}", out.text());
}

#[test]
fn the_default_limit_is_one_second() {
    let d = tempfile::tempdir().unwrap();
    let fs = Arc::new(SlowFs::default());
    fs.set_delay(LIMIT * 3);
    let mut w = Writer::open(d.path(), Options::new().file_system(fs)).unwrap();
    w.append(b"a").unwrap();
    w.sync().unwrap();
    assert_eq!(w.slow_syncs(), 0);
}
