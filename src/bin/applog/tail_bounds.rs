//! Where `tail` starts and where it stops.
//!
//! The start (`-n N`, `-n +K`, `--from SEQ`, or a named consumer's position) is resolved to a
//! seq once the log is open. The stop is a set of conditions in [`Stop`], each checked before
//! a record is printed (does this record lie past a bound?) and once nothing more can be
//! printed (is the next seq past a bound?). A new bound (a time) is one more condition there.

/// `-n`: the last N records, or (`+K`) every record from the K-th on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// The last N records as of the start.
    Last(u64),
    /// From the K-th record of the log on (1-based: `+1` is the first record), as coreutils'
    /// `tail -n +K`. `+0` is taken as `+1`, as coreutils does.
    FromNth(u64),
}

impl Count {
    /// Clap's parser: `N` or `+N`, N a whole number.
    pub fn parse(s: &str) -> Result<Count, String> {
        let bad =
            || format!("{s:?} is no count (N for the last N records, +K from the K-th record on)");
        let (from, digits) = match s.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        Ok(if from {
            Count::FromNth(n)
        } else {
            Count::Last(n)
        })
    }

    /// The first seq to print, in a log whose records are `first..next`.
    pub fn start(self, first: u64, next: u64) -> u64 {
        match self {
            Count::Last(n) => next.saturating_sub(n).max(first),
            Count::FromNth(k) => first.saturating_add(k.saturating_sub(1)),
        }
    }
}

/// When `tail` stops (besides the end of the log without -f, or a signal with it).
#[derive(Clone, Debug)]
pub struct Stop {
    /// `--until-seq`, and for the last N records, the end of the log as of the start:
    /// nothing at or after this seq is printed.
    until_seq: Option<u64>,
    /// What is left of `--max`.
    left: Option<u64>,
    /// `--until`: nothing appended after this time (ns since the epoch) is printed.
    until_time: Option<u64>,
}

impl Stop {
    pub fn new(until_seq: Option<u64>, max: Option<u64>) -> Stop {
        Stop {
            until_seq,
            left: max,
            until_time: None,
        }
    }

    /// Adds the bound "nothing appended after `time`" (`--until`).
    pub fn until_time(mut self, time: Option<u64>) -> Stop {
        self.until_time = time;
        self
    }

    /// Whether the clock (`now`, ns since the epoch) has passed `--until`: every record
    /// appended from now on is after it.
    pub fn passed(&self, now: u64) -> bool {
        self.until_time.is_some_and(|u| now > u)
    }

    /// Adds the bound "nothing at or after `seq`" (keeping the lower of two).
    pub fn until(&mut self, seq: u64) {
        self.until_seq = Some(self.until_seq.map_or(seq, |u| u.min(seq)));
    }

    /// Whether nothing more is to be printed when the next record would be `next_seq`.
    pub fn reached(&self, next_seq: u64) -> bool {
        self.left == Some(0) || self.until_seq.is_some_and(|u| next_seq >= u)
    }

    /// Whether `record` lies past a bound: it is not printed, and tail ends there. A record
    /// without a time counts as older than any time.
    pub fn excludes(&self, record: &applog::Record<'_>) -> bool {
        self.reached(record.seq())
            || matches!(
                (self.until_time, crate::times::record_time(record)),
                (Some(until), Some(t)) if t > until
            )
    }

    /// Counts a printed record; whether tail is done after it.
    pub fn printed(&mut self, record_seq: u64) -> bool {
        self.left = self.left.map(|n| n.saturating_sub(1));
        self.reached(record_seq.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_n_or_plus_k() {
        assert_eq!(Count::parse("10"), Ok(Count::Last(10)));
        assert_eq!(Count::parse("+3"), Ok(Count::FromNth(3)));
        assert_eq!(Count::parse("0"), Ok(Count::Last(0)));
        for bad in [
            "",
            "+",
            "-3",
            "++3",
            "3x",
            " 3",
            "1.5",
            "99999999999999999999",
        ] {
            assert!(Count::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn from_nth_is_one_based_from_the_first_record() {
        assert_eq!(Count::FromNth(1).start(0, 10), 0);
        assert_eq!(Count::FromNth(0).start(0, 10), 0);
        assert_eq!(Count::FromNth(3).start(5, 10), 7);
        assert_eq!(Count::Last(3).start(5, 10), 7);
        assert_eq!(Count::Last(30).start(5, 10), 5);
    }

    #[test]
    fn stop_at_the_lower_bound() {
        let mut stop = Stop::new(Some(8), Some(2));
        assert!(!stop.reached(5));
        assert!(!stop.printed(5));
        assert!(stop.printed(6)); // --max
        let mut stop = Stop::new(Some(8), None);
        stop.until(6);
        assert!(stop.reached(6));
        assert!(stop.printed(5));
    }
}
