//! The writer's stats file and `applog stats`: figures another process reads while a writer
//! appends, what a writer that closes, lets go or dies leaves, a damaged or foreign stats file
//! (reported, never trusted, and no obstacle to the writer), and the CLI's text, JSON and
//! follow output and usage errors.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use applog::{Error, Options, Writer, WriterFigures, WriterState, STATS_FILE};
use common::cli::*;

/// How long a child may take for one step (CI machines are slow; this is not a timing test).
const PATIENCE: Duration = Duration::from_secs(60);

fn child(test: &str, dir: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("APPLOG_STATS_DIR", dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    c
}

fn child_dir() -> std::path::PathBuf {
    std::env::var_os("APPLOG_STATS_DIR")
        .expect("run by the parent test")
        .into()
}

/// The child's stdout, line by line, from a thread (so that a stuck child fails the test
/// rather than hanging it).
fn lines(out: ChildStdout) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for the child to say `child: <what>` (the test harness may print it after its own
/// words on the same line).
fn wait_for(out: &Receiver<String>, what: &str) {
    loop {
        match out.recv_timeout(PATIENCE) {
            Ok(line) if line.ends_with(&format!("child: {what}")) => return,
            Ok(_) => {}
            Err(e) => panic!("the child did not say {what:?}: {e}"),
        }
    }
}

fn step(child: &mut Child) {
    child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    child.stdin.as_mut().unwrap().flush().unwrap();
}

fn stats(dir: &Path) -> (applog::Stats, applog::WriterStats) {
    let s = applog::stats(dir).unwrap();
    let w = *s.writer_stats().unwrap_or_else(|| panic!("{:?}", s.writer));
    (s, w)
}

/// 100-byte records.
const LEN: u64 = 100;

#[test]
fn counters_read_from_another_process_agree_with_what_the_writer_appended_and_synced() {
    let d = tempfile::tempdir().unwrap();
    let mut c = child("writer_child", d.path()).spawn().unwrap();
    let pid = c.id();
    let out = lines(c.stdout.take().unwrap());

    // 300 records appended and synced.
    wait_for(&out, "synced");
    let (s, w) = stats(d.path());
    assert_eq!((w.pid, w.state), (pid, WriterState::Open));
    assert!(s.locked && s.writer_live());
    assert_eq!(
        (w.records, w.bytes, w.next_seq, w.durable_seq),
        (300, 300 * LEN, 300, 300)
    );
    assert_eq!((w.syncs, w.slow_syncs), (1, 0));
    assert!(w.last_sync > Duration::ZERO);
    assert_eq!(
        (s.records(), s.next_seq, s.durable_seq, s.durable_lag()),
        (300, 300, 300, 0)
    );

    // Up to seq 512 without a sync: published when the next seq reached 512.
    step(&mut c);
    wait_for(&out, "appended");
    let (s, w) = stats(d.path());
    assert_eq!(
        (w.records, w.bytes, w.next_seq, w.durable_seq),
        (512, 512 * LEN, 512, 300)
    );
    assert_eq!(w.syncs, 1);
    assert_eq!(
        (s.next_seq, s.durable_seq, s.durable_lag()),
        (512, 300, 212)
    );

    // close(): the final figures, closed cleanly, no writer running.
    step(&mut c);
    assert!(c.wait().unwrap().success());
    let (s, w) = stats(d.path());
    assert_eq!(
        (w.state, w.records, w.durable_seq, w.syncs),
        (WriterState::Closed, 513, 513, 2)
    );
    assert!(!s.locked && !s.writer_live());
}

#[test]
#[ignore = "run by counters_read_from_another_process_agree_with_what_the_writer_appended_and_synced"]
fn writer_child() {
    let dir = child_dir();
    let stdin = std::io::stdin();
    let mut line = String::new();
    let mut w = Writer::open(&dir, Options::new()).unwrap();
    let record = vec![7u8; LEN as usize];
    for _ in 0..300 {
        w.append(&record).unwrap();
    }
    w.sync().unwrap();
    println!("child: synced");
    stdin.read_line(&mut line).unwrap();
    // 300..512 in batches and single records.
    w.append_batch(&vec![record.clone(); 100]).unwrap();
    while w.next_seq() < 512 {
        w.append(&record).unwrap();
    }
    println!("child: appended");
    stdin.read_line(&mut line).unwrap();
    w.append(&record).unwrap();
    w.close().unwrap();
}

#[test]
fn a_killed_writer_leaves_its_last_figures_and_is_not_live() {
    let d = tempfile::tempdir().unwrap();
    let mut c = child("writer_child", d.path()).spawn().unwrap();
    let out = lines(c.stdout.take().unwrap());
    wait_for(&out, "synced");
    c.kill().unwrap();
    c.wait().unwrap();
    let (s, w) = stats(d.path());
    assert_eq!(
        (w.state, w.records, w.durable_seq),
        (WriterState::Open, 300, 300)
    );
    assert!(!s.locked && !s.writer_live());
}

#[test]
fn a_writer_dropped_with_records_not_durable_says_so() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"a").unwrap();
    w.sync().unwrap();
    w.append(b"b").unwrap();
    drop(w);
    let (s, w) = stats(d.path());
    assert_eq!(
        (w.state, w.records, w.next_seq, w.durable_seq),
        (WriterState::Released, 2, 2, 1)
    );
    assert!(!s.writer_live());

    // A new writer replaces the figures: counts since its own open.
    let w = Writer::open(d.path(), Options::new()).unwrap();
    let (s, figures) = stats(d.path());
    assert_eq!(
        (figures.state, figures.records, figures.next_seq),
        (WriterState::Open, 0, 2)
    );
    assert!(s.writer_live());
    drop(w);
}

#[test]
fn a_shared_writer_publishes_its_group_commits() {
    let d = tempfile::tempdir().unwrap();
    let w = applog::SharedWriter::open(d.path(), Options::new()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let w = w.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    w.append_durable(b"0123456789").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (s, f) = stats(d.path());
    assert_eq!(
        (f.next_seq, f.durable_seq, f.records, f.bytes),
        (200, 200, 200, 2000)
    );
    assert!(f.syncs >= 1 && f.syncs <= 200, "{f:?}");
    assert!(s.writer_live());
    w.close().unwrap();
    let (_, f) = stats(d.path());
    assert_eq!(f.state, WriterState::Closed);
}

#[test]
fn a_damaged_or_foreign_stats_file_is_reported_not_trusted_and_replaced_by_the_next_writer() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"a").unwrap();
    w.close().unwrap();
    let path = d.path().join(STATS_FILE);
    let good = std::fs::read(&path).unwrap();

    // Foreign, short, and one flipped bit in the header.
    let mut flipped = good.clone();
    flipped[16] ^= 1; // the writer's pid
    for (bytes, offset) in [
        (b"not ours at all, just some text in the file".repeat(10), 0),
        (good[..100].to_vec(), 100),
        (flipped, 32),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let s = applog::stats(d.path()).unwrap();
        match &s.writer {
            WriterFigures::Unreadable(Error::StatsCorrupt {
                path: p, offset: o, ..
            }) => {
                assert_eq!((p, *o), (&path, offset));
            }
            other => panic!("{other:?}"),
        }
        assert!(s.writer_stats().is_none() && !s.writer_live());
        // The log's own figures do not depend on it.
        assert_eq!((s.records(), s.durable_seq), (1, 1));
    }

    // The next writer replaces it.
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"b").unwrap();
    w.sync().unwrap();
    let (_, f) = stats(d.path());
    assert_eq!((f.records, f.next_seq, f.state), (1, 2, WriterState::Open));
    drop(w);
}

#[test]
fn a_stats_file_the_writer_cannot_make_is_a_warning_naming_it_not_an_error() {
    let (_tmp, log) = log_with(&[]);
    std::fs::remove_file(log.join(STATS_FILE)).unwrap();
    std::fs::create_dir(log.join(STATS_FILE)).unwrap();
    std::fs::write(log.join(STATS_FILE).join("x"), b"x").unwrap();
    let run = run(&["append".as_ref(), log_arg(&log), "a".as_ref(), "b".as_ref()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("WARN"), "{run:?}");
    assert!(
        run.stderr
            .contains(&log.join(STATS_FILE).display().to_string()),
        "{run:?}"
    );
    assert_eq!(read_all(&log).len(), 2);
    let s = applog::stats(&log).unwrap();
    match &s.writer {
        WriterFigures::Unreadable(Error::Io { path, .. }) => {
            assert_eq!(path, &log.join(STATS_FILE))
        }
        other => panic!("{other:?}"),
    }
    // Not read as a log's file either: the log is a log, and a reader sees its records.
    assert_eq!(s.records(), 2);
}

#[test]
fn a_log_whose_only_writer_left_a_stats_file_is_not_foreign() {
    let (_tmp, log) = log_with(&[b"a"]);
    assert!(log.join(STATS_FILE).exists());
    // Listed, verified, reopened, copied: the stats file is not a segment and not foreign.
    run(&["verify".as_ref(), log_arg(&log)]).ok();
    let mut w = Writer::open(&log, Options::new()).unwrap();
    w.append(b"b").unwrap();
    w.close().unwrap();
    assert_eq!(read_all(&log).len(), 2);
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout.trim_end()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn stats_prints_the_figures_of_a_known_log_as_text_and_json() {
    let (_tmp, log) = log_with(&[b"a", b"bb", b"ccc"]);
    drop(applog::Consumer::open(&log, "indexer").unwrap());
    let text = run(&["stats".as_ref(), log_arg(&log)]);
    let text = text.ok();
    for line in [
        "records      3 in 1 segment,",
        "first seq    0\n",
        "next seq     3\n",
        "durable seq  3 (0 records not durable yet)\n",
        "append rate  -\n",
        "since open   3 records, 6 bytes appended; 1 syncs (0 slow)",
        "disk free    ",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    assert!(
        text.contains("no writer running; the last one closed cleanly (pid "),
        "{text}"
    );
    assert!(text.contains("indexer"), "{text}");

    let j = json(
        run(&[
            "stats".as_ref(),
            log_arg(&log),
            "--format".as_ref(),
            "json".as_ref(),
        ])
        .ok(),
    );
    assert_eq!(j["records"], 3);
    assert_eq!(j["segments"], 1);
    assert_eq!(
        (j["first_seq"].as_u64(), j["next_seq"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(
        (j["durable_seq"].as_u64(), j["durable_lag"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(j["locked"], false);
    assert!(j["append_rate"].is_null());
    assert!(j["free_bytes"].as_u64().is_some_and(|b| b > 0));
    let w = &j["writer"];
    assert_eq!(
        (w["live"].as_bool(), w["state"].as_str()),
        (Some(false), Some("closed"))
    );
    assert_eq!(
        (
            w["records"].as_u64(),
            w["bytes"].as_u64(),
            w["syncs"].as_u64()
        ),
        (Some(3), Some(6), Some(1))
    );
    assert_eq!(w["pid"].as_u64(), Some(u64::from(std::process::id())));
    let c = &j["consumers"][0];
    assert_eq!(
        (
            c["name"].as_str(),
            c["next_seq"].as_u64(),
            c["lag"].as_u64()
        ),
        (Some("indexer"), Some(0), Some(3))
    );
}

#[test]
fn stats_on_a_log_with_a_live_writer_says_it_runs_and_counts_what_is_not_durable() {
    let (_tmp, log) = new_log();
    let mut w = Writer::open(&log, Options::new()).unwrap();
    w.append(b"a").unwrap();
    w.sync().unwrap();
    w.append(b"b").unwrap();
    let j = json(
        run(&[
            "stats".as_ref(),
            log_arg(&log),
            "--format".as_ref(),
            "json".as_ref(),
        ])
        .ok(),
    );
    assert_eq!(
        (j["next_seq"].as_u64(), j["durable_lag"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        (j["locked"].as_bool(), j["writer"]["live"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(j["writer"]["state"], "open");
    let text = run(&["stats".as_ref(), log_arg(&log)]);
    assert!(text.ok().contains("writer       running (pid "), "{text:?}");
    drop(w);
}

#[test]
fn stats_on_a_log_no_writer_of_this_version_opened_says_no_writer_runs() {
    let (_tmp, log) = log_with(&[b"a"]);
    std::fs::remove_file(log.join(STATS_FILE)).unwrap();
    let text = run(&["stats".as_ref(), log_arg(&log)]);
    assert!(
        text.ok().contains("writer       no writer running"),
        "{text:?}"
    );
    let j = json(
        run(&[
            "stats".as_ref(),
            log_arg(&log),
            "--format".as_ref(),
            "json".as_ref(),
        ])
        .ok(),
    );
    assert_eq!(
        (j["writer"]["state"].as_str(), j["records"].as_u64()),
        (Some("missing"), Some(1))
    );
}

#[test]
fn stats_reports_a_damaged_stats_file_and_still_shows_the_log() {
    let (_tmp, log) = log_with(&[b"a"]);
    std::fs::write(log.join(STATS_FILE), b"garbage").unwrap();
    let j = json(
        run(&[
            "stats".as_ref(),
            log_arg(&log),
            "--format".as_ref(),
            "json".as_ref(),
        ])
        .ok(),
    );
    assert_eq!(j["writer"]["state"], "unreadable");
    let error = j["writer"]["error"].as_str().unwrap();
    assert!(
        error.contains(&log.join(STATS_FILE).display().to_string()),
        "{error}"
    );
    assert!(j["writer"]["records"].is_null());
    assert_eq!(j["records"], 1);
}

#[test]
fn stats_follow_into_a_pipe_prints_a_line_per_interval_and_ends_on_sigint_with_exit_0() {
    let (_tmp, log) = log_with(&[b"a"]);
    let mut c = applog()
        .args([
            "stats".as_ref(),
            log_arg(&log),
            "-f".as_ref(),
            "--interval".as_ref(),
            "0.05".as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let deadline = Instant::now() + PATIENCE;
    let mut lines = Vec::new();
    while lines.len() < 3 {
        assert!(Instant::now() < deadline, "{lines:?}");
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "ended early: {lines:?}"
        );
        lines.push(json(&line));
    }
    assert!(lines.iter().all(|j| j["next_seq"] == 1));
    // From the second line on, the rate over the interval.
    assert_eq!(lines[1]["append_rate"].as_f64(), Some(0.0));
    let status = Command::new("kill")
        .args(["-INT", &c.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = c.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!((status.code(), stderr.as_str()), (Some(0), ""));
}

#[test]
fn stats_follow_stops_quietly_when_its_reader_goes() {
    let (_tmp, log) = log_with(&[b"a"]);
    let mut c = applog()
        .args([
            "stats".as_ref(),
            log_arg(&log),
            "-f".as_ref(),
            "--interval".as_ref(),
            "0.05".as_ref(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("log "), "{line}");
    drop(out);
    let status = c.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(c.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!((status.code(), stderr.as_str()), (Some(0), ""));
}

#[test]
fn stats_bad_values_are_usage_errors() {
    let (_tmp, log) = log_with(&[b"a"]);
    let l = log_arg(&log);
    for args in [
        vec!["stats".as_ref()],
        vec![
            "stats".as_ref(),
            l,
            "-f".as_ref(),
            "--interval".as_ref(),
            "0".as_ref(),
        ],
        vec![
            "stats".as_ref(),
            l,
            "-f".as_ref(),
            "--interval".as_ref(),
            "-1".as_ref(),
        ],
        vec![
            "stats".as_ref(),
            l,
            "-f".as_ref(),
            "--interval".as_ref(),
            "soon".as_ref(),
        ],
        vec![
            "stats".as_ref(),
            l,
            "-f".as_ref(),
            "--interval".as_ref(),
            "NaN".as_ref(),
        ],
        // --interval means nothing without -f.
        vec!["stats".as_ref(), l, "--interval".as_ref(), "2".as_ref()],
        vec!["stats".as_ref(), l, "--format".as_ref(), "xml".as_ref()],
    ] {
        let run = run(&args);
        assert!(
            run.usage_error().starts_with("applog: error: "),
            "{args:?}: {run:?}"
        );
    }
}

#[test]
fn stats_on_what_is_not_a_log_fails_naming_it() {
    let (tmp, log) = new_log();
    let missing = run(&["stats".as_ref(), log_arg(&log)]);
    assert!(
        missing.failed().contains(&log.display().to_string()),
        "{missing:?}"
    );
    std::fs::write(tmp.path().join("file"), b"x").unwrap();
    let not_a_log = run(&["stats".as_ref(), tmp.path().as_os_str()]);
    assert!(
        not_a_log
            .failed()
            .contains(&tmp.path().display().to_string()),
        "{not_a_log:?}"
    );
}
