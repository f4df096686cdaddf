//! Options for opening a writer.

use crate::error::{Error, Result};
use crate::format::{HEADER_LEN, MAX_RESERVATION};

/// When the writer makes appended records durable on its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// Only when [`Writer::sync`](crate::Writer::sync) is called. Default.
    #[default]
    Manual,
    /// After every `append` and every `append_batch` (one msync per call).
    Always,
    /// Whenever at least this many bytes of frames were appended since the last sync.
    EveryBytes(u64),
}

/// Options for [`Writer::open`](crate::Writer::open).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub(crate) segment_pages: u32,
    pub(crate) sync: SyncPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_pages: 1000,
            sync: SyncPolicy::Manual,
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
    /// in all. Existing segments keep the reservation they were created with.
    ///
    /// Default: 1000.
    pub fn segment_pages(mut self, pages: u32) -> Self {
        self.segment_pages = pages;
        self
    }

    /// When to make records durable without an explicit `sync`.
    ///
    /// Default: [`SyncPolicy::Manual`].
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    pub(crate) fn validate(&self, page_size: u64) -> Result<()> {
        let reservation = page_size * u64::from(self.segment_pages);
        if self.segment_pages == 0 {
            return Err(Error::InvalidOptions(
                "segment_pages must be at least 1".into(),
            ));
        }
        if reservation > MAX_RESERVATION {
            return Err(Error::InvalidOptions(format!(
                "segment_pages {} x page size {page_size} exceeds the 2 GiB segment limit",
                self.segment_pages
            )));
        }
        if reservation <= HEADER_LEN + 8 {
            return Err(Error::InvalidOptions("segment too small".into()));
        }
        Ok(())
    }
}
