//! Process kills during cuts of the log's end (`Writer::truncate_back`) and resets
//! (`Writer::reset`), mixed with batches and syncs.
//!
//! Fault model: the writer process dies at an arbitrary instruction (SIGKILL: no destructor,
//! no flush), while the kernel and its page cache live on. A sequence of child writers works
//! on one log, each killed at a random moment; the next one recovers what the last left.
//!
//! Each record names the *generation* it was appended in: a child starts a new generation
//! at its start and at every cut or reset, and generations only grow over the whole test.
//!
//! Pass criterion, after every kill: `verify` is clean and the next writer opens the log; every
//! record sits at the seq it was appended at; **no removed record comes back**: a record of a
//! generation older than an acknowledged cut at S lies below S, and none older than an
//! acknowledged reset past the end remains; **nothing acknowledged durable is lost**: when no
//! cut or reset started after the last acknowledged sync, the log holds every record below
//! it; and the log never ends inside a batch appended after the last cut or reset started.
//!
//! `APPLOG_SEED` replays a run; `APPLOG_SOAK` multiplies the number of kills (default 40).
//! The child is this test binary, re-run with `--ignored rewind_child`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use applog::{Options, Reader, Writer};
use common::*;

/// A record: its generation and seq, then filler of a length the seq decides.
fn record(generation: u64, seq: u64) -> Vec<u8> {
    let mut r = format!("{generation}:{seq}:").into_bytes();
    let len = match seq % 10 {
        0 => 3000, // crosses pages
        1..=3 => 200,
        _ => 20,
    };
    r.extend(payload(seq, len));
    r
}

fn parse(data: &[u8]) -> (u64, u64) {
    let text = String::from_utf8_lossy(&data[..data.len().min(48)]).into_owned();
    let mut parts = text.splitn(3, ':');
    let generation = parts.next().unwrap().parse().unwrap();
    let seq = parts.next().unwrap().parse().unwrap();
    (generation, seq)
}

/// What a child printed, in order.
#[derive(Debug)]
enum Line {
    /// An acknowledged cut at seq S that started generation G.
    Cut(u64, u64),
    /// An acknowledged reset past the end at seq N that started generation G.
    Reset(u64, u64),
    /// A cut or reset started (it may or may not have taken effect).
    Started,
    /// An acknowledged sync: every record below this seq was durable.
    Synced(u64),
    /// A batch (first, end) about to be appended.
    Batch(u64, u64),
}

fn run_child(dir: &Path, first_generation: u64, seed: u64) -> Vec<Line> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "rewind_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("APPLOG_REWIND_DIR", dir)
        .env("APPLOG_REWIND_GEN", first_generation.to_string())
        .env("APPLOG_REWIND_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let line = match line.rsplit_once("... ") {
                Some((_, rest)) => rest.to_owned(),
                None => line,
            };
            let n: Vec<u64> = line
                .split(' ')
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            lines.push(match line.split(' ').next() {
                Some("cut") => Line::Cut(n[0], n[1]),
                Some("reset") => Line::Reset(n[0], n[1]),
                Some("start") => Line::Started,
                Some("synced") => Line::Synced(n[0]),
                Some("batch") => Line::Batch(n[0], n[1]),
                _ => continue,
            });
        }
        lines
    });
    let mut rng = Rng(seed ^ 0x5151);
    std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    use std::os::unix::process::ExitStatusExt;
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        status.signal() == Some(9) || status.success(),
        "the child ended with {status:?}, not by SIGKILL:\n{err}"
    );
    lines
}

#[test]
fn kills_during_cuts_resets_and_batches_lose_nothing_synced_and_resurrect_nothing() {
    let seed = seed("kill_rewind");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    // Acknowledged cuts (S, G) and resets (N, G) over the whole run.
    let (mut cuts, mut resets) = (Vec::new(), Vec::new());
    let kills = 40 * soak();
    let mut seen_cuts = 0;
    for k in 0..kills {
        let lines = run_child(&dir, (k + 1) * 1_000_000, rng.next());
        let mut synced = None;
        let mut batches = Vec::new();
        for line in &lines {
            match *line {
                Line::Cut(s, g) => cuts.push((s, g)),
                Line::Reset(n, g) => resets.push((n, g)),
                // A cut may end a batch anywhere; what was synced before it may be removed.
                Line::Started => {
                    synced = None;
                    batches.clear();
                }
                Line::Synced(x) => synced = Some(x),
                Line::Batch(a, b) => batches.push((a, b)),
            }
        }
        if !dir.exists() {
            continue;
        }
        let what = format!("kill {k} (seed {seed})");
        let v = applog::verify(&dir).unwrap();
        assert!(v.is_clean(), "{what}: {v:#?}");
        let w = Writer::open(&dir, Options::new().segment_pages(2))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let (first, next) = (w.first_seq(), w.next_seq());
        drop(w);
        let mut r = Reader::open(&dir).unwrap();
        let mut expect = first;
        while let Some(rec) = r.next().unwrap_or_else(|e| panic!("{what}: {e}")) {
            let (g, s) = parse(rec.data());
            assert_eq!(
                (rec.seq(), s),
                (expect, expect),
                "{what}: record at the wrong seq"
            );
            for &(cut, cg) in &cuts {
                assert!(!(g < cg && s >= cut), "{what}: record {s} of generation {g} came back after the cut at {cut} (generation {cg})");
            }
            for &(n, rg) in &resets {
                assert!(g >= rg, "{what}: record {s} of generation {g} came back after the reset at {n} (generation {rg})");
            }
            expect += 1;
        }
        assert_eq!(expect, next, "{what}: reader and writer disagree");
        if let Some(x) = synced {
            assert!(
                next >= x,
                "{what}: synced records lost: the log ends at {next}, {x} were synced"
            );
        }
        for &(a, b) in &batches {
            assert!(
                !(next > a && next < b),
                "{what}: the log ends inside the batch {a}..{b}"
            );
        }
        seen_cuts = cuts.len() + resets.len();
    }
    println!(
        "{kills} kills, {} cuts and {} resets acknowledged",
        cuts.len(),
        resets.len()
    );
    assert!(
        seen_cuts > 0,
        "no cut or reset was acknowledged: the test checked nothing of them"
    );
}

#[test]
#[ignore = "run as a child process by the test of this file"]
fn rewind_child() {
    let var = |k: &str| std::env::var(k).expect("run by kill_rewind.rs");
    let dir = PathBuf::from(var("APPLOG_REWIND_DIR"));
    let mut generation: u64 = var("APPLOG_REWIND_GEN").parse().unwrap();
    let mut rng = Rng(var("APPLOG_REWIND_SEED").parse().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let mut w = Writer::open(&dir, Options::new().segment_pages(2)).unwrap();
    loop {
        let next = w.next_seq();
        match rng.below(100) {
            0..=59 => {
                let n = 1 + rng.below(8);
                let batch: Vec<Vec<u8>> = (next..next + n).map(|s| record(generation, s)).collect();
                println!("batch {next} {}", next + n);
                assert_eq!(w.append_batch(&batch).unwrap(), next..next + n);
            }
            60..=74 => {
                w.sync().unwrap();
                println!("synced {next}");
            }
            75..=89 => {
                let back = rng.below(30).min(next - w.first_seq());
                let s = next - back;
                generation += 1;
                println!("start");
                w.truncate_back(s).unwrap();
                println!("cut {s} {generation}");
            }
            _ => {
                let n = next + 1 + rng.below(40);
                generation += 1;
                println!("start");
                w.reset(n).unwrap();
                println!("reset {n} {generation}");
            }
        }
    }
}
