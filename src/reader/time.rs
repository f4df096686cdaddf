//! Finding records by their append time.
//!
//! Record times never decrease along a log (see `clock`), so the first record at or after a
//! time is found by a binary search over the segments, on the time of each one's first record
//! (one frame read per probe), then a walk through the one segment where it lies. Records
//! without a time (written before records carried one) count as older than any time.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Reader, Step};
use crate::dir::{self, Entry};
use crate::error::{Error, Result};
use crate::format::{BadFrame, Frame, HEADER_LEN};
use crate::segment::{Opened, ReadSegment, Segment};

impl Reader {
    /// Positions the reader at the first record appended at or after `time`, and returns its
    /// seq. When every record so far is older, the reader waits at the end of the log, and
    /// yields the first record appended at or after `time` from then on (skipping any older
    /// one, should the writer's clock be behind `time`); the seq returned is then the next
    /// seq to be appended.
    ///
    /// Records without a time (appended by a version of applog before records carried their
    /// time, or by a writer with [`RecordTime::Off`](crate::RecordTime::Off): see
    /// [`Record::time`](crate::Record::time)) count as older than any time. On a log without
    /// times, `seek_time` therefore walks the newest segment and positions the reader at the
    /// end of the log (returning the next seq to be appended); records appended later,
    /// having no time either, are yielded from there. Times are assumed not to decrease along
    /// the log: where a writer without times followed one with times, the records of the
    /// latter after `time` may be passed over.
    ///
    /// # Errors
    /// As [`seek`](Self::seek).
    ///
    /// # Example
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = applog::Writer::open(dir.path(), applog::Options::default())?;
    /// log.append(b"old")?;
    /// std::thread::sleep(Duration::from_millis(2));
    /// let since = SystemTime::now();
    /// log.append(b"new")?;
    ///
    /// let mut reader = applog::Reader::open(dir.path())?;
    /// assert_eq!(reader.seek_time(since)?, 1);
    /// let rec = reader.next()?.unwrap();
    /// assert_eq!(rec.data(), b"new");
    /// assert!(rec.time().unwrap() >= since);
    /// # Ok(()) }
    /// ```
    pub fn seek_time(&mut self, time: SystemTime) -> Result<u64> {
        self.seek_time_ns(nanos_since_epoch(time))
    }

    /// [`seek_time`](Self::seek_time) with the time in nanoseconds since the Unix epoch.
    ///
    /// # Errors
    /// As [`seek`](Self::seek).
    pub fn seek_time_ns(&mut self, time: u64) -> Result<u64> {
        let listing = dir::list(&self.dir)?;
        let segments = &listing.segments;
        // The segments before `lo` start with a record older than `time`.
        let (mut lo, mut hi) = (0, segments.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if first_time(&segments[mid])?.is_some_and(|t| t < time) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // The first record at or after `time` is in the last segment that starts older than
        // it (after its first record), or is the first record of the one after.
        let start = lo
            .checked_sub(1)
            .and_then(|i| segments.get(i))
            .or(segments.first())
            .map_or(0, |e| e.base);
        self.seek(start)?;
        loop {
            match self.step()? {
                Step::Yield(at) if at.time >= time => {
                    // Back to the record just read: `step` stopped in its segment.
                    self.off = at.off;
                    self.next_seq = at.seq;
                    self.skip_until = at.seq;
                    return Ok(at.seq);
                }
                Step::Yield(_) => {}
                Step::Nothing => {
                    self.skip_before = time;
                    return Ok(self.next_seq.max(self.skip_until));
                }
            }
        }
    }
}

/// `time` in nanoseconds since the Unix epoch: 0 before it, `u64::MAX` past year 2554.
fn nanos_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The time of a segment's first record (0 when it has none: version 1); `None` when it
/// holds no record yet. A segment removed meanwhile by retention was older than all others.
fn first_time(entry: &Entry) -> Result<Option<u64>> {
    let mut seg = match ReadSegment::open(&entry.path) {
        Ok(Opened::Ready(seg)) => seg,
        Ok(Opened::Blank | Opened::Headless) => return Ok(None),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Some(0))
        }
        Err(e) => return Err(e),
    };
    let mut frame = seg.frame_at(HEADER_LEN, entry.base).0;
    if matches!(
        frame,
        Frame::Empty | Frame::Bad(BadFrame::LengthOutOfBounds { .. })
    ) {
        // A live writer grows the file before it publishes: look at the size again.
        seg.refresh_size()?;
        frame = seg.frame_at(HEADER_LEN, entry.base).0;
    }
    Ok(match frame {
        Frame::Record { time, .. } => Some(time),
        // No record yet, or a damaged first frame, which the walk will report.
        Frame::Empty | Frame::Seal | Frame::Bad(_) => None,
    })
}
