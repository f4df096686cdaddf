//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong. Every variant that concerns a file names it; corruption also
/// names the byte offset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done, for example "could not grow segment".
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The file system is full (or the quota is exhausted). Nothing was appended; the log
    /// stays readable, and appending works again once space is freed.
    #[error("no space left to grow {}", path.display())]
    NoSpace {
        /// The segment that could not grow.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Another writer holds the log's lock.
    #[error("log is locked by another writer (lock file {})", lock_file.display())]
    Locked {
        /// The lock file.
        lock_file: PathBuf,
    },
    /// A frame or header inside data that had been made durable is damaged. Nothing was
    /// modified.
    #[error("corrupt log: {} at byte offset {offset}: {reason}", segment.display())]
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the bad frame or field in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The path is not an applog log, or a file in it is not an applog segment.
    #[error("not an applog log: {}: {reason}", path.display())]
    NotALog {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A seq older than the first record still in the log (removed by retention or never
    /// written there).
    #[error("seq {seq} is before the first record of the log ({first_seq})")]
    SeqBeforeStart {
        /// The seq asked for.
        seq: u64,
        /// The oldest seq in the log.
        first_seq: u64,
    },
    /// A seq that has not been appended yet (for example to
    /// [`SharedWriter::wait_durable`](crate::SharedWriter::wait_durable)).
    #[error("seq {seq} has not been appended yet (the next seq is {next_seq})")]
    SeqNotAppended {
        /// The seq asked for.
        seq: u64,
        /// The seq the next appended record will get.
        next_seq: u64,
    },
    /// A record is larger than one segment can hold.
    #[error("record of {len} bytes is larger than the {max} bytes one segment can hold (raise segment_pages)")]
    RecordTooLarge {
        /// Length of the record.
        len: usize,
        /// The largest record the log's segments can hold.
        max: u64,
    },
    /// An earlier durability checkpoint failed, so the writer can no longer promise anything:
    /// reopen the log (which recovers it) to go on.
    #[error("writer is poisoned by an earlier failed sync ({cause}); reopen the log")]
    Poisoned {
        /// The error that poisoned the writer.
        cause: String,
    },
    /// The options are out of range.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True when the error means the file system is out of space.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace { .. })
    }
}

/// True for the errors a full file system or an exhausted quota gives.
pub(crate) fn is_enospc(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() || code == rustix::io::Errno::DQUOT.raw_os_error())
        || e.kind() == io::ErrorKind::StorageFull
}
