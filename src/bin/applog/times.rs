//! Times in the tool's output: RFC 3339 in UTC (`jiff`), and the one place that asks a
//! record for its append time.

use std::time::{SystemTime, UNIX_EPOCH};

/// When the record was appended, in nanoseconds since the Unix epoch; `None` when the log
/// keeps no time for it (a record written by applog 0.1: format version 1). Everything that
/// prints a record's time goes through here.
pub fn record_time(record: &applog::Record<'_>) -> Option<u64> {
    record.time_ns()
}

/// `ns` (nanoseconds since the Unix epoch) as RFC 3339 UTC with nanoseconds:
/// `2026-11-29T18:00:00.250000000Z`.
pub fn rfc3339_nanos(ns: u64) -> String {
    // Every u64 of nanoseconds (up to the year 2554) is a valid jiff timestamp.
    let ts =
        jiff::Timestamp::from_nanosecond(i128::from(ns)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{ts:.9}")
}

/// A time as RFC 3339 in UTC, to the second: `2026-12-06T15:04:05Z`. Times before 1970 are
/// shown as the epoch.
pub fn rfc3339_secs(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let ts = i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or(jiff::Timestamp::MAX);
    format!("{ts:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn nanos_are_rfc3339_utc_with_nine_digits() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nanos(1_796_061_600_250_000_000),
            "2026-11-30T18:00:00.250000000Z"
        );
        assert_eq!(rfc3339_nanos(u64::MAX), "2554-07-21T23:34:33.709551615Z");
    }

    #[test]
    fn seconds_are_rfc3339_utc_to_the_second() {
        let at = |secs: u64| rfc3339_secs(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_569_445), "2026-12-06T15:04:05Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(
            rfc3339_secs(UNIX_EPOCH + Duration::from_millis(1_500)),
            "1970-01-01T00:00:01Z"
        );
    }
}
