//! The durability checkpoint of a segment's bytes: every msync of the crate, and what a
//! checkpoint takes of a segment to flush it without the writer's lock ([`SegmentSync`]).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use super::{open_file, page_size};
use crate::error::{Error, Result};
use crate::format::{self, SegmentHeader, HEADER_LEN, SYNCED_MARK_OFFSET};
use crate::io::{FileSystem, Msync};
use crate::mapping::WriteMap;

/// msync of `[from, end)` rounded out to whole pages and cut at the file size, through the
/// seam. Every msync of the crate goes through here.
pub(super) fn msync(
    fs: &dyn FileSystem,
    path: &Path,
    map: &WriteMap,
    from: u64,
    end: u64,
) -> Result<()> {
    let end = end.min(map.limit());
    let from = from.min(end) / page_size() * page_size();
    if end <= from {
        return Ok(());
    }
    fault_point!(BeforeMsync);
    fs.msync(&Msync {
        path,
        map,
        offset: from,
        len: end - from,
    })
    .map_err(|e| Error::io("could not sync segment", path, e))
}

/// What a durability checkpoint needs of one segment, taken under the writer's lock and used
/// without it: msync of `[from, end)` (bytes below `end` are published frames, never written
/// again; bytes below `from` were made durable by an earlier checkpoint), then the synced
/// mark, and, when `flush_mark` says so, msync of the header page that holds the mark. Appends
/// past `end` may go on meanwhile.
///
/// A handle for a sealed segment is [`detached`](Self::detached): it keeps no mapping and no
/// file open, and maps the file again when it runs, so that a writer that rolls over many
/// times between checkpoints holds one mapping, not one per segment.
pub(crate) struct SegmentSync {
    pub(crate) path: PathBuf,
    pub(super) map: Option<(WriteMap, Arc<File>)>,
    /// Whether the synced mark is written with `pwrite` (see `WriteSegment::by_pwrite`).
    pub(super) by_pwrite: bool,
    pub(super) header: SegmentHeader,
    pub(super) fs: Arc<dyn FileSystem>,
    pub(super) from: u64,
    pub(crate) end: u64,
    /// Whether [`mark_synced`](Self::mark_synced) also makes the mark durable.
    pub(crate) flush_mark: bool,
}

impl SegmentSync {
    /// The same handle without its mapping (see the type's docs).
    pub(crate) fn detached(mut self) -> SegmentSync {
        self.map = None;
        self
    }

    /// Runs `f` on the mapping and the file: this handle's own, or the file opened and mapped
    /// again. `Ok(None)` when a detached handle's file is gone: retention removed it, and its
    /// records with it.
    fn with_map<T>(&self, f: impl FnOnce(&WriteMap, &File) -> Result<T>) -> Result<Option<T>> {
        if let Some((map, file)) = &self.map {
            return f(map, file).map(Some);
        }
        let (file, size) = match open_file(&self.path, true) {
            Ok(f) => f,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let mut map = WriteMap::new(&file, self.header.reservation())
            .map_err(|e| Error::io("could not map segment", &self.path, e))?;
        map.set_size(size);
        map.freeze_header(self.end);
        f(&map, &file).map(Some)
    }

    /// `msync(MS_SYNC)` of `[from, end)` (whole pages).
    ///
    /// # Errors
    /// `Io` with the operating system's error.
    pub(crate) fn flush(&self) -> Result<()> {
        self.with_map(|map, _| msync(&*self.fs, &self.path, map, self.from, self.end))
            .map(drop)
    }

    /// Stores the synced mark `end`, then msyncs the header page when `flush_mark` is set.
    /// Only after [`flush`](Self::flush) returned Ok; only one checkpoint runs at a time, so
    /// nothing else writes the mark meanwhile. An unflushed mark reaches the disk with the next
    /// write-back of the header page: it never claims more than was durable.
    ///
    /// # Errors
    /// `Io` with the operating system's error.
    pub(crate) fn mark_synced(&self) -> Result<()> {
        fault_point!(BeforeSyncedMark);
        let word = self.header.encode_synced_mark(self.end);
        self.with_map(|map, file| {
            let io = |e| Error::io("could not write synced mark of", &self.path, e);
            if self.by_pwrite {
                // Not a store into the header page (see `WriteSegment::by_pwrite`). A reader
                // that sees the word half written finds it fails its check: no mark, for a
                // moment, which only makes it wait where it could have read.
                fence(Ordering::SeqCst);
                self.fs
                    .write_at(file, &self.path, &word.to_le_bytes(), SYNCED_MARK_OFFSET)
                    .map_err(io)?;
            } else {
                map.store(SYNCED_MARK_OFFSET, word, Ordering::Release)
                    .map_err(io)?;
            }
            // Readers that yield only durable records may wait for the mark: wake them as a
            // publish does (one atomic operation when nobody waits).
            if let Some(wake) = map.word32(format::WAKE_WORD_OFFSET) {
                if self.by_pwrite {
                    crate::notify::published_by_pwrite(wake, |v| {
                        // A failed write leaves the word as it was: waiters time out and look
                        // again.
                        let _ = self.fs.write_at(
                            file,
                            &self.path,
                            &v.to_ne_bytes(),
                            format::WAKE_WORD_OFFSET,
                        );
                    });
                } else {
                    crate::notify::published(wake);
                }
            }
            if self.flush_mark {
                msync(&*self.fs, &self.path, map, 0, HEADER_LEN)?;
            }
            Ok(())
        })
        .map(drop)
    }
}
