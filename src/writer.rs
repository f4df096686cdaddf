//! The single writer: append, batch, sync, rollover.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::dir::{self, Lock};
use crate::error::{Error, Result};
use crate::format::{self, FRAME_HEADER_LEN, HEADER_LEN};
use crate::options::{Options, SyncPolicy};
use crate::recovery;
use crate::segment::{page_size, Segment};

/// The one writer of a log. Holds an exclusive lock on the log for as long as it lives.
///
/// Records are appended into a memory mapping of the newest segment: [`append`](Self::append)
/// returns once the record is visible to readers (in this and other processes) and would
/// survive a crash of this process (the page cache keeps it). [`sync`](Self::sync) makes
/// everything appended so far survive a kernel crash or a power cut too.
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// let dir = tempfile::tempdir().unwrap();
/// let mut log = applog::Writer::open(dir.path(), applog::Options::default())?;
/// assert_eq!(log.append(b"hello")?, 0);
/// assert_eq!(log.append(b"world")?, 1);
/// log.sync()?; // both records are durable now
/// # Ok(()) }
/// ```
pub struct Writer {
    dir: PathBuf,
    opts: Options,
    seg: Segment,
    /// Offset of the next frame in `seg`.
    pos: u64,
    next_seq: u64,
    first_seq: u64,
    /// The largest record accepted: what one new segment holds.
    max_record_len: u64,
    /// `seg` holds a seal at `pos`: the next append must create a new segment first.
    sealed: bool,
    /// Offset in `seg` up to which frames are durable.
    synced_pos: u64,
    /// Bytes of frames appended since the last sync (for `SyncPolicy::EveryBytes`).
    unsynced_bytes: u64,
    /// Sealed segments not yet made durable, with the offset after their seal.
    pending: Vec<(PathBuf, u64)>,
    /// A segment was created (or removed) since the directory was last fsynced.
    dir_dirty: bool,
    poisoned: Option<String>,
    injected_sync_error: Option<io::Error>,
    _lock: Lock,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("dir", &self.dir)
            .field("segment", &self.seg.path)
            .field("next_seq", &self.next_seq)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Opens the log in `dir` for appending, creating it when missing, and recovers it: a torn
    /// tail after the last good record (left by a crash) is zeroed in place, logged with
    /// `tracing::warn!`, and made durable.
    ///
    /// # Errors
    /// - [`Error::Locked`] when another writer holds the log (nothing is changed). The lock
    ///   is an `flock` on the lock file, released when the writer is dropped; but a child
    ///   process that this process forks keeps a copy of the lock until it calls `exec`, so
    ///   reopening a log while spawning processes can briefly see `Locked`;
    /// - [`Error::NotALog`] when `dir` is a file, a non-empty directory without a log, or holds
    ///   a segment file without the applog magic;
    /// - [`Error::Corrupt`] when a frame inside data that had been synced is damaged (nothing
    ///   is changed);
    /// - [`Error::InvalidOptions`], [`Error::Io`], [`Error::NoSpace`].
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Writer> {
        let dir = dir.as_ref().to_owned();
        let page = page_size();
        opts.validate(page)?;
        create_dir(&dir)?;
        let listing = dir::list(&dir)?;
        if listing.is_foreign() {
            return Err(Error::NotALog {
                path: dir,
                reason: "the directory holds other files and no applog segments".into(),
            });
        }
        if !listing.has_lock_file {
            // Taking the lock creates the lock file: first make sure that segments found
            // without one are applog's, so that a foreign directory is left untouched.
            for entry in &listing.segments {
                Segment::open(&entry.path, false)?;
            }
        }
        let lock = Lock::acquire(&dir)?;
        // List again under the lock: the previous holder may have changed things meanwhile.
        let listing = dir::list(&dir)?;
        let rec = recovery::recover(&dir, listing.segments, opts.segment_pages)?;
        let mut dir_dirty = false;
        let (seg, pos) = match rec.active {
            Some(active) => active,
            None => {
                let path = dir.join(dir::segment_name(rec.next_seq));
                dir_dirty = true;
                (
                    Segment::create(&path, rec.next_seq, opts.segment_pages)?,
                    HEADER_LEN,
                )
            }
        };
        let mut seg = seg;
        seg.set_grow_pages(opts.grow_pages);
        let synced_pos = seg.synced_mark().min(pos);
        tracing::debug!(dir = %dir.display(), segment = %seg.path.display(), next_seq = rec.next_seq, offset = pos, "writer opened");
        let mut max_record_len =
            (page * u64::from(opts.segment_pages)).saturating_sub(HEADER_LEN + FRAME_HEADER_LEN);
        if pos == HEADER_LEN {
            // The segment to append to holds no record (and may be older and smaller than
            // the options say): a record that does not fit in it cannot roll to a new segment,
            // which would have the same name. Its capacity is the limit.
            max_record_len = max_record_len.min(seg.header.max_record_len());
        }
        Ok(Writer {
            first_seq: rec.first_seq.min(rec.next_seq),
            max_record_len,
            dir,
            opts,
            seg,
            pos,
            next_seq: rec.next_seq,
            sealed: false,
            synced_pos,
            unsynced_bytes: 0,
            pending: Vec::new(),
            dir_dirty,
            poisoned: None,
            injected_sync_error: None,
            _lock: lock,
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The seq the next appended record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The seq of the oldest record in the log.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The largest record this writer accepts: what one segment of the configured
    /// [`Options::segment_pages`] can hold (reservation minus 72 bytes of headers), or less
    /// when the log's newest segment holds no record yet and was created smaller: records
    /// must then fit in it.
    pub fn max_record_len(&self) -> u64 {
        self.max_record_len
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(Error::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn check_len(&self, len: usize) -> Result<()> {
        let max = self.max_record_len;
        if len as u64 > max {
            return Err(Error::RecordTooLarge { len, max });
        }
        Ok(())
    }

    /// Appends one record and returns its seq. When this returns, readers can see the record,
    /// and it survives a crash of this process; it survives a power cut once [`sync`](Self::sync)
    /// (or the [`SyncPolicy`]) has run.
    ///
    /// # Errors
    /// [`Error::RecordTooLarge`]; [`Error::NoSpace`] when the file system is full (nothing was
    /// appended; appending works again once space is freed); [`Error::Poisoned`] after a failed
    /// sync; with [`SyncPolicy::Always`] or [`SyncPolicy::EveryBytes`], the error of the sync
    /// that followed (the record was appended but is not known to be durable).
    pub fn append(&mut self, record: &[u8]) -> Result<u64> {
        self.check_poisoned()?;
        self.check_len(record.len())?;
        let flen = format::frame_len(record.len() as u64);
        if self.sealed || self.pos + flen > self.seg.reservation() {
            self.roll()?;
        }
        let off = self.pos;
        let end = off + flen;
        if end > self.seg.size() {
            self.seg.grow_to(end)?;
        }
        let seq = self.next_seq;
        let word = self.seg.write_payload(off, seq, record)?;
        self.seg.store_head(off, word, Ordering::Release)?;
        self.pos = end;
        self.next_seq = seq + 1;
        self.unsynced_bytes += flen;
        self.apply_policy()?;
        Ok(seq)
    }

    /// Appends many records and returns their seqs. Records that land in the same segment are
    /// written with one growth step and published together with one release store, so a reader
    /// sees either none or all of them.
    ///
    /// # Errors
    /// As [`append`](Self::append). Sizes are checked before anything is written; if growing
    /// or rolling fails midway, the records before the failure are appended (see
    /// [`next_seq`](Self::next_seq)) and the rest are not.
    pub fn append_batch<B: AsRef<[u8]>>(&mut self, records: &[B]) -> Result<Range<u64>> {
        self.check_poisoned()?;
        for r in records {
            self.check_len(r.as_ref().len())?;
        }
        let first = self.next_seq;
        let mut i = 0;
        while i < records.len() {
            let reservation = self.seg.reservation();
            let mut end = self.pos;
            let mut j = i;
            if !self.sealed {
                while let Some(r) = records.get(j) {
                    let flen = format::frame_len(r.as_ref().len() as u64);
                    if end + flen > reservation {
                        break;
                    }
                    end += flen;
                    j += 1;
                }
            }
            if j == i {
                self.roll()?;
                continue;
            }
            if end > self.seg.size() {
                self.seg.grow_to(end)?;
            }
            // Write every frame but publish the first one last: readers stop at the first
            // empty header, so the Release store of the first header publishes them all.
            let start = self.pos;
            let mut off = start;
            let mut first_word = 0;
            for (k, r) in records[i..j].iter().enumerate() {
                let r = r.as_ref();
                let seq = self.next_seq + k as u64;
                let word = self.seg.write_payload(off, seq, r)?;
                if k == 0 {
                    first_word = word;
                } else {
                    self.seg.store_head(off, word, Ordering::Relaxed)?;
                }
                off += format::frame_len(r.len() as u64);
            }
            self.seg.store_head(start, first_word, Ordering::Release)?;
            self.unsynced_bytes += end - start;
            self.pos = end;
            self.next_seq += (j - i) as u64;
            i = j;
        }
        self.apply_policy()?;
        Ok(first..self.next_seq)
    }

    fn apply_policy(&mut self) -> Result<()> {
        match self.opts.sync {
            SyncPolicy::Manual => Ok(()),
            SyncPolicy::Always => self.sync(),
            SyncPolicy::EveryBytes(n) if self.unsynced_bytes >= n => self.sync(),
            SyncPolicy::EveryBytes(_) => Ok(()),
        }
    }

    /// Seals the current segment and starts a new one at `next_seq`.
    fn roll(&mut self) -> Result<()> {
        let reservation = self.seg.reservation();
        let mut seal_end = self.pos;
        if !self.sealed {
            if self.pos + FRAME_HEADER_LEN <= reservation {
                self.seg.grow_to(self.pos + FRAME_HEADER_LEN)?;
                let word = format::seal_word(self.seg.seed, self.next_seq);
                self.seg.store_head(self.pos, word, Ordering::Release)?;
                seal_end = self.pos + FRAME_HEADER_LEN;
            }
            self.sealed = true;
        } else if self.pos + FRAME_HEADER_LEN <= reservation {
            seal_end = self.pos + FRAME_HEADER_LEN;
        }
        let path = self.dir.join(dir::segment_name(self.next_seq));
        let mut seg = Segment::create(&path, self.next_seq, self.opts.segment_pages)?;
        seg.set_grow_pages(self.opts.grow_pages);
        let old = std::mem::replace(&mut self.seg, seg);
        tracing::debug!(sealed = %old.path.display(), new = %path.display(), next_seq = self.next_seq, "rolled to a new segment");
        self.pending.push((old.path.clone(), seal_end));
        self.pos = HEADER_LEN;
        self.synced_pos = 0;
        self.sealed = false;
        self.dir_dirty = true;
        Ok(())
    }

    /// The durability checkpoint: msync(MS_SYNC) of everything appended since the last sync
    /// (sealed segments first), and an fsync of the directory when a segment was created. When
    /// it returns Ok, every record appended before the call survives a power cut.
    ///
    /// # Errors
    /// The I/O error, after which the writer is poisoned: the kernel may have dropped the
    /// dirty pages it failed to write, so a later sync could "succeed" without them. Every
    /// later call returns [`Error::Poisoned`] until the log is reopened (and recovered).
    pub fn sync(&mut self) -> Result<()> {
        self.check_poisoned()?;
        if self.pending.is_empty()
            && !self.dir_dirty
            && self.synced_pos == self.pos
            && self.injected_sync_error.is_none()
        {
            return Ok(());
        }
        let started = std::time::Instant::now();
        match self.sync_inner() {
            Ok(()) => {
                tracing::debug!(
                    next_seq = self.next_seq,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "synced"
                );
                Ok(())
            }
            Err(e) => {
                let cause = match &e {
                    Error::Io { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                tracing::error!(error = %e, "sync failed; the writer is poisoned until the log is reopened");
                self.poisoned = Some(cause);
                Err(e)
            }
        }
    }

    fn sync_inner(&mut self) -> Result<()> {
        if let Some(e) = self.injected_sync_error.take() {
            return Err(Error::io("could not sync segment", &self.seg.path, e));
        }
        for (path, seal_end) in &self.pending {
            match Segment::open(path, true)? {
                crate::segment::Opened::Ready(seg) => {
                    seg.flush(*seal_end)
                        .map_err(|e| Error::io("could not sync segment", path, e))?;
                    seg.set_synced_mark(*seal_end)?;
                }
                crate::segment::Opened::Blank => {
                    return Err(Error::io(
                        "sealed segment lost its header:",
                        path,
                        io::Error::other("blank"),
                    ))
                }
            }
        }
        self.seg
            .flush(self.pos)
            .map_err(|e| Error::io("could not sync segment", &self.seg.path, e))?;
        if self.dir_dirty {
            dir::sync_dir(&self.dir)
                .map_err(|e| Error::io("could not sync log directory", &self.dir, e))?;
        }
        self.seg.set_synced_mark(self.pos)?;
        self.pending.clear();
        self.dir_dirty = false;
        self.synced_pos = self.pos;
        self.unsynced_bytes = 0;
        Ok(())
    }

    /// Syncs and closes the writer, releasing the lock. Dropping a writer without `close`
    /// releases the lock too but does not sync.
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub fn close(mut self) -> Result<()> {
        self.sync()
    }

    /// Test hook: the next `sync` fails with `error` as if msync had failed.
    #[doc(hidden)]
    pub fn inject_sync_error(&mut self, error: io::Error) {
        self.injected_sync_error = Some(error);
    }
}

/// Creates the log directory if missing (its parent must exist: a mistyped path should not
/// become a tree of directories), and makes its entry durable.
fn create_dir(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {
            let parent = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            dir::sync_dir(parent).map_err(|e| Error::io("could not sync directory", parent, e))?;
            tracing::debug!(dir = %dir.display(), "created log directory");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("could not create log directory", dir, e)),
    }
}
