//! Times in the tool's output: RFC 3339 in UTC (`jiff`), and the one place that asks a
//! record for its append time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When the record was appended, in nanoseconds since the Unix epoch; `None` when the log
/// keeps no time for it (a record written by applog 0.1: format version 1). Everything that
/// prints a record's time goes through here.
pub fn record_time(record: &applog::Record<'_>) -> Option<u64> {
    record.time_ns()
}

/// A `--since`/`--until` TIME, in nanoseconds since the Unix epoch: RFC 3339
/// (`2026-11-29T18:00:00.250Z`, any offset) or a duration meaning "that long ago", one or more
/// of a whole number and a unit: `ms`, `s`, `m`, `h`, `d` (24 h), `w` (`90s`, `10m`, `1h30m`,
/// `2d`). A time before 1970 is 0; one after 2554 (past what 64 bits of nanoseconds hold) is
/// `u64::MAX`.
pub fn parse_time(text: &str) -> Result<u64, String> {
    parse_time_at(text, SystemTime::now())
}

/// The wall-clock time in nanoseconds since the Unix epoch.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// [`parse_time`] with "now" given.
fn parse_time_at(text: &str, now: SystemTime) -> Result<u64, String> {
    let nanos = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    };
    if let Some(ago) = parse_ago(text) {
        return Ok(nanos(now.checked_sub(ago).unwrap_or(UNIX_EPOCH)));
    }
    match text.parse::<jiff::Timestamp>() {
        // Before 1970: 0; after 2554 (past u64 nanoseconds): the end of time.
        Ok(ts) => Ok(u64::try_from(ts.as_nanosecond().max(0)).unwrap_or(u64::MAX)),
        Err(e) => Err(format!(
            "{text:?} is no time: give RFC 3339 (2026-11-29T18:00:00Z) or how long ago (10m, \
             2h, 1d): {e}"
        )),
    }
}

/// `1h30m`-style durations: `None` unless all of `text` is such groups.
fn parse_ago(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let n: u64 = rest.get(..digits)?.parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            "w" => Duration::from_secs(7 * 86_400),
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(unit.checked_mul(u32::try_from(n).ok()?)?)?;
    }
    (!text.is_empty()).then_some(total)
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

    #[test]
    fn times_are_rfc3339_or_how_long_ago() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |t: &str| parse_time_at(t, now);
        assert_eq!(at("10m"), Ok((1_000_000 - 600) * 1_000_000_000));
        assert_eq!(at("1h30m"), Ok((1_000_000 - 5400) * 1_000_000_000));
        assert_eq!(at("2d"), Ok((1_000_000 - 172_800) * 1_000_000_000));
        assert_eq!(at("1w"), Ok((1_000_000 - 604_800) * 1_000_000_000));
        assert_eq!(at("250ms"), Ok(1_000_000 * 1_000_000_000 - 250_000_000));
        assert_eq!(at("0s"), Ok(1_000_000 * 1_000_000_000));
        assert_eq!(at("100w"), Ok(0), "before 1970: the epoch");
        assert_eq!(at("1969-12-31T00:00:00Z"), Ok(0));
        assert_eq!(at("2999-01-01T00:00:00Z"), Ok(u64::MAX));
        assert_eq!(
            at("2026-11-30T18:00:00.250Z"),
            Ok(1_796_061_600_250_000_000)
        );
        assert_eq!(
            at("2026-11-30T19:00:00.250+01:00"),
            Ok(1_796_061_600_250_000_000)
        );
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "1h-5m",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "-5m",
        ] {
            assert!(at(bad).is_err(), "{bad:?}");
        }
    }

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
