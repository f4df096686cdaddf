//! Following a live log: a reader that waits for records not yet appended.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::notify;
use crate::reader::{Reader, Record};

/// How a [`Tailer`] waits when it has read everything there is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Sleep on a futex in the shared mapping. The writer wakes sleeping readers in any
    /// process when it publishes; it pays one atomic operation per append when nobody sleeps.
    /// An idle tailer uses no CPU. Wake-up latency is that of waking a sleeping thread (a few
    /// microseconds on a shared core, tens of microseconds across the vCPUs of a VM). It does
    /// not spin first: measured, even a short spin delays the writer more than it saves when
    /// the two share CPUs.
    /// Needs write access to the segment files (to announce the wait); without it, and on
    /// systems without futexes, it behaves like [`Backoff`](Self::Backoff)
    /// ([`Tailer::polling_fallback`] says when it polls for want of write access).
    #[default]
    Block,
    /// Busy-poll: the lowest latency (well under a microsecond), at the price of a whole core
    /// while waiting.
    Spin,
    /// Poll with growing sleeps (up to 2 ms): portable, no write access needed, little CPU,
    /// latency up to the sleep length.
    Backoff,
}

/// The longest single sleep of a blocked tailer. Waits are bounded so that a tailer also
/// notices what the wake word does not announce (a writer that died after creating a segment,
/// a log that appears, a segment its reader could not open yet).
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Shortest and longest sleep of the polling fallback.
const MIN_NAP: Duration = Duration::from_micros(20);
const MAX_NAP: Duration = Duration::from_millis(2);

/// Follows a log from a starting seq, in order, waiting for records as the writer appends
/// them, in this or another process.
///
/// It follows the log across segment rollovers, and across a writer that crashes and is
/// restarted (the new writer's recovery only removes bytes that never formed a record, so a
/// tailer never sees a record that later disappears, except after a power cut, which it
/// doesn't survive either). It never blocks the writer and takes no lock.
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// use std::time::Duration;
/// let mut writer = applog::Writer::open(dir.path(), applog::Options::default())?;
/// let mut tailer = applog::Tailer::open(dir.path(), 0)?;
/// assert!(tailer.next_timeout(Duration::from_millis(1))?.is_none()); // nothing yet
///
/// let producer = std::thread::spawn(move || writer.append(b"hello"));
/// let record = tailer.next()?; // waits until it is there
/// assert_eq!((record.seq(), record.data()), (0, &b"hello"[..]));
/// # producer.join().unwrap()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Tailer {
    reader: Reader,
    wait: WaitStrategy,
    /// Whether the last wait of a `Block` tailer polled for want of its wake word.
    polling: bool,
    /// The wake-up counter (feature `metrics`; empty without it).
    metrics: crate::metrics::TailerMetrics,
}

impl Tailer {
    /// Opens the log in `dir` for following, so that the first record returned is `from_seq`
    /// (which may lie in the future). Waits with [`WaitStrategy::Block`].
    ///
    /// # Errors
    /// As [`Reader::open`] and [`Reader::seek`]: [`Error::NotALog`](crate::Error::NotALog),
    /// [`Error::SeqBeforeStart`](crate::Error::SeqBeforeStart),
    /// [`Error::Corrupt`](crate::Error::Corrupt), [`Error::Io`](crate::Error::Io).
    pub fn open(dir: impl AsRef<Path>, from_seq: u64) -> Result<Tailer> {
        let mut reader = Reader::open(dir)?;
        reader.seek(from_seq)?;
        Ok(Tailer::from_reader(reader))
    }

    /// A tailer over `reader`, from where it stands.
    pub(crate) fn from_reader(reader: Reader) -> Tailer {
        Tailer {
            metrics: crate::metrics::TailerMetrics::new(reader.dir()),
            reader,
            wait: WaitStrategy::default(),
            polling: false,
        }
    }

    /// Sets how the tailer waits for new records.
    #[must_use]
    pub fn wait_strategy(mut self, wait: WaitStrategy) -> Tailer {
        self.wait = wait;
        self
    }

    /// Makes the tailer yield only **durable** records (see [`Reader::durable_only`]): it waits
    /// until the writer's checkpoint covers a record before it returns it. The writer wakes
    /// such tailers when it stores a synced mark, as it does when it publishes.
    #[must_use]
    pub fn durable_only(mut self) -> Tailer {
        self.reader.set_durable_only(true);
        self
    }

    /// The seq of the record the next call returns.
    pub fn position(&self) -> u64 {
        self.reader.position()
    }

    /// Positions the tailer at the first record appended at or after `time` and returns its
    /// seq (the next seq to be appended when every record so far is older): see
    /// [`Reader::seek_time`].
    ///
    /// # Errors
    /// As [`Reader::seek_time`].
    pub fn seek_time(&mut self, time: std::time::SystemTime) -> Result<u64> {
        self.reader.seek_time(time)
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        self.reader.dir()
    }

    /// Sets how the tailer waits, in place.
    pub(crate) fn set_wait(&mut self, wait: WaitStrategy) {
        self.wait = wait;
    }

    /// The reader under the tailer.
    pub(crate) fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The reader under the tailer, to read without waiting.
    pub(crate) fn reader_mut(&mut self) -> &mut Reader {
        &mut self.reader
    }

    /// Whether this [`WaitStrategy::Block`] tailer waits by polling, and in which segment
    /// file: `Some(file)` when its last wait could not sleep on the segment's wake word
    /// because this process may not write to that file (announcing a wait needs a writable
    /// mapping of its header page; a read-only file system or file permissions prevent it).
    /// It then polls as [`WaitStrategy::Backoff`] does: up to 2 ms latency, a few hundred
    /// wake-ups a second while idle. `None` before the first wait, while waits sleep on the
    /// wake word, and with the other strategies.
    pub fn polling_fallback(&self) -> Option<&Path> {
        if self.polling {
            self.reader.segment_path()
        } else {
            None
        }
    }

    /// Returns the next record, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`Reader::next`]: a damaged frame inside synced data, or an I/O error.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Record<'_>> {
        let at = loop {
            if let Some(at) = self.wait_for(None)? {
                break at;
            }
        };
        self.reader.record(at)
    }

    /// Returns the next record, or `Ok(None)` if none was appended within `timeout`.
    ///
    /// # Errors
    /// As [`next`](Self::next).
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record<'_>>> {
        let deadline = Instant::now().checked_add(timeout);
        // A timeout too long to represent waits forever.
        match self.wait_for(deadline)? {
            Some(at) => self.reader.record(at).map(Some),
            None => Ok(None),
        }
    }

    /// Waits for the next record until `deadline` (`None`: no deadline).
    fn wait_for(&mut self, deadline: Option<Instant>) -> Result<Option<crate::reader::At>> {
        let mut spins = 0u32;
        let mut nap = MIN_NAP;
        // The wake word this tailer announced its wait on: (segment base seq, token).
        let mut armed: Option<(u64, u32)> = None;
        loop {
            if let Some(at) = self.reader.advance()? {
                return Ok(Some(at));
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return Ok(None),
                },
                None => MAX_SLEEP,
            };
            match self.wait {
                WaitStrategy::Spin => std::hint::spin_loop(),
                WaitStrategy::Backoff => backoff(&mut spins, &mut nap, left),
                WaitStrategy::Block => match (self.reader.wake_word(), armed) {
                    // Announced on this segment's word, and the record was still not there
                    // when we looked again: sleep until the writer publishes.
                    (Some((base, word)), Some((armed_base, token))) if base == armed_base => {
                        self.polling = false;
                        notify::wait(word, token, left.min(MAX_SLEEP));
                        self.metrics.woke();
                        armed = None;
                    }
                    // Announce the wait, then look once more before sleeping (the loop).
                    (Some((base, word)), _) => {
                        self.polling = false;
                        armed = Some((base, notify::prepare(word)));
                    }
                    // No segment yet, or no write access to announce the wait: poll.
                    (None, _) => {
                        self.polling = self.reader.segment_path().is_some();
                        backoff(&mut spins, &mut nap, left);
                    }
                },
            }
        }
    }
}

/// One step of the polling fallback: spin a little, then yield, then sleep ever longer.
fn backoff(spins: &mut u32, nap: &mut Duration, left: Duration) {
    *spins = spins.saturating_add(1);
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 96 {
        std::thread::yield_now();
    } else {
        std::thread::sleep((*nap).min(left));
        *nap = (*nap * 2).min(MAX_NAP);
    }
}
