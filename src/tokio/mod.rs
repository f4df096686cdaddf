//! The async face of applog, for tokio (the `tokio` feature):
//!
//! - [`AsyncWriter`]: [`append`](AsyncWriter::append) returns the seq at once, and
//!   [`durable`](AsyncWriter::durable) is a future that resolves when it is durable, sharing
//!   group-commit flushes with every other waiter, task or thread; a
//!   [watch](AsyncWriter::watch_durable) of the durable position.
//! - [`AsyncTailer`]: follows a log as a `Stream` of [`OwnedRecord`]s, woken by the writer's
//!   publish in any process. Waiting costs no thread per tailer: one waiter thread per process
//!   sleeps on the wake words of every tailer's segment at once (`futex_waitv`).
//! - [`AsyncConsumer`]: a named consumer ([`Consumer`](crate::Consumer)) as a stream, with
//!   commits.
//! - Async wrappers for the calls that wait on the disk ([`recover`], [`verify`],
//!   [`durable_seq`], opening): run on tokio's blocking threads, so they do not stall the
//!   runtime's workers.
//!
//! Every future here is cancel-safe: dropping it loses no record and leaves nothing waiting.
//! See `docs/async.md` for the design and its costs.

mod consumer;
mod tail;
mod waiter;
mod writer;

use std::path::Path;

pub use consumer::AsyncConsumer;
pub use tail::{AsyncTailer, Next, NextBatch, OwnedRecord};
pub use writer::{AsyncWriter, Durability};

use crate::error::{Error, Result};
use crate::recovery::{RecoveryMode, RecoveryReport, VerifyReport};

/// Runs `f` on tokio's blocking threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match ::tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(Error::io(
            "a blocking task failed for",
            Path::new(""),
            std::io::Error::other(e.to_string()),
        )),
    }
}

/// [`applog::recover`](crate::recover) on a blocking thread.
///
/// # Errors
/// As [`applog::recover`](crate::recover).
pub async fn recover(dir: impl AsRef<Path>, mode: RecoveryMode) -> Result<RecoveryReport> {
    let dir = dir.as_ref().to_owned();
    blocking(move || crate::recover(dir, mode)).await
}

/// [`applog::verify`](crate::verify) on a blocking thread.
///
/// # Errors
/// As [`applog::verify`](crate::verify).
pub async fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref().to_owned();
    blocking(move || crate::verify(dir)).await
}

/// [`applog::durable_seq`](crate::durable_seq) on a blocking thread.
///
/// # Errors
/// As [`applog::durable_seq`](crate::durable_seq).
pub async fn durable_seq(dir: impl AsRef<Path>) -> Result<u64> {
    let dir = dir.as_ref().to_owned();
    blocking(move || crate::durable_seq(dir)).await
}

/// How many tasks wait in this process's waiter right now. Test surface (with the
/// `fault-injection` feature); not part of the API.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub fn waiting_tasks() -> usize {
    waiter::get().registrations()
}
