//! Named consumers from the command line: `applog tail --name`, `applog consumers` (list,
//! `--reset`, `--delete`) and `applog trim`, run as separate processes; `tail --max`.
//!
//! Fault model for the kill rounds: `tail --name -f` dies by SIGKILL at an arbitrary moment
//! (between printing and committing a batch, in the middle of a write) while a writer
//! appends; the page cache survives. Pass criterion: at least once, never a gap: every run
//! prints a contiguous, ordered run of records that starts at or before the record after the
//! last one printed before it, and together they print every record.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use applog::{Consumer, Options, Writer};
use common::cli::*;
use serde_json::Value;

/// Generous: two cores are shared by several builds and test runs.
const PATIENCE: Duration = Duration::from_secs(60);

/// `applog <args>` with the log as the second argument.
fn cmd(command: &str, log: &Path, extra: &[&str]) -> Run {
    let mut args = vec![OsStr::new(command), log_arg(log)];
    args.extend(extra.iter().map(OsStr::new));
    run(&args)
}

/// A closed log of `r0` .. `r<n-1>`.
fn numbered_log(n: u64) -> (tempfile::TempDir, PathBuf) {
    let records = numbered(n);
    log_with(&slices(&records))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s:?}"))
}

/// `applog consumers LOG --format json`, by name.
fn consumers(log: &Path) -> BTreeMap<String, Value> {
    let out = cmd("consumers", log, &["--format", "json"]);
    let Value::Array(items) = json(out.ok()) else {
        panic!("not an array: {out:?}")
    };
    items
        .into_iter()
        .map(|c| (c["name"].as_str().expect("name").to_owned(), c))
        .collect()
}

fn next_seq(log: &Path, name: &str) -> u64 {
    consumers(log)[name]["next_seq"].as_u64().expect("next_seq")
}

/// Every file under `dir` (one level of subdirectories: `consumers/`) with its bytes.
fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            m.extend(files(&p));
        } else {
            m.insert(p.clone(), std::fs::read(&p).expect("read"));
        }
    }
    m
}

/// The segments of the log as (file name, first seq, next seq).
fn segments(log: &Path) -> Vec<(String, u64, u64)> {
    applog::verify(log)
        .expect("verify")
        .segments
        .iter()
        .map(|s| {
            let name = s.path.file_name().expect("name").to_string_lossy();
            (name.into_owned(), s.base_seq, s.base_seq + s.records)
        })
        .collect()
}

/// Now plus `delta` seconds, as RFC 3339 to the second, in UTC by `date -u`.
fn utc_now(delta: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", now + delta),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .expect("run date");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

// ---------------------------------------------------------------- tail --name

#[test]
fn tail_name_resumes_where_the_previous_run_stopped() {
    let _serial = common::serial();
    let (_tmp, log) = numbered_log(10);
    assert_eq!(
        cmd("tail", &log, &["--name", "c", "--max", "3"]).ok(),
        numbered_lines(0, 3)
    );
    assert_eq!(
        cmd("tail", &log, &["--name", "c", "--max", "3"]).ok(),
        numbered_lines(3, 6)
    );
    assert_eq!(next_seq(&log, "c"), 6);
    // Without --max: the rest, then nothing.
    let times = common::cli::record_times(&log);
    assert_eq!(
        cmd("tail", &log, &["--name", "c", "--format", "json"]).ok(),
        (6..10)
            .map(|i| {
                let time = common::cli::rfc3339_nanos(times[i].expect("a time"));
                format!(
                    "{{\"seq\":{i},\"time\":\"{time}\",\"len\":2,\"data\":\"r{i}\",\"encoding\":\"utf8\"}}\n"
                )
            })
            .collect::<String>()
    );
    assert_eq!(cmd("tail", &log, &["--name", "c"]).ok(), "");
    // New records come after the committed position.
    cmd("append", &log, &["r10", "r11"]).ok();
    assert_eq!(
        cmd("tail", &log, &["--name", "c", "--format", "hex"]).ok(),
        "seq 10 len 3\n00000000  72 31 30                                          |r10|\n\
         seq 11 len 3\n00000000  72 31 31                                          |r11|\n"
    );
    assert_eq!(next_seq(&log, "c"), 12);
    // Another name is a consumer of its own, from the first record.
    assert_eq!(
        cmd("tail", &log, &["--name", "other", "--max", "2"]).ok(),
        numbered_lines(0, 2)
    );
    assert_eq!(next_seq(&log, "c"), 12);
}

#[test]
fn tail_name_of_a_new_consumer_starts_at_the_first_record_of_a_trimmed_log() {
    let _serial = common::serial();
    let (_tmp, log) = one_page_segments('x', 40);
    let segs = segments(&log);
    let out = cmd("trim", &log, &["--before", "20", "--format", "json"]);
    let first = json(out.ok())["first_seq"].as_u64().expect("first_seq");
    assert!(first > 0 && first <= 20, "{out:?} {segs:?}");
    let out = cmd(
        "tail",
        &log,
        &["--name", "late", "--max", "1", "--format", "json"],
    );
    assert_eq!(json(out.ok())["seq"], first);
    assert_eq!(next_seq(&log, "late"), first + 1);
}

#[test]
fn tail_name_of_a_busy_consumer_fails_naming_the_process() {
    let _serial = common::serial();
    let (_tmp, log) = numbered_log(5);
    let held = Consumer::open(&log, "c").expect("open consumer");
    let pid = std::process::id();
    let err = cmd("tail", &log, &["--name", "c"]).failed().to_owned();
    assert!(err.contains(r#"consumer "c" is in use"#), "{err}");
    assert!(err.contains(&format!("held by process {pid}")), "{err}");
    let err = cmd("tail", &log, &["--name", "c", "-f"])
        .failed()
        .to_owned();
    assert!(err.contains(&format!("held by process {pid}")), "{err}");
    // Listed as active, with the pid.
    let c = &consumers(&log)["c"];
    assert_eq!(
        (c["state"].as_str(), c["pid"].as_u64()),
        (Some("active"), Some(u64::from(pid)))
    );
    let text = cmd("consumers", &log, &[]).ok().to_owned();
    assert!(text.contains(&format!("active (pid {pid})")), "{text}");
    // Neither reset nor deleted while in use.
    let err = cmd("consumers", &log, &["--reset", "c", "--to", "0"])
        .failed()
        .to_owned();
    assert!(err.contains(&format!("held by process {pid}")), "{err}");
    let err = cmd("consumers", &log, &["--delete", "c"])
        .failed()
        .to_owned();
    assert!(err.contains(&format!("held by process {pid}")), "{err}");
    drop(held);
    assert_eq!(
        cmd("tail", &log, &["--name", "c"]).ok(),
        numbered_lines(0, 5)
    );
}

#[test]
fn bad_consumer_names_and_conflicting_flags_are_usage_errors() {
    let _serial = common::serial();
    let (_tmp, log) = numbered_log(3);
    let before = files(&log);
    let long = "x".repeat(65);
    for name in ["", ".hidden", "a/b", "sp ace", "..", "é", long.as_str()] {
        for args in [
            &["tail", "--name", name][..],
            &["tail", "--name", name, "-f"],
            &["consumers", "--reset", name, "--to", "0"],
            &["consumers", "--delete", name],
        ] {
            let mut full = vec![OsStr::new(args[0]), log_arg(&log)];
            full.extend(args[1..].iter().map(OsStr::new));
            let err = run(&full).usage_error().to_owned();
            assert!(err.starts_with("applog: error: "), "{args:?}: {err}");
            assert!(err.contains("invalid consumer name"), "{args:?}: {err}");
        }
    }
    assert_eq!(files(&log), before, "a bad name changes nothing");
    // The longest name and every kind of allowed character are fine.
    let longest = "x".repeat(64);
    assert_eq!(
        cmd("tail", &log, &["--name", &longest, "--max", "1"]).ok(),
        "r0\n"
    );
    assert_eq!(
        cmd("tail", &log, &["--name", "A-z_0.9", "--max", "1"]).ok(),
        "r0\n"
    );
    let before = files(&log);
    for args in [
        &["tail", "--name", "c", "--from", "1"][..],
        &["tail", "--name", "c", "-n", "2"],
        &["tail", "--name", "c", "--count", "2"],
        &["consumers", "--reset", "c"],
        &["consumers", "--to", "1"],
        &["consumers", "--reset", "c", "--to", "1", "--delete", "c"],
        &["tail", "--max", "-1"],
        &["trim", "--max-age", "10"],
        &["trim", "--park-idle", "1w"],
        &["trim", "--max-bytes", "lots"],
    ] {
        let mut full = vec![OsStr::new(args[0]), log_arg(&log)];
        full.extend(args[1..].iter().map(OsStr::new));
        let err = run(&full).usage_error().to_owned();
        assert!(err.starts_with("applog: error: "), "{args:?}: {err}");
    }
    assert_eq!(files(&log), before, "a usage error changes nothing");
}

#[test]
fn tail_max_stops_after_n_records_with_and_without_a_name() {
    let _serial = common::serial();
    let (_tmp, log) = numbered_log(10);
    assert_eq!(
        cmd("tail", &log, &["--from", "5", "--max", "3"]).ok(),
        numbered_lines(5, 8)
    );
    assert_eq!(
        cmd("tail", &log, &["--from", "8", "--max", "3"]).ok(),
        numbered_lines(8, 10)
    );
    assert_eq!(
        cmd("tail", &log, &["-n", "5", "--max", "2"]).ok(),
        numbered_lines(5, 7)
    );
    // The last 10 (all of them), the first of them.
    assert_eq!(cmd("tail", &log, &["--max", "1"]).ok(), "r0\n");
    assert_eq!(cmd("tail", &log, &["--max", "0"]).ok(), "");
    assert_eq!(cmd("tail", &log, &["--name", "c", "--max", "0"]).ok(), "");
    assert_eq!(next_seq(&log, "c"), 0);
}

/// `applog tail LOG -f <extra>` with stdout collected by a thread; waits for it to exit.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Follower {
    fn spawn(log: &Path, extra: &[&str]) -> Follower {
        let mut child = applog()
            .arg("tail")
            .arg(log)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tail");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            // Only whole lines: a process killed in the middle of a write leaves half a one.
            let mut line = Vec::new();
            while stdout.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    let s = String::from_utf8(std::mem::take(&mut line)).expect("utf-8");
                    sink.lock().expect("lock").push(s);
                }
            }
        });
        Follower {
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    fn len(&self) -> usize {
        self.lines.lock().expect("lock").len()
    }

    fn last(&self) -> Option<String> {
        self.lines.lock().expect("lock").last().cloned()
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Waits until `done` holds for the lines so far, the process still running.
    #[track_caller]
    fn wait_for(&mut self, what: &str, done: impl Fn(&Follower) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(self) {
            assert!(self.running(), "tail exited before printing {what}");
            assert!(Instant::now() < deadline, "tail never printed {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to exit by itself; its exit and stderr, and the lines.
    #[track_caller]
    fn wait_exit(mut self) -> (Run, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        while self.running() {
            assert!(
                Instant::now() < deadline,
                "tail did not exit; it printed {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.finish()
    }

    fn finish(mut self) -> (Run, Vec<String>) {
        let status = self.child.wait().expect("wait");
        if let Some(r) = self.reader.take() {
            r.join().expect("stdout reader");
        }
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr).expect("stderr");
        }
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr,
        };
        let lines = self.lines();
        (run, lines)
    }

    /// SIGKILL, wherever it is; the whole lines it printed.
    fn kill9(mut self) -> Vec<String> {
        self.child.kill().expect("SIGKILL");
        self.finish().1
    }

    fn signal(self, signal: &str) -> (Run, Vec<String>) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
        self.wait_exit()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tail_follow_max_exits_after_n_records_with_and_without_a_name() {
    let _serial = common::serial();
    let (_tmp, log) = numbered_log(4);
    let mut plain = Follower::spawn(&log, &["-f", "--max", "10", "--from", "0"]);
    let mut named = Follower::spawn(&log, &["-f", "--max", "10", "--name", "c"]);
    // Both print the 4 records there and wait for more.
    plain.wait_for("the records there", |f| f.len() == 4);
    named.wait_for("the records there", |f| f.len() == 4);
    std::thread::sleep(Duration::from_millis(200));
    assert!(plain.running() && named.running());
    for i in 4..12 {
        cmd("append", &log, &[&format!("r{i}")]).ok();
        if i == 6 {
            // Committed as printed, while it follows.
            named.wait_for("r6", |f| f.len() == 7);
            let deadline = Instant::now() + PATIENCE;
            while next_seq(&log, "c") != 7 {
                assert!(Instant::now() < deadline, "r6 was not committed");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    for f in [plain, named] {
        let (run, lines) = f.wait_exit();
        assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
        assert_eq!(lines.join("\n") + "\n", numbered_lines(0, 10));
    }
    assert_eq!(next_seq(&log, "c"), 10);
    // -n with -f and --max.
    let (run, lines) = Follower::spawn(&log, &["-f", "-n", "3", "--max", "2"]).wait_exit();
    assert_eq!(
        (run.code, lines),
        (0, vec!["r9".to_owned(), "r10".to_owned()])
    );
    // The next named run goes on from there.
    let (run, lines) = Follower::spawn(&log, &["-f", "--max", "2", "--name", "c"]).wait_exit();
    assert_eq!(
        (run.code, lines),
        (0, vec!["r10".to_owned(), "r11".to_owned()])
    );
}

#[test]
fn tail_name_follow_ends_on_sigint_and_sigterm_with_its_position_committed() {
    let _serial = common::serial();
    let (_tmp, log) = numbered_log(3);
    let mut f = Follower::spawn(&log, &["-f", "--name", "c"]);
    f.wait_for("the records there", |f| f.len() == 3);
    cmd("append", &log, &["r3", "r4"]).ok();
    f.wait_for("the new records", |f| f.len() == 5);
    let (run, lines) = f.signal("INT");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(lines.join("\n") + "\n", numbered_lines(0, 5));
    assert_eq!(next_seq(&log, "c"), 5);

    let mut f = Follower::spawn(&log, &["-f", "--name", "c"]);
    cmd("append", &log, &["r5", "r6"]).ok();
    f.wait_for("the new records", |f| f.len() == 2);
    let (run, lines) = f.signal("TERM");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(lines, ["r5", "r6"]);
    assert_eq!(next_seq(&log, "c"), 7);
    assert_eq!(consumers(&log)["c"]["state"], "idle");
}

#[test]
fn tail_name_follow_waits_for_a_log_that_does_not_exist_yet() {
    let _serial = common::serial();
    let (_tmp, log) = new_log();
    let mut f = Follower::spawn(&log, &["-f", "--name", "c", "--max", "2"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(f.running(), "tail -f --name did not wait for the log");
    assert!(!log.exists(), "tail -f --name must not create the log");
    cmd("append", &log, &["first", "second", "third"]).ok();
    let (run, lines) = f.wait_exit();
    assert_eq!(
        (run.code, run.stderr),
        (
            0,
            format!(
                "applog: note: there is no log in {} yet; waiting for one to be created\n",
                log.display()
            )
        )
    );
    assert_eq!(lines, ["first", "second"]);
    assert_eq!(next_seq(&log, "c"), 2);
}

#[test]
fn tail_name_to_a_closed_output_commits_nothing_it_could_not_write() {
    let _serial = common::serial();
    let (_tmp, log) = numbered_log(50_000);
    // A socket whose other end is closed: every write fails with EPIPE.
    for follow in [false, true] {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        drop(ours);
        let mut args = vec![
            OsStr::new("tail"),
            log_arg(&log),
            OsStr::new("--name"),
            OsStr::new("c"),
        ];
        if follow {
            args.push(OsStr::new("-f"));
        }
        let out: Run = applog()
            .args(&args)
            .stdout(std::os::fd::OwnedFd::from(theirs))
            .output()
            .expect("run")
            .into();
        assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
        assert_eq!(next_seq(&log, "c"), 0, "follow: {follow}");
    }
    // A full disk behind standard output is an error, and nothing is committed either.
    if let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") {
        let out: Run = applog()
            .args([
                OsStr::new("tail"),
                log_arg(&log),
                OsStr::new("--name"),
                OsStr::new("c"),
            ])
            .stdout(full)
            .output()
            .expect("run")
            .into();
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr
                .starts_with("applog: error: could not write to standard output: "),
            "{out:?}"
        );
        assert_eq!(next_seq(&log, "c"), 0);
    }
    // A reader that stops after one line: what was committed had been written, and the rest
    // (far more than a pipe holds) was not.
    let (first, out) = first_line_then_close(&[
        OsStr::new("tail"),
        log_arg(&log),
        OsStr::new("--name"),
        OsStr::new("c"),
    ]);
    assert_eq!(first, "r0\n");
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let committed = next_seq(&log, "c");
    // About 7 bytes a record: no more than the pipe (64 KiB) and the line read can hold.
    assert!(committed * 6 <= 64 * 1024 + 8, "{committed}");
    assert_eq!(
        cmd("tail", &log, &["--name", "c", "--max", "1"]).ok(),
        format!("r{committed}\n")
    );
}

#[test]
fn tail_name_needs_a_log_and_makes_nothing_in_a_directory_that_is_none() {
    let _serial = common::serial();
    let tmp = tempfile::tempdir().expect("tempdir");
    let other = tmp.path().join("notalog");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("file.txt"), b"hello").expect("write");
    for command in [
        &["tail", "--name", "c"][..],
        &["consumers", "--reset", "c", "--to", "0"],
        &["consumers", "--delete", "c"],
        &["consumers"],
        &["trim"],
        &["trim", "--before", "5"],
    ] {
        let mut args = vec![OsStr::new(command[0]), other.as_os_str()];
        args.extend(command[1..].iter().map(OsStr::new));
        let err = run(&args).failed().to_owned();
        assert!(err.contains("not an applog log"), "{command:?}: {err}");
        assert!(!other.join("consumers").exists(), "{command:?}");
    }
    // A missing log is an error too (without -f).
    let err = cmd("tail", &tmp.path().join("missing"), &["--name", "c"])
        .failed()
        .to_owned();
    assert!(err.contains("missing"), "{err}");
}

// ---------------------------------------------------------------- consumers

#[test]
fn consumers_lists_position_lag_time_and_state_as_text_and_json() {
    let _serial = common::serial();
    let (_tmp, log) = numbered_log(10);
    // No consumer: an empty array, and a header alone.
    assert_eq!(cmd("consumers", &log, &["--format", "json"]).ok(), "[]\n");
    let text = cmd("consumers", &log, &[]).ok().to_owned();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("name "), "{text}");

    // The commit time is a coarse clock's: allow a second either side.
    let before = utc_now(-1);
    cmd("tail", &log, &["--name", "slow", "--max", "4"]).ok();
    cmd("tail", &log, &["--name", "done"]).ok();
    let after = utc_now(1);
    let list = consumers(&log);
    assert_eq!(list.keys().collect::<Vec<_>>(), ["done", "slow"]);
    let slow = &list["slow"];
    for key in [
        "name",
        "path",
        "next_seq",
        "lag",
        "lag_bytes",
        "last_commit",
        "state",
        "pid",
    ] {
        assert!(slow.get(key).is_some(), "{key}: {slow}");
    }
    assert_eq!(
        (slow["next_seq"].as_u64(), slow["lag"].as_u64()),
        (Some(4), Some(6))
    );
    // Six records of 2 bytes: 24-byte frames.
    assert_eq!(slow["lag_bytes"].as_u64(), Some(6 * 24));
    assert_eq!(
        (slow["state"].as_str(), &slow["pid"]),
        (Some("idle"), &Value::Null)
    );
    assert_eq!(
        slow["path"].as_str().map(PathBuf::from),
        Some(applog::consumer_path(&log, "slow"))
    );
    let at = slow["last_commit"]
        .as_str()
        .expect("last_commit")
        .to_owned();
    assert_eq!(at.len(), 20, "{at}");
    assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    let done = &list["done"];
    assert_eq!(
        (
            done["next_seq"].as_u64(),
            done["lag"].as_u64(),
            done["lag_bytes"].as_u64()
        ),
        (Some(10), Some(0), Some(0))
    );
    // Lag grows with the log.
    cmd("append", &log, &["r10"]).ok();
    assert_eq!(consumers(&log)["done"]["lag"].as_u64(), Some(1));

    let text = cmd("consumers", &log, &[]).ok().to_owned();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["name", "next", "seq", "lag", "lag", "bytes", "last", "commit", "state"]
    );
    assert_eq!(rows[1][..4], ["done", "10", "1", "24"]);
    assert_eq!(rows[2][..4], ["slow", "4", "7", "168"]);
    assert_eq!(rows[2][4], at);
    assert_eq!(rows[2][5], "idle");
    assert_eq!(rows.len(), 3);
}

#[test]
fn consumers_reset_and_delete() {
    let _serial = common::serial();
    let (_tmp, log) = numbered_log(10);
    cmd("tail", &log, &["--name", "c", "--max", "2"]).ok();
    // Forward and back.
    assert_eq!(
        cmd("consumers", &log, &["--reset", "c", "--to", "8"]).ok(),
        "reset consumer c: it resumes at seq 8\n"
    );
    assert_eq!(
        cmd("tail", &log, &["--name", "c"]).ok(),
        numbered_lines(8, 10)
    );
    let out = cmd(
        "consumers",
        &log,
        &["--reset", "c", "--to", "1", "--format", "json"],
    );
    assert_eq!(
        json(out.ok()),
        json(r#"{"name":"c","action":"reset","next_seq":1}"#)
    );
    assert_eq!(next_seq(&log, "c"), 1);
    // To the end of the log: nothing left to read.
    cmd("consumers", &log, &["--reset", "c", "--to", "10"]).ok();
    assert_eq!(cmd("tail", &log, &["--name", "c"]).ok(), "");
    // Outside the log, or unknown: exit 1 with the library's message, nothing changed.
    let err = cmd("consumers", &log, &["--reset", "c", "--to", "11"])
        .failed()
        .to_owned();
    assert!(
        err.contains(r#"consumer "c""#) && err.contains("position 11 is outside 0..=10"),
        "{err}"
    );
    assert_eq!(next_seq(&log, "c"), 10);
    let err = cmd("consumers", &log, &["--reset", "nobody", "--to", "0"])
        .failed()
        .to_owned();
    assert!(err.contains(r#"no consumer "nobody""#), "{err}");
    let err = cmd("consumers", &log, &["--delete", "nobody"])
        .failed()
        .to_owned();
    assert!(err.contains(r#"no consumer "nobody""#), "{err}");
    assert!(!applog::consumer_path(&log, "nobody").exists());

    assert_eq!(
        cmd("consumers", &log, &["--delete", "c"]).ok(),
        "deleted consumer c\n"
    );
    assert!(consumers(&log).is_empty());
    let err = cmd("consumers", &log, &["--delete", "c", "--format", "json"])
        .failed()
        .to_owned();
    assert!(err.contains(r#"no consumer "c""#), "{err}");
    // A deleted name starts afresh.
    assert_eq!(
        cmd("tail", &log, &["--name", "c", "--max", "1"]).ok(),
        "r0\n"
    );
    let out = cmd("consumers", &log, &["--delete", "c", "--format", "json"]);
    assert_eq!(json(out.ok()), json(r#"{"name":"c","action":"delete"}"#));
}

// ---------------------------------------------------------------- trim

/// The segments whose records all lie below `seq`: (file names, records, bytes, first seq after).
fn expected_below(log: &Path, seq: u64) -> (Vec<String>, u64, u64, u64) {
    let segs = segments(log);
    let mut names = Vec::new();
    let (mut records, mut bytes, mut first) = (0, 0, segs[0].1);
    for (i, (name, base, _)) in segs.iter().enumerate() {
        let Some((_, next_base, _)) = segs.get(i + 1) else {
            break;
        };
        if *next_base > seq {
            break;
        }
        names.push(name.clone());
        records += next_base - base;
        bytes += std::fs::metadata(log.join(name)).expect("stat").len();
        first = *next_base;
    }
    (names, records, bytes, first)
}

#[test]
fn trim_before_removes_whole_segments_below_the_seq() {
    let _serial = common::serial();
    let (_tmp, log) = one_page_segments('x', 40);
    let (names, records, bytes, first) = expected_below(&log, 10);
    assert!(names.len() >= 2, "{names:?}");
    let out = cmd("trim", &log, &["--before", "10", "--format", "json"]);
    let report = json(out.ok());
    assert_eq!(
        report,
        serde_json::json!({
            "removed_segments": names,
            "records": records,
            "bytes": bytes,
            "first_seq": first,
            "held_back_by": null,
            "parked": [],
            "dry_run": false,
            "note": null,
        })
    );
    for name in &names {
        assert!(!log.join(name).exists(), "{name}");
    }
    assert_eq!(applog::verify(&log).expect("verify").first_seq, first);
    // Again: nothing more to remove, said in text.
    let text = cmd("trim", &log, &["--before", "10"]).ok().to_owned();
    assert_eq!(text, format!("removed nothing; the first seq is {first}\n"));
    // In text, each file and a summary.
    let (names, records, bytes, first) = expected_below(&log, 20);
    let text = cmd("trim", &log, &["--before", "20"]).ok().to_owned();
    let mut want: String = names.iter().map(|n| format!("removed {n}\n")).collect();
    want.push_str(&format!(
        "removed {} segments: {records} records, {bytes} bytes; the first seq is now {first}\n",
        names.len()
    ));
    assert_eq!(text, want);
}

#[test]
fn trim_without_before_goes_up_to_the_slowest_consumer_and_needs_one() {
    let _serial = common::serial();
    let (_tmp, log) = one_page_segments('x', 40);
    let all = files(&log);
    // No consumer: nothing removed, and it says why.
    let text = cmd("trim", &log, &[]).ok().to_owned();
    assert!(
        text.starts_with("removed nothing: the log has no consumers"),
        "{text}"
    );
    let report = json(cmd("trim", &log, &["--format", "json"]).ok());
    assert_eq!(report["removed_segments"], serde_json::json!([]));
    assert_eq!(report["first_seq"], 0);
    assert!(
        report["note"]
            .as_str()
            .expect("note")
            .contains("no consumers"),
        "{report}"
    );
    assert_eq!(files(&log), all);

    cmd("tail", &log, &["--name", "slow", "--max", "13"]).ok();
    cmd("tail", &log, &["--name", "fast", "--max", "30"]).ok();
    let (names, records, _, first) = expected_below(&log, 13);
    assert!(!names.is_empty());
    let report = json(cmd("trim", &log, &["--format", "json"]).ok());
    assert_eq!(report["held_back_by"], "slow", "{report}");
    assert_eq!(report["removed_segments"], serde_json::json!(names));
    assert_eq!(
        (report["records"].as_u64(), report["first_seq"].as_u64()),
        (Some(records), Some(first))
    );
    // A --before past the slowest consumer is held back by it, too, and says so in text.
    cmd("tail", &log, &["--name", "slow", "--max", "8"]).ok();
    let (names, _, _, first) = expected_below(&log, 21);
    let text = cmd("trim", &log, &["--before", "35"]).ok().to_owned();
    assert!(
        text.contains(&format!("the first seq is now {first}")),
        "{text}"
    );
    assert!(
        text.ends_with("held back by consumer \"slow\", the slowest one not parked\n"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("removed 0")).count(),
        names.len(),
        "{text}"
    );
    // The consumers read on from where they were.
    assert_eq!(
        json(
            cmd(
                "tail",
                &log,
                &["--name", "slow", "--max", "1", "--format", "json"]
            )
            .ok()
        )["seq"],
        21
    );
}

#[test]
fn trim_dry_run_changes_nothing_and_says_what_it_would_do() {
    let _serial = common::serial();
    let (_tmp, log) = one_page_segments('x', 40);
    cmd("tail", &log, &["--name", "lazy", "--max", "1"]).ok();
    cmd("tail", &log, &["--name", "keen", "--max", "30"]).ok();
    let all = files(&log);
    let (names, _, _, first) = expected_below(&log, 30);
    let out = cmd(
        "trim",
        &log,
        &["--dry-run", "--park-lag-bytes", "20000", "--format", "json"],
    );
    let report = json(out.ok());
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["parked"], serde_json::json!(["lazy"]));
    assert_eq!(report["held_back_by"], "keen");
    assert_eq!(report["removed_segments"], serde_json::json!(names));
    assert_eq!(report["first_seq"], first);
    assert_eq!(files(&log), all, "a dry run changed files");
    let text = cmd("trim", &log, &["--dry-run", "--park-lag-bytes", "20000"])
        .ok()
        .to_owned();
    assert!(
        text.starts_with(&format!("would remove {}\n", names[0])),
        "{text}"
    );
    assert!(
        text.contains(&format!("; the first seq would be {first}\n")),
        "{text}"
    );
    assert!(text.contains("would park consumer \"lazy\""), "{text}");
    assert_eq!(files(&log), all, "a dry run changed files");
    assert_eq!(consumers(&log)["lazy"]["state"], "idle");
}

#[test]
fn trim_parks_a_consumer_that_fell_behind_until_it_is_reset() {
    let _serial = common::serial();
    let (_tmp, log) = one_page_segments('x', 40);
    cmd("tail", &log, &["--name", "lazy", "--max", "1"]).ok();
    let all = segments(&log).len();
    // Without --before, trim goes "up to the slowest consumer": with the only one given up
    // on, nowhere, so parking it would gain nothing: it is not parked.
    let text = cmd("trim", &log, &["--park-lag-bytes", "20000"])
        .ok()
        .to_owned();
    assert!(!text.contains("parked consumer"), "{text}");
    assert_eq!(segments(&log).len(), all, "{text}");
    assert_eq!(consumers(&log)["lazy"]["state"], "idle");
    let text = cmd(
        "trim",
        &log,
        &["--park-lag-bytes", "20000", "--before", "1000000"],
    )
    .ok()
    .to_owned();
    assert!(
        text.contains(&format!(
            "parked consumer \"lazy\": it fell too far behind, and retention no longer waits for it \
             (`applog consumers {} --reset lazy --to SEQ` lets it go on)",
            log.display()
        )),
        "{text}"
    );
    // Nobody else to wait for: all but the newest segment went.
    let segs = segments(&log);
    assert_eq!(segs.len(), 1, "{text}");
    let first = segs[0].1;
    let lazy = &consumers(&log)["lazy"];
    assert_eq!(lazy["state"], "parked", "{lazy}");
    assert_eq!(lazy["parked"]["seq"], 1, "{lazy}");
    let text = cmd("consumers", &log, &[]).ok().to_owned();
    assert!(text.contains("parked at seq 1, "), "{text}");
    // Reading with it fails until it is reset.
    for extra in [&[][..], &["-f"]] {
        let mut args = vec!["--name", "lazy"];
        args.extend_from_slice(extra);
        let err = cmd("tail", &log, &args).failed().to_owned();
        assert!(
            err.contains(r#"consumer "lazy""#)
                && err.contains("is parked")
                && err.contains("reset it to go on"),
            "{err}"
        );
    }
    // Before the first record is no place to reset it to.
    let err = cmd("consumers", &log, &["--reset", "lazy", "--to", "0"])
        .failed()
        .to_owned();
    assert!(err.contains("position 0 is outside"), "{err}");
    cmd(
        "consumers",
        &log,
        &["--reset", "lazy", "--to", &first.to_string()],
    )
    .ok();
    assert_eq!(consumers(&log)["lazy"]["state"], "idle");
    let out = cmd("tail", &log, &["--name", "lazy", "--format", "json"]);
    let seqs: Vec<u64> = out
        .ok()
        .lines()
        .map(|l| json(l)["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (first..40).collect::<Vec<_>>());
}

#[test]
fn trim_applies_size_and_age_limits_without_consumers() {
    let _serial = common::serial();
    let (_tmp, log) = one_page_segments('x', 40);
    let page = common::page();
    let report = json(
        cmd(
            "trim",
            &log,
            &["--max-bytes", &(3 * page).to_string(), "--format", "json"],
        )
        .ok(),
    );
    assert_eq!(report["note"], Value::Null);
    let segs = segments(&log);
    assert_eq!(segs.len(), 3, "{report}");
    assert_eq!(report["first_seq"], segs[0].1);
    // Nothing is older than a day; everything is older than 0s (the newest segment stays).
    let report = json(cmd("trim", &log, &["--max-age", "1d", "--format", "json"]).ok());
    assert_eq!(report["removed_segments"], serde_json::json!([]));
    std::thread::sleep(Duration::from_millis(20));
    let report = json(cmd("trim", &log, &["--max-age", "10ms", "--format", "json"]).ok());
    assert_eq!(
        report["removed_segments"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    assert_eq!(segments(&log).len(), 1);
}

// ---------------------------------------------------------------- kill -9

/// The seq of a `tail --format json` line, checking its data.
fn seq_of(line: &str) -> u64 {
    let v = json(line);
    let seq = v["seq"].as_u64().expect("seq");
    assert_eq!(v["data"].as_str(), Some(payload_of(seq).as_str()), "{line}");
    seq
}

fn payload_of(seq: u64) -> String {
    format!("r{seq} {}", "p".repeat((seq as usize * 7) % 40))
}

#[test]
fn tail_name_follow_killed_with_sigkill_prints_every_record_at_least_once_without_gaps() {
    let _serial = common::serial();
    const N: u64 = 20_000;
    const ROUNDS: usize = 10;
    let seed = common::seed("tail_name_follow_killed_with_sigkill");
    let mut rng = common::Rng(seed);
    let (_tmp, log) = new_log();
    // A writer in this process, appending in small batches into one-page segments (a
    // rollover every ~100 records) for about two seconds.
    let mut writer = Writer::open(&log, Options::new().segment_pages(1)).expect("open writer");
    let appender = std::thread::spawn(move || {
        let mut seq = 0;
        while seq < N {
            let batch: Vec<String> = (seq..(seq + 100).min(N)).map(payload_of).collect();
            let batch: Vec<&[u8]> = batch.iter().map(|s| s.as_bytes()).collect();
            writer.append_batch(&batch).expect("append");
            seq += batch.len() as u64;
            std::thread::sleep(Duration::from_millis(10));
        }
        writer.close().expect("close");
    });
    let args = ["-f", "--name", "c", "--format", "json"];
    let mut runs: Vec<Vec<u64>> = Vec::new();
    for _ in 0..ROUNDS {
        // A pause lets a backlog build up, for the next run to print in large batches.
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        let mut f = Follower::spawn(&log, &args);
        // Killed before it prints, while it prints a backlog, or while it waits.
        let wait = Duration::from_millis(if rng.chance(1, 3) {
            rng.below(30)
        } else {
            rng.below(350)
        });
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            assert!(f.running(), "tail exited before the kill");
            std::thread::sleep(Duration::from_millis(2));
        }
        runs.push(f.kill9().iter().map(|l| seq_of(l)).collect());
    }
    appender.join().expect("appender");
    // The last run reaches the end (unless a killed one did), and ends on SIGTERM.
    let mut f = Follower::spawn(&log, &args);
    f.wait_for("the last record", |f| {
        f.last().is_some_and(|l| seq_of(&l) == N - 1)
            || (f.len() == 0 && applog::consumers(&log).expect("consumers")[0].next_seq == N)
    });
    let (run, lines) = f.signal("TERM");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    runs.push(lines.iter().map(|l| seq_of(l)).collect());

    let mut seen = vec![false; N as usize];
    let mut next: u64 = 0; // one past the highest seq printed so far
    let mut again = 0; // records printed again (delivered, not committed, before a kill)
    for (i, seqs) in runs.iter().enumerate() {
        let Some(&start) = seqs.first() else { continue };
        assert!(
            start <= next,
            "run {i} started at {start}, after the next record not printed ({next}): a gap (seed {seed})"
        );
        again += next - start;
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1, "run {i} is not contiguous (seed {seed})");
        }
        for &s in seqs {
            seen[s as usize] = true;
        }
        next = next.max(seqs.last().copied().unwrap_or(0) + 1);
    }
    assert!(
        seen.iter().all(|&s| s),
        "a record was never printed (seed {seed})"
    );
    let killed: Vec<usize> = runs[..ROUNDS].iter().map(Vec::len).collect();
    eprintln!("records printed by the killed runs: {killed:?}; printed again: {again}");
    assert_eq!(next_seq(&log, "c"), N);
    assert_eq!(consumers(&log)["c"]["state"], "idle");
}

// ---------------------------------------------------------------- help

#[test]
fn help_lists_the_new_commands_and_flags() {
    let top = run(&["--help"]).ok().to_owned();
    for command in ["consumers", "trim"] {
        assert!(top.contains(command), "{top}");
    }
    let tail = run(&["tail", "--help"]).ok().to_owned();
    assert!(
        tail.contains("--name <NAME>") && tail.contains("--max <N>"),
        "{tail}"
    );
    let consumers = run(&["consumers", "--help"]).ok().to_owned();
    for flag in [
        "--reset <NAME>",
        "--to <SEQ>",
        "--delete <NAME>",
        "--format",
    ] {
        assert!(consumers.contains(flag), "{flag}: {consumers}");
    }
    let trim = run(&["trim", "--help"]).ok().to_owned();
    for flag in [
        "--before <SEQ>",
        "--dry-run",
        "--max-bytes <N>",
        "--max-age <DURATION>",
        "--park-lag-bytes <N>",
        "--park-idle <DURATION>",
        "--format",
    ] {
        assert!(trim.contains(flag), "{flag}: {trim}");
    }
}
