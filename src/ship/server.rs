//! The server side: connecting, the stream (created, checked, read at resume) and what a failed publish means.

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishErrorKind, stream};

use super::{Ctx, ShipError, ShipOptions, Step, LOG_HEADER, SEQ_HEADER};

pub(super) async fn connect(
    ctx: &Ctx,
    opts: &ShipOptions,
) -> Result<async_nats::Client, ShipError> {
    let mut addrs = Vec::new();
    for url in opts.servers.iter().flat_map(|s| s.split(',')) {
        let url = url.trim();
        if url.is_empty() {
            continue;
        }
        let addr: async_nats::ServerAddr = url
            .parse()
            .map_err(|e| ShipError::Usage(format!("bad NATS server URL {url:?}: {e}")))?;
        addrs.push(addr);
    }
    if addrs.is_empty() {
        return Err(ShipError::Usage("no NATS server URL given".to_owned()));
    }
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        let errors = Arc::clone(&ctx.server_error);
        // Credentials in a URL (`nats://user:password@host:port`): the client does not take
        // them from there itself.
        let mut options = async_nats::ConnectOptions::new();
        if let Some((user, pass)) = addrs
            .iter()
            .find_map(|a| Some((a.username()?.to_owned(), a.password()?.to_owned())))
        {
            options = options.user_and_password(user, pass);
        }
        let options = options
            .name(format!("applog ship {}", ctx.consumer_name))
            .connection_timeout(opts.ack_timeout)
            .request_timeout(Some(opts.ack_timeout))
            .event_callback(move |event| {
                let errors = Arc::clone(&errors);
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        tracing::warn!("NATS server error: {e}");
                        *errors.lock().unwrap_or_else(PoisonError::into_inner) =
                            Some(e.to_string());
                    }
                }
            });
        match options.connect(addrs.as_slice()).await {
            Ok(client) => return Ok(client),
            Err(e)
                if started.elapsed() < opts.retry_for
                    && !matches!(
                        e.kind(),
                        async_nats::ConnectErrorKind::AuthorizationViolation
                            | async_nats::ConnectErrorKind::Authentication
                            | async_nats::ConnectErrorKind::ServerParse
                            | async_nats::ConnectErrorKind::Tls
                    ) =>
            {
                tracing::warn!(servers = %ctx.servers, "cannot connect: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(ShipError::Connect {
                    servers: ctx.servers.clone(),
                    detail: format!("{e} (for {:?})", started.elapsed()),
                })
            }
        }
    }
}

/// Gets the stream, creating it when missing; checks that it takes the subject and keeps
/// what it takes.
pub(super) async fn ensure_stream(
    ctx: &Ctx,
    js: &jetstream::Context,
    opts: &ShipOptions,
) -> Result<stream::Stream, ShipError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        let failure = match js.get_stream(&ctx.stream).await {
            Ok(mut s) => match s.info().await {
                Ok(info) => {
                    check_shape(ctx, &info.config, opts)?;
                    return Ok(s);
                }
                Err(e) => format!("cannot read its configuration: {e}"),
            },
            Err(e) => match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(je)
                    if je.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    let config = stream::Config {
                        name: ctx.stream.clone(),
                        subjects: vec![ctx.subject.clone()],
                        num_replicas: opts.replicas.max(1),
                        duplicate_window: opts.duplicate_window,
                        storage: stream::StorageType::File,
                        description: Some("records shipped from an applog log".to_owned()),
                        ..stream::Config::default()
                    };
                    match js.create_stream(config).await {
                        Ok(s) => {
                            tracing::info!(stream = %ctx.stream, subject = %ctx.subject, replicas = opts.replicas, "created stream");
                            return Ok(s);
                        }
                        Err(e) => format!("cannot create it: {e}"),
                    }
                }
                // Others pass (a cluster electing a leader answers "temporarily
                // unavailable"): retried like the rest.
                _ => format!("cannot read it: {e}"),
            },
        };
        if started.elapsed() >= opts.retry_for {
            return Err(ctx.stream_err(failure));
        }
        tracing::warn!(stream = %ctx.stream, servers = %ctx.servers, "{failure}; retrying in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn check_shape(ctx: &Ctx, config: &stream::Config, opts: &ShipOptions) -> Result<(), ShipError> {
    if !config.subjects.iter().any(|s| s == &ctx.subject) {
        return Err(ctx.stream_err(format!(
            "it does not take subject {} (its subjects: {}): give the subject it takes",
            ctx.subject,
            config.subjects.join(", ")
        )));
    }
    if config.retention != stream::RetentionPolicy::Limits {
        return Err(ctx.stream_err(
            "its retention is not `limits`: the shipper resumes from the stream's last message, \
             which a work-queue or interest stream removes",
        ));
    }
    if config.num_replicas != opts.replicas.max(1) {
        tracing::warn!(stream = %ctx.stream, "the stream has {} replicas, not {}", config.num_replicas, opts.replicas);
    }
    if config.duplicate_window < opts.ack_timeout * 2 {
        tracing::warn!(stream = %ctx.stream, "the stream's duplicate window ({:?}) is short: a message resent after a failure may be stored twice", config.duplicate_window);
    }
    Ok(())
}

pub(super) struct Resume {
    /// The seq after the stream's last record; `None` when the stream holds no message.
    pub(super) next_seq: Option<u64>,
    /// The stream sequence of its last message (0 for a stream never written).
    pub(super) last_stream_seq: u64,
}

/// Reads where the stream is: its last message, which must be a record of this log.
pub(super) async fn resync(ctx: &Ctx, stream: &stream::Stream) -> Result<Resume, Step> {
    let info = match stream.get_info().await {
        Ok(i) => i,
        Err(e) => {
            // A JetStream error reaches here as text only.
            if e.to_string()
                .to_ascii_lowercase()
                .contains("stream not found")
            {
                return Err(Step::Fatal(ctx.edited("the stream was deleted")));
            }
            return Err(Step::Retry(format!(
                "cannot read stream {} at {}: {e}",
                ctx.stream, ctx.servers
            )));
        }
    };
    let last = info.state.last_sequence;
    if info.state.messages == 0 {
        return Ok(Resume {
            next_seq: None,
            last_stream_seq: last,
        });
    }
    let msg = match stream.get_raw_message(last).await {
        Ok(m) => m,
        Err(e) => {
            if matches!(
                e.kind(),
                jetstream::stream::LastRawMessageErrorKind::NoMessageFound
            ) {
                return Err(Step::Fatal(ctx.edited(format!(
                    "its last message (stream sequence {last}) was removed"
                ))));
            }
            return Err(Step::Retry(format!(
                "cannot read the last message of stream {} at {}: {e}",
                ctx.stream, ctx.servers
            )));
        }
    };
    let header = |name: &str| msg.headers.get(name).map(|v| v.as_str().to_owned());
    let (Some(log), Some(seq)) = (header(LOG_HEADER), header(SEQ_HEADER)) else {
        return Err(Step::Fatal(ctx.edited(format!(
            "its last message (stream sequence {last}, subject {}) is not a shipped record \
             (no {LOG_HEADER} and {SEQ_HEADER} headers)",
            msg.subject
        ))));
    };
    if log != ctx.id {
        return Err(Step::Fatal(ctx.edited(format!(
            "its last message (stream sequence {last}) is a record of another log ({log}; \
             this log is {})",
            ctx.id
        ))));
    }
    let seq: u64 = seq.parse().map_err(|_| {
        Step::Fatal(ctx.edited(format!(
            "its last message (stream sequence {last}) has a bad {SEQ_HEADER} header {seq:?}"
        )))
    })?;
    Ok(Resume {
        next_seq: Some(seq + 1),
        last_stream_seq: last,
    })
}

pub(super) fn classify(ctx: &Ctx, e: &jetstream::context::PublishError) -> Step {
    // A publish the server refuses for permissions is dropped, never acknowledged: the only
    // word on it is the error the server sent on the connection.
    let denied = ctx
        .server_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_some_and(|text| {
            let text = text.to_ascii_lowercase();
            text.contains("permissions violation")
                && text.contains(&ctx.subject.to_ascii_lowercase())
        });
    if denied {
        return Step::Fatal(
            ctx.publish_err(format!("permission denied on subject {}", ctx.subject)),
        );
    }
    match e.kind() {
        PublishErrorKind::TimedOut
        | PublishErrorKind::BrokenPipe
        | PublishErrorKind::MaxAckPending
        | PublishErrorKind::StreamNotFound
        | PublishErrorKind::WrongLastSequence
        | PublishErrorKind::WrongLastMessageId => Step::Retry(format!("publish: {e}")),
        PublishErrorKind::Other => {
            let text = e.to_string();
            let lower = text.to_ascii_lowercase();
            if lower.contains("maximum") || lower.contains("exceeded") || lower.contains("storage")
            {
                Step::Fatal(ctx.publish_err(format!("the stream is full: {text}")))
            } else if lower.contains("permission") || lower.contains("authorization") {
                Step::Fatal(ctx.publish_err(format!("permission denied: {text}")))
            } else {
                Step::Retry(format!("publish: {text}"))
            }
        }
    }
}
