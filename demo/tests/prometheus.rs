//! The Prometheus example serves applog's metrics: run it on a loopback port, scrape
//! `/metrics` with a plain HTTP GET, and check the figures of what it appended.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the example may take to start serving (CI machines are slow; not a timing test).
const PATIENCE: Duration = Duration::from_secs(60);

/// The example's binary, which `cargo test` builds beside the test binaries.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = profile_dir.join("examples").join("prometheus");
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test -p applog-demo` builds it (or `cargo build -p applog-demo --example prometheus`)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` over a plain TCP connection; the response body.
fn scrape(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(PATIENCE))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP response: {response:?}")))?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    Ok(body.to_owned())
}

/// The value of the sample `name{log="<log>"...}` in a Prometheus text body.
fn sample(body: &str, name: &str, log: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("log=\"{log}\"")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn the_example_serves_applog_metrics_with_the_figures_of_what_it_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    let port = free_port();
    let mut child = Command::new(example())
        .arg(&log)
        .arg(format!("127.0.0.1:{port}"))
        .arg("1000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("appended 1000 records"), "{line:?}");

    let deadline = Instant::now() + PATIENCE;
    let body = loop {
        match scrape(port) {
            Ok(body) => break body,
            Err(e) => {
                assert!(Instant::now() < deadline, "no scrape: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    let log = log.display().to_string();
    let get = |name| sample(&body, name, &log).unwrap_or_else(|| panic!("{name} in\n{body}"));
    assert_eq!(get("applog_appended_records_total"), 1000.0);
    let bytes: f64 = (0..1000).map(|i| format!("record {i}").len() as f64).sum();
    assert_eq!(get("applog_appended_bytes_total"), bytes);
    assert_eq!(get("applog_syncs_total"), 10.0); // every 100 records; the last sync had nothing left
    assert_eq!(get("applog_durable_seq"), 1000.0);
    assert_eq!(get("applog_segments_created_total"), 1.0);
    assert!(body.contains("applog_sync_duration_seconds"), "{body}");

    drop(child.stdin.take()); // the example closes the log and exits
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
