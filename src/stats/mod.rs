//! Live figures of a log for operators and other processes: the writer keeps them in a small
//! shared-memory file of the log directory ([`STATS_FILE`], layout in `file.rs` and
//! `docs/metrics.md`), and [`stats`] reads them, with what the segments say, without the lock.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

pub(crate) mod file;
mod live;

pub(crate) use live::Live;

/// The file in a log directory where the writer keeps its live figures (see [`stats`]).
pub const STATS_FILE: &str = "applog.stats";

/// Now, in Unix nanoseconds, from the coarse real-time clock (no system call; resolution a
/// few milliseconds, plenty for "when the figures were written").
pub(crate) fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// What became of the writer that wrote a stats file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriterState {
    /// It has the log open, or it died without letting go (a crash, `kill -9`): see
    /// [`Stats::writer_live`].
    Open,
    /// It let go of the log with every record it appended durable (`close`, or dropped after
    /// a sync that covered everything).
    Closed,
    /// It let go of the log with records not known to be durable (dropped without a sync,
    /// or after a failed one).
    Released,
}

impl WriterState {
    /// `open`, `closed` or `released`.
    pub fn as_str(&self) -> &'static str {
        match self {
            WriterState::Open => "open",
            WriterState::Closed => "closed",
            WriterState::Released => "released",
        }
    }
}

/// The figures a writer keeps in the log's stats file: counts since it opened the log, and
/// where the log stands. They are published at every sync, at every roll to a new segment,
/// every 256 records appended, and when the writer lets go: between those, the records and
/// bytes can lag by up to 255 records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterStats {
    /// The writer's process id.
    pub pid: u32,
    /// When it opened the log.
    pub started: SystemTime,
    /// Whether it still has the log open.
    pub state: WriterState,
    /// Records appended since it opened the log.
    pub records: u64,
    /// Payload bytes of those records (frame headers and padding not counted).
    pub bytes: u64,
    /// The seq its next record gets.
    pub next_seq: u64,
    /// Every record below this seq is durable (as of its last successful sync).
    pub durable_seq: u64,
    /// Successful syncs that flushed something.
    pub syncs: u64,
    /// Syncs slower than `Options::slow_sync`.
    pub slow_syncs: u64,
    /// How long the last successful sync's flush took.
    pub last_sync: Duration,
    /// When these figures were written (to a few milliseconds).
    pub updated: SystemTime,
}

impl WriterStats {
    fn of(s: &file::Snapshot) -> WriterStats {
        WriterStats {
            pid: u32::try_from(s.pid).unwrap_or(u32::MAX),
            started: time(s.started_ns),
            state: match s.state {
                file::STATE_CLOSED => WriterState::Closed,
                file::STATE_RELEASED => WriterState::Released,
                _ => WriterState::Open,
            },
            records: s.figures.records,
            bytes: s.figures.bytes,
            next_seq: s.figures.next_seq,
            durable_seq: s.figures.durable_seq,
            syncs: s.figures.syncs,
            slow_syncs: s.figures.slow_syncs,
            last_sync: Duration::from_nanos(s.figures.last_sync_ns),
            updated: time(s.figures.updated_ns),
        }
    }
}

/// What the log's stats file holds.
#[derive(Debug)]
#[non_exhaustive]
pub enum WriterFigures {
    /// There is none: no writer of this version has opened the log (or it could not create
    /// the file, and said so in a warning).
    Missing,
    /// The figures of the last writer that opened the log.
    Valid(WriterStats),
    /// The file is damaged or not an applog stats file ([`Error::StatsCorrupt`], naming the
    /// file and the byte offset), or could not be read ([`Error::Io`]). Nothing of it is
    /// used; the next writer to open the log replaces it.
    Unreadable(Error),
}

/// A log's figures, as any process that may read the log learns them (see [`stats`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Stats {
    /// Segment files.
    pub segments: usize,
    /// Size of the segment files, in bytes.
    pub bytes: u64,
    /// The seq of the oldest record.
    pub first_seq: u64,
    /// The seq the next record gets: the end of the log as its segments say now.
    pub next_seq: u64,
    /// Every record below this seq is durable, as the synced marks in the segment headers say
    /// (see [`durable_seq`](crate::durable_seq)).
    pub durable_seq: u64,
    /// Whether a writer (or `recover`) holds the log's lock now (see
    /// [`is_locked`](crate::is_locked)).
    pub locked: bool,
    /// Free space on the log's file system for unprivileged users, in bytes (`None` when
    /// `statvfs` failed).
    pub free_bytes: Option<u64>,
    /// What the writer's stats file says.
    pub writer: WriterFigures,
}

impl Stats {
    /// Records in the log.
    pub fn records(&self) -> u64 {
        self.next_seq.saturating_sub(self.first_seq)
    }

    /// Records appended but not yet durable.
    pub fn durable_lag(&self) -> u64 {
        self.next_seq.saturating_sub(self.durable_seq)
    }

    /// The figures of the writer, when its stats file is valid.
    pub fn writer_stats(&self) -> Option<&WriterStats> {
        match &self.writer {
            WriterFigures::Valid(w) => Some(w),
            _ => None,
        }
    }

    /// Whether the writer that wrote the stats file runs now: the log is locked, the file
    /// says the writer has it open, and (where `/proc` is mounted) its process exists. A
    /// writer that died leaves the state open but no lock.
    pub fn writer_live(&self) -> bool {
        match self.writer_stats() {
            Some(w) if self.locked && w.state == WriterState::Open => {
                let proc = Path::new("/proc");
                !proc.join("self").exists() || proc.join(w.pid.to_string()).exists()
            }
            _ => false,
        }
    }
}

/// The live figures of the log in `dir`: from its segments (records, bytes, first, next and
/// durable seq), its lock, the free space of its file system, and the stats file its writer
/// keeps ([`STATS_FILE`]). It takes no lock and writes nothing, so any process that may read
/// the log can call it while the writer runs, or when none does.
///
/// Reading the end of the log costs a read of its newest segment (and of the newest synced
/// part, for the durable seq): call it every second or so, not per record.
///
/// # Errors
/// As [`Reader::open`](crate::Reader::open): [`Error::Io`] (`NotFound`) when `dir` does not
/// exist, [`Error::NotALog`], [`Error::Corrupt`]. A damaged stats file is not an error of
/// this call: it is [`WriterFigures::Unreadable`].
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut log = applog::Writer::open(dir.path(), applog::Options::default())?;
/// log.append(b"a")?;
/// log.append(b"b")?;
/// log.sync()?; // the writer publishes its figures at each sync
///
/// let stats = applog::stats(dir.path())?;
/// assert_eq!((stats.records(), stats.durable_lag()), (2, 0));
/// assert!(stats.writer_live());
/// let writer = stats.writer_stats().unwrap();
/// assert_eq!((writer.records, writer.bytes, writer.syncs), (2, 2, 1));
/// assert_eq!(writer.pid, std::process::id());
/// # Ok(()) }
/// ```
pub fn stats(dir: impl AsRef<Path>) -> Result<Stats> {
    let dir = dir.as_ref();
    let end = crate::consumer::end_for(dir, None)?;
    let durable_seq = crate::durable_seq(dir)?.clamp(end.first_seq, end.next_seq);
    let locked = crate::is_locked(dir)?;
    let free_bytes = rustix::fs::statvfs(dir)
        .ok()
        .map(|st| st.f_bavail.saturating_mul(st.f_frsize));
    let writer = writer_figures(dir);
    Ok(Stats {
        segments: end.sizes.len(),
        bytes: end.sizes.iter().map(|(_, s)| s).sum(),
        first_seq: end.first_seq,
        next_seq: end.next_seq,
        durable_seq,
        locked,
        free_bytes,
        writer,
    })
}

/// Reads the stats file of the log in `dir`.
fn writer_figures(dir: &Path) -> WriterFigures {
    let path = dir.join(STATS_FILE);
    match file::read(&path) {
        Ok(s) => WriterFigures::Valid(WriterStats::of(&s)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            WriterFigures::Missing
        }
        Err(e) => WriterFigures::Unreadable(e),
    }
}
