//! Two programs share one mapped file: a producer appends messages to a log, a consumer in
//! another process follows it with a `Tailer` and gets each message the moment it is
//! published, straight from the shared mapping (no pipe, no socket, no copy through the
//! kernel), asleep on a futex while there is nothing to read.
//!
//! Done right, unlike the classic demo: the file grows page by page ahead of the writes (no
//! SIGBUS), every message is CRC-checked, the consumer never sees a half-written message, and
//! it survives the producer restarting.
//!
//! ```text
//! cargo run --example ipc                      # both sides: spawns the consumer itself
//! cargo run --example ipc -- consume DIR       # terminal 1: follow DIR from its end
//! cargo run --example ipc -- produce DIR [N]   # terminal 2: append N messages (default 10)
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use applog::{Options, Tailer, Writer};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None => demo(),
        Some("produce") if args.len() >= 2 => {
            let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10);
            produce(Path::new(&args[1]), n, Duration::from_millis(100))
        }
        Some("consume") if args.len() >= 2 => {
            let expect = args.get(2).and_then(|n| n.parse().ok());
            consume(Path::new(&args[1]), expect)
        }
        _ => Err("usage: ipc [produce DIR [N] | consume DIR]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipc: error: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs both sides: a consumer process (this program, `consume`), and the producer here.
fn demo() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("applog-ipc-demo-{}", std::process::id()));
    let n = 10_000;
    let result = (|| -> Result<()> {
        // Create the log first, so the consumer finds it; then start the consumer.
        drop(Writer::open(&dir, Options::default())?);
        let mut consumer = Command::new(std::env::current_exe()?)
            .args(["consume".as_ref(), dir.as_os_str(), n.to_string().as_ref()])
            .spawn()?;
        std::thread::sleep(Duration::from_millis(200));
        println!("producer: appending {n} messages, one every 100 us");
        produce(&dir, n, Duration::from_micros(100))?;
        let status = consumer.wait()?;
        if !status.success() {
            return Err(format!("consumer failed: {status}").into());
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Appends `n` messages, each carrying the time it was sent, then a last empty one.
fn produce(dir: &Path, n: u64, every: Duration) -> Result<()> {
    let mut w = Writer::open(dir, Options::default())?;
    for i in 0..n {
        let msg = format!("{} message {i}", now_ns());
        w.append(msg.as_bytes())?;
        std::thread::sleep(every);
    }
    w.append(b"")?;
    w.sync()?;
    Ok(())
}

/// Follows the log (from its current end, or from the start when `expect`ing a count of
/// messages, as the demo does) until an empty message; prints the one-way latency.
fn consume(dir: &Path, expect: Option<u64>) -> Result<()> {
    let dir: PathBuf = dir.to_owned();
    // Wait for the log to exist, like `tail -F`.
    while !dir.exists() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let start = match expect {
        Some(_) => 0,
        None => applog::verify(&dir)?.next_seq,
    };
    let mut tailer = Tailer::open(&dir, start)?;
    println!("consumer: following {} from seq {start}", dir.display());
    let mut latencies = Vec::new();
    loop {
        let rec = tailer.next()?;
        if rec.data().is_empty() {
            break;
        }
        let text = std::str::from_utf8(rec.data())?;
        let (sent, body) = text.split_once(' ').ok_or("malformed message")?;
        let sent: u64 = sent.parse()?;
        latencies.push(now_ns().saturating_sub(sent));
        if latencies.len() <= 3 || expect.is_none() {
            println!("consumer: seq {} {body:?}", rec.seq());
        }
    }
    latencies.sort_unstable();
    let pct = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "consumer: received {} messages in order; one-way latency p50 {:.1} us, p99 {:.1} us",
        latencies.len(),
        pct(50) as f64 / 1000.0,
        pct(99) as f64 / 1000.0
    );
    if let Some(n) = expect {
        if latencies.len() as u64 != n {
            return Err(format!("expected {n} messages, got {}", latencies.len()).into());
        }
    }
    Ok(())
}
