//! The writer's clock: the time each record is stamped with.
//!
//! Wall-clock time (`CLOCK_REALTIME`, through the vDSO: no system call), in nanoseconds since
//! the Unix epoch, never below the last value it gave: the times along a log never decrease,
//! so a reader finds the first record at or after a time by binary search. When the system
//! clock steps back (an NTP correction, an operator), records keep the last time given until
//! the clock passes it again; the step is logged once when it starts and once when it ends.

use std::time::{SystemTime, UNIX_EPOCH};

/// A monotonic stamp source for one writer.
#[derive(Debug)]
pub(crate) struct Clock {
    /// The last time given (or the log's last record's, at open).
    last: u64,
    /// The system clock is behind `last`: records are stamped with `last`.
    behind: bool,
}

impl Clock {
    /// A clock that never gives less than `last` (the time of the log's last record).
    pub(crate) fn starting_at(last: u64) -> Clock {
        Clock {
            last,
            behind: false,
        }
    }

    /// The time to stamp the next record with.
    #[inline]
    pub(crate) fn now(&mut self) -> u64 {
        self.at(wall_ns())
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
        if !self.behind {
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

/// The system's wall-clock time in nanoseconds since the Unix epoch; at least 1 (0 is "no
/// time" in a frame), which only a clock set before 1970 would need.
#[inline]
pub(crate) fn wall_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_step_back_is_clamped_to_the_last_time() {
        let mut c = Clock::starting_at(100);
        assert_eq!(c.at(50), 100, "behind the log's last record");
        assert_eq!(c.at(150), 150);
        assert_eq!(c.at(120), 150, "stepped back");
        assert_eq!(c.at(149), 150);
        assert_eq!(c.at(151), 151, "caught up");
        assert!(wall_ns() > 1_600_000_000_000_000_000);
    }
}
