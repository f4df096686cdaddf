//! Serving applog's metrics to Prometheus: installs `metrics-exporter-prometheus` with its
//! HTTP listener, opens a log (the library built with its `metrics` feature), appends and
//! syncs, and serves `/metrics` until standard input closes (or the process is killed).
//!
//! ```text
//! cargo run -p applog-demo --example prometheus -- /tmp/promlog 127.0.0.1:9000
//! curl -s http://127.0.0.1:9000/metrics | grep applog_
//! ```
//!
//! Arguments: the log directory, the address to listen on, and optionally how many records
//! to append (default 1000; they are synced every 100). The recorder must be installed
//! before the log is opened: the writer registers its metric handles when it opens.

use std::error::Error;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;

use applog::{Options, Writer};
use metrics_exporter_prometheus::PrometheusBuilder;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args_os().skip(1);
    let usage = "usage: prometheus LOG ADDR [RECORDS]";
    let log = PathBuf::from(args.next().ok_or(usage)?);
    let addr: SocketAddr = args.next().ok_or(usage)?.to_str().ok_or(usage)?.parse()?;
    let records: u64 = match args.next() {
        Some(n) => n.to_str().ok_or(usage)?.parse()?,
        None => 1000,
    };

    // First the recorder (with no tokio runtime here, the exporter runs its listener on a
    // thread of its own), then the log.
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()?;
    let mut writer = Writer::open(&log, Options::default())?;
    for i in 0..records {
        writer.append(format!("record {i}").as_bytes())?;
        if (i + 1) % 100 == 0 {
            writer.sync()?;
        }
    }
    writer.sync()?;
    println!(
        "appended {records} records to {}; serving http://{addr}/metrics until standard input closes",
        log.display()
    );

    // Serve until standard input closes.
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    writer.close()?;
    Ok(())
}
