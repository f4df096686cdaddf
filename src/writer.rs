//! The single writer: append, batch, sync, rollover.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::checkpoint::{PoisonCause, SyncPlan};
use crate::dir::{self, Lock};
use crate::error::{Error, Result};
use crate::format::{self, FRAME_HEADER_LEN, HEADER_LEN};
use crate::io::FileSystem;
use crate::options::{Options, SyncPolicy};
use crate::recovery;
use crate::segment::{page_size, ReadSegment, Segment, SegmentSync, WriteSegment};
use std::sync::Arc;

/// How often a checkpoint also msyncs the active segment's header page, to make its synced
/// mark durable. The mark is stored at every checkpoint but written out with the data only
/// when this much time has passed since it was last written out (and at `close`, and for
/// every sealed segment): a durable append then costs one page written, not two. Between
/// those, the mark on disk lags: after a power cut, bit rot in synced data past it would be
/// taken for a torn tail (see `recovery`).
const MARK_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

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
/// assert_eq!(log.append(b"hello")?, 0); // readers see it now
/// assert_eq!(log.append(b"world")?, 1);
/// assert_eq!(applog::durable_seq(dir.path())?, 0); // but a power cut could take both
/// log.sync()?;
/// assert_eq!(applog::durable_seq(dir.path())?, 2); // both records are durable now
/// log.close()?; // sync, then release the lock
/// # Ok(()) }
/// ```
pub struct Writer {
    dir: PathBuf,
    opts: Options,
    /// Pages of each new segment: the log's segment size (see `Options::segment_pages`).
    segment_pages: u32,
    seg: WriteSegment,
    fs: Arc<dyn FileSystem>,
    /// Offset of the next frame in `seg`.
    pos: u64,
    next_seq: u64,
    first_seq: u64,
    /// The largest record accepted: what one new segment holds.
    max_record_len: u64,
    /// Offset in `seg` up to which frames are durable.
    synced_pos: u64,
    /// The synced mark of `seg` last made durable (0 when unknown), and when.
    mark_flushed: u64,
    mark_flushed_at: Instant,
    /// Bytes of frames appended since the last sync (for `SyncPolicy::EveryBytes`).
    unsynced_bytes: u64,
    /// Sealed segments not yet made durable, each up to the end of its seal. Each keeps its
    /// mapping (not its file descriptor) until a sync flushed it.
    pending: Vec<SegmentSync>,
    /// Counts segments created or removed; the directory was last fsynced at `dir_synced_gen`.
    dir_gen: u64,
    dir_synced_gen: u64,
    poisoned: Option<PoisonCause>,
    injected_sync_error: Option<io::Error>,
    /// Flushes slower than `Options::slow_sync`.
    slow_syncs: u64,
    /// Metric handles (feature `metrics`; empty without it).
    pub(crate) metrics: crate::metrics::WriterMetrics,
    _lock: Lock,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("dir", &self.dir)
            .field("segment", &self.seg.path())
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
    ///   is an `flock` on the log directory and on the lock file, released when the writer
    ///   is dropped (deleting the lock file does not free the log). A child process that
    ///   this process forks keeps a copy of the lock until it calls `exec`: reopening a log
    ///   while spawning processes waits that out (up to 2 s) instead of failing;
    /// - [`Error::NotALog`] when `dir` is a file, a non-empty directory without a log, or holds
    ///   a segment file without the applog magic;
    /// - [`Error::Corrupt`] when a frame inside data that had been synced is damaged (nothing
    ///   is changed);
    /// - [`Error::InvalidOptions`], [`Error::Io`], [`Error::NoSpace`].
    ///
    /// # Example
    /// ```
    /// use applog::{Error, Options, Writer};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = Writer::open(dir.path(), Options::default())?; // creates the log
    /// log.append(b"a")?;
    ///
    /// // One writer per log: a second one, in this process or another, is refused at once.
    /// let second = Writer::open(dir.path(), Options::default());
    /// assert!(matches!(second, Err(Error::Locked { .. })));
    ///
    /// drop(log); // releases the lock (without a sync)
    /// let mut log = Writer::open(dir.path(), Options::default())?; // recovers the log
    /// assert_eq!(log.append(b"b")?, 1); // and appends after its last record
    /// # Ok(()) }
    /// ```
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Writer> {
        if let SyncPolicy::Interval(_) = opts.sync {
            return Err(Error::InvalidOptions(
                "SyncPolicy::Interval needs a background thread: open a SharedWriter".into(),
            ));
        }
        Self::open_inner(dir, opts)
    }

    /// [`open`](Self::open) for any sync policy (the caller handles `Interval`).
    pub(crate) fn open_inner(dir: impl AsRef<Path>, opts: Options) -> Result<Writer> {
        let dir = dir.as_ref().to_owned();
        let page = page_size();
        opts.validate(page)?;
        let fs = Arc::clone(&opts.fs.0);
        create_dir(&dir, &*fs)?;
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
                ReadSegment::open(&entry.path)?;
            }
        }
        let lock = Lock::acquire(&dir, &*fs)?;
        // List again under the lock: the previous holder may have changed things meanwhile.
        let listing = dir::list(&dir)?;
        let segments = listing.segments.len();
        let started = std::time::Instant::now();
        let pages = segment_pages(&listing.segments, &opts, page)?;
        let rec = recovery::recover_locked(&dir, &listing.segments, pages, &fs)?;
        tracing::debug!(
            dir = %dir.display(),
            segments,
            first_seq = rec.first_seq,
            next_seq = rec.next_seq,
            elapsed_us = micros(started.elapsed()),
            "recovered"
        );
        crate::metrics::recovered(&dir, started.elapsed(), rec.cut.as_ref().map(|c| c.1));
        let metrics = crate::metrics::WriterMetrics::new(&dir, rec.next_seq);
        // The log's identity, created with the log (or on the first open by a version that
        // has identities). A damaged identity file does not stop the writer: what needs the
        // identity (shipping) reports it.
        if let Err(e) = crate::identity::log_id(&dir) {
            tracing::warn!(dir = %dir.display(), "no log identity: {e}");
        }
        let (seg, pos) = if let Some(active) = rec.active {
            active
        } else {
            let path = dir.join(dir::segment_name(rec.next_seq));
            let seg = WriteSegment::create(&path, rec.next_seq, pages, &fs, true)?;
            metrics.segment_created();
            (seg, HEADER_LEN)
        };
        let mut seg = seg;
        seg.set_grow_pages(opts.grow_pages);
        let synced_pos = seg.synced_mark().min(pos);
        tracing::debug!(dir = %dir.display(), segment = %seg.path().display(), next_seq = rec.next_seq, offset = pos, "writer opened");
        let mut max_record_len =
            (page * u64::from(pages)).saturating_sub(HEADER_LEN + FRAME_HEADER_LEN);
        if pos == HEADER_LEN {
            // The segment to append to holds no record (and may be older and smaller than
            // the options say): a record that does not fit in it cannot roll to a new segment,
            // which would have the same name. Its capacity is the limit.
            max_record_len = max_record_len.min(seg.header().max_record_len());
        }
        Ok(Writer {
            first_seq: rec.first_seq.min(rec.next_seq),
            max_record_len,
            dir,
            opts,
            segment_pages: pages,
            seg,
            fs,
            pos,
            next_seq: rec.next_seq,
            synced_pos,
            mark_flushed: 0,
            mark_flushed_at: Instant::now(),
            unsynced_bytes: 0,
            pending: rec.unsynced,
            // The previous writer may have created segments without fsyncing the directory
            // (a crash): the first sync fsyncs it whatever this open did.
            dir_gen: 1,
            dir_synced_gen: 0,
            poisoned: None,
            injected_sync_error: None,
            slow_syncs: 0,
            metrics,
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

    /// The log's segment size in pages: what new segments get (see
    /// [`Options::segment_pages`]).
    pub fn segment_pages(&self) -> u32 {
        self.segment_pages
    }

    /// The largest record this writer accepts: what one segment of the log's segment size
    /// (see [`Options::segment_pages`]) can hold (reservation minus 72 bytes of headers), or less
    /// when the log's newest segment holds no record yet and was created smaller: records
    /// must then fit in it.
    pub fn max_record_len(&self) -> u64 {
        self.max_record_len
    }

    pub(crate) fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(cause.error()),
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

    /// Refuses to hand out seqs past `u64::MAX` (reachable only from a damaged or crafted
    /// segment name).
    fn check_seqs(&self, n: u64) -> Result<()> {
        match self.next_seq.checked_add(n) {
            Some(_) => Ok(()),
            None => Err(crate::recovery::seq_overflow(self.seg.path(), self.pos)),
        }
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
        self.check_seqs(1)?;
        let flen = format::frame_len(record.len() as u64);
        if self.pos + flen > self.seg.reservation() {
            self.roll()?;
        }
        let off = self.pos;
        let end = off + flen;
        if end > self.seg.size() {
            self.seg.grow_to(end)?;
        }
        let seq = self.next_seq;
        // On an error there is nothing to take back: no frame after this one was staged, and
        // the next write starts at `off` again (payload, then header), so what this one left
        // there is overwritten before anything past it is published.
        self.seg
            .write_payload(off, seq, record)
            .and_then(|word| self.seg.publish(off, word, end, Ordering::Release))?;
        self.wake_readers();
        self.pos = end;
        self.next_seq = seq + 1;
        self.unsynced_bytes += flen;
        self.metrics.appended(1, record.len() as u64);
        tracing::debug!(seq, bytes = record.len(), "appended");
        self.apply_policy()?;
        Ok(seq)
    }

    /// Appends many records and returns their seqs. Records that land in the same segment are
    /// written with one growth step and published together with one release store, so a reader
    /// sees either none or all of them. A batch that spans a rollover is published in one
    /// piece per segment.
    ///
    /// # Crashes and power cuts
    /// A batch is **not** a transaction on disk. Until a sync covers it ([`sync`](Self::sync),
    /// the [`SyncPolicy`], [`SharedWriter::wait_durable`](crate::SharedWriter::wait_durable)),
    /// a power cut or a kernel crash can leave **any prefix** of it: none, some or all of its
    /// records. The kernel writes dirty pages back in any order, and recovery keeps the records
    /// up to the first one that did not reach the disk and cuts the rest. Once a sync returned
    /// Ok, the whole batch survives.
    ///
    /// A crash of this process (`kill -9`, a panic) after `append_batch` returned loses none
    /// of it. During the call, a batch whose records all land in one segment survives whole or
    /// not at all; one that spans a rollover can keep the records it published in the segments
    /// before.
    ///
    /// To apply a batch all or nothing after a power cut, put it in one record, or end it with
    /// a record of your own that marks it complete and ignore an unfinished batch on replay.
    ///
    /// # Errors
    /// As [`append`](Self::append). Sizes are checked before anything is written; if growing
    /// or rolling fails midway, the records before the failure are appended (see
    /// [`next_seq`](Self::next_seq)) and the rest are not.
    ///
    /// # Example
    /// ```
    /// use applog::{Options, Reader, Writer};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = Writer::open(dir.path(), Options::default())?;
    /// log.append(b"begin")?;
    /// let lines = vec!["one".to_string(), "two".into(), "three".into()]; // any AsRef<[u8]>
    /// let seqs = log.append_batch(&lines)?;
    /// assert_eq!(seqs, 1..4);
    /// log.sync()?; // the whole batch survives a power cut from here on
    ///
    /// let mut reader = Reader::open(dir.path())?;
    /// reader.seek(seqs.start)?;
    /// assert_eq!(reader.next()?.unwrap().data(), b"one");
    /// # Ok(()) }
    /// ```
    pub fn append_batch<B: AsRef<[u8]>>(&mut self, records: &[B]) -> Result<Range<u64>> {
        self.check_poisoned()?;
        for r in records {
            self.check_len(r.as_ref().len())?;
        }
        self.check_seqs(records.len() as u64)?;
        let first = self.next_seq;
        let mut i = 0;
        while i < records.len() {
            let reservation = self.seg.reservation();
            let mut end = self.pos;
            let mut j = i;
            let mut payload = 0;
            while let Some(r) = records.get(j) {
                let flen = format::frame_len(r.as_ref().len() as u64);
                if end + flen > reservation {
                    break;
                }
                end += flen;
                payload += r.as_ref().len() as u64;
                j += 1;
            }
            if j == i {
                self.roll()?;
                continue;
            }
            if end > self.seg.size() {
                self.seg.grow_to(end)?;
            }
            let start = self.pos;
            if let Err(e) = self.write_frames(start, end, &records[i..j]) {
                return Err(self.take_back(start, end, e));
            }
            self.wake_readers();
            self.unsynced_bytes += end - start;
            self.metrics.appended((j - i) as u64, payload);
            self.pos = end;
            self.next_seq += (j - i) as u64;
            i = j;
        }
        tracing::debug!(
            first_seq = first,
            records = self.next_seq - first,
            "appended a batch"
        );
        self.metrics.batch(records.len());
        self.apply_policy()?;
        Ok(first..self.next_seq)
    }

    /// Bytes of frames appended since the last sync.
    pub(crate) fn unsynced_bytes(&self) -> u64 {
        self.unsynced_bytes
    }

    /// Retention: removes the oldest segments while every record they hold is below `seq`
    /// (whole files, with `unlink`; a file is never shrunk), then fsyncs the directory.
    /// Returns the new [`first_seq`](Self::first_seq). The active segment is never removed,
    /// nor any segment holding a record at or after `seq`, so the log keeps at least the
    /// records from `seq` on (and usually some before it: removal goes by whole segments).
    ///
    /// Records a [`Consumer`](crate::Consumer) has not committed are kept: removal stops at
    /// the slowest consumer's position (a parked consumer excepted).
    ///
    /// Readers that have a removed segment open keep reading it (an unlinked file stays
    /// mapped); a reader that reaches a removed segment later gets [`Error::SeqBeforeStart`].
    ///
    /// # Errors
    /// [`Error::ConsumerCorrupt`] when a consumer's file is damaged (nothing is removed);
    /// [`Error::Io`] when a file cannot be removed (those before it are gone) or the directory
    /// cannot be listed or fsynced; a failed directory fsync poisons the writer, like a failed
    /// sync. [`Error::Poisoned`] after a failed sync.
    ///
    /// # Example
    /// ```
    /// use applog::{Error, Options, Reader, Writer};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = Writer::open(dir.path(), Options::new().segment_pages(1))?;
    /// let record = vec![0u8; log.max_record_len() as usize / 2 + 8]; // one per segment
    /// for _ in 0..4 {
    ///     log.append(&record)?;
    /// }
    /// assert_eq!(log.truncate_front(3)?, 3); // records 0, 1 and 2 are gone
    ///
    /// let mut reader = Reader::open(dir.path())?; // starts at the first record left
    /// assert_eq!(reader.next()?.map(|r| r.seq()), Some(3));
    /// assert!(matches!(reader.seek(0), Err(Error::SeqBeforeStart { first_seq: 3, .. })));
    /// # Ok(()) }
    /// ```
    pub fn truncate_front(&mut self, seq: u64) -> Result<u64> {
        self.retain(Some(seq), &crate::Retention::new())
    }

    /// One retention pass (see `retention::run`) to `target` and `policy`, as this writer.
    fn retain(&mut self, target: Option<u64>, policy: &crate::Retention) -> Result<u64> {
        self.check_poisoned()?;
        let started = std::time::Instant::now();
        let active = self.seg.header().base_seq;
        let pass = crate::retention::Pass {
            target,
            needs_consumer: false,
            policy,
            dry_run: false,
            writer: Some((active, self.next_seq, self.pos)),
        };
        let (report, failed) = crate::retention::run(&self.dir, &self.fs, &pass);
        let removed = report.removed.len() as u64;
        if removed > 0 {
            self.dir_gen += 1;
            self.first_seq = self.first_seq.max(report.first_seq.min(self.next_seq));
            if let Err(e) = self.fs.sync_dir(&self.dir) {
                let e = Error::io("could not sync log directory", &self.dir, e);
                self.poison(&e);
                return Err(e);
            }
            self.dir_synced_gen = self.dir_gen;
        }
        if let Some(e) = failed {
            return Err(e);
        }
        tracing::debug!(
            up_to = target,
            segments = removed,
            first_seq = self.first_seq,
            held_back_by = report.held_back_by.as_deref(),
            elapsed_us = micros(started.elapsed()),
            "truncated the log front"
        );
        Ok(self.first_seq)
    }

    /// The writer's retention policy, after a rollover. A failure is logged, not returned:
    /// the append that rolled succeeded (a failed directory sync poisons the writer, so the
    /// next call reports it).
    fn apply_retention(&mut self) {
        let Some(policy) = self.opts.retention.clone() else {
            return;
        };
        if let Err(e) = self.retain(None, &policy) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "retention failed");
        }
    }

    /// Refuses to start a segment while free space is below the policy's floor, after one
    /// more retention pass.
    fn check_free_space(&mut self) -> Result<()> {
        let Some(floor) = self.opts.retention.as_ref().and_then(|r| r.min_free_bytes) else {
            return Ok(());
        };
        let free = |dir: &Path| -> Result<u64> {
            let st = rustix::fs::statvfs(dir)
                .map_err(|e| Error::io("could not statvfs", dir, e.into()))?;
            Ok(st.f_bavail.saturating_mul(st.f_frsize))
        };
        if free(&self.dir)? >= floor {
            return Ok(());
        }
        self.apply_retention();
        let now = free(&self.dir)?;
        if now >= floor {
            return Ok(());
        }
        Err(Error::FreeSpaceFloor {
            path: self.dir.clone(),
            free: now,
            floor,
        })
    }

    fn apply_policy(&mut self) -> Result<()> {
        match self.opts.sync {
            SyncPolicy::Always => self.sync(),
            SyncPolicy::EveryBytes(n) if self.unsynced_bytes >= n => self.sync(),
            SyncPolicy::Manual | SyncPolicy::EveryBytes(_) | SyncPolicy::Interval(_) => Ok(()),
        }
    }

    /// Starts a new segment at `next_seq` and seals the current one.
    ///
    /// The new segment is created (header complete and durable) before the seal is
    /// published, so a reader that sees the seal can always open the successor, and the readers waiting on the old
    /// segment's wake word are woken by the seal itself. A crash between the two leaves an
    /// unsealed segment followed by its successor: recovery rewrites the seal.
    fn roll(&mut self) -> Result<()> {
        self.check_free_space()?;
        self.roll_inner()?;
        if self.opts.retention.is_some() {
            self.apply_retention();
        }
        Ok(())
    }

    fn roll_inner(&mut self) -> Result<()> {
        let seal_at = (self.pos + FRAME_HEADER_LEN <= self.seg.reservation()).then_some(self.pos);
        if let Some(at) = seal_at {
            // Make room for the seal first: once the successor exists, sealing cannot fail.
            self.seg.grow_to(at + FRAME_HEADER_LEN)?;
        }
        let path = self.dir.join(dir::segment_name(self.next_seq));
        // After a seal the header needs no msync of its own (see `WriteSegment::write_header`);
        // after a segment full to its last byte, nothing vouches for it but the msync.
        let mut seg = WriteSegment::create(
            &path,
            self.next_seq,
            self.segment_pages,
            &self.fs,
            seal_at.is_none(),
        )?;
        seg.set_grow_pages(self.opts.grow_pages);
        self.metrics.segment_created();
        if let Some(at) = seal_at {
            if let Err(e) = self.seg.seal(at, self.next_seq) {
                // Nothing was published in the successor: take it back so a retry starts clean.
                let _ = self.fs.remove_file(&path);
                return Err(e);
            }
            self.wake_readers();
        }
        let seal_end = seal_at.map_or(self.pos, |at| at + FRAME_HEADER_LEN);
        let old = std::mem::replace(&mut self.seg, seg);
        tracing::debug!(sealed = %old.path().display(), new = %path.display(), next_seq = self.next_seq, "rolled to a new segment");
        // A sealed segment's final mark is made durable by the checkpoint that covers the
        // seal: damage in an older segment must never pass for a torn tail (recovery would
        // then remove the newer segments).
        // Detached: a sealed segment keeps no mapping or file open until the checkpoint.
        self.pending
            .push(old.sync_handle(self.synced_pos, seal_end, true).detached());
        self.pos = HEADER_LEN;
        self.synced_pos = 0;
        self.mark_flushed = 0;
        self.dir_gen += 1;
        Ok(())
    }

    /// Writes the frames of `records` from `start` (ending at `end`, all in the active
    /// segment) and publishes them together: the first frame's header last.
    fn write_frames<B: AsRef<[u8]>>(&self, start: u64, end: u64, records: &[B]) -> Result<()> {
        // Write every frame but publish the first one last: readers stop at the first
        // empty header, so the Release store of the first header publishes them all.
        let mut off = start;
        let mut first_word = 0;
        for (k, r) in records.iter().enumerate() {
            let r = r.as_ref();
            let seq = self.next_seq + k as u64;
            let word = self.seg.write_payload(off, seq, r)?;
            if k == 0 {
                first_word = word;
            } else {
                self.seg.stage(off, word)?;
            }
            off += format::frame_len(r.len() as u64);
        }
        self.seg.publish(start, first_word, end, Ordering::Release)
    }

    /// After writing the unpublished frames `[from, to)` of a batch failed (only a segment
    /// written with `pwrite` can fail there, e.g. with `NoSpace`): zeroes what was written, so
    /// that a later append never publishes a frame in front of a frame header the batch had
    /// staged; the writer is poisoned if even that fails. Returns the error to report.
    #[cold]
    fn take_back(&mut self, from: u64, to: u64, e: Error) -> Error {
        if let Err(again) = self.seg.discard_unpublished(from, to) {
            tracing::error!(error = %again, "could not take back a failed append; the writer is poisoned until the log is reopened");
            self.poisoned = Some(PoisonCause::of(&again));
        }
        e
    }

    /// Wakes readers that wait on the active segment's wake word, if any (see `notify`): one
    /// atomic read-modify-write when nobody waits (on btrfs, a fence and a load).
    #[inline]
    fn wake_readers(&self) {
        self.seg.wake_readers();
    }

    /// The durability checkpoint: `msync(MS_SYNC)` of everything appended since the last sync
    /// (sealed segments first), and an fsync of the directory when a segment was created. When
    /// it returns Ok, every record appended before the call survives a power cut.
    ///
    /// # Errors
    /// The I/O error, after which the writer is poisoned: the kernel may have dropped the
    /// dirty pages it failed to write, so a later sync could "succeed" without them. Every
    /// later call returns [`Error::Poisoned`] until the log is reopened (and recovered).
    pub fn sync(&mut self) -> Result<()> {
        let Some(mut plan) = self.capture_sync()? else {
            return Ok(());
        };
        let outcome = plan.run();
        self.publish_sync(plan, outcome)
    }

    /// Makes the active segment's synced mark durable if the last checkpoints left it only in
    /// the page cache (see [`MARK_FLUSH_INTERVAL`]). For `close`.
    pub(crate) fn flush_mark(&mut self) -> Result<()> {
        self.check_poisoned()?;
        if self.mark_flushed >= self.synced_pos {
            return Ok(());
        }
        let handle = self.seg.sync_handle(self.synced_pos, self.synced_pos, true);
        match handle.mark_synced() {
            Ok(()) => {
                self.mark_flushed = self.synced_pos;
                self.mark_flushed_at = Instant::now();
                Ok(())
            }
            Err(e) => {
                self.poison(&e);
                Err(e)
            }
        }
    }

    /// Sync, step 1 of 3 (under the writer's lock, in a [`SharedWriter`](crate::SharedWriter)):
    /// what the checkpoint must flush to make every record appended so far durable. `None`
    /// when that is already so.
    pub(crate) fn capture_sync(&mut self) -> Result<Option<SyncPlan>> {
        self.check_poisoned()?;
        if self.pending.is_empty()
            && self.dir_synced_gen == self.dir_gen
            && self.synced_pos == self.pos
            && self.injected_sync_error.is_none()
        {
            return Ok(None);
        }
        let started = Instant::now();
        let flush_mark = started.duration_since(self.mark_flushed_at) >= MARK_FLUSH_INTERVAL;
        Ok(Some(SyncPlan {
            sealed: std::mem::take(&mut self.pending),
            active: self.seg.sync_handle(self.synced_pos, self.pos, flush_mark),
            active_base: self.seg.header().base_seq,
            fs: Arc::clone(&self.fs),
            dir: (self.dir_synced_gen != self.dir_gen).then(|| self.dir.clone()),
            dir_gen: self.dir_gen,
            next_seq: self.next_seq,
            unsynced_bytes: self.unsynced_bytes,
            injected: self.injected_sync_error.take(),
            started,
            flushed_in: Duration::ZERO,
        }))
    }

    /// Sync, step 3 of 3 (under the lock again): records what the flush made durable, or
    /// poisons the writer when it failed. Appends, rolls and retention may have happened
    /// since the capture; only what the plan covered is marked synced.
    #[allow(clippy::needless_pass_by_value)] // the plan is spent: no second publish of it
    pub(crate) fn publish_sync(&mut self, plan: SyncPlan, outcome: Result<()>) -> Result<()> {
        if plan.was_slow(self.opts.slow_sync, outcome.is_ok()) {
            self.slow_syncs += 1;
            self.metrics.slow_sync();
        }
        match outcome {
            Ok(()) => {
                self.metrics.synced(plan.next_seq, plan.flushed_in);
                self.dir_synced_gen = self.dir_synced_gen.max(plan.dir_gen);
                if self.seg.header().base_seq == plan.active_base {
                    self.synced_pos = self.synced_pos.max(plan.active.end);
                    if plan.active.flush_mark {
                        self.mark_flushed = self.mark_flushed.max(plan.active.end);
                        self.mark_flushed_at = plan.started;
                    }
                }
                self.unsynced_bytes = self.unsynced_bytes.saturating_sub(plan.unsynced_bytes);
                tracing::debug!(
                    durable_seq = plan.next_seq,
                    sealed_segments = plan.sealed.len(),
                    active_end = plan.active.end,
                    dir_fsync = plan.dir.is_some(),
                    mark_flushed = plan.active.flush_mark,
                    elapsed_us = micros(plan.started.elapsed()),
                    "synced"
                );
                Ok(())
            }
            Err(e) => {
                self.metrics.sync_failed();
                self.poison(&e);
                Err(e)
            }
        }
    }

    /// How many syncs took longer than [`Options::slow_sync`] since the writer was opened
    /// (each was logged with `tracing::warn!`).
    pub fn slow_syncs(&self) -> u64 {
        self.slow_syncs
    }

    fn poison(&mut self, e: &Error) {
        tracing::error!(error = %e, "sync failed; the writer is poisoned until the log is reopened");
        self.poisoned = Some(PoisonCause::of(e));
    }

    /// Syncs and closes the writer, releasing the lock; also makes the active segment's synced
    /// mark durable (a checkpoint writes it out only about once a second). Dropping a writer
    /// without `close` releases the lock too but does not sync.
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub fn close(mut self) -> Result<()> {
        self.sync()?;
        self.flush_mark()
    }

    /// Test hook: the next `sync` fails with `error` as if msync had failed.
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_sync_error(&mut self, error: io::Error) {
        self.injected_sync_error = Some(error);
    }
}

/// The log's segment size: the newest segment's, unless the options set one (then that, from
/// the next segment on); 1000 pages for a new log.
fn segment_pages(entries: &[dir::Entry], opts: &Options, page: u64) -> Result<u32> {
    let logs = entries
        .iter()
        .rev()
        .find_map(|e| match ReadSegment::open(&e.path) {
            Ok(crate::segment::Opened::Ready(seg)) => Some(seg.header().segment_pages),
            _ => None,
        });
    let pages = match (opts.segment_pages, logs) {
        (Some(set), Some(log)) if set != log => {
            tracing::info!(
                from = log,
                to = set,
                "the log's segment size changes from its next segment on"
            );
            set
        }
        (Some(set), _) => set,
        (None, Some(log)) => log,
        (None, None) => crate::options::DEFAULT_SEGMENT_PAGES,
    };
    opts.validate_pages(pages, page)?;
    Ok(pages)
}

/// Creates the log directory if missing (its parent must exist: a mistyped path should not
/// become a tree of directories), and makes its entry durable.
fn create_dir(dir: &Path, fs: &dyn FileSystem) -> Result<()> {
    match fs.create_dir(dir) {
        Ok(()) => {
            let parent = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            fs.sync_dir(parent)
                .map_err(|e| Error::io("could not sync directory", parent, e))?;
            tracing::debug!(dir = %dir.display(), "created log directory");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::create("could not create log directory", dir, e)),
    }
}

/// A duration in whole microseconds, for events.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
