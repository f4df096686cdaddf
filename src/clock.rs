//! The writer's clock: the time each record is stamped with.
//!
//! Wall-clock time (`CLOCK_REALTIME`, through the vDSO: no system call), in nanoseconds since
//! the Unix epoch, never below the last value it gave: the times along a log never decrease,
//! so a reader finds the first record at or after a time by binary search. When the system
//! clock steps back (an NTP correction, an operator), records keep the last time given until
//! the clock passes it again; the step is logged once when it starts and once when it ends.

//!
//! [`RecordTime`] chooses the source: the precise clock (default), the kernel's coarse copy
//! of it (`CLOCK_REALTIME_COARSE`, updated once a tick: a few nanoseconds to read, 1-4 ms
//! resolution), or none (records carry time 0, "no time").

/// Where the writer takes the time each record is stamped with (see
/// [`Options::record_time`](crate::Options::record_time)).
///
/// # Example
/// ```
/// use applog::{Options, Reader, RecordTime, Writer};
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut log = Writer::open(dir.path(), Options::new().record_time(RecordTime::Off))?;
/// log.append(b"no time")?;
/// let mut reader = Reader::open(dir.path())?;
/// assert_eq!(reader.next()?.unwrap().time(), None);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordTime {
    /// The system's wall clock (`CLOCK_REALTIME` through the vDSO), to the nanosecond.
    /// Default.
    #[default]
    Precise,
    /// The kernel's coarse wall clock (`CLOCK_REALTIME_COARSE`): the time of the last timer
    /// tick, 1-4 ms behind the precise clock depending on the kernel's tick rate, and several
    /// times cheaper to read. Times still never decrease along the log; records appended
    /// within one tick share a time, so [`Reader::seek_time`](crate::Reader::seek_time)
    /// resolves to the tick.
    Coarse,
    /// No time: every record is stored with time 0, which reads as
    /// [`Record::time`](crate::Record::time) `None`. Saves the clock read on every append.
    /// Such records count as older than any time for
    /// [`Reader::seek_time`](crate::Reader::seek_time).
    Off,
}

/// A monotonic stamp source for one writer.
#[derive(Debug)]
pub(crate) struct Clock {
    /// The last time given (or the log's last record's, at open).
    last: u64,
    /// The system clock is behind `last`: records are stamped with `last`.
    behind: bool,
    source: RecordTime,
    /// How far behind `last` a reading may be without being a step back: for the coarse
    /// clock, which trails stamps taken from the precise one by up to a tick, its resolution
    /// (with margin); 0 for the precise clock.
    slack: u64,
}

impl Clock {
    /// A clock that never gives less than `last` (the time of the log's last record), reading
    /// `source`.
    pub(crate) fn starting_at(last: u64, source: RecordTime) -> Clock {
        let slack = match source {
            RecordTime::Coarse => coarse_resolution_ns(),
            RecordTime::Precise | RecordTime::Off => 0,
        };
        Clock {
            last,
            behind: false,
            source,
            slack,
        }
    }

    /// The time to stamp the next record with (0, "no time", with [`RecordTime::Off`]).
    #[inline]
    pub(crate) fn now(&mut self) -> u64 {
        match self.source {
            RecordTime::Precise => self.at(wall_ns()),
            RecordTime::Coarse => self.at(coarse_ns()),
            RecordTime::Off => 0,
        }
    }

    /// The stamp for a system-clock reading of `now`: `now`, or the last stamp when the clock
    /// is behind it.
    #[inline]
    pub(crate) fn at(&mut self, now: u64) -> u64 {
        if now >= self.last {
            if self.behind {
                self.behind = false;
                tracing::info!(
                    now,
                    "the system clock caught up: records are stamped with it again"
                );
            }
            self.last = now;
            return now;
        }
        if !self.behind && self.last - now > self.slack {
            self.behind = true;
            tracing::warn!(
                now,
                last = self.last,
                behind_ns = self.last - now,
                "the system clock stepped back: records keep the last time given until it catches up"
            );
        }
        self.last
    }
}

/// The system's wall-clock time (`CLOCK_REALTIME`, through the vDSO) in nanoseconds since the
/// Unix epoch; at least 1 (0 is "no time" in a frame), which only a clock set before 1970
/// would need. Read with `clock_gettime` directly rather than through `SystemTime`, whose
/// `duration_since` adds out-of-line arithmetic to every append.
#[inline]
pub(crate) fn wall_ns() -> u64 {
    timespec_ns(rustix::time::clock_gettime(rustix::time::ClockId::Realtime))
}

/// A `CLOCK_REALTIME*` reading in nanoseconds since the Unix epoch: at least 1; 1 for a time
/// before the epoch; saturating far in the future.
#[inline]
fn timespec_ns(t: rustix::time::Timespec) -> u64 {
    match (u64::try_from(t.tv_sec), u64::try_from(t.tv_nsec)) {
        (Ok(s), Ok(ns)) => s.saturating_mul(1_000_000_000).saturating_add(ns).max(1),
        _ => 1,
    }
}

/// The kernel's coarse wall-clock time (`CLOCK_REALTIME_COARSE`, through the vDSO) in
/// nanoseconds since the Unix epoch; at least 1, like [`wall_ns`].
#[inline]
pub(crate) fn coarse_ns() -> u64 {
    timespec_ns(rustix::time::clock_gettime(
        rustix::time::ClockId::RealtimeCoarse,
    ))
}

/// The coarse clock's resolution in nanoseconds (the tick), plus one tick of margin.
fn coarse_resolution_ns() -> u64 {
    let r = rustix::time::clock_getres(rustix::time::ClockId::RealtimeCoarse);
    let res = u64::try_from(r.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(r.tv_nsec).unwrap_or(0));
    // Unknown or implausible: assume the slowest common tick (100 Hz).
    let res = if res == 0 || res > 1_000_000_000 {
        10_000_000
    } else {
        res
    };
    res.saturating_mul(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_step_back_is_clamped_to_the_last_time() {
        let mut c = Clock::starting_at(100, RecordTime::Precise);
        assert_eq!(c.at(50), 100, "behind the log's last record");
        assert_eq!(c.at(150), 150);
        assert_eq!(c.at(120), 150, "stepped back");
        assert_eq!(c.at(149), 150);
        assert_eq!(c.at(151), 151, "caught up");
        assert!(wall_ns() > 1_600_000_000_000_000_000);
    }

    #[test]
    fn a_coarse_clock_trails_the_precise_one_by_at_most_its_slack() {
        let slack = coarse_resolution_ns();
        let precise = wall_ns();
        let coarse = coarse_ns();
        assert!(coarse + slack >= precise, "{coarse} + {slack} >= {precise}");
        let mut c = Clock::starting_at(precise, RecordTime::Coarse);
        assert!(c.now() >= precise, "clamped to the last time");
        assert!(
            !c.behind,
            "a coarse reading within a tick is not a step back"
        );
        assert_eq!(Clock::starting_at(precise, RecordTime::Off).now(), 0);
    }

    #[test]
    fn clock_readings_before_1970_or_past_2554_stay_valid_times() {
        let ts = |tv_sec, tv_nsec| rustix::time::Timespec { tv_sec, tv_nsec };
        assert_eq!(timespec_ns(ts(-1, 500_000_000)), 1, "before the epoch");
        assert_eq!(timespec_ns(ts(0, 0)), 1, "0 means no time");
        assert_eq!(timespec_ns(ts(1, 5)), 1_000_000_005);
        assert_eq!(
            timespec_ns(ts(i64::MAX, 999_999_999)),
            u64::MAX,
            "saturates"
        );
        let now = wall_ns();
        let std_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        assert!(u128::from(now) <= std_now, "read before the standard clock");
    }
}
