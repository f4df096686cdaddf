//! Reading entries back: [`LogReader`], one lock-free applog [`Reader`](applog::Reader) each.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use openraft::{AnyError, RaftLogReader, RaftTypeConfig, StorageError, StorageIOError};

use crate::codec;

/// Reads a [`LogStore`](crate::LogStore)'s entries, for openraft's replication tasks (from
/// [`get_log_reader`](openraft::storage::RaftLogStorage::get_log_reader)) and for the store
/// itself.
///
/// Each reader has its own [`applog::Reader`]: it takes no lock and never waits for the
/// writer. Entries at or below the last purged log id are never returned, even while the
/// files that hold them are still there.
pub struct LogReader<C: RaftTypeConfig> {
    dir: PathBuf,
    /// The lowest index that may be returned: the last purged index + 1 (shared with the store).
    first: Arc<AtomicU64>,
    /// Opened at the first read; dropped and opened again when a read fails (the log may have
    /// been cut or reset under it).
    reader: Option<applog::Reader>,
    _config: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig> Debug for LogReader<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("dir", &self.dir)
            .field("first", &self.first.load(Ordering::Acquire))
            .finish_non_exhaustive()
    }
}

impl<C: RaftTypeConfig> LogReader<C> {
    pub(crate) fn new(dir: &Path, first: Arc<AtomicU64>) -> LogReader<C> {
        LogReader {
            dir: dir.to_owned(),
            first,
            reader: None,
            _config: PhantomData,
        }
    }

    /// The entries with an index in `range` that the log holds (past the last purged one), in
    /// order. An index not in the log is left out.
    pub(crate) fn read(
        &mut self,
        range: impl RangeBounds<u64>,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => u64::MAX,
        };
        let start = start.max(self.first.load(Ordering::Acquire));
        if start >= end {
            return Ok(Vec::new());
        }
        // A reader that fails is opened again once: the writer may have cut the log's end
        // (`truncate`) or reset its start (`purge`) under it. A second failure is the log's.
        match self.read_once(start, end) {
            Ok(entries) => Ok(entries),
            Err(Failure::Log(_)) => {
                self.reader = None;
                self.read_once(start, end)
                    .map_err(Failure::into_storage_error)
            }
            Err(e) => Err(e.into_storage_error()),
        }
    }

    fn read_once(&mut self, start: u64, end: u64) -> Result<Vec<C::Entry>, Failure> {
        let reader = match &mut self.reader {
            Some(r) => r,
            None => self
                .reader
                .insert(applog::Reader::open(&self.dir).map_err(Failure::Log)?),
        };
        match reader.seek(start) {
            // The log starts later (it was reset there): the entries before are not in it.
            Err(applog::Error::SeqBeforeStart { first_seq, .. }) if first_seq > start => {
                if first_seq >= end {
                    return Ok(Vec::new());
                }
                reader.seek(first_seq).map_err(Failure::Log)?;
            }
            other => other.map_err(Failure::Log)?,
        }
        let mut entries = Vec::new();
        while let Some(rec) = reader.next().map_err(Failure::Log)? {
            if rec.seq() >= end {
                break;
            }
            let seq = rec.seq();
            let entry: C::Entry = codec::decode(rec.data(), || {
                format!("the entry at index {seq} in {}", self.dir.display())
            })
            .map_err(|e| Failure::Decode(seq, e))?;
            entries.push(entry);
            if seq + 1 >= end {
                break;
            }
        }
        Ok(entries)
    }
}

/// Why a read failed.
enum Failure {
    /// applog's error (it names the file).
    Log(applog::Error),
    /// A record that is not an entry.
    Decode(u64, codec::CodecError),
}

impl Failure {
    fn into_storage_error<NID: openraft::NodeId>(self) -> StorageError<NID> {
        match self {
            Failure::Log(e) => StorageIOError::read_logs(AnyError::new(&e)).into(),
            Failure::Decode(index, e) => {
                StorageIOError::read_log_at_index(index, AnyError::new(&e)).into()
            }
        }
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogReader<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.read(range)
    }
}
