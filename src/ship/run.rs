//! The publishing loop: positioning the consumer, pipelined guarded publishes, commits.

use std::collections::VecDeque;
use std::time::Instant;

use async_nats::jetstream;

use super::server::classify;
use super::{Ctx, Step, Stopper, LOG_HEADER, SEQ_HEADER};
use crate::tokio::AsyncConsumer;

/// Moves the shipper's consumer to the record after the stream's last one, or to its
/// committed position for an empty stream. Returns the seq of the next record to ship. The
/// consumer stays open from the start to the end of [`ship`]: its name is held all along.
pub(super) async fn position(
    ctx: &Ctx,
    consumer: &mut AsyncConsumer,
    next: Option<u64>,
) -> Result<u64, Step> {
    let committed = consumer.committed();
    let n = next.unwrap_or(committed);
    if n == consumer.position() && n >= committed {
        if n > committed {
            // Stored, though their acknowledgements were lost.
            consumer.commit_to(n)?;
        }
        return Ok(n);
    }
    let durable = crate::tokio::durable_seq(&ctx.dir).await?;
    if n > durable {
        return Err(Step::Fatal(ctx.diverged(format!(
            "the stream holds records up to seq {} but the log's durable records end before \
             seq {durable} (the log lost records it had shipped, or the stream is another \
             log's)",
            n.saturating_sub(1)
        ))));
    }
    if n < committed {
        // The stream is behind what this consumer committed (restored, or trimmed by
        // someone): ship again from where the stream ends.
        tracing::warn!(stream = %ctx.stream, "the stream ends before the consumer's committed position {committed}: shipping again from seq {n}");
    }
    consumer.reposition(n, true).await?;
    if n > committed {
        // The stream holds records this consumer had not committed (a shipper stopped between
        // an acknowledgement and its commit): they need not be kept any longer.
        consumer.commit_to(n)?;
    }
    Ok(n)
}

/// A publish that the stream has not acknowledged yet: the seq, the stream sequence it is to
/// get, and the acknowledgement to come.
type InFlight = VecDeque<(u64, u64, jetstream::context::PublishAckFuture)>;

/// Publishes records from `next` until `target` (or forever), pipelined; commits each one
/// the stream acknowledged. Returns the next seq once `target` is reached.
///
/// Each round of publishes (the records there are, up to the window) runs in a
/// `applog.ship_batch` span with the log directory, the stream and the seq range published.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    ctx: &Ctx,
    js: &jetstream::Context,
    consumer: &mut AsyncConsumer,
    mut next: u64,
    mut predicted_last: u64,
    target: u64,
    window: usize,
    shipped: &mut u64,
    last_progress: &mut Instant,
    stop: &mut Stopper<'_>,
) -> Result<u64, Step> {
    let mut target = target;
    let mut in_flight = InFlight::new();
    loop {
        if stop.or_stop(std::future::ready(())).await.is_none() {
            // Publish nothing more; what is in flight is still acknowledged and committed.
            target = next;
        }
        if next >= target && in_flight.is_empty() {
            return Ok(next);
        }
        if next < target && in_flight.len() < window {
            let span = tracing::debug_span!(
                "applog.ship_batch",
                dir = %ctx.dir.display(),
                stream = %ctx.stream,
                first_seq = next,
                end_seq = tracing::field::Empty,
            );
            let from = next;
            let filled = tracing::Instrument::instrument(
                publish(
                    ctx,
                    js,
                    consumer,
                    (&mut next, &mut predicted_last),
                    target,
                    window,
                    &mut in_flight,
                    stop,
                ),
                span.clone(),
            )
            .await;
            span.record("end_seq", next);
            ctx.metrics.published(next - from);
            if !filled? {
                return Ok(next);
            }
        }
        let Some((seq, expected, ack)) = in_flight.pop_front() else {
            continue;
        };
        let ack = ack.await.map_err(|e| classify(ctx, &e))?;
        if ack.stream != ctx.stream {
            return Err(Step::Fatal(ctx.stream_err(format!(
                "subject {} is stored by stream {}, not this one",
                ctx.subject, ack.stream
            ))));
        }
        if ack.sequence != expected {
            return Err(Step::Retry(format!(
                "record {seq} was acknowledged at stream sequence {} (duplicate: {}), not {expected}",
                ack.sequence, ack.duplicate
            )));
        }
        consumer.commit_to(seq + 1)?;
        ctx.metrics.acknowledged(seq + 1);
        *shipped += 1;
        *last_progress = Instant::now();
    }
}

/// Publishes what is there without waiting, up to the window; waits for a record only when
/// nothing is in flight. `Ok(false)` when the stop signal came while it waited (nothing in
/// flight then).
#[allow(clippy::too_many_arguments)]
async fn publish(
    ctx: &Ctx,
    js: &jetstream::Context,
    consumer: &mut AsyncConsumer,
    (next, predicted_last): (&mut u64, &mut u64),
    target: u64,
    window: usize,
    in_flight: &mut InFlight,
    stop: &mut Stopper<'_>,
) -> Result<bool, Step> {
    while *next < target && in_flight.len() < window {
        let record = if in_flight.is_empty() {
            match stop.or_stop(consumer.next()).await {
                Some(r) => r?,
                None => return Ok(false),
            }
        } else {
            match consumer.try_next()? {
                Some(r) => r,
                None => break,
            }
        };
        let seq = record.seq();
        if seq != *next {
            return Err(Step::Fatal(ctx.diverged(format!(
                "the consumer delivered seq {seq} where {next} was expected"
            ))));
        }
        let publish = jetstream::message::PublishMessage::build()
            .payload(record.into_data().into())
            .message_id(ctx.msg_id(seq))
            .header(SEQ_HEADER, seq.to_string().as_str())
            .header(LOG_HEADER, ctx.id.as_str())
            .expected_last_sequence(*predicted_last);
        let ack = js
            .send_publish(ctx.subject.clone(), publish)
            .await
            .map_err(|e| classify(ctx, &e))?;
        *predicted_last += 1;
        in_flight.push_back((seq, *predicted_last, ack));
        *next = seq + 1;
    }
    Ok(true)
}
