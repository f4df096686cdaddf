//! Options for opening a writer.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::{HEADER_LEN, MAX_RESERVATION};
use crate::io::FileSystem;

/// Pages per segment of a new log, unless [`Options::segment_pages`] says otherwise.
pub(crate) const DEFAULT_SEGMENT_PAGES: u32 = 1000;

/// When the writer makes appended records durable on its own.
///
/// # Example
/// ```
/// use applog::{Options, SharedWriter, SyncPolicy, Writer};
/// use std::time::Duration;
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// // Always: every append returns only once it is durable.
/// let mut log = Writer::open(dir.path(), Options::new().sync(SyncPolicy::Always))?;
/// log.append(b"paid")?;
/// assert_eq!(applog::durable_seq(dir.path())?, 1);
/// drop(log);
///
/// // Interval needs a thread of its own: a SharedWriter has one, a Writer refuses it.
/// let every = Options::new().sync(SyncPolicy::Interval(Duration::from_millis(10)));
/// let err = Writer::open(dir.path(), every.clone()).unwrap_err();
/// assert!(matches!(err, applog::Error::InvalidOptions(_)));
/// let shared = SharedWriter::open(dir.path(), every)?;
/// let seq = shared.append(b"later")?; // durable within about 10 ms, without a call:
/// while shared.durable_seq() <= seq {
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Only when [`Writer::sync`](crate::Writer::sync) is called. Default.
    #[default]
    Manual,
    /// After every `append` and every `append_batch` (one msync per call). With a
    /// [`SharedWriter`](crate::SharedWriter), every append waits until it is durable, and
    /// concurrent appends share msync calls (group commit).
    Always,
    /// Whenever at least this many bytes of frames were appended since the last sync.
    EveryBytes(u64),
    /// A background thread checkpoints every so often (when anything was appended since the
    /// last sync), so a power cut loses at most about this much time of appends. Only for a
    /// [`SharedWriter`](crate::SharedWriter), which owns the thread: it stops when the last
    /// handle is dropped, and a failed checkpoint poisons the writer like any failed sync.
    /// [`Writer::open`](crate::Writer::open) rejects it with [`Error::InvalidOptions`]: a
    /// `Writer` is `&mut`, so no other thread can sync it.
    Interval(std::time::Duration),
}

/// Options for [`Writer::open`](crate::Writer::open) (and
/// [`SharedWriter::open`](crate::SharedWriter::open)): a builder, each method taking and
/// returning the options.
///
/// # Example
/// ```
/// use applog::{Options, Retention, SyncPolicy, Writer};
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let opts = Options::new()
///     .segment_pages(256) // pages per segment file: 1 MiB with 4 KiB pages
///     .sync(SyncPolicy::EveryBytes(64 << 10)) // a checkpoint every 64 KiB appended
///     .grow_pages(16) // grow files 16 pages at a time
///     .retention(Retention::new().max_bytes(64 << 20)); // keep about 64 MiB
/// let log = Writer::open(dir.path(), opts)?;
/// assert_eq!(log.segment_pages(), 256);
/// drop(log);
///
/// // The segment size belongs to the log: later writers keep it unless told otherwise.
/// assert_eq!(Writer::open(dir.path(), Options::default())?.segment_pages(), 256);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub(crate) segment_pages: Option<u32>,
    pub(crate) sync: SyncPolicy,
    pub(crate) grow_pages: u32,
    pub(crate) retention: Option<crate::Retention>,
    pub(crate) slow_sync: Duration,
    pub(crate) fs: Fs,
    pub(crate) record_time: crate::RecordTime,
    /// Pages of lead for the pretoucher; `None`: the automatic choice.
    pub(crate) pretouch: Option<u32>,
}

/// A flush slower than this is logged (see [`Options::slow_sync`]).
pub(crate) const DEFAULT_SLOW_SYNC: Duration = Duration::from_secs(1);

/// The I/O seam a writer uses (see `crate::io`); equal when it is the same instance.
#[derive(Clone, Debug)]
pub(crate) struct Fs(pub(crate) Arc<dyn FileSystem>);

impl PartialEq for Fs {
    fn eq(&self, other: &Fs) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Fs {}

impl Fs {
    /// Whether this is the real file system (not one substituted for tests).
    pub(crate) fn is_real(&self) -> bool {
        Arc::ptr_eq(&self.0, &crate::io::real())
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_pages: None,
            sync: SyncPolicy::Manual,
            grow_pages: 1,
            retention: None,
            slow_sync: DEFAULT_SLOW_SYNC,
            fs: Fs(crate::io::real()),
            record_time: crate::RecordTime::Precise,
            pretouch: None,
        }
    }
}

impl Options {
    /// The defaults: 1000-page segments, [`SyncPolicy::Manual`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Reservation of each new segment, in pages of the system's page size. The writer maps
    /// this much address space per segment and grows the file into it a page at a time; a
    /// record must fit in one segment (reservation minus 72 bytes of headers). At most 2 GiB
    /// in all.
    ///
    /// The segment size is a property of the log, set when it is created and read back from
    /// its newest segment at every open. Left unset, a writer keeps the log's size. Set to a
    /// different value, it changes the log's segment size on purpose, from the next segment
    /// on (logged at `info`); existing segments keep the size they were created with.
    ///
    /// Default: the log's own segment size; 1000 for a new log.
    pub fn segment_pages(mut self, pages: u32) -> Self {
        self.segment_pages = Some(pages);
        self
    }

    /// When to make records durable without an explicit `sync`.
    ///
    /// Default: [`SyncPolicy::Manual`].
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// How many pages a segment file grows by when a write needs room. With 1, the file is
    /// always exactly the smallest page multiple that holds the data: it grows one page at a
    /// time (more when one record needs more), just before the write that needs the page.
    /// With `n > 1`, each growth step adds `n - 1` pages beyond what the write needs (capped by
    /// the reservation), which makes fewer, cheaper growth steps: on the machines we measured,
    /// growing a file and faulting in its new last page costs several microseconds per step,
    /// the largest cost of appending small records (see the README's Performance section).
    /// The extra pages are zeros, reserved on disk, and never read as records.
    ///
    /// Default: 1.
    pub fn grow_pages(mut self, pages: u32) -> Self {
        self.grow_pages = pages;
        self
    }

    /// Where the time each record is stamped with comes from (see
    /// [`RecordTime`](crate::RecordTime)): the precise wall clock, the kernel's coarse one
    /// (1-4 ms resolution, cheaper to read), or no time at all. Reading the precise clock is
    /// a noticeable part of an unsynced small append (tens of nanoseconds of a few hundred).
    ///
    /// Default: [`RecordTime::Precise`](crate::RecordTime::Precise).
    pub fn record_time(mut self, source: crate::RecordTime) -> Self {
        self.record_time = source;
        self
    }

    /// Keeps the active segment's file grown, and its new pages faulted in, up to `pages`
    /// pages ahead of the data, from a thread of the writer's own (`applog-pretouch`); 0
    /// turns it off. Growing a file and faulting in its new page costs the writer a few
    /// microseconds per page, the largest part of appending small records; with a pretoucher
    /// the writer usually finds that work done.
    ///
    /// The growth rule holds as without it: the file grows one page at a time, blocks
    /// reserved first (a full disk is an `Err` from `append`, never a SIGBUS), and never more
    /// than `pages` pages past the data (they are zeros, which recovery takes for the clean
    /// end they are); the writer grows the file itself when it outruns the thread. Segments
    /// written with `pwrite` (btrfs, see the guide) are not pretouched. It pays on tmpfs,
    /// where a second core takes the page work off the writer; on a disk file system the
    /// kernel's work per page is the floor, and a pretoucher mostly moves it to another core
    /// (see the guide's performance notes).
    ///
    /// Default: [`pretouch_auto`](Self::pretouch_auto).
    pub fn pretouch(mut self, pages: u32) -> Self {
        self.pretouch = Some(pages);
        self
    }

    /// The automatic pretouch choice (see [`pretouch`](Self::pretouch)), made when the writer
    /// opens the log: 32 pages on tmpfs, off elsewhere. The environment variable
    /// `APPLOG_PRETOUCH=<pages>` overrides it (0: off), for trying a lead, or turning it off,
    /// without changing the program. Default.
    pub fn pretouch_auto(mut self) -> Self {
        self.pretouch = None;
        self
    }

    /// Routes every system call that changes durable state through `fs` instead of the real
    /// file system: for fault-injection and crash tests (see `applog::internals::FaultFs`).
    #[cfg(feature = "fault-injection")]
    #[must_use]
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = Fs(fs);
        self
    }

    /// A retention policy the writer applies each time it rolls to a new segment (see
    /// [`Retention`](crate::Retention)): the oldest segments go once the log is over its
    /// limits and every consumer has committed their records (or was parked).
    pub fn retention(mut self, policy: crate::Retention) -> Self {
        self.retention = Some(policy);
        self
    }

    /// How long one sync's flush (its msync calls and directory fsync) may take before the
    /// writer reports it as slow: a `tracing::warn!` event with the duration, the bytes
    /// appended since the previous sync and the segment file, counted by
    /// [`Writer::slow_syncs`](crate::Writer::slow_syncs) (and, with the `metrics` feature,
    /// `applog_slow_syncs_total`). A flush that slow means the device, or the writeback queue
    /// in front of it, is overloaded: every durable append waits that long. A failed flush
    /// counts too when it was slow. `Duration::MAX` turns the warning off.
    ///
    /// Default: 1 second (etcd warns at the same point for its WAL fsync).
    pub fn slow_sync(mut self, limit: Duration) -> Self {
        self.slow_sync = limit;
        self
    }

    pub(crate) fn validate(&self, page_size: u64) -> Result<()> {
        if self.sync == SyncPolicy::Interval(std::time::Duration::ZERO) {
            return Err(Error::InvalidOptions(
                "SyncPolicy::Interval needs a non-zero duration".into(),
            ));
        }
        self.validate_pages(
            self.segment_pages.unwrap_or(DEFAULT_SEGMENT_PAGES),
            page_size,
        )
    }

    /// Checks a segment size in pages.
    pub(crate) fn validate_pages(&self, pages: u32, page_size: u64) -> Result<()> {
        let reservation = page_size * u64::from(pages);
        if self.grow_pages == 0 {
            return Err(Error::InvalidOptions(
                "grow_pages must be at least 1".into(),
            ));
        }
        if pages == 0 {
            return Err(Error::InvalidOptions(
                "segment_pages must be at least 1".into(),
            ));
        }
        if reservation > MAX_RESERVATION {
            return Err(Error::InvalidOptions(format!(
                "segment_pages {pages} x page size {page_size} exceeds the 2 GiB segment limit"
            )));
        }
        if reservation <= HEADER_LEN + 8 {
            return Err(Error::InvalidOptions("segment too small".into()));
        }
        Ok(())
    }
}
