//! Shipping a log into a NATS `JetStream` stream, exactly once (the `ship` feature).
//!
//! [`ship`] publishes every **durable** record of a log, in seq order, into a `JetStream` stream,
//! one message per record: the payload is the record's bytes, the header [`SEQ_HEADER`] its
//! seq, [`LOG_HEADER`] the log's identity ([`log_id`](crate::log_id)), and `Nats-Msg-Id`
//! `<log id>-<seq>`. See `docs/ship.md` for the design.
//!
//! - **Resume from the stream.** Before publishing (and after any failure) the shipper reads
//!   the stream's last message: the next record to ship is the one after its seq. The local
//!   position (a named [`Consumer`], `ship-<stream>` by default) only pins the records not yet
//!   acknowledged against retention, and gives the start for an empty stream.
//! - **Guarded publishes.** Each message expects the stream's last sequence to be the one its
//!   predecessor got (`Nats-Expected-Last-Sequence`), so nothing else can be interleaved and a
//!   stream changed by someone else is an error, not a silent duplicate; a message resent after
//!   a failure whose first copy was stored is a duplicate by its `Nats-Msg-Id`, and dropped.
//! - **Pipelined.** Up to [`ShipOptions::in_flight`] messages wait for their acknowledgements
//!   at once; the consumer commits each record once the stream acknowledged it.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::tokio::AsyncConsumer;
use crate::{Consumer, Error};

mod run;
mod server;

use run::{position, run};
use server::{connect, ensure_stream, resync};

/// The header that carries a record's seq (decimal).
pub const SEQ_HEADER: &str = "Applog-Seq";
/// The header that carries the identity of the log a record comes from.
pub const LOG_HEADER: &str = "Applog-Log";

/// What [`ship`] does: where to, and how hard to try.
#[derive(Debug, Clone)]
pub struct ShipOptions {
    /// NATS server URLs (`nats://host:port`); several for a cluster.
    pub servers: Vec<String>,
    /// The `JetStream` stream, created when missing.
    pub stream: String,
    /// The subject the records are published on; `applog.<stream>` by default.
    pub subject: Option<String>,
    /// The replica count of a stream the shipper creates.
    pub replicas: usize,
    /// Keep shipping new records as they become durable, instead of returning once every
    /// record durable at the start is acknowledged.
    pub follow: bool,
    /// The name of the shipper's consumer; `ship-<stream>` by default.
    pub name: Option<String>,
    /// How many messages may wait for their acknowledgement at once.
    pub in_flight: usize,
    /// How long to wait for one acknowledgement (or one request) before retrying.
    pub ack_timeout: Duration,
    /// How long to keep retrying without progress before giving up.
    pub retry_for: Duration,
    /// The duplicate window of a stream the shipper creates; it must cover `retry_for`.
    pub duplicate_window: Duration,
}

impl ShipOptions {
    /// Options for shipping into `stream` at `servers`, with the defaults: one replica, no
    /// follow, 256 messages in flight, 5 s acknowledgement timeout, 60 s of retries, a 2 min
    /// duplicate window.
    pub fn new(servers: Vec<String>, stream: impl Into<String>) -> ShipOptions {
        ShipOptions {
            servers,
            stream: stream.into(),
            subject: None,
            replicas: 1,
            follow: false,
            name: None,
            in_flight: 256,
            ack_timeout: Duration::from_secs(5),
            retry_for: Duration::from_secs(60),
            duplicate_window: Duration::from_secs(120),
        }
    }

    /// The subject records are published on.
    pub fn subject(&self) -> String {
        self.subject
            .clone()
            .unwrap_or_else(|| format!("applog.{}", self.stream))
    }

    /// The name of the shipper's consumer.
    pub fn consumer_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("ship-{}", self.stream))
    }

    /// The servers for messages: comma-separated, without credentials.
    fn server_list(&self) -> String {
        self.servers
            .iter()
            .flat_map(|s| s.split(','))
            .map(|url| {
                let url = url.trim();
                match (url.find("://"), url.rfind('@')) {
                    (Some(scheme), Some(at)) if at > scheme => {
                        format!("{}{}", &url[..scheme + 3], &url[at + 1..])
                    }
                    (None, Some(at)) => url[at + 1..].to_owned(),
                    _ => url.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What a finished [`ship`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShipReport {
    /// Records this run published and saw acknowledged.
    pub shipped: u64,
    /// The seq of the next record to ship: every record below it is in the stream.
    pub next_seq: u64,
}

/// Why shipping stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// Reading the log, or its consumer, failed.
    #[error(transparent)]
    Log(#[from] Error),
    /// Bad options (a server URL, a name).
    #[error("{0}")]
    Usage(String),
    /// No server could be reached.
    #[error("cannot connect to NATS server {servers}: {detail}")]
    Connect {
        /// The servers tried.
        servers: String,
        /// What went wrong.
        detail: String,
    },
    /// The stream is missing and cannot be created, has the wrong shape, or cannot be read.
    #[error("stream {stream} at NATS server {servers}: {detail}")]
    Stream {
        /// The servers.
        servers: String,
        /// The stream.
        stream: String,
        /// What went wrong.
        detail: String,
    },
    /// The stream holds something the shipper did not put there (or lost what it did).
    #[error("stream {stream} at NATS server {servers} was changed by someone else: {detail}")]
    Edited {
        /// The servers.
        servers: String,
        /// The stream.
        stream: String,
        /// What was found.
        detail: String,
    },
    /// The stream and the log disagree: the stream has records the log does not (any more).
    #[error("stream {stream} at NATS server {servers} does not match the log in {dir}: {detail}")]
    Diverged {
        /// The servers.
        servers: String,
        /// The stream.
        stream: String,
        /// The log directory.
        dir: PathBuf,
        /// What was found.
        detail: String,
    },
    /// Publishing failed for good (the stream is full, permission denied), or kept failing
    /// for longer than [`ShipOptions::retry_for`].
    #[error("publishing to stream {stream} at NATS server {servers} failed: {detail}")]
    Publish {
        /// The servers.
        servers: String,
        /// The stream.
        stream: String,
        /// What went wrong.
        detail: String,
    },
}

/// The outcome of one attempt: a failure worth retrying (after a resync), or one that is not.
enum Step {
    Retry(String),
    Fatal(ShipError),
}

impl From<ShipError> for Step {
    fn from(e: ShipError) -> Step {
        Step::Fatal(e)
    }
}

impl From<Error> for Step {
    fn from(e: Error) -> Step {
        Step::Fatal(ShipError::Log(e))
    }
}

struct Ctx {
    dir: PathBuf,
    id: String,
    subject: String,
    consumer_name: String,
    servers: String,
    stream: String,
    /// The last error the server sent on the connection (a permissions violation, for one):
    /// the only word on a publish that is never acknowledged.
    server_error: Arc<Mutex<Option<String>>>,
    /// Metric handles (feature `metrics`; empty without it).
    metrics: crate::metrics::ShipMetrics,
}

impl Ctx {
    fn stream_err(&self, detail: impl Into<String>) -> ShipError {
        ShipError::Stream {
            servers: self.servers.clone(),
            stream: self.stream.clone(),
            detail: detail.into(),
        }
    }

    fn edited(&self, detail: impl Into<String>) -> ShipError {
        ShipError::Edited {
            servers: self.servers.clone(),
            stream: self.stream.clone(),
            detail: detail.into(),
        }
    }

    fn diverged(&self, detail: impl Into<String>) -> ShipError {
        ShipError::Diverged {
            servers: self.servers.clone(),
            stream: self.stream.clone(),
            dir: self.dir.clone(),
            detail: detail.into(),
        }
    }

    fn publish_err(&self, detail: impl Into<String>) -> ShipError {
        let mut detail = detail.into();
        if let Some(e) = self
            .server_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            detail = format!("{detail} (the server said: {e})");
        }
        ShipError::Publish {
            servers: self.servers.clone(),
            stream: self.stream.clone(),
            detail,
        }
    }

    fn msg_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.id)
    }
}

/// Ships the durable records of the log in `dir` into the stream `opts.stream`, exactly once
/// (see the module docs). Without [`follow`](ShipOptions::follow), returns once every record
/// durable when it started is acknowledged; with it, runs until an error.
///
/// # Errors
/// As [`ship_until`].
///
/// # Example
/// Not run here: it needs a NATS server with `JetStream` (`nats-server -js`).
/// ```no_run
/// use applog::ship::{ship, ShipOptions};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), applog::ship::ShipError> {
/// let opts = ShipOptions::new(vec!["nats://127.0.0.1:4222".into()], "events");
/// let report = ship("/var/lib/myapp/events", &opts).await?; // what is durable now, once
/// println!("shipped {}; the stream holds seqs below {}", report.shipped, report.next_seq);
///
/// // Or run beside the writer, shipping each record once it is durable, until an error:
/// let follow = ShipOptions { follow: true, ..opts };
/// ship("/var/lib/myapp/events", &follow).await?;
/// # Ok(()) }
/// ```
pub async fn ship(dir: impl AsRef<Path>, opts: &ShipOptions) -> Result<ShipReport, ShipError> {
    ship_until(dir, opts, std::future::pending()).await
}

/// [`ship`], stopping early once `stop` completes: it publishes nothing more, waits for the
/// acknowledgements of what it published, commits them and returns (a shipper that is
/// dropped or killed instead loses nothing either: the next one resumes from the stream).
///
/// # Errors
/// [`ShipError`]: the log or its consumer (another shipper holds the consumer:
/// [`Error::ConsumerBusy`]), a server unreachable, the stream missing and not creatable or of
/// the wrong shape, the stream changed by someone else, the stream full, permission denied,
/// or failures retried for longer than [`ShipOptions::retry_for`].
pub async fn ship_until(
    dir: impl AsRef<Path>,
    opts: &ShipOptions,
    stop: impl Future<Output = ()> + Send,
) -> Result<ShipReport, ShipError> {
    let stop = std::pin::pin!(stop);
    let mut stop = Stopper {
        fut: stop,
        stopped: false,
    };
    let dir = dir.as_ref().to_owned();
    let consumer_name = opts.consumer_name();
    crate::validate_consumer_name(&consumer_name).map_err(|_| {
        ShipError::Usage(format!(
            "{consumer_name:?} is not a valid consumer name (1 to 64 of A-Z a-z 0-9 . _ -): \
             give the shipper a name"
        ))
    })?;
    let id = {
        let dir = dir.clone();
        crate::tokio::blocking(move || crate::log_id(dir)).await?
    };
    let metrics = crate::metrics::ShipMetrics::new(&dir, &opts.stream);
    let ctx = Ctx {
        dir,
        id,
        subject: opts.subject(),
        consumer_name,
        servers: opts.server_list(),
        stream: opts.stream.clone(),
        server_error: Arc::new(Mutex::new(None)),
        metrics,
    };
    let result: Result<ShipReport, ShipError> = async {
        // First, so that a second shipper under the same name is refused at once.
        let mut consumer = {
            let dir = ctx.dir.clone();
            let name = ctx.consumer_name.clone();
            let c = crate::tokio::blocking(move || Consumer::open(dir, &name)).await?;
            AsyncConsumer::from_consumer(c.durable_only())
        };
        let stopped = ShipReport {
            shipped: 0,
            next_seq: consumer.committed(),
        };
        let Some(client) = stop.or_stop(connect(&ctx, opts)).await.transpose()? else {
            return Ok(stopped);
        };
        let mut js = jetstream::new(client);
        js.set_timeout(opts.ack_timeout);
        let Some(stream) = stop
            .or_stop(ensure_stream(&ctx, &js, opts))
            .await
            .transpose()?
        else {
            return Ok(stopped);
        };

        let target = if opts.follow {
            u64::MAX
        } else {
            crate::tokio::durable_seq(&ctx.dir).await?
        };
        let mut shipped = 0u64;
        let mut last_progress = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = async {
                let resume = resync(&ctx, &stream).await?;
                let next = position(&ctx, &mut consumer, resume.next_seq).await?;
                if next >= target {
                    return Ok(next);
                }
                run(
                    &ctx,
                    &js,
                    &mut consumer,
                    next,
                    resume.last_stream_seq,
                    target,
                    opts.in_flight.max(1),
                    &mut shipped,
                    &mut last_progress,
                    &mut stop,
                )
                .await
            };
            match attempt.await {
                Ok(next) => {
                    consumer.sync().await?;
                    return Ok(ShipReport {
                        shipped,
                        next_seq: next,
                    });
                }
                Err(Step::Fatal(e)) => return Err(e),
                Err(Step::Retry(why)) => {
                    if last_progress.elapsed() >= opts.retry_for {
                        return Err(ctx.publish_err(format!(
                            "no progress for {:?}; last failure: {why}",
                            opts.retry_for
                        )));
                    }
                    ctx.metrics.retry();
                tracing::warn!(stream = %ctx.stream, servers = %ctx.servers, "ship: {why}; retrying in {backoff:?}");
                    if stop.or_stop(tokio::time::sleep(backoff)).await.is_none() {
                        consumer.sync().await?;
                        return Ok(ShipReport {
                            shipped,
                            next_seq: consumer.committed(),
                        });
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
    .await;
    if result.is_err() {
        ctx.metrics.failed();
    }
    result
}

/// The caller's stop signal: a future that completes when the shipper is to stop.
struct Stopper<'a> {
    fut: Pin<&'a mut (dyn Future<Output = ()> + Send)>,
    stopped: bool,
}

impl Stopper<'_> {
    /// `fut`'s output, or `None` once the stop signal has completed (checked first).
    async fn or_stop<T>(&mut self, fut: impl Future<Output = T>) -> Option<T> {
        let mut fut = std::pin::pin!(fut);
        std::future::poll_fn(|cx| {
            if !self.stopped && self.fut.as_mut().poll(cx).is_ready() {
                self.stopped = true;
            }
            if self.stopped {
                return Poll::Ready(None);
            }
            fut.as_mut().poll(cx).map(Some)
        })
        .await
    }
}
