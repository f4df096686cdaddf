//! `applog ship` into real nats-server processes: a three-node JetStream cluster with an R3
//! stream, and a single node for the error cases.
//!
//! Pass criterion throughout: the stream holds the log's durable records exactly once each,
//! in seq order (stream sequence i+1 holds record i), byte-identical, with `Applog-Seq`,
//! `Applog-Log` and `Nats-Msg-Id` headers; what was not durable was not shipped.
#![cfg(unix)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use applog::{Options, Writer};
use async_nats::jetstream;
use common::cli::*;
use common::nats::Nats;
use common::stream::stream_content;

/// Record `i`'s bytes: varied lengths, content that names the record.
fn record(i: u64) -> Vec<u8> {
    let len = usize::try_from((i * 37) % 700).unwrap();
    let mut v = format!("record {i}:").into_bytes();
    v.extend((0..len).map(|j| u8::try_from((i as usize + j) % 251).unwrap()));
    v
}

fn write_records(w: &mut Writer, from: u64, to: u64) {
    for i in from..to {
        assert_eq!(w.append(&record(i)).unwrap(), i);
    }
}

/// A new log holding records `0..n`, synced, and its writer.
fn synced_log(n: u64) -> (tempfile::TempDir, PathBuf, Writer) {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let mut w = Writer::open(&log, Options::new()).unwrap();
    write_records(&mut w, 0, n);
    w.sync().unwrap();
    (d, log, w)
}

fn ship(log: &Path, urls: &str, stream: &str, extra: &[&str]) -> Run {
    let mut cmd = applog();
    cmd.arg("ship")
        .arg(log)
        .args(["--nats", urls, "--stream", stream])
        .args(extra);
    Run::from(cmd.output().unwrap())
}

/// The stream holds exactly records `0..n` of the log, once each, in order.
#[track_caller]
fn assert_exactly(log: &Path, urls: &str, stream: &str, n: u64) {
    let id = applog::log_id(log).unwrap();
    let content = stream_content(urls, stream);
    let seqs: Vec<u64> = content.iter().map(|c| c.1).collect();
    assert_eq!(
        seqs,
        (0..n).collect::<Vec<_>>(),
        "record seqs in the stream"
    );
    for (i, (sseq, seq, log_id, msg_id, data)) in content.into_iter().enumerate() {
        assert_eq!(sseq, i as u64 + 1);
        assert_eq!(log_id, id);
        assert_eq!(msg_id, format!("{id}-{seq}"));
        assert!(data == record(seq), "record {seq}'s bytes differ");
    }
}

#[test]
fn ships_durable_records_exactly_once_into_an_r3_stream() {
    let Some(nats) = Nats::cluster() else { return };
    let urls = nats.urls();
    let (_d, log, mut w) = synced_log(500);

    let r = ship(&log, &urls, "EVENTS", &["--replicas", "3"]);
    assert_eq!(r.code, 0, "{r:?}\n{}", nats.logs());
    assert!(r.stdout.contains("shipped 500 records"), "{r:?}");
    assert_exactly(&log, &urls, "EVENTS", 500);

    // Records appended but not synced are not shipped; once synced they are, after the rest.
    write_records(&mut w, 500, 800);
    let r = ship(&log, &urls, "EVENTS", &["--replicas", "3"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shipped 0 records"), "{r:?}");
    assert_exactly(&log, &urls, "EVENTS", 500);
    w.sync().unwrap();
    // Through one node only: the stream's leader may be elsewhere.
    let r = ship(&log, &nats.nodes[2].url(), "EVENTS", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shipped 300 records"), "{r:?}");
    assert_exactly(&log, &urls, "EVENTS", 800);

    // The shipper's consumer is at the end of what it shipped.
    let consumers = applog::consumers(&log).unwrap();
    let c = consumers.iter().find(|c| c.name == "ship-EVENTS").unwrap();
    assert_eq!(c.next_seq, 800, "{c:?}");
}

#[test]
fn a_stream_resumes_from_its_own_content_not_the_local_position() {
    let Some(nats) = Nats::single() else { return };
    let urls = nats.urls();
    let (_d, log, mut w) = synced_log(100);
    ship(&log, &urls, "S", &[]).succeeded();
    // The local position is moved back: the stream says where to go on.
    applog::reset_consumer(&log, "ship-S", 10).unwrap();
    write_records(&mut w, 100, 150);
    w.sync().unwrap();
    let r = ship(&log, &urls, "S", &[]);
    assert!(r.succeeded().contains("shipped 50 records"), "{r:?}");
    assert_exactly(&log, &urls, "S", 150);
}

#[test]
fn a_stream_changed_by_someone_else_is_an_error() {
    let Some(nats) = Nats::single() else { return };
    let urls = nats.urls();
    let (_d, log, mut w) = synced_log(10);
    ship(&log, &urls, "S", &[]).succeeded();
    // Someone else publishes on the stream's subject.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let js = jetstream::new(async_nats::connect(&urls).await.unwrap());
        js.publish("applog.S", "intruder".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    write_records(&mut w, 10, 20);
    w.sync().unwrap();
    let r = ship(&log, &urls, "S", &["--retry-for", "5"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("changed by someone else") && r.stderr.contains("stream S"),
        "{r:?}"
    );
    // Nothing of the log was added after the intruder.
    let messages = rt.block_on(async {
        let js = jetstream::new(async_nats::connect(&urls).await.unwrap());
        let mut s = js.get_stream("S").await.unwrap();
        s.info().await.unwrap().state.messages
    });
    assert_eq!(messages, 11);
}

#[test]
fn another_logs_stream_is_an_error() {
    let Some(nats) = Nats::single() else { return };
    let urls = nats.urls();
    let d = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        let mut w = Writer::open(d.path().join(name), Options::new()).unwrap();
        write_records(&mut w, 0, 5);
        w.sync().unwrap();
    }
    ship(&d.path().join("a"), &urls, "S", &[]).succeeded();
    let r = ship(&d.path().join("b"), &urls, "S", &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("another log"), "{r:?}");
}

#[test]
fn an_unreachable_server_is_an_error_naming_it() {
    let (_d, log, _w) = synced_log(5);
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let r = ship(&log, &url, "S", &["--retry-for", "2"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&url), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A small deterministic generator for the kill points (seeded from the clock, printed).
struct Lcg(u64);

impl Lcg {
    fn new() -> Lcg {
        let seed = std::env::var("APPLOG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("kill-point seed {seed} (APPLOG_SEED replays it)");
        Lcg(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// Appends records `0..n` in another thread, syncing every few records, with short pauses.
fn writer_thread(log: &Path, n: u64) -> std::thread::JoinHandle<()> {
    paced_writer_thread(log, n, Duration::from_millis(10))
}

/// As [`writer_thread`], pausing `pause` every 50 records.
fn paced_writer_thread(log: &Path, n: u64, pause: Duration) -> std::thread::JoinHandle<()> {
    let log = log.to_owned();
    std::thread::spawn(move || {
        let mut w = Writer::open(&log, Options::new()).unwrap();
        for i in 0..n {
            assert_eq!(w.append(&record(i)).unwrap(), i);
            if i % 7 == 6 {
                w.sync().unwrap();
            }
            if i % 50 == 49 {
                std::thread::sleep(pause);
            }
        }
        w.sync().unwrap();
    })
}

/// A shipper process, killed (SIGKILL) when dropped: a failing test leaves none behind.
struct Shipper(Option<std::process::Child>);

impl Shipper {
    /// SIGTERM; waits for it to exit and returns its output.
    fn terminate(&mut self) -> std::process::Output {
        let c = self.0.take().unwrap();
        let pid = rustix::process::Pid::from_raw(i32::try_from(c.id()).unwrap()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        c.wait_with_output().unwrap()
    }

    /// SIGKILL; returns its output.
    fn kill(&mut self) -> std::process::Output {
        let mut c = self.0.take().unwrap();
        c.kill().unwrap();
        c.wait_with_output().unwrap()
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_ship(log: &Path, urls: &str, stream: &str, extra: &[&str]) -> Shipper {
    let mut cmd = applog();
    cmd.arg("ship")
        .arg(log)
        .args(["--nats", urls, "--stream", stream, "-f"])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    Shipper(Some(cmd.spawn().unwrap()))
}

/// Fault model: the shipper dies by SIGKILL at arbitrary moments (connecting, with publishes in
/// flight, between an acknowledgement and its commit) while a writer appends and syncs, and is
/// started again against another node of the cluster each time; in some rounds another node
/// is killed and restarted while the shipper runs. 24 rounds (`APPLOG_SOAK` multiplies them),
/// from a printed seed.
#[test]
fn kill_9_rounds_against_changing_nodes_ship_each_record_once() {
    let Some(mut nats) = Nats::cluster() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let soak: usize = std::env::var("APPLOG_SOAK")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let rounds = 24 * soak;
    let n: u64 = 4000 * soak as u64;
    // The log exists before the first shipper starts; the writer goes on for most rounds.
    drop(Writer::open(&log, Options::new()).unwrap());
    let writer = paced_writer_thread(&log, n, Duration::from_millis(100));
    let mut rng = Lcg::new();
    for round in 0..rounds {
        let target = round % 3;
        let url = nats.nodes[target].url();
        let mut child = spawn_ship(&log, &url, "KILLS", &["--replicas", "3"]);
        std::thread::sleep(Duration::from_millis(50 + rng.below(700)));
        if round % 8 == 4 {
            // Another node goes down and comes back while this shipper runs.
            let other = (target + 1 + usize::try_from(rng.below(2)).unwrap()) % 3;
            nats.kill(other);
            std::thread::sleep(Duration::from_millis(rng.below(500)));
            nats.restart(other);
        }
        let out = child.kill();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("applog: error"), "round {round}: {stderr}");
    }
    writer.join().unwrap();
    let r = ship(&log, &nats.nodes[1].url(), "KILLS", &[]);
    assert_eq!(r.code, 0, "{r:?}\n{}", nats.logs());
    assert_exactly(&log, &nats.urls(), "KILLS", n);
}

/// A node of the cluster is killed and started again, twice, while a shipper follows the log.
#[test]
fn a_node_restarted_while_shipping_loses_and_duplicates_nothing() {
    let Some(mut nats) = Nats::cluster() else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    const N: u64 = 3000;
    drop(Writer::open(&log, Options::new()).unwrap());
    let writer = writer_thread(&log, N);
    let urls = nats.urls();
    let mut child = spawn_ship(&log, &urls, "RESTARTS", &["--replicas", "3"]);
    for node in [0, 1] {
        std::thread::sleep(Duration::from_millis(400));
        nats.kill(node);
        std::thread::sleep(Duration::from_millis(300));
        nats.restart(node);
    }
    writer.join().unwrap();
    // The follower goes on after the restarts; a run without -f then finds nothing left.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let c = applog::consumers(&log).unwrap();
        if c.iter()
            .any(|c| c.name == "ship-RESTARTS" && c.next_seq == N)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the follower did not ship everything: {c:?}\n{}",
            nats.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.kill();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("applog: error"),
        "{out:?}"
    );
    let r = ship(&log, &urls, "RESTARTS", &[]);
    assert!(r.succeeded().contains("shipped 0 records"), "{r:?}");
    assert_exactly(&log, &urls, "RESTARTS", N);
}

/// Two shippers of one log into one stream at once: under one name the second is refused (the
/// consumer is busy); under two names both run, and the stream still holds each record once,
/// in order.
#[test]
fn two_shippers_at_once_neither_duplicate_nor_reorder() {
    let Some(nats) = Nats::cluster() else { return };
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    const N: u64 = 3000;
    drop(Writer::open(&log, Options::new()).unwrap());
    let writer = writer_thread(&log, N);
    let mut a = spawn_ship(
        &log,
        &nats.nodes[0].url(),
        "TWO",
        &["--name", "a", "--replicas", "3"],
    );
    let mut b = spawn_ship(
        &log,
        &nats.nodes[2].url(),
        "TWO",
        &["--name", "b", "--replicas", "3"],
    );
    // A third under the first one's name is refused, saying why.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !applog::consumers(&log)
        .unwrap()
        .iter()
        .any(|c| c.name == "a" && c.next_seq > 0)
    {
        assert!(std::time::Instant::now() < deadline, "{}", nats.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = ship(&log, &nats.nodes[1].url(), "TWO", &["--name", "a"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("consumer"), "{r:?}");
    writer.join().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while stream_content(&nats.urls(), "TWO").len() < N as usize {
        assert!(std::time::Instant::now() < deadline, "{}", nats.logs());
        std::thread::sleep(Duration::from_millis(200));
    }
    for child in [&mut a, &mut b] {
        child.kill();
    }
    assert_exactly(&log, &nats.urls(), "TWO", N);
}

/// The stream's message count, or 0 while it does not exist.
fn stream_len(urls: &str, stream: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let js = jetstream::new(async_nats::connect(urls).await.unwrap());
        match js.get_stream(stream).await {
            Ok(mut s) => s.info().await.unwrap().state.messages,
            Err(_) => 0,
        }
    })
}

/// Power-loss model: a power cut loses the records appended since the last sync that
/// returned. A following shipper never ships those: at every point the stream holds only
/// records that were synced, so whatever a cut takes from the log was never shipped.
#[test]
fn records_a_power_cut_could_lose_are_never_shipped() {
    let Some(nats) = Nats::single() else { return };
    let urls = nats.urls();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let mut w = Writer::open(&log, Options::new()).unwrap();
    let mut child = spawn_ship(&log, &urls, "CUTS", &["--replicas", "1"]);
    let mut synced = 0;
    let mut next = 0;
    for round in 0..5 {
        // Appended, not synced: a cut now would lose them, so none may leave.
        write_records(&mut w, next, next + 200);
        next += 200;
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(stream_len(&urls, "CUTS"), synced, "round {round}");
        w.sync().unwrap();
        synced = next;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while stream_len(&urls, "CUTS") < synced {
            assert!(std::time::Instant::now() < deadline, "round {round}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    child.kill();
    assert_exactly(&log, &urls, "CUTS", synced);
}

/// Creates stream `name` as someone else would, with `config` changed from the defaults.
fn create_stream(urls: &str, config: jetstream::stream::Config) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let js = jetstream::new(async_nats::connect(urls).await.unwrap());
        js.create_stream(config).await.unwrap();
    });
}

#[test]
fn a_full_stream_is_an_error_not_a_retry_loop() {
    let Some(nats) = Nats::single() else { return };
    let urls = nats.urls();
    create_stream(
        &urls,
        jetstream::stream::Config {
            name: "FULL".into(),
            subjects: vec!["applog.FULL".into()],
            max_messages: 10,
            discard: jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        },
    );
    let (_d, log, _w) = synced_log(20);
    let started = std::time::Instant::now();
    let r = ship(&log, &urls, "FULL", &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("stream FULL") && r.stderr.contains("full"),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "{r:?}");
    assert_exactly(&log, &urls, "FULL", 10);
    // The consumer holds the records the stream did not take.
    let c = applog::consumers(&log).unwrap();
    assert_eq!(c[0].next_seq, 10, "{c:?}");
}

#[test]
fn a_stream_of_the_wrong_shape_is_an_error() {
    let Some(nats) = Nats::single() else { return };
    let urls = nats.urls();
    create_stream(
        &urls,
        jetstream::stream::Config {
            name: "OTHER".into(),
            subjects: vec!["elsewhere.>".into()],
            ..Default::default()
        },
    );
    let (_d, log, _w) = synced_log(3);
    let r = ship(&log, &urls, "OTHER", &[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("stream OTHER")
            && r.stderr.contains("does not take subject applog.OTHER"),
        "{r:?}"
    );
    assert!(r.stderr.contains(&urls), "{r:?}");
}

#[test]
fn sigterm_stops_a_follower_cleanly() {
    let Some(nats) = Nats::single() else { return };
    let urls = nats.urls();
    let (_d, log, _w) = synced_log(300);
    let mut child = spawn_ship(&log, &urls, "TERM", &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !applog::consumers(&log)
        .unwrap()
        .iter()
        .any(|c| c.name == "ship-TERM" && c.next_seq == 300)
    {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.terminate();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("shipped 300 records"),
        "{out:?}"
    );
    assert_exactly(&log, &urls, "TERM", 300);
}

#[test]
fn permission_denied_is_an_error_quoting_the_server() {
    // User "shipper" may use the JetStream API but not publish on the records' subject.
    let conf = r#"
authorization {
  users = [
    { user: admin, password: admin }
    { user: shipper, password: shipper, permissions: { publish: { deny: ["applog.>"] } } }
  ]
}
"#;
    let Some(nats) = Nats::single_with_config(conf) else {
        return;
    };
    let port = nats.nodes[0].url().rsplit(':').next().unwrap().to_owned();
    let (_d, log, _w) = synced_log(3);
    let url = format!("nats://shipper:shipper@127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let r = ship(&log, &url, "DENIED", &["--retry-for", "20"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("stream DENIED") && r.stderr.contains("ermission"),
        "{r:?}"
    );
    // Refused at once, not after the retries; the password is not shown.
    assert!(started.elapsed() < Duration::from_secs(15), "{r:?}");
    assert!(!r.stderr.contains("shipper:shipper"), "{r:?}");

    // A wrong password: refused at connection, at once.
    let url = format!("nats://shipper:wrong@127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let r = ship(&log, &url, "DENIED", &["--retry-for", "20"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("cannot connect") && r.stderr.contains("authorization"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("shipper:wrong"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "{r:?}");
}

/// A shipper stopped between the stream's acknowledgement and its commit: the next one finds
/// the records in the stream, ships nothing again, and commits them (retention may take them).
#[test]
fn records_in_the_stream_but_not_committed_are_committed_not_reshipped() {
    let Some(nats) = Nats::single() else { return };
    let urls = nats.urls();
    let (_d, log, _w) = synced_log(50);
    ship(&log, &urls, "C", &[]).succeeded();
    applog::reset_consumer(&log, "ship-C", 20).unwrap();
    let r = ship(&log, &urls, "C", &[]);
    assert!(r.succeeded().contains("shipped 0 records"), "{r:?}");
    let c = applog::consumers(&log).unwrap();
    assert_eq!(c[0].next_seq, 50, "{c:?}");
    assert_exactly(&log, &urls, "C", 50);
}
