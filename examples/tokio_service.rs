//! A service on tokio: request handlers append durably, and a task in a second runtime tails
//! the log as a stream, as a replicator or an indexer would.
//!
//! ```text
//! cargo run --release --features tokio --example tokio_service [DIR]
//! ```
//!
//! 64 handler tasks on a 2-thread runtime each append records and await their durability
//! before "acknowledging" (group commit shares the flushes); a tailer on a current-thread
//! runtime in another thread follows the log with `AsyncTailer`, yielding only durable records
//! (what may leave the machine). Prints throughput and latencies; exits 0 when the tailer got
//! every record in order.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::{Duration, Instant};

use applog::tokio::{AsyncTailer, AsyncWriter};
use applog::Options;
use futures_core::Stream;

const HANDLERS: u64 = 64;
const REQUESTS: u64 = 300;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v.get(((v.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_owned(), Into::into);
    let total = HANDLERS * REQUESTS;
    let epoch = Instant::now();

    let service = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let log = service.block_on(AsyncWriter::open(&dir, Options::default()))?;
    let first = log.next_seq();

    // The follower: its own runtime, in its own thread (it could as well be another process).
    let follow_dir = dir.clone();
    let follower = std::thread::spawn(move || -> applog::Result<Vec<Duration>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| applog::Error::InvalidOptions(e.to_string()))?;
        rt.block_on(async move {
            let mut tailer = AsyncTailer::open(&follow_dir, first).await?.durable_only();
            let mut lat = Vec::with_capacity(total as usize);
            let mut expect = first;
            while expect < first + total {
                // `AsyncTailer` is a `Stream`; any stream combinator library works on it too.
                let Some(record) = poll_fn(|cx| Pin::new(&mut tailer).poll_next(cx)).await else {
                    break;
                };
                let record = record?;
                assert_eq!(record.seq(), expect, "records arrive in order");
                let sent = u64::from_le_bytes(record.data()[..8].try_into().unwrap_or_default());
                lat.push(epoch.elapsed().saturating_sub(Duration::from_nanos(sent)));
                expect += 1;
            }
            Ok(lat)
        })
    });

    let started = Instant::now();
    let acks: applog::Result<Vec<Duration>> = service.block_on(async {
        let handlers: Vec<tokio::task::JoinHandle<applog::Result<Vec<Duration>>>> = (0..HANDLERS)
            .map(|h| {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut acks = Vec::with_capacity(REQUESTS as usize);
                    for i in 0..REQUESTS {
                        let t = Instant::now();
                        let mut record = (epoch.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
                        record.extend_from_slice(format!("handler {h} request {i}").as_bytes());
                        let seq = log.append(&record)?;
                        log.durable(seq).await?; // now the request may be acknowledged
                        acks.push(t.elapsed());
                    }
                    Ok(acks)
                })
            })
            .collect();
        let mut acks = Vec::new();
        for h in handlers {
            acks.extend(
                h.await
                    .map_err(|e| applog::Error::InvalidOptions(e.to_string()))??,
            );
        }
        Ok(acks)
    });
    let mut acks = acks?;
    let elapsed = started.elapsed();
    let mut tail = follower.join().map_err(|_| "follower panicked")??;
    service.block_on(log.close())?;

    println!(
        "{HANDLERS} handler tasks on 2 threads: {total} durable appends in {:.2} s = {:.0}/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "append + durable latency: p50 {:?}, p99 {:?}",
        percentile(&mut acks, 0.5),
        percentile(&mut acks, 0.99)
    );
    println!(
        "durable-only tailer (another runtime): {} records in order; append-to-delivery p50 {:?}, p99 {:?}",
        tail.len(),
        percentile(&mut tail, 0.5),
        percentile(&mut tail, 0.99)
    );
    if tail.len() as u64 != total {
        return Err("the tailer missed records".into());
    }
    Ok(())
}
