//! # applog
//!
//! An embedded, append-only log (write-ahead log) that lives in memory-mapped files.
//!
//! - One [`Writer`] per log (an exclusive file lock enforces it) appends CRC-framed records.
//!   Each segment file starts empty; the writer maps a large reservation over it and grows the
//!   file one page at a time, ahead of each write, reserving the blocks first so that a full
//!   disk is an error rather than a SIGBUS. A full segment is sealed and the log rolls to a new
//!   one, so a log has no size limit.
//! - [`Writer::sync`] is the durability checkpoint (msync): once it returns Ok, every record
//!   appended before it survives a crash or a power cut. Opening a writer recovers the log:
//!   a torn tail after the last good record is zeroed in place; damage inside data that had
//!   been synced is reported as [`Error::Corrupt`] and nothing is modified.
//! - Any number of [`Reader`]s, in this or other processes, read the same files lock-free
//!   while the writer appends, and get zero-copy borrows of the records. A [`Tailer`] follows
//!   a live log and waits for new records: by default asleep on a futex in the shared mapping,
//!   which the writer wakes (at no cost to the writer when nobody waits).
//! - A [`SharedWriter`] lets many threads append and wait for durability: concurrent waiters
//!   share msync calls (group commit). [`SyncPolicy::Interval`] adds a background flusher, and
//!   [`Writer::truncate_front`] removes old segments (retention).
//! - [`durable_seq`] tells any reader, in any process, which records are durable; readers and
//!   tailers can be told to yield only those ([`Reader::durable_only`]).
//! - [`stats`] gives any process the live figures of a log (durable lag, the writer's syncs
//!   and counters, whether a writer runs), which the writer keeps in a small shared file
//!   ([`STATS_FILE`]); `applog stats` shows them.
//! - [`Writer::set_meta`] stores a few named values beside the records (a Raft node's vote,
//!   the last log id it purged), durably and crash-atomically, in a small file of the log
//!   ([`META_FILE`]); [`read_meta`] reads them from any process.
//! - With the `tokio` feature, `applog::tokio` is the async face: durability as futures
//!   (`AsyncWriter::durable`), tailing as a `Stream` (`AsyncTailer`) with one waiter thread per
//!   process for every tailer, and an async named consumer (see `docs/async.md`).
//!
//! ```
//! # fn main() -> applog::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let mut writer = applog::Writer::open(dir.path(), applog::Options::default())?;
//! writer.append(b"first")?;
//! writer.append_batch(&[&b"second"[..], &b"third"[..]])?;
//! writer.sync()?;
//!
//! let mut reader = applog::Reader::open(dir.path())?;
//! let mut seen = Vec::new();
//! while let Some(record) = reader.next()? {
//!     seen.push((record.seq(), record.data().to_vec()));
//! }
//! assert_eq!(seen[2], (2, b"third".to_vec()));
//!
//! let report = applog::verify(dir.path())?;
//! assert!(report.is_clean());
//! assert_eq!(report.next_seq, 3);
//! # Ok(()) }
//! ```
//!
//! ## Replaying the log on restart
//!
//! Open the writer first: opening it recovers the log (it cuts what a crash left half
//! written), so the records you then read are the ones the log keeps, and new ones go after
//! them. Then replay with a [`Reader`], from the first record or from a position you stored
//! with your own state ([`Reader::seek`]); or let a named [`Consumer`] keep the position: it
//! resumes after its last [`commit`](Consumer::commit) by itself.
//!
//! ```
//! use applog::{Consumer, Options, Reader, Writer};
//! # fn main() -> applog::Result<()> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let dir = tmp.path();
//! # Writer::open(dir, Options::default())?.append_batch(&[&b"a"[..], b"b", b"c"])?;
//! let mut log = Writer::open(dir, Options::default())?; // recovers what a crash left
//!
//! let mut reader = Reader::open(dir)?;
//! reader.seek(1)?; // the first seq your stored state does not include
//! let mut replayed = Vec::new();
//! while let Some(rec) = reader.next()? {
//!     replayed.push(rec.seq()); // apply rec.data() to your state
//! }
//! assert_eq!(replayed, [1, 2]);
//!
//! let mut projector = Consumer::open(dir, "projector")?; // new: from the first record
//! while let Some(rec) = projector.try_next()? {
//!     assert!(!rec.data().is_empty()); // apply it to your state
//! }
//! projector.commit()?; // the next restart resumes at seq 3
//! log.append(b"d")?;
//! # assert_eq!(projector.committed(), 3);
//! # Ok(()) }
//! ```
//!
//! A position stored with your state is only as durable as the records behind it: see below.
//!
//! ## Readers see records before they are durable
//!
//! `append` publishes a record to readers at once, before any sync. A crash of the writer's
//! process does not take it back, but a power cut or a kernel crash before the next
//! successful [`Writer::sync`] can: the log comes back shorter, and the next writer gives the
//! lost seqs to new records. A reader that passed such a record on (to another machine, as an
//! acknowledgement, into state kept elsewhere) acted on a record that no longer exists, and a
//! position stored from it now lies past the end of the log ([`Consumer::open`] refuses it
//! with [`Error::ConsumerPosition`]; [`Reader::seek`] would wait there and skip the records
//! that reuse those seqs).
//!
//! Readers that must not see such records read **durable records only**:
//! [`Reader::durable_only`] (which has an example), [`Tailer::durable_only`],
//! [`Consumer::durable_only`], and with the `tokio` feature `AsyncTailer::durable_only`. They
//! return a record once a sync made it durable. [`durable_seq`] tells any process where the
//! durable records end. `applog ship` ships durable records only.
//!
//! ## Batches and power cuts
//!
//! [`Writer::append_batch`] is all or nothing: a reader sees all of a batch or none of it, and
//! a power cut or a kernel crash leaves all of it or none. Pages reach the disk in any order,
//! so recovery cuts a batch whose last record is missing whole, and readers never return a
//! record of such a batch. Until a sync covers it, a power cut can lose the whole batch; once
//! a sync returned Ok, the whole batch survives. A crash of the process after `append_batch`
//! returned loses none of it. This holds for a batch that fits in one segment (the writer
//! starts a new segment for it when needed); [`Writer::append_batch`] says what happens to a
//! larger one.
//!
//! The on-disk format is described in `docs/format.md`.
#![deny(missing_docs)]
#![warn(clippy::pedantic)]
// The pedantic lints the crate does not follow, and why:
#![allow(
    // Getters and builders: `#[must_use]` on each says nothing a reader does not see.
    clippy::must_use_candidate,
    clippy::return_self_not_must_use,
    // The recovery decision table and the truncation walk read best whole.
    clippy::too_many_lines,
)]
// Unit tests build small inputs with plain casts.
#![cfg_attr(test, allow(clippy::cast_possible_truncation))]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

/// A test-only fault point (see `fault.rs`): calls the installed hook when the crate is built
/// with the `fault-injection` feature, and expands to an empty block otherwise.
macro_rules! fault_point {
    ($point:ident) => {{
        #[cfg(feature = "fault-injection")]
        $crate::fault::hit($crate::fault::Point::$point);
    }};
}

mod checkpoint;
mod clock;
/// The group-commit state machine of `SharedWriter`. Public only with the `fault-injection`
/// feature, so that the loom model test (tests/loom_group_commit.rs) checks the crate's own
/// code; not part of the API.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod commit;
#[cfg(not(feature = "fault-injection"))]
mod commit;
mod consumer;
mod copy;
mod cow;
mod dir;
mod durable;
mod error;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault;
#[cfg(feature = "fault-injection")]
mod fault_fs;
/// The on-disk format's encoders and decoders. Public only with the `fault-injection`
/// feature, for the crate's tests and fuzz targets; `docs/format.md` describes the format.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod format;
#[cfg(not(feature = "fault-injection"))]
mod format;
mod identity;
mod io;
mod mapping;
mod meta;
mod metrics;
/// The writer/reader wake-up protocol. Public only with the `fault-injection` feature, so that
/// the loom model test (tests/loom_notify.rs) checks the crate's own code; not part of the API.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod notify;
#[cfg(not(feature = "fault-injection"))]
mod notify;
mod options;
mod pretouch;
mod reader;
mod recovery;
mod retention;
mod segment;
mod shared;
#[cfg(feature = "ship")]
pub mod ship;
mod stats;
mod tailer;
#[cfg(feature = "tokio")]
pub mod tokio;
mod word_file;
mod writer;

pub use clock::RecordTime;
pub use consumer::{
    consumer_path, consumers, delete_consumer, reset_consumer, validate_consumer_name, Consumer,
    ConsumerInfo, ConsumerState, CONSUMERS_DIR, MAX_NAME_LEN,
};
pub use copy::{copy, copy_cancellable, copy_with_progress, staging_dir, CopyReport, STAGING_MARK};
pub use dir::{segment_name, LOCK_FILE};
pub use durable::durable_seq;
pub use error::{Error, Result};
pub use identity::{existing_log_id, log_id, LOG_ID_FILE};
pub use meta::{read_meta, Meta, META_FILE};
pub use options::{Options, SyncPolicy};
pub use reader::{Reader, Record};
pub use recovery::{
    recover, verify, Corruption, RecoveryMode, RecoveryReport, SegmentReport, TornTail, Truncation,
    VerifyReport,
};
pub use retention::{trim, Retention, Trim, TrimReport};
pub use shared::SharedWriter;
pub use stats::{stats, Stats, WriterFigures, WriterState, WriterStats, STATS_FILE};
pub use tailer::{Tailer, WaitStrategy};
pub use writer::Writer;

/// The test surface: the I/O seam and a file system that fails, lies and crashes on purpose.
/// Only with the `fault-injection` feature; not part of the stable API.
#[cfg(feature = "fault-injection")]
pub mod internals {
    pub use crate::fault_fs::{Call, Fault, FaultFs};
    pub use crate::io::{FileSystem, Msync, RealFs};

    /// [`copy_cancellable`](crate::copy_cancellable) through the file system `fs`.
    ///
    /// # Errors
    /// As [`copy`](crate::copy).
    pub fn copy_with(
        log: impl AsRef<std::path::Path>,
        dest: impl AsRef<std::path::Path>,
        fs: &std::sync::Arc<dyn FileSystem>,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> crate::Result<crate::CopyReport> {
        crate::copy::copy_with(log.as_ref(), dest.as_ref(), fs, cancel)
    }

    /// [`recover`](crate::recover) through the file system `fs`.
    ///
    /// # Errors
    /// As [`recover`](crate::recover).
    pub fn recover_with(
        dir: impl AsRef<std::path::Path>,
        mode: crate::RecoveryMode,
        fs: &std::sync::Arc<dyn FileSystem>,
    ) -> crate::Result<crate::RecoveryReport> {
        crate::recovery::recover_with(dir.as_ref(), mode, fs)
    }
}

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Whether a writer holds the lock of the log in `dir` right now (see [`Error::Locked`]). It
/// reads `/proc/locks` and does not open the lock file, so a reader without access to that
/// file can ask; on btrfs, or where `/proc/locks` is unavailable, it confirms with a
/// momentary shared lock, which a writer opening the log meanwhile waits out. Writers in
/// other pid namespaces (other containers) are seen only by that confirmation.
///
/// # Errors
/// [`Error::Io`] (`NotFound`) when `dir` does not exist; [`Error::NotALog`] when it is not a
/// directory.
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let writer = applog::Writer::open(dir.path(), applog::Options::default())?;
/// assert!(applog::is_locked(dir.path())?); // e.g. before running `applog recover`
/// drop(writer);
/// assert!(!applog::is_locked(dir.path())?);
/// # Ok(()) }
/// ```
pub fn is_locked(dir: impl AsRef<std::path::Path>) -> Result<bool> {
    dir::Lock::is_held(dir.as_ref())
}
