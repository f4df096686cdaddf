//! The single writer: append, batch, sync, rollover.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::checkpoint::PoisonCause;
use crate::clock::Clock;
use crate::dir::{self, Lock};
use crate::error::{Error, Result};
use crate::format::{self, HEADER_LEN};
use crate::io::FileSystem;
use crate::options::{Options, SyncPolicy};
use crate::recovery;
use crate::segment::{page_size, ReadSegment, Segment, SegmentSync, WriteSegment};
use std::sync::Arc;

mod batch;
mod segments;
mod sync;
mod truncate;

/// How often a checkpoint also msyncs the active segment's header page, to make its synced
/// mark durable. The mark is stored at every checkpoint but written out with the data only
/// when this much time has passed since it was last written out (and at `close`, and for
/// every sealed segment): a durable append then costs one page written, not two. Between
/// those, the mark on disk lags: after a power cut, bit rot in synced data past it would be
/// taken for a torn tail (see `recovery`).
pub(crate) const MARK_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

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
    /// Stamps records with their append time.
    clock: Clock,
    /// Metric handles (feature `metrics`; empty without it).
    pub(crate) metrics: crate::metrics::WriterMetrics,
    /// The figures in the log's stats file (`applog::stats`).
    pub(crate) stats: crate::stats::Live,
    /// The log's metadata (`applog.meta`, see `meta`).
    pub(crate) meta: crate::meta::Store,
    /// Always `Some`, except after a failed `truncate_back` or `reset` (which poisons the
    /// writer).
    lock: Option<Lock>,
    /// Grows segments ahead of the data (see `Options::pretouch`); `None` when off.
    pretouch: Option<crate::pretouch::Pretoucher>,
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
    /// - [`Error::MetaCorrupt`] when the log's metadata file is damaged (nothing is changed);
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
        let span = tracing::info_span!(
            "applog.open",
            dir = %dir.display(),
            segments = tracing::field::Empty,
            first_seq = tracing::field::Empty,
            next_seq = tracing::field::Empty,
        );
        let _entered = span.enter();
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
        Self::open_locked(dir, opts, fs, lock, &span)
    }

    /// The rest of [`open`](Self::open), under the lock: recovery, then the writer's state.
    fn open_locked(
        dir: PathBuf,
        opts: Options,
        fs: Arc<dyn FileSystem>,
        lock: Lock,
        span: &tracing::Span,
    ) -> Result<Writer> {
        let page = page_size();
        // The log's metadata, before recovery changes anything: a damaged file stops the open
        // (a stored vote must not vanish).
        let meta = crate::meta::Store::load(&dir, Arc::clone(&fs))?;
        // List again under the lock: the previous holder may have changed things meanwhile.
        let listing = dir::list(&dir)?;
        let pages = segment_pages(&listing.segments, &opts, page)?;
        // A reset, or a cut of the log's end, that a crash interrupted is finished first.
        recovery::finish_reset(&dir, &listing.reset_dead, &fs)?;
        let entries = recovery::finish_cuts(&dir, listing.segments, pages, &fs)?;
        let segments = entries.len();
        span.record("segments", segments);
        let started = std::time::Instant::now();
        let recovering = tracing::info_span!(
            "applog.recover",
            dir = %dir.display(),
            segments,
            first_seq = tracing::field::Empty,
            next_seq = tracing::field::Empty,
            cut_bytes = tracing::field::Empty,
        );
        let rec = recovering.in_scope(|| recovery::recover_locked(&dir, &entries, pages, &fs))?;
        for s in [&recovering, span] {
            s.record("first_seq", rec.first_seq.min(rec.next_seq));
            s.record("next_seq", rec.next_seq);
        }
        if let Some((_, cut)) = &rec.cut {
            recovering.record("cut_bytes", cut);
        }
        drop(recovering);
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
        // No thread for a log whose segments are written with `pwrite` (btrfs): nothing of
        // them is pretouched.
        let pretouch = crate::pretouch::Pretoucher::start(if seg.by_pwrite() {
            0
        } else {
            opts.pretouch
                .unwrap_or_else(|| seg.auto_pretouch(!opts.fs.is_real()))
        });
        // The active segment is attached at its first growth (see `grow`): opening a log
        // changes no file's size.
        let synced_pos = seg.synced_mark().min(pos);
        // Durable at open: everything, unless recovery left sealed segments or a part of the
        // active one unsynced (a crash of the previous writer's process); then what the synced
        // marks say (a read of the newest synced part, which recovery just read).
        let durable = if rec.unsynced.is_empty() && synced_pos == pos {
            rec.next_seq
        } else {
            crate::durable_seq(&dir).unwrap_or(rec.first_seq)
        };
        let stats = crate::stats::Live::open(&dir, rec.next_seq, durable);
        tracing::debug!(dir = %dir.display(), segment = %seg.path().display(), next_seq = rec.next_seq, offset = pos, "writer opened");
        let layout = format::Layout::CURRENT;
        let mut max_record_len = (page * u64::from(pages))
            .saturating_sub(HEADER_LEN + layout.record_header_len())
            .min(layout.max_len());
        if pos == HEADER_LEN {
            // The segment to append to holds no record (and may be older and smaller than
            // the options say): a record that does not fit in it cannot roll to a new segment,
            // which would have the same name. Its capacity is the limit.
            max_record_len = max_record_len.min(seg.header().max_record_len());
        }
        let clock = Clock::starting_at(rec.last_time, opts.record_time);
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
            clock,
            metrics,
            stats,
            meta,
            lock: Some(lock),
            pretouch,
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
        let time = self.clock.now();
        self.append_stamped(record, time)
    }

    /// As [`append`](Self::append), stamped `time` (nanoseconds since the Unix epoch; 0: no
    /// time), for a copy that keeps the times of the records it copies. A time below the last
    /// one given is raised to it, as for a clock that stepped back.
    pub(crate) fn append_at(&mut self, record: &[u8], time: u64) -> Result<u64> {
        let time = if time == 0 { 0 } else { self.clock.at(time) };
        self.append_stamped(record, time)
    }

    #[inline]
    fn append_stamped(&mut self, record: &[u8], time: u64) -> Result<u64> {
        self.check_poisoned()?;
        self.check_len(record.len())?;
        self.check_seqs(1)?;
        let mut flen = self.seg.frame_len(record.len() as u64);
        if self.pos + flen > self.seg.reservation() {
            self.roll()?;
            // The new segment may be of a newer layout than the one it follows.
            flen = self.seg.frame_len(record.len() as u64);
        }
        let off = self.pos;
        let end = off + flen;
        if self.seg.needs_growth(end) {
            self.grow(off, end)?;
        }
        let seq = self.next_seq;
        // On an error there is nothing to take back: no frame after this one was staged, and
        // the next write starts at `off` again (payload, then header), so what this one left
        // there is overwritten before anything past it is published.
        self.seg
            .write_body(off, seq, time, false, record)
            .and_then(|word| self.seg.publish(off, word, end, Ordering::Release))?;
        self.wake_readers();
        self.pos = end;
        self.next_seq = seq + 1;
        self.unsynced_bytes += flen;
        self.metrics.appended(1, record.len() as u64);
        self.stats.appended(seq, seq + 1, record.len() as u64);
        tracing::debug!(seq, bytes = record.len(), "appended");
        self.apply_policy()?;
        Ok(seq)
    }

    /// Bytes of frames appended since the last sync.
    pub(crate) fn unsynced_bytes(&self) -> u64 {
        self.unsynced_bytes
    }

    /// Makes room in the active segment for a write `[pos, end)`: attaches the segment to the
    /// pretoucher first if it is not yet (a new segment, after a rollover, a cut or a reset).
    #[cold]
    fn grow(&mut self, pos: u64, end: u64) -> Result<()> {
        if let Some(p) = &self.pretouch {
            if !self.seg.attached() {
                self.seg.attach(p.link(), pos);
            }
        }
        self.seg.grow_for(pos, end)
    }

    /// Wakes readers that wait on the active segment's wake word, if any (see `notify`): one
    /// atomic read-modify-write when nobody waits (on btrfs, a fence and a load).
    #[inline]
    fn wake_readers(&self) {
        self.seg.wake_readers();
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

    /// Whether every record appended so far is durable (nothing left for a sync to do).
    fn all_durable(&self) -> bool {
        self.poisoned.is_none()
            && self.pending.is_empty()
            && self.synced_pos == self.pos
            && self.dir_synced_gen == self.dir_gen
    }
}

impl Drop for Writer {
    /// Publishes the final figures to the stats file, and whether the writer let go with
    /// every record durable, before the lock is released.
    fn drop(&mut self) {
        // The pretoucher first: nothing grows a file once the lock is released.
        self.seg.detach();
        self.pretouch = None;
        let all_durable = self.all_durable();
        self.stats.release(self.next_seq, all_durable);
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
pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
