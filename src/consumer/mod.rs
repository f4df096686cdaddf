//! Named consumers: a reader with a name, whose position survives it.
//!
//! A consumer's position lives in a one-page file, `consumers/<name>` in the log directory,
//! which the process that holds the consumer maps: a commit is five stores into that page (no
//! system call), which another process reading the file sees at once and which a crash of
//! the holder does not lose (the page cache keeps it). [`Consumer::sync`] makes it survive a
//! power cut too. The file's layout is in `state`; locking and the operations that do not
//! read records are in `registry`.

mod registry;
mod state;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) use registry::lock as lock_registry;
pub use registry::{ConsumerInfo, ConsumerState, CONSUMERS_DIR, MAX_NAME_LEN};

use crate::error::{Error, Result};
use crate::reader::Record;
use crate::tailer::{Tailer, WaitStrategy};
use state::{Slot, NO_HINT};

/// A named, resumable reader of a log: it starts at the first record it has not committed,
/// and its committed position survives it (and a crash of its process).
///
/// - **At least once.** [`commit`](Self::commit) after processing: a consumer that crashes
///   resumes at (or before) the first record it did not commit, never after. Records
///   delivered but not committed are delivered again.
/// - **Exactly once** needs the position stored with your own state, in one transaction of
///   yours: read [`position`](Self::position) after processing, store it with the state, and
///   on restart open with [`open_at`](Self::open_at) at the stored position. Commit to applog
///   too (after your state is durable), so that retention keeps what you have not processed.
/// - **Exclusive.** One `Consumer` per name at a time, in any process: a second open fails
///   with [`Error::ConsumerBusy`], which names the process holding it. The hold is an `flock`
///   on the consumer's file, released when the `Consumer` is dropped or its process dies
///   (even by `kill -9`).
/// - **Retention waits for it.** [`Writer::truncate_front`](crate::Writer::truncate_front),
///   a [`Retention`](crate::Retention) policy and [`trim`](crate::trim) never remove records
///   a consumer has not committed, unless the consumer fell too far behind and was
///   **parked**: then reading fails with [`Error::ConsumerParked`] until an operator resets it
///   ([`reset_consumer`](crate::reset_consumer)).
///
/// # Example
/// ```
/// use applog::{Consumer, Error, Options, Writer};
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut writer = Writer::open(dir.path(), Options::default())?;
/// writer.append_batch(&[&b"a"[..], b"b", b"c"])?;
///
/// let mut consumer = Consumer::open(dir.path(), "indexer")?; // new: at the first record
/// assert_eq!(consumer.next()?.seq(), 0); // next() waits for a record; try_next() does not
/// consumer.commit()?; // record 0 is done: a store into a mapped page, no system call
/// consumer.sync()?; // the commit survives a power cut too
/// assert!(matches!(Consumer::open(dir.path(), "indexer"), Err(Error::ConsumerBusy { .. })));
/// drop(consumer);
///
/// // A restart resumes after the last commit.
/// let mut consumer = Consumer::open(dir.path(), "indexer")?;
/// assert_eq!(consumer.try_next()?.map(|r| r.seq()), Some(1));
/// # Ok(()) }
/// ```
pub struct Consumer {
    held: registry::Held,
    tailer: Tailer,
    committed: u64,
    synced: u64,
    /// The committed-position gauge (feature `metrics`; empty without it).
    metrics: crate::metrics::ConsumerMetrics,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.held.name)
            .field("dir", &self.tailer.dir())
            .field("committed", &self.committed)
            .field("position", &self.tailer.position())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Opens the consumer `name` of the log in `dir`, creating it at the log's first record
    /// when it does not exist, and positions it at its committed position.
    ///
    /// # Errors
    /// - [`Error::InvalidConsumerName`]: names are 1 to 64 of `A-Z a-z 0-9 . _ -`, not
    ///   starting with `.`;
    /// - [`Error::ConsumerBusy`] when another `Consumer` (in any process) holds the name;
    /// - [`Error::ConsumerCorrupt`] when its file is damaged;
    /// - [`Error::ConsumerPosition`] when its position lies past the end of the log (the log
    ///   lost records it had read: a power cut took records that were never synced) or before
    ///   its first record (removed while the consumer was not registered or was parked);
    /// - as [`Reader::open`](crate::Reader::open).
    pub fn open(dir: impl AsRef<Path>, name: &str) -> Result<Consumer> {
        Self::open_inner(dir.as_ref(), name, None)
    }

    /// Opens the consumer `name` (creating it if need be) positioned at `seq`: the position a
    /// consumer stored with its own state (see "Exactly once" above). Its committed position
    /// is left as it is until the next [`commit`](Self::commit).
    ///
    /// # Errors
    /// As [`open`](Self::open); [`Error::ConsumerPosition`] when `seq` lies outside the log.
    pub fn open_at(dir: impl AsRef<Path>, name: &str, seq: u64) -> Result<Consumer> {
        Self::open_inner(dir.as_ref(), name, Some(seq))
    }

    fn open_inner(dir: &Path, name: &str, at: Option<u64>) -> Result<Consumer> {
        registry::validate_name(name)?;
        // Registering reads the log's first seq: retention must not remove it meanwhile.
        let registry = registry::lock(dir)?;
        // One reader finds the end of the log, then goes where the consumer starts.
        let (end, mut reader) = registry::log_end_reader(dir)?;
        registry::create(
            dir,
            name,
            Slot {
                seq: end.first_seq,
                time: state::now_coarse(),
                base: NO_HINT,
                off: NO_HINT,
            },
        )?;
        let held = registry::hold(dir, name)?;
        let committed = held.snapshot.position.seq;
        let start = at.unwrap_or(committed);
        let parked = held.snapshot.parked.is_some();
        if !parked && (start > end.next_seq || start < end.first_seq) {
            return Err(Error::ConsumerPosition {
                name: name.to_owned(),
                path: held.path.clone(),
                seq: start,
                first_seq: end.first_seq,
                next_seq: end.next_seq,
            });
        }
        held.map
            .set_holder(u64::from(std::process::id()))
            .map_err(|e| Error::io("could not write consumer file", &held.path, e))?;
        let from = if parked {
            start.clamp(end.first_seq, end.next_seq)
        } else {
            start
        };
        if from != reader.position() {
            match held.hint() {
                Some((base, off)) if from == committed => reader.seek_hinted(from, base, off)?,
                _ => reader.seek(from)?,
            }
        }
        let tailer = Tailer::from_reader(reader);
        drop(registry);
        tracing::debug!(consumer = name, committed, start, "consumer opened");
        crate::metrics::consumer_lag(dir, name, end.next_seq.saturating_sub(committed), None);
        let metrics = crate::metrics::ConsumerMetrics::new(dir, name, committed);
        Ok(Consumer {
            held,
            tailer,
            committed,
            synced: committed,
            metrics,
        })
    }

    /// Makes the consumer deliver only **durable** records (see
    /// [`Reader::durable_only`](crate::Reader::durable_only)): it waits until a record is
    /// synced before delivering it. For consumers that pass records off the machine.
    #[must_use]
    pub fn durable_only(mut self) -> Consumer {
        self.tailer.reader_mut().set_durable_only(true);
        self
    }

    /// Sets how [`next`](Self::next) waits for new records.
    #[must_use]
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Consumer {
        self.tailer.set_wait(wait);
        self
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.held.name
    }

    /// Its file (`consumers/<name>` in the log directory).
    pub fn path(&self) -> &Path {
        &self.held.path
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        self.tailer.dir()
    }

    /// The seq of the next record it delivers.
    pub fn position(&self) -> u64 {
        self.tailer.position()
    }

    /// Its committed position: the first seq not committed.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    pub(crate) fn check_parked(&self) -> Result<()> {
        match self.held.map.parked() {
            None => Ok(()),
            Some(p) => Err(Error::ConsumerParked {
                name: self.held.name.clone(),
                path: self.held.path.clone(),
                seq: p.seq,
                lag_bytes: p.lag_bytes,
            }),
        }
    }

    /// The reader under the consumer's tailer, to read without waiting (the async face).
    #[cfg(feature = "tokio")]
    pub(crate) fn reader_mut(&mut self) -> &mut crate::reader::Reader {
        self.tailer.reader_mut()
    }

    /// The next record, waiting as long as it takes.
    ///
    /// # Errors
    /// [`Error::ConsumerParked`]; as [`Tailer::next`](crate::Tailer::next).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Record<'_>> {
        self.check_parked()?;
        self.tailer.next()
    }

    /// The next record, or `None` when none comes within `timeout`.
    ///
    /// # Errors
    /// As [`next`](Self::next).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        self.check_parked()?;
        self.tailer.next_timeout(timeout)
    }

    /// The next record if there is one now, without waiting.
    ///
    /// # Errors
    /// As [`next`](Self::next).
    pub fn try_next(&mut self) -> Result<Option<Record<'_>>> {
        self.check_parked()?;
        self.tailer.reader_mut().next()
    }

    /// Commits every record delivered so far: the consumer resumes after them. No system
    /// call: the position is stored into the consumer's mapped file, where other processes
    /// see it at once and a crash of this process does not lose it. [`sync`](Self::sync)
    /// makes it survive a power cut.
    ///
    /// # Errors
    /// [`Error::ConsumerParked`]; [`Error::Io`] (a bug: the mapping is always in bounds).
    ///
    /// A consumer opened with [`open_at`](Self::open_at) behind its committed position
    /// commits nothing until it passes that position: commits never move backwards.
    #[inline]
    pub fn commit(&mut self) -> Result<()> {
        let seq = self.tailer.position();
        if seq <= self.committed {
            return self.check_parked();
        }
        let (base, off) = self.tailer.reader().cursor();
        self.store(seq, base, off)
    }

    /// Commits the records before `next_seq`: a position between the committed one and
    /// [`position`](Self::position) (records delivered).
    ///
    /// # Errors
    /// [`Error::ConsumerPosition`] for a position before the committed one (commits never
    /// move backwards: use [`reset_consumer`](crate::reset_consumer)) or past what was
    /// delivered; [`Error::ConsumerParked`].
    pub fn commit_to(&mut self, next_seq: u64) -> Result<()> {
        let delivered = self.tailer.position();
        if next_seq > delivered || next_seq < self.committed {
            return Err(Error::ConsumerPosition {
                name: self.held.name.clone(),
                path: self.held.path.clone(),
                seq: next_seq,
                first_seq: self.committed,
                next_seq: delivered,
            });
        }
        if next_seq == delivered {
            return self.commit();
        }
        self.store(next_seq, NO_HINT, NO_HINT)
    }

    /// Moves the delivery position to `seq` while the consumer stays open (what
    /// [`open_at`](Self::open_at) does at opening); with `rewind`, also moves the committed
    /// position back to `seq` when it is past it. For the shipper, whose position is the
    /// stream's.
    #[cfg(feature = "ship")]
    pub(crate) fn reposition(&mut self, seq: u64, rewind: bool) -> Result<()> {
        if seq != self.tailer.position() {
            self.tailer.reader_mut().seek(seq)?;
        }
        if rewind && seq < self.committed {
            self.store(seq, NO_HINT, NO_HINT)?;
        }
        Ok(())
    }

    #[inline]
    fn store(&mut self, seq: u64, base: u64, off: u64) -> Result<()> {
        self.check_parked()?;
        self.held
            .map
            .commit(Slot {
                seq,
                time: state::now_coarse(),
                base,
                off,
            })
            .map_err(|e| Error::io("could not write consumer file", &self.held.path, e))?;
        self.committed = seq;
        self.metrics.committed(seq);
        Ok(())
    }

    /// Makes the committed position durable (`msync` of the consumer's page): it then
    /// survives a power cut. One page written; nothing when nothing was committed since the
    /// last one.
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::UnknownConsumer`] when the consumer's file was removed (or
    /// replaced) while in use: its commits since then are lost, and another process may have
    /// opened the name anew.
    pub fn sync(&mut self) -> Result<()> {
        self.held.check_still_there()?;
        if self.synced == self.committed {
            return Ok(());
        }
        self.held
            .map
            .sync()
            .map_err(|e| Error::io("could not sync consumer file", &self.held.path, e))?;
        self.synced = self.committed;
        Ok(())
    }

    /// [`commit`](Self::commit) and [`sync`](Self::sync).
    ///
    /// # Errors
    /// As those.
    pub fn commit_durable(&mut self) -> Result<()> {
        self.commit()?;
        self.sync()
    }
}

impl Drop for Consumer {
    /// Makes the committed position durable (best effort) and says nobody holds it.
    fn drop(&mut self) {
        let _ = self.held.map.set_holder(0);
        if let Err(e) = self.sync() {
            tracing::warn!(consumer = %self.held.name, error = %e, "could not make the consumer's position durable");
        }
    }
}

/// Every consumer of the log in `dir`, by name: position, lag and state. Reads the consumer
/// files and the log's newest segment; takes no lock and disturbs nobody, so any process
/// that may read the log can ask, while the writer and the consumers run.
///
/// # Errors
/// [`Error::ConsumerCorrupt`] for a damaged consumer file; as
/// [`Reader::open`](crate::Reader::open).
///
/// # Example
/// ```
/// use applog::{Consumer, ConsumerState, Options, Writer};
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut log = Writer::open(dir.path(), Options::default())?;
/// log.append_batch(&[&b"a"[..], b"b", b"c"])?;
/// let mut indexer = Consumer::open(dir.path(), "indexer")?;
/// indexer.next()?;
/// indexer.commit()?;
///
/// let all = applog::consumers(dir.path())?;
/// assert_eq!((all[0].name.as_str(), all[0].next_seq, all[0].lag), ("indexer", 1, 2));
/// assert!(matches!(all[0].state, ConsumerState::Active { .. })); // held right now
/// # Ok(()) }
/// ```
pub fn consumers(dir: impl AsRef<Path>) -> Result<Vec<ConsumerInfo>> {
    let dir = dir.as_ref();
    let end = registry::log_end(dir)?;
    let mut out = Vec::new();
    for name in registry::names(dir)? {
        match registry::info(dir, &name, &end) {
            Ok(info) => {
                crate::metrics::consumer_lag(dir, &info.name, info.lag, Some(info.lag_bytes));
                out.push(info);
            }
            // Deleted since the listing.
            Err(Error::UnknownConsumer { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Sets consumer `name`'s position to `seq` (which must lie within the log: from its first
/// record to its end) and un-parks it. The consumer must not be in use.
///
/// # Errors
/// [`Error::UnknownConsumer`], [`Error::ConsumerBusy`], [`Error::ConsumerPosition`],
/// [`Error::ConsumerCorrupt`], [`Error::InvalidConsumerName`].
pub fn reset_consumer(dir: impl AsRef<Path>, name: &str, seq: u64) -> Result<()> {
    registry::reset(dir.as_ref(), name, seq)
}

/// Deletes consumer `name`: retention no longer waits for it. It must not be in use.
///
/// # Errors
/// [`Error::UnknownConsumer`], [`Error::ConsumerBusy`], [`Error::InvalidConsumerName`].
pub fn delete_consumer(dir: impl AsRef<Path>, name: &str) -> Result<()> {
    registry::delete(dir.as_ref(), name)
}

/// Checks a consumer name without touching any log: 1 to 64 of `A-Z a-z 0-9 . _ -`, not
/// starting with `.` (the rule [`Consumer::open`] applies).
///
/// # Errors
/// [`Error::InvalidConsumerName`], saying what is wrong with it.
pub fn validate_consumer_name(name: &str) -> Result<()> {
    registry::validate_name(name)
}

/// The path of consumer `name`'s file in the log `dir`.
pub fn consumer_path(dir: impl AsRef<Path>, name: &str) -> PathBuf {
    registry::consumer_path(dir.as_ref(), name)
}

/// The names of the log's consumers.
pub(crate) fn registry_names(dir: &Path) -> Result<Vec<String>> {
    registry::names(dir)
}

/// Where the log ends: as the writer says (`(active base, next seq, end offset)`), or read.
pub(crate) fn end_for(dir: &Path, writer: Option<(u64, u64, u64)>) -> Result<registry::End> {
    let Some((active, next_seq, off)) = writer else {
        return registry::log_end(dir);
    };
    let listing = crate::dir::list_log(dir)?;
    let sizes = listing
        .segments
        .iter()
        .filter_map(|e| std::fs::metadata(&e.path).ok().map(|m| (e.base, m.len())))
        .collect();
    Ok(registry::End {
        first_seq: listing.segments.first().map_or(0, |e| e.base),
        next_seq,
        at: (active, off),
        sizes,
    })
}

/// How consumer `name` stands (see [`consumers`]).
pub(crate) fn info(dir: &Path, name: &str, end: &registry::End) -> Result<ConsumerInfo> {
    registry::info(dir, name, end)
}

/// Parks consumer `name` (retention, under the registry lock): its holder, if any, sees it at
/// its next read or commit.
pub(crate) fn park(dir: &Path, name: &str, seq: u64, lag_bytes: u64) -> Result<()> {
    let path = registry::consumer_path(dir, name);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("could not open consumer file", &path, e))?;
    let snap = state::read(name, &path, &file)?;
    let map = state::Mapped::new(&file, state::USED as u64, snap.slot)
        .map_err(|e| Error::io("could not map consumer file", &path, e))?;
    map.park(state::Parked {
        seq,
        lag_bytes,
        at: state::now_coarse(),
    })
    .and_then(|()| map.sync())
    .map_err(|e| Error::io("could not write consumer file", &path, e))
}

/// Makes consumer `name`'s position file durable as it is now (`fdatasync`): retention calls
/// it before removing what a position it read covers.
pub(crate) fn sync_position(dir: &Path, name: &str) -> Result<()> {
    let path = registry::consumer_path(dir, name);
    match std::fs::File::open(&path) {
        Ok(f) => f
            .sync_data()
            .map_err(|e| Error::io("could not sync consumer file", &path, e)),
        // Deleted meanwhile: nothing of it to keep.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("could not open consumer file", &path, e)),
    }
}
