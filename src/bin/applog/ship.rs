//! `applog ship`: the durable records of a log into a NATS JetStream stream, exactly once.

use std::path::PathBuf;
use std::time::Duration;

use applog::ship::{ShipError, ShipOptions};

use crate::{Failure, Out};

/// Ship every durable record of a log, in seq order, into a NATS JetStream stream.
///
/// One message per record: the payload is the record's bytes, header `Applog-Seq` its seq,
/// `Applog-Log` the log's identity (the file `log-id` in the log, created with it)
/// and `Nats-Msg-Id` both. The stream is created when missing. The shipper resumes after the
/// stream's last record, so records are shipped once each whatever stops it; it is the named
/// consumer `ship-<STREAM>` of the log (see `applog consumers`), so retention keeps the records
/// the stream has not acknowledged. Exit 0 once the stream acknowledged every record that was
/// durable at the start (with -f: keeps shipping new records as they become durable); 1 when
/// it fails (the message names the server and the stream). SIGINT or SIGTERM stops it: it
/// publishes nothing more, waits for the acknowledgements of what it published, and exits 0.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// NATS server URL (nats://host:port); repeat it or give a comma list for a cluster.
    #[arg(long = "nats", value_name = "URL", required = true)]
    nats: Vec<String>,
    /// The JetStream stream (created when missing).
    #[arg(long, value_name = "STREAM")]
    stream: String,
    /// The subject to publish on [default: applog.<STREAM>].
    #[arg(long, value_name = "SUBJECT")]
    subject: Option<String>,
    /// Replicas of the stream when it is created.
    #[arg(long, value_name = "N", default_value_t = 1)]
    replicas: usize,
    /// Keep shipping new records as they become durable.
    #[arg(short = 'f', long)]
    follow: bool,
    /// The shipper's consumer name [default: ship-<STREAM>].
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Seconds to keep retrying without progress before giving up.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    retry_for: u64,
    /// Messages that may wait for their acknowledgement at once.
    #[arg(long, value_name = "N", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65536))]
    in_flight: u64,
    /// Seconds to wait for one acknowledgement (or one request) before retrying.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = positive_secs)]
    ack_timeout: Duration,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut opts = ShipOptions::new(args.nats, args.stream);
    opts.subject = args.subject;
    opts.replicas = args.replicas;
    opts.follow = args.follow;
    opts.name = args.name;
    opts.retry_for = Duration::from_secs(args.retry_for);
    opts.in_flight = usize::try_from(args.in_flight).unwrap_or(usize::MAX);
    opts.ack_timeout = args.ack_timeout;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Io {
            what: "could not start the async runtime",
            source: e,
        })?;
    let report = runtime
        .block_on(applog::ship::ship_until(&args.log, &opts, terminated()))
        .map_err(|e| match e {
            ShipError::Log(e) => Failure::Log(e),
            other => Failure::Msg(other.to_string()),
        })?;
    let mut out = Out::new();
    writeln!(
        out,
        "shipped {} records; the stream holds every record below seq {}",
        report.shipped, report.next_seq
    )?;
    out.finish()
}

/// A positive number of seconds (`0.5`, `5`).
fn positive_secs(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds"))
}

/// Completes at the first SIGINT or SIGTERM (never, if they cannot be caught).
async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    std::future::poll_fn(|cx| {
        if int.poll_recv(cx).is_ready() || term.poll_recv(cx).is_ready() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
