//! Crash test of `examples/kv_service.rs` itself.
//!
//! Fault model: the service process is killed with SIGKILL at an arbitrary point while eight
//! client threads put and the snapshot thread snapshots and truncates the log, three times in
//! a row; each restart loads the snapshot and replays the log. (A process crash: the page cache
//! survives, so this checks the service's recovery logic (snapshot, retention, replay), not the
//! device flush.) Pass criterion: after the last crash, every acknowledged write is there: each
//! key holds its last acknowledged value or a later write of the same key (every key has one
//! writer thread, and a write may reach the log without its acknowledgement being seen);
//! snapshots did truncate the log front.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Builds the example (a no-op when `cargo test` built it already) and returns its path.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--example",
        "kv_service",
    ]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    assert!(build.status().unwrap().success(), "building the example");
    profile_dir.join("examples").join("kv_service")
}

/// A value `r{run}-i{i}` as a comparable pair.
fn version(value: &str) -> (u64, u64) {
    let (r, i) = value.split_once('-').unwrap();
    (
        r.strip_prefix('r').unwrap().parse().unwrap(),
        i.strip_prefix('i').unwrap().parse().unwrap(),
    )
}

/// Runs `serve` until it acknowledged `acks` puts and took a snapshot, then kills it.
/// Returns every acknowledgement it printed and the number of snapshots.
fn serve_and_kill(bin: &Path, dir: &Path, acks: usize) -> (Vec<(String, String)>, usize) {
    let mut child = Command::new(bin)
        .arg("serve")
        .arg(dir)
        .arg("8")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut acked, mut snapshots) = (Vec::new(), 0);
    let record = |line: &str, acked: &mut Vec<(String, String)>, snapshots: &mut usize| {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["ack", k, v] => acked.push(((*k).to_owned(), (*v).to_owned())),
            ["snapshot", ..] => *snapshots += 1,
            _ => panic!("unexpected output {line:?}"),
        }
    };
    while acked.len() < acks || snapshots == 0 {
        match lines.next() {
            Some(line) => record(&line.unwrap(), &mut acked, &mut snapshots),
            None => {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("the service stopped early: {:?}\n{err}", child.wait());
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Lines it printed before it died were acknowledged too.
    for line in lines {
        record(&line.unwrap(), &mut acked, &mut snapshots);
    }
    (acked, snapshots)
}

#[test]
fn every_acknowledged_write_survives_kill_and_restart() {
    let bin = example_binary();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("kv");
    let mut last_acked: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut total = 0;
    for round in 0..3 {
        let (acked, snapshots) = serve_and_kill(&bin, &dir, 1500 + 700 * round);
        assert!(snapshots > 0);
        total += acked.len();
        for (k, v) in acked {
            // Lines of one key come from one thread, in order: the last one wins.
            last_acked.insert(k, version(&v));
        }
    }

    let out = Command::new(&bin).arg("dump").arg(&dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped: BTreeMap<String, (u64, u64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap();
            (k.to_owned(), version(v))
        })
        .collect();
    for (k, acked) in &last_acked {
        let got = dumped.get(k);
        assert!(
            got.is_some_and(|g| g >= acked),
            "key {k}: acknowledged {acked:?}, recovered {got:?}"
        );
    }
    println!(
        "{total} acknowledged puts over 3 crashes; {} keys checked",
        last_acked.len()
    );
    let report = applog::verify(dir.join("wal")).unwrap();
    assert!(report.is_clean(), "{:?}", report.corruptions);
    assert!(
        report.first_seq > 0,
        "the snapshots truncated the log front"
    );
}
