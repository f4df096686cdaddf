//! Shipping into NATS `JetStream`, against a bare `async-nats` publisher, in the same run, on
//! loopback, against a real `nats-server` this bench starts (one node, R1 file streams):
//!
//! - `ship/throughput/{applog_ship,async_nats}`: [`applog::ship::ship`] publishes N durable
//!   128 B records of a log into a fresh stream, against a bare `async-nats` publisher that
//!   sends the same messages (payload, `Nats-Msg-Id`, `Applog-Seq` and `Applog-Log` headers,
//!   `Nats-Expected-Last-Sequence`) with the same pipelining (256 acknowledgements pending)
//!   into a fresh stream. Elements per second; the shipper's time includes reading the log and
//!   committing its consumer, which is its job.
//! - end-to-end latency (printed after the groups, p50/p99, also in the results file): a
//!   writer appends one 128 B record carrying its send time and syncs it, 1,000 times a
//!   second; a following shipper ships it; an ordered push consumer on the stream takes the
//!   time it receives it. Append + sync + ship + stream storage + delivery: the delivery of a
//!   stored message comes after its acknowledgement, so this bounds the acknowledgement
//!   latency from above.
//!
//! Needs `nats-server` on the PATH (or `NATS_SERVER`). Run:
//! `cargo bench -p applog-bench --bench ship`.

#[path = "support/mod.rs"]
mod support;

#[path = "../../tests/common/nats.rs"]
#[allow(dead_code)]
mod nats;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use applog::ship::{ShipOptions, LOG_HEADER, SEQ_HEADER};
use applog::{Options, Writer};
use async_nats::jetstream::{self, stream};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const MSG: usize = 128;
const N: u64 = 50_000;
const WINDOW: usize = 256;
const RATE_PER_S: u64 = 1_000;
const LATENCY_RECORDS: u64 = 3_000;

/// The harness's way out when there is no server: a bench cannot skip quietly.
fn skip(why: impl std::fmt::Display) {
    panic!("the ship bench needs nats-server: {why}");
}

static STREAMS: AtomicU64 = AtomicU64::new(0);

fn fresh_stream() -> String {
    format!("bench{}", STREAMS.fetch_add(1, Ordering::Relaxed))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fresh_dir(name: &str) -> PathBuf {
    let dir = support::bench_root().join(format!("ship-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A log of `n` durable 128 B records.
fn log_of(n: u64) -> PathBuf {
    let dir = fresh_dir("log");
    let mut w = Writer::open(&dir, Options::new().segment_pages(16 * 1024)).unwrap();
    let rec = [7u8; MSG];
    for _ in 0..n {
        w.append(&rec).unwrap();
    }
    w.sync().unwrap();
    dir
}

async fn connect(url: &str) -> jetstream::Context {
    let client = async_nats::connect(url).await.unwrap();
    jetstream::new(client)
}

/// A fresh R1 stream on subject `applog.<name>`, shaped as the shipper would create it.
async fn create_stream(js: &jetstream::Context, name: &str) {
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![format!("applog.{name}")],
        num_replicas: 1,
        duplicate_window: Duration::from_secs(120),
        storage: stream::StorageType::File,
        ..stream::Config::default()
    })
    .await
    .unwrap();
}

/// The bare publisher: the shipper's messages, the shipper's window, no log.
async fn bare_publish(js: &jetstream::Context, stream: &str, id: &str, n: u64) {
    let subject = format!("applog.{stream}");
    let mut in_flight = VecDeque::with_capacity(WINDOW);
    for seq in 0..n {
        if in_flight.len() == WINDOW {
            let ack: jetstream::context::PublishAckFuture = in_flight.pop_front().unwrap();
            ack.await.unwrap();
        }
        let msg = jetstream::message::PublishMessage::build()
            .payload(vec![7u8; MSG].into())
            .message_id(format!("{id}-{seq}"))
            .header(SEQ_HEADER, seq.to_string().as_str())
            .header(LOG_HEADER, id)
            .expected_last_sequence(seq);
        in_flight.push_back(js.send_publish(subject.clone(), msg).await.unwrap());
    }
    for ack in in_flight {
        ack.await.unwrap();
    }
}

fn ship_options(url: &str, stream: &str) -> ShipOptions {
    let mut opts = ShipOptions::new(vec![url.to_owned()], stream);
    opts.in_flight = WINDOW;
    opts
}

fn throughput(c: &mut Criterion, url: &str, log: &Path) {
    let rt = runtime();
    let js = rt.block_on(connect(url));
    let id = applog::log_id(log).unwrap();
    let mut g = c.benchmark_group("ship/throughput");
    g.throughput(Throughput::Elements(N))
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("applog_ship", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let stream = fresh_stream();
                rt.block_on(create_stream(&js, &stream));
                let opts = ship_options(url, &stream);
                let start = Instant::now();
                let report = rt.block_on(applog::ship::ship(log, &opts)).unwrap();
                total += start.elapsed();
                assert_eq!(report.shipped, N);
                rt.block_on(js.delete_stream(&stream)).unwrap();
                applog::delete_consumer(log, &opts.consumer_name()).unwrap();
            }
            total
        });
    });
    g.bench_function("async_nats", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let stream = fresh_stream();
                rt.block_on(create_stream(&js, &stream));
                let start = Instant::now();
                rt.block_on(bare_publish(&js, &stream, &id, N));
                total += start.elapsed();
                rt.block_on(js.delete_stream(&stream)).unwrap();
            }
            total
        });
    });
    g.finish();
}

/// Append + sync at a fixed rate, a following shipper, an ordered consumer timing each
/// record from its append to its delivery from the stream.
fn latency(url: &str) {
    let rt = runtime();
    let dir = fresh_dir("latency");
    let mut w = Writer::open(&dir, Options::new().segment_pages(16 * 1024)).unwrap();
    let stream = fresh_stream();
    let js = rt.block_on(connect(url));
    rt.block_on(create_stream(&js, &stream));
    let mut opts = ship_options(url, &stream);
    opts.follow = true;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shipper = {
        let dir = dir.clone();
        rt.spawn(async move {
            applog::ship::ship_until(&dir, &opts, async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    let base = Instant::now();
    let receiver = {
        let js = js.clone();
        let stream = stream.clone();
        rt.spawn(async move {
            let s = js.get_stream(&stream).await.unwrap();
            let consumer = s
                .create_consumer(jetstream::consumer::push::OrderedConfig {
                    deliver_subject: js_inbox(&js),
                    ..Default::default()
                })
                .await
                .unwrap();
            let mut messages = consumer.messages().await.unwrap();
            let mut samples = Vec::with_capacity(LATENCY_RECORDS as usize);
            while (samples.len() as u64) < LATENCY_RECORDS {
                let m = std::future::poll_fn(|cx| {
                    futures_core::Stream::poll_next(std::pin::Pin::new(&mut messages), cx)
                })
                .await
                .unwrap()
                .unwrap();
                let now = base.elapsed().as_nanos() as u64;
                let sent = u64::from_le_bytes(m.payload[..8].try_into().unwrap());
                samples.push(now.saturating_sub(sent));
            }
            samples
        })
    };
    let gap = Duration::from_nanos(1_000_000_000 / RATE_PER_S);
    let mut rec = [7u8; MSG];
    let mut due = Instant::now();
    for _ in 0..LATENCY_RECORDS {
        due += gap;
        while Instant::now() < due {
            std::thread::sleep(Duration::from_micros(50));
        }
        let sent = base.elapsed().as_nanos() as u64;
        rec[..8].copy_from_slice(&sent.to_le_bytes());
        w.append(&rec).unwrap();
        w.sync().unwrap();
    }
    let mut samples = rt.block_on(receiver).unwrap();
    let _ = stop_tx.send(());
    let report = rt.block_on(shipper).unwrap().unwrap();
    assert_eq!(report.next_seq, LATENCY_RECORDS);
    support::report_latency(
        "ship/latency/append_sync_to_stream_1000_per_s",
        &mut samples,
    );
    drop(w);
    let _ = std::fs::remove_dir_all(&dir);
}

fn js_inbox(js: &jetstream::Context) -> String {
    js.client().new_inbox()
}

fn benches(c: &mut Criterion) {
    let server = nats::Nats::single().expect("nats-server");
    let url = server.nodes[0].url();
    let log = log_of(N);
    throughput(c, &url, &log);
    latency(&url);
    let _ = std::fs::remove_dir_all(&log);
}

criterion_group!(ship, benches);
criterion_main!(ship);
