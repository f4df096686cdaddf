//! A service that keeps its write-ahead log in applog and ships it, from inside its own
//! process, into a NATS `JetStream` stream: exactly once, and only what is durable.
//!
//! ```text
//! nats-server -js &
//! cargo run --features ship --example ship_service [NATS_URL] [STREAM] [DIR]
//! ```
//!
//! Request handlers append records and await their durability; a shipper task follows the log
//! ([`applog::ship::ship_until`] with `follow`) and publishes each record once it is durable.
//! When the handlers are done, the service stops the shipper: it publishes nothing more, waits
//! for the acknowledgements of what it published, commits them and returns. A last
//! [`applog::ship::ship`] (without `follow`) ships whatever the follower had not reached, so
//! the service exits with every record in the stream. Run it twice: the second run ships only
//! its own new records, since the shipper resumes from what the stream holds.
//!
//! Defaults: `nats://127.0.0.1:4222`, stream `EXAMPLE`, a log in a temporary directory.

use std::time::Instant;

use applog::ship::ShipOptions;
use applog::tokio::AsyncWriter;
use applog::Options;

const HANDLERS: u64 = 8;
const REQUESTS: u64 = 250;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned());
    let stream = args.next().unwrap_or_else(|| "EXAMPLE".to_owned());
    let tmp = tempfile::tempdir()?;
    let dir = args
        .next()
        .map_or_else(|| tmp.path().join("log"), Into::into);

    let writer = AsyncWriter::open(&dir, Options::new()).await?;
    let first = writer.next_seq();
    let mut opts = ShipOptions::new(vec![url], stream);
    opts.follow = true;

    // The shipper: a named consumer of the log (`ship-<stream>`), so retention keeps every
    // record the stream has not acknowledged yet.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shipper = tokio::spawn({
        let (dir, opts) = (dir.clone(), opts.clone());
        async move {
            applog::ship::ship_until(&dir, &opts, async {
                let _ = stopped.await;
            })
            .await
        }
    });

    // The handlers: append, then await durability before answering the request.
    let started = Instant::now();
    let mut handlers = Vec::new();
    for h in 0..HANDLERS {
        let writer = writer.clone();
        handlers.push(tokio::spawn(async move {
            for r in 0..REQUESTS {
                let record = format!("handler {h} request {r}");
                writer.append_durable(record.as_bytes()).await?;
            }
            Ok::<(), applog::Error>(())
        }));
    }
    for h in handlers {
        h.await??;
    }
    let appended = writer.next_seq() - first;
    println!(
        "appended {appended} durable records in {:?}",
        started.elapsed()
    );

    let _ = stop.send(());
    let followed = shipper.await??;
    opts.follow = false;
    let rest = applog::ship::ship(&dir, &opts).await?;
    println!(
        "shipped {} records while following and {} after; the stream holds every record below \
         seq {}",
        followed.shipped, rest.shipped, rest.next_seq
    );
    writer.close().await?;
    if rest.next_seq != first + appended {
        return Err(format!(
            "the stream ends at seq {}, the log at {}",
            rest.next_seq,
            first + appended
        )
        .into());
    }
    Ok(())
}
