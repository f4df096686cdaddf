//! A log's metadata: a few named values (a Raft node's vote, the last log id it purged) that
//! the writer stores durably and crash-atomically in a small file of the log directory,
//! [`META_FILE`] (layout in `file.rs` and `docs/metadata.md`).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};
use crate::Writer;

mod file;

pub(crate) use file::Store;

/// The file in a log directory that holds the log's metadata ([`Writer::set_meta`],
/// [`read_meta`]). It exists once metadata was first stored.
pub const META_FILE: &str = "applog.meta";

/// A log's metadata: named values, sorted by name. See [`Writer::set_meta`] and [`read_meta`].
///
/// Names are 1 to 255 bytes of UTF-8. All of it, each entry taking its name, its value and 5
/// bytes, fits in 4072 bytes ([`Meta::MAX_LEN`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    entries: BTreeMap<String, Vec<u8>>,
}

impl Meta {
    /// The most bytes a log's metadata takes: each entry takes its name's and its value's
    /// length plus 5.
    pub const MAX_LEN: usize = file::MAX_ENTRIES_LEN;

    /// The value stored under `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries.get(name).map(Vec::as_slice)
    }

    /// Every name and value, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no value is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes this metadata takes in the file (at most [`Meta::MAX_LEN`]).
    pub fn encoded_len(&self) -> usize {
        file::entries_len(self)
    }
}

/// The metadata of the log in `dir`, as its writer last stored it ([`Writer::set_meta`]):
/// empty when none was ever stored. Takes no lock and writes nothing: any process can call
/// it, while a writer runs or not; it sees the last change whose `set_meta` returned (or one
/// being made, whole).
///
/// # Errors
/// [`Error::MetaCorrupt`] when the file is damaged or not an applog metadata file (naming it
/// and the byte offset); [`Error::NotALog`] when `dir` is not a log (it holds no segment and
/// no lock file); [`Error::Io`].
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut log = applog::Writer::open(dir.path(), applog::Options::default())?;
/// assert!(applog::read_meta(dir.path())?.is_empty());
/// log.set_meta("vote", Some(b"term 7, node 2"))?;
/// // Another process (a CLI, a reader) sees it, without the log's lock.
/// let meta = applog::read_meta(dir.path())?;
/// assert_eq!(meta.get("vote"), Some(&b"term 7, node 2"[..]));
/// # Ok(()) }
/// ```
pub fn read_meta(dir: impl AsRef<Path>) -> Result<Meta> {
    let dir = dir.as_ref();
    // The metadata file alone is not a log (as `log-id` or `applog.stats` alone are not).
    crate::dir::list_log(dir)?;
    Ok(file::read(&dir.join(META_FILE), true)?.map_or_else(Meta::default, |l| l.meta))
}

/// Checks a metadata name.
fn check_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.len() > file::MAX_NAME_LEN {
        "it is longer than 255 bytes"
    } else {
        return Ok(());
    };
    Err(Error::InvalidMetaName {
        name: name.to_owned(),
        reason: reason.into(),
    })
}

/// The log's metadata: a few named values stored beside the records.
impl Writer {
    /// The log's metadata as last stored (empty when none was ever stored).
    pub fn meta(&self) -> &Meta {
        self.meta.meta()
    }

    /// Stores `value` under `name` (`None` removes it). Durable and crash-atomic when it
    /// returns Ok: after a crash or a power cut, the log's metadata is the one before or the
    /// one after this call, never a mix, and once it returned Ok, the one after.
    ///
    /// The metadata lives in its own file ([`META_FILE`]), apart from the records: storing it
    /// costs one `pwrite` of 4 KiB and one `fdatasync`, and does not sync the records.
    /// Metadata of a log that never stored any takes no file.
    ///
    /// # Errors
    /// - [`Error::InvalidMetaName`] when `name` is empty or longer than 255 bytes;
    /// - [`Error::MetaTooLarge`] when the metadata would take more than [`Meta::MAX_LEN`]
    ///   bytes;
    ///
    ///   in both cases nothing is changed.
    /// - [`Error::Io`], [`Error::NoSpace`] when writing or syncing the file failed: the
    ///   metadata is still the old one ([`meta`](Self::meta)), but the new one may have
    ///   reached the file, and a crash may leave either. Store it again (or the old one) to
    ///   know which.
    ///
    /// # Example
    /// ```
    /// use applog::{Options, Writer};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = Writer::open(dir.path(), Options::default())?;
    /// log.set_meta("vote", Some(b"term 3 for node 1"))?; // durable now
    /// log.set_meta_many(&[("purged", Some(b"17")), ("vote", None)])?; // both or neither
    /// drop(log);
    ///
    /// let log = Writer::open(dir.path(), Options::default())?;
    /// assert_eq!(log.meta().get("purged"), Some(&b"17"[..]));
    /// assert_eq!(log.meta().get("vote"), None);
    /// # Ok(()) }
    /// ```
    pub fn set_meta(&mut self, name: &str, value: Option<&[u8]>) -> Result<()> {
        self.set_meta_many(&[(name, value)])
    }

    /// Applies several changes at once, in order, crash-atomic together: after a crash, all
    /// of them or none. `None` removes a name.
    ///
    /// # Errors
    /// As [`set_meta`](Self::set_meta); nothing is changed when a name or the size is refused.
    pub fn set_meta_many(&mut self, changes: &[(&str, Option<&[u8]>)]) -> Result<()> {
        let mut next = self.meta.meta().clone();
        for &(name, value) in changes {
            check_name(name)?;
            match value {
                Some(v) => {
                    next.entries.insert(name.to_owned(), v.to_vec());
                }
                None => {
                    next.entries.remove(name);
                }
            }
        }
        let len = file::entries_len(&next);
        if len > Meta::MAX_LEN {
            return Err(Error::MetaTooLarge {
                path: self.meta.path().to_owned(),
                len,
                max: Meta::MAX_LEN,
            });
        }
        self.meta.store(next)?;
        tracing::debug!(changes = changes.len(), bytes = len, "stored metadata");
        Ok(())
    }
}
