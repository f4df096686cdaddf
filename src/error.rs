//! The one error type of the crate.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong. Every variant that concerns a file names it; corruption also
/// names the byte offset.
///
/// The message (`Display`) is complete: it includes the operating system's error where there
/// is one, which is therefore not also returned by `source()` (a chain printed by a logger
/// or `anyhow` would repeat it). The `io::Error` itself is in the variant's `source` field.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    Io {
        /// What was being done, for example "could not grow segment".
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error (part of the message).
        source: io::Error,
    },
    /// The file system is full, out of inodes, or the quota is exhausted (`ENOSPC`, `EDQUOT`)
    /// while a segment grows or a file of the log is created. Nothing was appended; the log
    /// stays readable, and appending works again once space is freed.
    NoSpace {
        /// What could not be done, for example "grow segment" or "create segment".
        op: &'static str,
        /// The file or directory that could not grow or be created.
        path: PathBuf,
        /// The operating system's error (part of the message).
        source: io::Error,
    },
    /// Another writer holds the log's lock: an `flock` on the log directory and on its lock
    /// file ([`LOCK_FILE`](crate::LOCK_FILE)), so that deleting the lock file does not free
    /// the log.
    Locked {
        /// The lock file.
        lock_file: PathBuf,
        /// The process holding the lock, when `/proc/locks` shows it (it does not show
        /// processes of other pid namespaces).
        pid: Option<u32>,
    },
    /// A frame or header inside data that had been made durable is damaged. Nothing was
    /// modified.
    Corrupt {
        /// The segment file.
        segment: PathBuf,
        /// Byte offset of the bad frame or field in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The path is not an applog log, or a file in it is not an applog segment.
    NotALog {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A seq older than the first record still in the log (removed by retention or never
    /// written there).
    SeqBeforeStart {
        /// The seq asked for.
        seq: u64,
        /// The oldest seq in the log.
        first_seq: u64,
    },
    /// A seq that has not been appended yet (for example to
    /// [`SharedWriter::wait_durable`](crate::SharedWriter::wait_durable)).
    SeqNotAppended {
        /// The seq asked for.
        seq: u64,
        /// The seq the next appended record will get.
        next_seq: u64,
    },
    /// A record is larger than one segment can hold.
    RecordTooLarge {
        /// Length of the record.
        len: usize,
        /// The largest record the log's segments can hold.
        max: u64,
    },
    /// An earlier durability checkpoint failed, so the writer can no longer promise anything:
    /// reopen the log (which recovers it) to go on.
    Poisoned {
        /// The error that poisoned the writer, as its message.
        cause: String,
        /// The kind of the operating system's error that poisoned it (`Other` when it was
        /// not an I/O error).
        kind: io::ErrorKind,
        /// The file or directory whose sync failed, when known.
        path: Option<PathBuf>,
    },
    /// The options are out of range.
    InvalidOptions(String),
    /// A copy ([`copy`](crate::copy)) could not be made as promised: the source changed
    /// under it, the result did not verify, or its destination appeared meanwhile. Nothing
    /// was left at the destination.
    Copy {
        /// What went wrong.
        reason: String,
    },
    /// The operation was cancelled (for example a [`copy`](crate::copy_cancellable) by a
    /// signal); what it had made was removed.
    Interrupted,
    /// A consumer name outside the allowed characters (1 to 64 of `A-Z a-z 0-9 . _ -`, not
    /// starting with `.`).
    InvalidConsumerName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No consumer of that name.
    UnknownConsumer {
        /// The name.
        name: String,
        /// The file it would have.
        path: PathBuf,
    },
    /// Another [`Consumer`](crate::Consumer), in this or another process, holds the name.
    ConsumerBusy {
        /// The name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The process holding it, when it can be told.
        pid: Option<u32>,
    },
    /// A consumer's file is damaged. Nothing was modified.
    ConsumerCorrupt {
        /// The name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The writer's stats file ([`STATS_FILE`](crate::STATS_FILE)) is damaged or not an
    /// applog stats file: its figures are not used (see [`stats`](crate::stats)).
    StatsCorrupt {
        /// The file.
        path: PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log's metadata file ([`META_FILE`](crate::META_FILE)) is damaged or not an applog
    /// metadata file: a bad header, a file shorter than one, or neither of its two slots
    /// valid. Nothing was modified; the writer does not open the log over it.
    MetaCorrupt {
        /// The file.
        path: PathBuf,
        /// Where in it.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The log's metadata would not fit in its file ([`Meta::MAX_LEN`](crate::Meta::MAX_LEN)
    /// bytes). Nothing was changed.
    MetaTooLarge {
        /// The metadata file.
        path: PathBuf,
        /// Bytes the metadata would take.
        len: usize,
        /// The most it can take.
        max: usize,
    },
    /// A metadata name that is empty or longer than 255 bytes. Nothing was changed.
    InvalidMetaName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A consumer position outside what is allowed: `[first_seq, next_seq]`.
    ConsumerPosition {
        /// The name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The position.
        seq: u64,
        /// The lowest allowed.
        first_seq: u64,
        /// The highest allowed.
        next_seq: u64,
    },
    /// Retention stopped waiting for this consumer: it fell too far behind, and records it
    /// had not committed may be gone. Reset it to go on.
    ConsumerParked {
        /// The name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// Its position when it was parked.
        seq: u64,
        /// How many bytes it lagged then.
        lag_bytes: u64,
    },
    /// The log's end was cut (`Writer::truncate_back`) at or below the record a reader was
    /// about to read: that record and every later one were removed. Records read before are
    /// still valid (their bytes never change). Seek to a seq below the writer's `next_seq`,
    /// or open a new reader, to go on.
    Rewound {
        /// The segment file in which the reader met the cut.
        segment: PathBuf,
        /// The seq the reader was about to read.
        seq: u64,
    },
    /// The writer will not start a new segment: the file system has less free space than the
    /// retention policy's floor, and retention could not free enough.
    FreeSpaceFloor {
        /// The log directory.
        path: PathBuf,
        /// Bytes free.
        free: u64,
        /// The floor.
        floor: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(f, "{op} {}: {source}", path.display()),
            Error::NoSpace { op, path, source } => {
                write!(f, "no space left to {op} {}: {source}", path.display())
            }
            Error::Locked { lock_file, pid } => {
                write!(
                    f,
                    "log is locked by another writer (lock file {})",
                    lock_file.display()
                )?;
                match pid {
                    Some(pid) => write!(f, ", held by process {pid}"),
                    None => Ok(()),
                }
            }
            Error::Corrupt {
                segment,
                offset,
                reason,
            } => write!(
                f,
                "corrupt log: {} at byte offset {offset}: {reason}",
                segment.display()
            ),
            Error::NotALog { path, reason } => {
                write!(f, "not an applog log: {}: {reason}", path.display())
            }
            Error::Rewound { segment, seq } => write!(
                f,
                "the log's end was cut at or below seq {seq}: records from there on were removed ({})",
                segment.display()
            ),
            Error::SeqBeforeStart { seq, first_seq } => write!(
                f,
                "seq {seq} is before the first record of the log ({first_seq})"
            ),
            Error::SeqNotAppended { seq, next_seq } => write!(
                f,
                "seq {seq} has not been appended yet (the next seq is {next_seq})"
            ),
            Error::RecordTooLarge { len, max } => write!(
                f,
                "record of {len} bytes is larger than the {max} bytes one segment can hold (raise segment_pages)"
            ),
            Error::Poisoned { cause, .. } => write!(
                f,
                "writer is poisoned by an earlier failed sync ({cause}); reopen the log"
            ),
            Error::InvalidOptions(what) => write!(f, "invalid options: {what}"),
            Error::Copy { reason } => write!(f, "{reason}"),
            Error::Interrupted => write!(f, "interrupted: nothing of it is left"),
            Error::InvalidConsumerName { name, reason } => {
                write!(f, "invalid consumer name {name:?}: {reason}")
            }
            Error::UnknownConsumer { name, path } => {
                write!(f, "no consumer {name:?} (no file {})", path.display())
            }
            Error::ConsumerBusy { name, path, pid } => {
                write!(f, "consumer {name:?} is in use ({})", path.display())?;
                match pid {
                    Some(pid) => write!(f, ", held by process {pid}"),
                    None => Ok(()),
                }
            }
            Error::ConsumerCorrupt {
                name,
                path,
                offset,
                reason,
            } => write!(
                f,
                "consumer {name:?}: corrupt file {} at byte offset {offset}: {reason}",
                path.display()
            ),
            Error::StatsCorrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "damaged stats file {} at byte offset {offset}: {reason}",
                path.display()
            ),
            Error::MetaCorrupt {
                path,
                offset,
                reason,
            } => write!(
                f,
                "damaged metadata file {} at byte offset {offset}: {reason}",
                path.display()
            ),
            Error::MetaTooLarge { path, len, max } => write!(
                f,
                "metadata of {len} bytes does not fit in {} (at most {max} bytes)",
                path.display()
            ),
            Error::InvalidMetaName { name, reason } => {
                write!(f, "invalid metadata name {name:?}: {reason}")
            }
            Error::ConsumerPosition {
                name,
                path,
                seq,
                first_seq,
                next_seq,
            } => write!(
                f,
                "consumer {name:?} ({}): position {seq} is outside {first_seq}..={next_seq}{}",
                path.display(),
                if seq > next_seq {
                    " (past the end of the log: reset it)"
                } else {
                    ""
                }
            ),
            Error::ConsumerParked {
                name,
                path,
                seq,
                lag_bytes,
            } => write!(
                f,
                "consumer {name:?} ({}) is parked: it fell {lag_bytes} bytes behind at seq {seq} \
                 and retention stopped waiting for it; reset it to go on",
                path.display()
            ),
            Error::FreeSpaceFloor { path, free, floor } => write!(
                f,
                "not starting a new segment in {}: {free} bytes free, below the floor of {floor}",
                path.display()
            ),
        }
    }
}

/// No variant has a `source()`: the operating system's error is part of the message.
impl std::error::Error for Error {}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The error for a failure to create a file or directory of the log: `NoSpace` when the
    /// file system is out of space or inodes or the quota is exhausted (`op` is then said
    /// without its "could not"), `Io` otherwise.
    pub(crate) fn create(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        if is_enospc(&source) {
            Error::NoSpace {
                op: op.strip_prefix("could not ").unwrap_or(op),
                path: path.into(),
                source,
            }
        } else {
            Error::io(op, path, source)
        }
    }

    /// True when the error means the file system is out of space (or inodes, or quota).
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::NoSpace { .. } | Error::FreeSpaceFloor { .. })
    }
}

/// True for the errors a full file system, one out of inodes, or an exhausted quota gives
/// (`ENOSPC`, `EDQUOT`).
pub(crate) fn is_enospc(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() || code == rustix::io::Errno::DQUOT.raw_os_error())
        || e.kind() == io::ErrorKind::StorageFull
}
