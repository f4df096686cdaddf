//! The shipper as a service embeds it (`examples/ship_service.rs`, run twice on one log: each
//! run ships every record it appended, exactly once, the second after what the first put in
//! the stream), and the command's tuning flags, against a real nats-server.
#![cfg(unix)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use applog::{Options, Writer};
use common::cli::*;
use common::nats::Nats;
use common::stream::stream_content;

/// The example's binary, which `cargo test` builds beside the test binaries.
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = profile_dir.join("examples").join("ship_service");
    assert!(
        bin.is_file(),
        "{} is missing: `cargo test` builds the examples (`cargo test --test ship_example` \
         alone does not; run `cargo build --example ship_service` first)",
        bin.display()
    );
    bin
}

#[test]
fn the_ship_service_example_ships_each_run_exactly_once() {
    let Some(nats) = Nats::single() else { return };
    let url = nats.urls();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    for run in 1..=2u64 {
        let out = Command::new(example())
            .args([url.as_str(), "EXAMPLE"])
            .arg(&log)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "run {run}: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let total = 2000 * run;
        assert!(
            stdout.contains(&format!("every record below seq {total}")),
            "run {run}: {stdout}"
        );
        let content = stream_content(&url, "EXAMPLE");
        let seqs: Vec<u64> = content.iter().map(|c| c.1).collect();
        assert_eq!(seqs, (0..total).collect::<Vec<_>>(), "run {run}");
        let mut reader = applog::Reader::open(&log).unwrap();
        for (sseq, seq, _, _, data) in content {
            assert_eq!(sseq, seq + 1);
            let r = reader.next().unwrap().unwrap();
            assert_eq!(r.seq(), seq);
            assert_eq!(r.data(), &data[..], "record {seq} differs");
        }
    }
}

#[test]
fn the_window_and_timeout_flags_ship_the_same_records_and_bad_values_are_refused() {
    let Some(nats) = Nats::single() else { return };
    let url = nats.urls();
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let mut w = Writer::open(&log, Options::new()).unwrap();
    for i in 0..300u32 {
        w.append(format!("record {i}").as_bytes()).unwrap();
    }
    w.sync().unwrap();
    // One message at a time, a short acknowledgement timeout: slower, the same stream.
    let mut cmd = applog();
    cmd.arg("ship").arg(&log).args([
        "--nats",
        &url,
        "--stream",
        "FLAGS",
        "--in-flight",
        "1",
        "--ack-timeout",
        "0.5",
    ]);
    let r = Run::from(cmd.output().unwrap());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("shipped 300 records"), "{r:?}");
    let content = stream_content(&url, "FLAGS");
    assert_eq!(content.len(), 300);
    for (i, (sseq, seq, _, _, data)) in content.into_iter().enumerate() {
        assert_eq!((sseq, seq), (i as u64 + 1, i as u64));
        assert_eq!(data, format!("record {i}").into_bytes());
    }
    for (flag, value) in [
        ("--in-flight", "0"),
        ("--in-flight", "many"),
        ("--ack-timeout", "0"),
        ("--ack-timeout", "-1"),
        ("--ack-timeout", "soon"),
    ] {
        let mut cmd = applog();
        cmd.arg("ship")
            .arg(&log)
            .args(["--nats", &url, "--stream", "FLAGS"])
            .arg(format!("{flag}={value}"));
        let r = Run::from(cmd.output().unwrap());
        assert_eq!(r.code, 2, "{flag} {value}: {r:?}");
        assert!(r.stderr.contains(flag), "{flag} {value}: {r:?}");
    }
}
