//! The library shipper as a service embeds it: `examples/ship_service.rs` run against a real
//! nats-server, twice on one log. Each run ships every record it appended, exactly once, and
//! the second resumes after what the first put in the stream.
#![cfg(unix)]

mod common;

use std::path::PathBuf;
use std::process::Command;

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
