//! Readers: lock-free, read-only, usable from any process while a writer appends.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;

use crate::dir;
use crate::error::{Error, Result};
use crate::format::{self, Frame, HEADER_LEN};
use crate::recovery::Link;
use crate::segment::{Opened, ReadSegment, Segment};

mod batch;
mod chain;
mod cut;
mod time;

/// A record read from the log: its seq and a zero-copy borrow of its bytes in the mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    seq: u64,
    data: &'a [u8],
    time: u64,
}

impl<'a> Record<'a> {
    /// The record's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When the record was appended: the writer's wall-clock time, in nanoseconds since the
    /// Unix epoch, stored with it. `None` for a record written by a version of applog before
    /// records carried their time (a version-1 segment), or copied from one.
    ///
    /// Times never decrease along a log: a writer whose clock stepped back stamps its records
    /// with the last time it used until the clock catches up.
    pub fn time_ns(&self) -> Option<u64> {
        (self.time != 0).then_some(self.time)
    }

    /// [`time_ns`](Self::time_ns) as a `SystemTime`.
    pub fn time(&self) -> Option<std::time::SystemTime> {
        self.time_ns()
            .map(|ns| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
    }

    /// The record's bytes, borrowed from the shared mapping (they are never written again).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

/// Reads a log, in seq order, from this or any other process, while a writer appends.
///
/// A reader takes no lock, maps segments read-only, never blocks the writer, never reads past
/// the file size it has observed, and checks every CRC before it yields a record. It follows
/// the log across segment files. When it has read everything there is, [`next`](Self::next)
/// returns `Ok(None)`; call it again later to get records appended since.
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut writer = applog::Writer::open(dir.path(), applog::Options::default())?;
/// writer.append_batch(&[&b"a"[..], b"b"])?;
///
/// let mut reader = applog::Reader::open(dir.path())?; // no lock: any process can
/// let mut seen = Vec::new();
/// while let Some(rec) = reader.next()? {
///     seen.push((rec.seq(), rec.data().to_vec())); // data() borrows the mapping
/// }
/// assert_eq!(seen, [(0, b"a".to_vec()), (1, b"b".to_vec())]);
///
/// writer.append(b"c")?; // Ok(None) meant "nothing more yet"
/// assert_eq!(reader.next()?.map(|r| r.seq()), Some(2));
/// reader.seek(1)?; // back (or ahead) to any seq still in the log
/// assert_eq!(reader.next()?.unwrap().data(), b"b");
/// # Ok(()) }
/// ```
pub struct Reader {
    dir: PathBuf,
    seg: Option<ReadSegment>,
    /// Offset of the next frame in `seg`.
    off: u64,
    /// Seq of the next frame.
    next_seq: u64,
    /// Offset in `seg` after the last batch (run of frames with `MORE`) known to be whole:
    /// frames of that batch are yielded without walking it again.
    run_end: u64,
    /// Records below this seq are read but not yielded (a `seek` past the end).
    skip_until: u64,
    /// Yield only durable records: those that end at or below their segment's synced mark.
    durable_only: bool,
    /// Records appended before this time (ns since the epoch) are read but not yielded (a
    /// `seek_time` past the last record); 0 once one at or after it was yielded.
    skip_before: u64,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("dir", &self.dir)
            .field("segment", &self.seg.as_ref().map(Segment::path))
            .field("next_seq", &self.next_seq.max(self.skip_until))
            .finish_non_exhaustive()
    }
}

/// Where a record that `advance` found lies in the current segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct At {
    off: u64,
    len: u64,
    seq: u64,
    time: u64,
}

/// Where `next` found the next record.
enum Step {
    Yield(At),
    Nothing,
}

impl Reader {
    /// Opens the log in `dir` for reading, positioned at its first record.
    ///
    /// # Errors
    /// [`Error::Io`] (`NotFound`) when `dir` does not exist; [`Error::NotALog`] when it is not
    /// a log directory or one of its segment files is not an applog segment (or not a regular
    /// file); [`Error::Corrupt`] when a segment's header is damaged.
    pub fn open(dir: impl AsRef<Path>) -> Result<Reader> {
        let dir = dir.as_ref().to_owned();
        let listing = dir::list_log(&dir)?;
        // Every segment's header, one file at a time: a damaged or foreign segment anywhere
        // in the log stops the reader now, not only when (if) it gets there.
        for (i, e) in listing.segments.iter().enumerate() {
            match ReadSegment::open(&e.path) {
                Ok(Opened::Headless) => {
                    // A crash can leave a segment so only while no checkpoint vouches for
                    // the segment before (see `recovery::analyze`; `verify` and the writer
                    // judge the cases in between, such as a torn tail across segments).
                    let prev = i.checked_sub(1).and_then(|p| listing.segments.get(p));
                    let vouched = match prev {
                        Some(p) => crate::recovery::link(p, e.base, false)? == Link::Proven,
                        None => true,
                    };
                    if vouched {
                        return Err(headless_error(&e.path));
                    }
                }
                Ok(_) => {}
                // Removed by retention since the listing.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let mut first = listing.segments.first().map_or(0, |e| e.base);
        let mut r = Reader {
            dir,
            seg: None,
            off: HEADER_LEN,
            next_seq: first,
            run_end: 0,
            skip_until: 0,
            skip_before: 0,
            durable_only: false,
        };
        // Retention may remove the first segment between the listing and the open: then
        // start at the new first segment.
        for _ in 0..100 {
            if r.open_segment(first)? || r.dir.join(dir::segment_name(first)).exists() {
                break;
            }
            match dir::list(&r.dir)?.segments.first() {
                Some(e) if e.base > first => first = e.base,
                _ => break,
            }
            r.next_seq = first;
        }
        Ok(r)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The seq of the record the next successful [`next`](Self::next) returns.
    pub fn position(&self) -> u64 {
        self.next_seq.max(self.skip_until)
    }

    /// Makes the reader yield only **durable** records: a record is returned once it survives a
    /// power cut (it ends at or below its segment's synced mark, which the writer stores after
    /// each checkpoint), and [`next`](Self::next) says `Ok(None)` for records appended but not
    /// yet durable. For anything that leaves the machine (see [`durable_seq`](crate::durable_seq)).
    ///
    /// # Example
    /// ```
    /// use applog::{Options, Reader, Writer};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = Writer::open(dir.path(), Options::default())?;
    /// log.append(b"not synced yet")?;
    ///
    /// let mut all = Reader::open(dir.path())?;
    /// let mut durable = Reader::open(dir.path())?.durable_only();
    /// assert!(all.next()?.is_some()); // a power cut could still take this one back
    /// assert!(durable.next()?.is_none()); // not durable: not yet
    ///
    /// log.sync()?;
    /// assert_eq!(durable.next()?.unwrap().data(), b"not synced yet");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn durable_only(mut self) -> Reader {
        self.durable_only = true;
        self
    }

    /// Whether the reader yields only durable records.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn is_durable_only(&self) -> bool {
        self.durable_only
    }

    /// Sets [`durable_only`](Self::durable_only) in place.
    pub(crate) fn set_durable_only(&mut self, on: bool) {
        self.durable_only = on;
    }

    /// Every record below this seq is durable, as the synced marks say (see
    /// [`applog::durable_seq`](crate::durable_seq), which this calls for the reader's log).
    ///
    /// # Errors
    /// As [`applog::durable_seq`](crate::durable_seq).
    pub fn durable_seq(&self) -> Result<u64> {
        crate::durable::durable_seq(&self.dir)
    }

    /// Opens the segment whose first seq is `base`, if it exists and its header is complete.
    fn open_segment(&mut self, base: u64) -> Result<bool> {
        let path = self.dir.join(dir::segment_name(base));
        if !path.exists() {
            return Ok(false);
        }
        let seg = match ReadSegment::open(&path) {
            Ok(Opened::Ready(seg)) => seg,
            Ok(Opened::Blank | Opened::Headless) => return Ok(false),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(false)
            }
            Err(e) => return Err(e),
        };
        if seg.header().base_seq != base {
            return Err(Error::Corrupt {
                segment: path,
                offset: 24,
                reason: format!(
                    "header says the segment starts at seq {}, its name says {base}",
                    seg.header().base_seq
                ),
            });
        }
        self.seg = Some(seg);
        self.off = HEADER_LEN;
        self.next_seq = base;
        self.run_end = 0;
        Ok(true)
    }

    /// Positions the reader so that the next record returned is `seq`. A `seq` past the end
    /// is allowed: records before it are skipped as they arrive.
    ///
    /// # Errors
    /// [`Error::SeqBeforeStart`] when `seq` is older than the first record in the log;
    /// [`Error::Corrupt`] when a segment on the way is damaged.
    pub fn seek(&mut self, seq: u64) -> Result<()> {
        self.skip_before = 0;
        let listing = dir::list(&self.dir)?;
        let Some(entry) = listing.segments.iter().rev().find(|e| e.base <= seq) else {
            let first = listing.segments.first().map_or(0, |e| e.base);
            if listing.segments.is_empty() {
                // Empty log: wait for seq from the start.
                self.seg = None;
                self.next_seq = first;
                self.skip_until = seq;
                return Ok(());
            }
            return Err(Error::SeqBeforeStart {
                seq,
                first_seq: first,
            });
        };
        // The segment before must end where this one starts: a seek must not land in a stray
        // segment that overlaps another, nor behind a gap.
        if let Some(prev) = listing.segments.iter().rev().find(|e| e.base < entry.base) {
            check_link(prev, entry.base)?;
        }
        self.seg = None;
        if !self.open_segment(entry.base)? {
            self.next_seq = entry.base;
        }
        self.skip_until = seq;
        // Skip ahead frame by frame (checking each CRC) up to seq, or as far as there is.
        while self.next_seq < seq {
            match self.step()? {
                Step::Yield(_) => {}
                Step::Nothing => break,
            }
        }
        Ok(())
    }

    /// As [`seek`](Self::seek), starting from a hint of where `seq`'s frame lies (byte `off`
    /// of the segment starting at `base`, as a consumer's commit stored it) instead of walking
    /// the segment from its start. The hint is taken only when `base` is the segment that
    /// holds `seq` and the frame at `off` is `seq`'s record (its CRC covers the seq);
    /// otherwise this is a plain `seek`.
    pub(crate) fn seek_hinted(&mut self, seq: u64, base: u64, off: u64) -> Result<()> {
        self.skip_before = 0;
        let listing = dir::list(&self.dir)?;
        let holder = listing.segments.iter().rev().find(|e| e.base <= seq);
        if holder.is_some_and(|e| e.base == base) {
            if let Some(prev) = listing.segments.iter().rev().find(|e| e.base < base) {
                check_link(prev, base)?;
            }
            self.seg = None;
            if self.open_segment(base)? {
                if let Some(seg) = self.seg.as_mut() {
                    if off.saturating_add(format::FRAME_HEADER_LEN) > seg.size() {
                        seg.refresh_size()?;
                    }
                    if off >= HEADER_LEN && matches!(seg.frame_at(off, seq).0, Frame::Record { .. })
                    {
                        self.off = off;
                        self.next_seq = seq;
                        self.skip_until = seq;
                        return Ok(());
                    }
                }
            }
        }
        self.seek(seq)
    }

    /// Returns the next record, or `Ok(None)` when there is none yet. Call again later to see
    /// records appended since: `Ok(None)` is "not yet", never an error.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged frame inside data the writer had made durable;
    /// [`Error::Io`] when a segment file cannot be opened or mapped;
    /// [`Error::SeqBeforeStart`] when the next segment was removed by retention
    /// ([`Writer::truncate_front`](crate::Writer::truncate_front)) before this reader got to
    /// it. A segment the reader already has open stays readable after its removal.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Record<'_>>> {
        match self.advance()? {
            Some(at) => self.record(at).map(Some),
            None => Ok(None),
        }
    }

    /// Moves past the next record to yield (skipping those before a `seek` target) and says
    /// where it is, without borrowing it; `None` when there is none yet.
    pub(crate) fn advance(&mut self) -> Result<Option<At>> {
        loop {
            match self.step()? {
                Step::Nothing => return Ok(None),
                // A record without a time (`RecordTime::Off`) appended after a `seek_time`
                // that reached the end cannot be placed in time: it is yielded, not skipped
                // (else a tailer of a log without times would wait forever).
                Step::Yield(at)
                    if at.seq >= self.skip_until
                        && (at.time >= self.skip_before || at.time == 0) =>
                {
                    // Times never decrease along a log: every later record passes too.
                    self.skip_before = 0;
                    return Ok(Some(at));
                }
                Step::Yield(_) => {}
            }
        }
    }

    /// The record that [`advance`](Self::advance) found (checked against the mapping and
    /// file bounds once more: an error here would be a bug, not a property of the file).
    pub(crate) fn record(&self, at: At) -> Result<Record<'_>> {
        let seg = self.seg.as_ref();
        seg.and_then(|s| {
            s.view()
                .validated(at.off + s.header().layout.record_header_len(), at.len)
        })
        .map(|data| Record {
            seq: at.seq,
            data,
            time: at.time,
        })
        .ok_or_else(|| {
            Error::io(
                "internal error: record not validated in the mapping of",
                seg.map_or(self.dir.as_path(), Segment::path),
                std::io::Error::other(format!("{} bytes at {}", at.len, at.off)),
            )
        })
    }

    /// Where the next frame is: the base seq of its segment and its byte offset (the start
    /// of the next segment when none is open). Meaningful when no `seek` target lies ahead.
    pub(crate) fn cursor(&self) -> (u64, u64) {
        match &self.seg {
            Some(seg) if self.skip_until <= self.next_seq => (seg.header().base_seq, self.off),
            _ => (self.next_seq.max(self.skip_until), HEADER_LEN),
        }
    }

    /// The segment file the reader is in, if it has one open.
    pub(crate) fn segment_path(&self) -> Option<&Path> {
        self.seg.as_ref().map(Segment::path)
    }

    /// The wake word of the segment the reader waits in, with the segment's base seq (see
    /// `notify`). `None` when there is no segment yet or this process may not write to it.
    pub(crate) fn wake_word(&mut self) -> Option<(u64, &AtomicU32)> {
        let seg = self.seg.as_mut()?;
        seg.open_wake_view();
        let base = seg.header().base_seq;
        seg.wake_word().map(|w| (base, w))
    }

    /// As [`wake_word`](Self::wake_word), with the mapping that holds the word and the
    /// segment file's identity, for a process-wide waiter (see `tokio::waiter`).
    #[cfg(feature = "tokio")]
    pub(crate) fn wake_handle(
        &mut self,
    ) -> Option<(std::sync::Arc<crate::mapping::WakeView>, (u64, u64))> {
        let seg = self.seg.as_mut()?;
        seg.open_wake_view();
        seg.wake_handle()
    }

    /// Advances over one record (or segment boundary); does not borrow the record.
    fn step(&mut self) -> Result<Step> {
        loop {
            if self.seg.is_none() {
                if self.open_segment(self.next_seq)? {
                    continue;
                }
                self.check_not_removed(self.next_seq)?;
                return Ok(Step::Nothing);
            }
            // The log's end cut (`Writer::truncate_back`): checked before every frame, so no
            // removed record is ever yielded.
            match self.meet_cut()? {
                cut::AtCut::No => {}
                cut::AtCut::Moved => continue,
                cut::AtCut::Wait => return Ok(Step::Nothing),
            }
            let Some(seg) = self.seg.as_mut() else {
                return Ok(Step::Nothing);
            };
            let reservation = seg.reservation();
            if self.off + format::FRAME_HEADER_LEN > reservation {
                // Full to the last byte: no seal; the next segment starts at next_seq.
                let next = self.next_seq;
                if self.next_segment(next, false)? {
                    continue;
                }
                return Ok(Step::Nothing);
            }
            if self.off + format::FRAME_HEADER_LEN > seg.size() {
                seg.refresh_size()?;
            }
            let mut frame = seg.frame_at(self.off, self.next_seq).0;
            if matches!(
                frame,
                Frame::Bad(format::BadFrame::LengthOutOfBounds { .. })
            ) {
                // The writer grows the file before it publishes: look at the size again.
                seg.refresh_size()?;
                frame = seg.frame_at(self.off, self.next_seq).0;
            }
            match frame {
                Frame::Empty => return Ok(Step::Nothing),
                Frame::Record { len, time, more } => {
                    let flen = seg.frame_len(u64::from(len));
                    // Where what must be there before this record is yielded ends: the frame,
                    // or for a record of a batch, the batch's last frame.
                    let mut end = self.off + flen;
                    if more {
                        if self.off >= self.run_end && !self.batch_is_whole(len)? {
                            return Ok(Step::Nothing);
                        }
                        end = end.max(self.run_end);
                    }
                    let Some(seg) = self.seg.as_ref() else {
                        return Ok(Step::Nothing);
                    };
                    if self.durable_only && end > seg.synced_mark() {
                        // Not durable yet: the writer's next checkpoint moves the mark (and
                        // wakes waiters on the wake word).
                        return Ok(Step::Nothing);
                    }
                    let step = Step::Yield(At {
                        off: self.off,
                        len: u64::from(len),
                        seq: self.next_seq,
                        time,
                    });
                    self.off += flen;
                    self.next_seq = self
                        .next_seq
                        .checked_add(1)
                        .ok_or_else(|| crate::recovery::seq_overflow(seg.path(), self.off))?;
                    return Ok(step);
                }
                Frame::Seal => {
                    let next = self.next_seq;
                    if self.next_segment(next, true)? {
                        continue;
                    }
                    return Ok(Step::Nothing);
                }
                Frame::Bad(why) => {
                    if self.off < seg.synced_mark() {
                        return Err(Error::Corrupt {
                            segment: seg.path().to_owned(),
                            offset: self.off,
                            reason: why.to_string(),
                        });
                    }
                    // Past the synced mark: a torn tail left by a crash, which the next
                    // writer will cut. Nothing to read (yet).
                    tracing::debug!(segment = %seg.path().display(), offset = self.off, %why, "unreadable frame after the synced mark; waiting");
                    return Ok(Step::Nothing);
                }
            }
        }
    }
}

/// Refuses to read on from `prev` into a segment starting at `next` unless `prev` ends there
/// (or does not end yet: a live writer rolls by creating the next segment before sealing).
fn check_link(prev: &dir::Entry, next: u64) -> Result<()> {
    match crate::recovery::link(prev, next, true)? {
        crate::recovery::Link::Proven | crate::recovery::Link::Open => Ok(()),
        crate::recovery::Link::Ends(end) if end == next => Ok(()),
        crate::recovery::Link::Ends(end) => Err(Error::Corrupt {
            segment: prev.path.clone(),
            offset: 0,
            reason: format!(
                "its records end at seq {end}, but the next segment starts at seq {next} ({})",
                if end < next {
                    "a segment is missing"
                } else {
                    "two segments overlap"
                }
            ),
        }),
    }
}

fn headless_error(path: &Path) -> Error {
    Error::Corrupt {
        segment: path.to_owned(),
        offset: 0,
        reason: "segment header is damaged (its magic is zeroed) while the file holds data: \
                 not a blank segment"
            .into(),
    }
}
