//! An async face of [`Consumer`]: a stream of records, and commits.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::tail::{cancel, poll_read, read_into, OwnedRecord};
use super::waiter::Slot;
use crate::consumer::Consumer;
use crate::error::Result;

/// A named consumer ([`Consumer`]) that waits for records without a thread of its own (as
/// [`AsyncTailer`](super::AsyncTailer) does), as a [`Stream`](futures_core::Stream) and with
/// a cancel-safe [`next`](Self::next). Commits are as the blocking consumer's: a few stores
/// into a mapped page, no system call; [`sync`](Self::sync) (an msync) runs on a blocking
/// thread.
///
/// # Example
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let writer = applog::tokio::AsyncWriter::open(dir.path(), applog::Options::default()).await?;
/// writer.append(b"job 1")?;
/// let mut consumer = applog::tokio::AsyncConsumer::open(dir.path(), "worker").await?;
/// let record = consumer.next().await?; // waits without a thread of its own
/// assert_eq!(record.data(), b"job 1");
/// consumer.commit()?; // done with it: a restart resumes after it
/// consumer.sync().await?; // even after a power cut (an msync, on a blocking thread)
/// assert_eq!(consumer.committed(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncConsumer {
    /// Shared with the blocking thread a [`sync`](Self::sync) runs on, so that dropping that
    /// future loses nothing: the msync finishes and the consumer stays here.
    consumer: Arc<Mutex<Consumer>>,
    name: String,
    slot: Option<Slot>,
    /// An error met after records that were handed out: returned by the next read.
    deferred: Option<crate::Error>,
    /// Metric handle (feature `metrics`; empty without it).
    metrics: crate::metrics::TailerMetrics,
}

impl AsyncConsumer {
    /// Opens consumer `name` of the log in `dir` as [`Consumer::open`] does, on a blocking
    /// thread.
    ///
    /// # Errors
    /// As [`Consumer::open`].
    pub async fn open(dir: impl AsRef<Path>, name: &str) -> Result<AsyncConsumer> {
        let dir = dir.as_ref().to_owned();
        let name = name.to_owned();
        let consumer = super::blocking(move || Consumer::open(dir, &name)).await?;
        Ok(AsyncConsumer::from_consumer(consumer))
    }

    /// The async face of an open consumer.
    pub fn from_consumer(consumer: Consumer) -> AsyncConsumer {
        AsyncConsumer {
            metrics: crate::metrics::TailerMetrics::new_async(consumer.dir()),
            name: consumer.name().to_owned(),
            consumer: Arc::new(Mutex::new(consumer)),
            slot: None,
            deferred: None,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Consumer> {
        // Nothing panics while holding it.
        self.consumer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The consumer's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The seq of the next record it delivers.
    pub fn position(&self) -> u64 {
        self.lock().position()
    }

    /// Its committed position: the first seq not committed.
    pub fn committed(&self) -> u64 {
        self.lock().committed()
    }

    /// The next record, waiting as long as it takes. Cancel-safe: dropping the future loses
    /// nothing (the record is delivered only when the future completes).
    ///
    /// # Errors
    /// As [`Consumer::next`].
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> ConsumerNext<'_> {
        ConsumerNext { consumer: self }
    }

    fn poll_one(&mut self, cx: &mut Context<'_>) -> Poll<Result<OwnedRecord>> {
        let mut c = self.consumer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = c.check_parked() {
            return Poll::Ready(Err(e));
        }
        let mut out = Vec::with_capacity(1);
        match poll_read(
            c.reader_mut(),
            &mut self.slot,
            &mut self.deferred,
            &self.metrics,
            cx,
            1,
            &mut out,
        ) {
            Poll::Ready(Ok(())) => out.pop().map_or(Poll::Pending, |r| Poll::Ready(Ok(r))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The next record if there is one now, without waiting (as [`Consumer::try_next`]).
    ///
    /// # Errors
    /// As [`Consumer::next`].
    pub fn try_next(&mut self) -> Result<Option<OwnedRecord>> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let mut c = self.consumer.lock().unwrap_or_else(PoisonError::into_inner);
        c.check_parked()?;
        let mut out = Vec::with_capacity(1);
        read_into(c.reader_mut(), &mut out, 1, &mut self.deferred)?;
        Ok(out.pop())
    }

    /// Commits every record delivered so far, as [`Consumer::commit`] (no system call).
    ///
    /// # Errors
    /// As [`Consumer::commit`].
    pub fn commit(&mut self) -> Result<()> {
        self.lock().commit()
    }

    /// Commits the records before `next_seq`, as [`Consumer::commit_to`].
    ///
    /// # Errors
    /// As [`Consumer::commit_to`].
    pub fn commit_to(&mut self, next_seq: u64) -> Result<()> {
        self.lock().commit_to(next_seq)
    }

    /// Makes the committed position durable, as [`Consumer::sync`], on a blocking thread.
    /// Cancel-safe: a dropped future's msync still completes.
    ///
    /// # Errors
    /// As [`Consumer::sync`].
    pub async fn sync(&mut self) -> Result<()> {
        let c = Arc::clone(&self.consumer);
        super::blocking(move || c.lock().unwrap_or_else(PoisonError::into_inner).sync()).await
    }

    /// Moves the consumer while it stays open (see `Consumer::reposition`), on a blocking
    /// thread.
    #[cfg(feature = "ship")]
    pub(crate) async fn reposition(&mut self, seq: u64, rewind: bool) -> Result<()> {
        cancel(&mut self.slot);
        let c = Arc::clone(&self.consumer);
        super::blocking(move || {
            c.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reposition(seq, rewind)
        })
        .await
    }

    /// [`commit`](Self::commit), then [`sync`](Self::sync).
    ///
    /// # Errors
    /// As those.
    pub async fn commit_durable(&mut self) -> Result<()> {
        self.commit()?;
        self.sync().await
    }
}

impl Drop for AsyncConsumer {
    fn drop(&mut self) {
        cancel(&mut self.slot);
    }
}

impl futures_core::Stream for AsyncConsumer {
    type Item = Result<OwnedRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_one(cx).map(Some)
    }
}

/// The future of [`AsyncConsumer::next`]. Dropping it loses nothing and leaves nothing
/// waiting.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct ConsumerNext<'a> {
    consumer: &'a mut AsyncConsumer,
}

impl Future for ConsumerNext<'_> {
    type Output = Result<OwnedRecord>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().consumer.poll_one(cx)
    }
}

impl Drop for ConsumerNext<'_> {
    fn drop(&mut self) {
        cancel(&mut self.consumer.slot);
    }
}
