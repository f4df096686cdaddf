//! Tailing as a `Stream`: a reader that waits for new records without a thread of its own.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::waiter::{self, Slot};
use crate::error::Result;
use crate::metrics::TailerMetrics;
use crate::notify;
use crate::reader::Reader;
use crate::Error;

/// A record the async tailer returns: its seq and its bytes, copied out of the mapping (a
/// future or a stream item cannot borrow from the tailer that made it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRecord {
    seq: u64,
    data: Vec<u8>,
    time: Option<u64>,
}

impl OwnedRecord {
    /// The record's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When the record was appended, in nanoseconds since the Unix epoch; `None` when it has
    /// no time (see [`Record::time_ns`](crate::Record::time_ns)).
    pub fn time_ns(&self) -> Option<u64> {
        self.time
    }

    /// The record's bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The record's bytes, by value.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

/// Reads what is there now into `out`, up to `max` records. An error after some records were
/// read is kept in `deferred` for the next call: the reader has moved past those records, so
/// they must be handed out now, and the error after them.
pub(super) fn read_into(
    reader: &mut Reader,
    out: &mut Vec<OwnedRecord>,
    max: usize,
    deferred: &mut Option<Error>,
) -> Result<()> {
    while out.len() < max {
        match reader.next() {
            Ok(Some(r)) => out.push(OwnedRecord {
                seq: r.seq(),
                data: r.data().to_vec(),
                time: r.time_ns(),
            }),
            Ok(None) => break,
            Err(e) if out.is_empty() => return Err(e),
            Err(e) => {
                *deferred = Some(e);
                break;
            }
        }
    }
    Ok(())
}

/// The heart of every async read: reads up to `max` records into `out`; when there are none,
/// announces the wait on the segment's wake word, looks once more, and registers the task with
/// the process's waiter (`slot` remembers where). Ready with `out` non-empty, or an error.
#[allow(clippy::too_many_arguments)]
pub(crate) fn poll_read(
    reader: &mut Reader,
    slot: &mut Option<Slot>,
    deferred: &mut Option<Error>,
    metrics: &TailerMetrics,
    cx: &mut Context<'_>,
    max: usize,
    out: &mut Vec<OwnedRecord>,
) -> Poll<Result<()>> {
    if slot.is_some() {
        // Polled again while registered with the waiter: a wake-up.
        metrics.woke();
    }
    if let Some(e) = deferred.take() {
        done(slot);
        return Poll::Ready(Err(e));
    }
    let max = max.max(1);
    let found = read_into(reader, out, max, deferred);
    if found.is_err() || !out.is_empty() {
        done(slot);
        return Poll::Ready(found);
    }
    let w = waiter::get();
    match reader.wake_handle() {
        Some((view, key)) => {
            let Some(word) = view.word32(crate::format::WAKE_WORD_OFFSET) else {
                *slot = Some(w.register_polled(slot.take(), cx.waker()));
                return Poll::Pending;
            };
            let token = notify::prepare(word);
            // Look again after announcing the wait (see `notify`): a record published before
            // the announcement is seen now; one published after it moves the word.
            let found = read_into(reader, out, max, deferred);
            if found.is_err() || !out.is_empty() {
                done(slot);
                return Poll::Ready(found);
            }
            let class = u8::from(reader.is_durable_only());
            *slot = Some(w.register(slot.take(), key, &view, token, class, cx.waker()));
        }
        // No segment yet, or no write access to announce the wait: look again soon.
        None => *slot = Some(w.register_polled(slot.take(), cx.waker())),
    }
    Poll::Pending
}

/// The task's wait ended with records (or an error): removes its registration, and tells the
/// waiter (see `Waiter::found`).
fn done(slot: &mut Option<Slot>) {
    if let Some(s) = slot.take() {
        waiter::get().found(s);
    }
}

/// Removes the task's registration, if any.
pub(crate) fn cancel(slot: &mut Option<Slot>) {
    if let Some(s) = slot.take() {
        waiter::get().deregister(s);
    }
}

/// Follows a log as a [`Stream`](futures_core::Stream) of [`OwnedRecord`]s, waiting for new
/// records without a thread of its own: the process's one waiter thread sleeps on the wake
/// words of every async tailer's segment at once (`futex_waitv`) and wakes the tasks whose
/// logs moved, when a writer in **any process** publishes. An idle tailer costs no CPU but a
/// look every 100 ms (to notice what the wake word does not announce, such as a writer that
/// died after creating a segment).
///
/// Like [`Tailer`](crate::Tailer), it follows rollovers and a writer that crashes and is
/// restarted, takes no lock and never blocks the writer. With
/// [`durable_only`](Self::durable_only) it yields a record only once it is durable.
///
/// **Cancel-safe:** dropping a pending [`next`](Self::next) (or [`next_batch`](Self::next_batch))
/// future loses no record (a record is taken from the log only when the future completes) and
/// removes the task's registration with the waiter.
///
/// Reading a record is a copy out of the mapping; moving to the next segment opens and maps a
/// file in the calling task (a few microseconds, without waiting on the disk's queue in the
/// common case where the file's pages are cached).
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let writer = applog::tokio::AsyncWriter::open(dir.path(), applog::Options::default()).await?;
/// let mut tailer = applog::tokio::AsyncTailer::open(dir.path(), 0).await?;
/// let seq = writer.append(b"hello")?;
/// let record = tailer.next().await?;
/// assert_eq!((record.seq(), record.data()), (seq, &b"hello"[..]));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncTailer {
    reader: Reader,
    slot: Option<Slot>,
    /// An error met after records that were handed out: returned by the next read.
    deferred: Option<Error>,
    /// Metric handle (feature `metrics`; empty without it).
    metrics: TailerMetrics,
}

impl AsyncTailer {
    /// Opens the log in `dir` for following, so that the first record returned is `from_seq`
    /// (which may lie in the future). Reads the segment headers on a blocking thread.
    ///
    /// # Errors
    /// As [`Tailer::open`](crate::Tailer::open).
    pub async fn open(dir: impl AsRef<Path>, from_seq: u64) -> Result<AsyncTailer> {
        let dir = dir.as_ref().to_owned();
        super::blocking(move || AsyncTailer::open_blocking(dir, from_seq)).await
    }

    /// As [`open`](Self::open), in the calling thread.
    ///
    /// # Errors
    /// As [`Tailer::open`](crate::Tailer::open).
    pub fn open_blocking(dir: impl AsRef<Path>, from_seq: u64) -> Result<AsyncTailer> {
        let mut reader = Reader::open(dir)?;
        reader.seek(from_seq)?;
        Ok(AsyncTailer {
            metrics: TailerMetrics::new_async(reader.dir()),
            reader,
            slot: None,
            deferred: None,
        })
    }

    /// Yields only durable records (see [`Reader::durable_only`]): a record is returned once a
    /// checkpoint made it durable; the writer wakes the tailer when it stores the synced mark.
    #[must_use]
    pub fn durable_only(mut self) -> AsyncTailer {
        self.reader.set_durable_only(true);
        self
    }

    /// The seq of the record the next call returns.
    pub fn position(&self) -> u64 {
        self.reader.position()
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        self.reader.dir()
    }

    /// The next record, waiting as long as it takes. Cancel-safe.
    ///
    /// # Errors
    /// As [`Reader::next`](crate::Reader::next): a damaged frame inside synced data, an I/O
    /// error, or records removed by retention before the tailer got to them.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Next<'_> {
        Next { tailer: self }
    }

    /// Every record there is now, up to `max` (at least one: it waits for the first).
    /// Cancel-safe.
    ///
    /// # Errors
    /// As [`next`](Self::next).
    pub fn next_batch(&mut self, max: usize) -> NextBatch<'_> {
        NextBatch { tailer: self, max }
    }

    /// The next record if there is one now, without waiting.
    ///
    /// # Errors
    /// As [`next`](Self::next).
    pub fn try_next(&mut self) -> Result<Option<OwnedRecord>> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let mut out = Vec::with_capacity(1);
        read_into(&mut self.reader, &mut out, 1, &mut self.deferred)?;
        Ok(out.pop())
    }

    fn poll_one(&mut self, cx: &mut Context<'_>) -> Poll<Result<OwnedRecord>> {
        let mut out = Vec::with_capacity(1);
        match poll_read(
            &mut self.reader,
            &mut self.slot,
            &mut self.deferred,
            &self.metrics,
            cx,
            1,
            &mut out,
        ) {
            Poll::Ready(Ok(())) => match out.pop() {
                Some(r) => Poll::Ready(Ok(r)),
                None => Poll::Pending, // poll_read is ready only with a record
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for AsyncTailer {
    fn drop(&mut self) {
        cancel(&mut self.slot);
    }
}

impl futures_core::Stream for AsyncTailer {
    type Item = Result<OwnedRecord>;

    /// Never ends: `Pending` until the next record. An error is an item; polling on after it
    /// tries again (an I/O error may pass; damage does not).
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_one(cx).map(Some)
    }
}

/// The future of [`AsyncTailer::next`]. Dropping it loses nothing and leaves nothing waiting.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Next<'a> {
    tailer: &'a mut AsyncTailer,
}

impl Future for Next<'_> {
    type Output = Result<OwnedRecord>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().tailer.poll_one(cx)
    }
}

impl Drop for Next<'_> {
    fn drop(&mut self) {
        cancel(&mut self.tailer.slot);
    }
}

/// The future of [`AsyncTailer::next_batch`]. Dropping it loses nothing and leaves nothing
/// waiting.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct NextBatch<'a> {
    tailer: &'a mut AsyncTailer,
    max: usize,
}

impl Future for NextBatch<'_> {
    type Output = Result<Vec<OwnedRecord>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut out = Vec::new();
        let t = &mut *this.tailer;
        poll_read(
            &mut t.reader,
            &mut t.slot,
            &mut t.deferred,
            &t.metrics,
            cx,
            this.max,
            &mut out,
        )
        .map(|r| r.map(|()| out))
    }
}

impl Drop for NextBatch<'_> {
    fn drop(&mut self) {
        cancel(&mut self.tailer.slot);
    }
}
