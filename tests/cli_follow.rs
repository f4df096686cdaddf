//! The `applog` tool against live writers in other processes: `tail -f` following appends,
//! rollovers and writers killed with SIGKILL and restarted; `append --sync-each --print-seq`
//! killed with SIGKILL; `recover` after such a kill; `copy` while a writer appends and rolls.
//!
//! Fault model: the appending process dies at an arbitrary instruction (SIGKILL), possibly in
//! the middle of a record or of a segment rollover; the page cache survives.
//! Pass criterion: `tail -f` prints every record the log ends up holding exactly once, in
//! order, without gaps, across kills and restarts, and ends with exit 0 and nothing on
//! stderr on SIGINT or SIGTERM; every seq that `--print-seq` printed is in the log with its
//! exact content; every copy verifies clean and holds a prefix of the source, at least as
//! long as the source was when the copy started.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::cli::*;

/// Generous: two cores are shared by several builds and test runs.
const PATIENCE: Duration = Duration::from_secs(60);

fn new_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("log");
    (tmp, log)
}

/// Every record of the log as text, in seq order.
fn log_lines(log: &Path) -> Vec<String> {
    common::read_all(log)
        .into_iter()
        .enumerate()
        .map(|(i, (seq, data))| {
            assert_eq!(seq, i as u64);
            String::from_utf8(data).expect("utf-8")
        })
        .collect()
}

/// A running `applog tail -f` whose stdout lines are collected by a thread.
struct Follower {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
    /// Everything written to stderr so far, collected by a thread.
    stderr: Arc<Mutex<String>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Follower {
    fn spawn(log: &Path, extra: &[&str]) -> Follower {
        Follower::spawn_as(log, extra, None)
    }

    /// `tail -f` run as the user `uid` (when given).
    fn spawn_as(log: &Path, extra: &[&str], uid: Option<u32>) -> Follower {
        // Another user may not reach the checkout: it runs a copy of the binary, which may
        // go once the child has started.
        let copy = uid.map(|_| BinaryForAnyone::new());
        let mut cmd = copy.as_ref().map_or_else(applog, |bin| bin.command_as(uid));
        let mut child = cmd
            .arg("tail")
            .arg(log)
            .arg("-f")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tail -f");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in stdout.lines() {
                sink.lock().expect("lock").push(line.expect("read"));
            }
        });
        let mut stderr_pipe = child.stderr.take().expect("stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stderr_pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .expect("lock")
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        Follower {
            child,
            lines,
            reader: Some(reader),
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Waits until stderr holds `what`.
    #[track_caller]
    fn wait_for_stderr(&mut self, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        while !self.stderr().contains(what) {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "tail -f never said {what:?}; it said {:?}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `done` holds for the lines printed so far.
    #[track_caller]
    fn wait_for(&mut self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(&self.lines()) {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "tail -f never printed {what}; it printed {:?}",
                self.lines()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn still_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Panics, with what the tool said, if it has exited.
    #[track_caller]
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("try_wait") {
            if let Some(reader) = self.stderr_reader.take() {
                reader.join().expect("stderr reader");
            }
            panic!("tail -f exited ({status}): {}", self.stderr());
        }
    }

    /// Waits (within `PATIENCE`) for the tool to exit by itself; returns how it ended.
    #[track_caller]
    fn wait_exit(mut self) -> (Run, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "tail -f did not exit; it printed {:?} and said {:?}",
                self.lines(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        self.finish(status)
    }

    /// Joins the output threads, once the process has ended.
    fn finish(mut self, status: std::process::ExitStatus) -> (Run, Vec<String>) {
        for reader in [self.reader.take(), self.stderr_reader.take()]
            .into_iter()
            .flatten()
        {
            reader.join().expect("output reader");
        }
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: String::new(),
            stderr: self.stderr(),
        };
        (run, self.lines())
    }

    /// Sends `signal` (a `kill` signal name) and returns how the tool ended.
    fn stop(self, signal: &str) -> (Run, Vec<String>) {
        send_signal(self.child.id(), signal);
        self.wait_exit()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `signal` (a `kill` signal name) to the process `pid`.
fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Runs `applog append LOG <extra>` to completion.
fn append(log: &Path, extra: &[&str]) -> String {
    let mut args = vec![std::ffi::OsStr::new("append"), log.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    // A writer killed before may have left a torn tail, whose cut is logged on stderr.
    run(&args).succeeded().to_string()
}

#[test]
fn tail_follow_prints_new_records_across_rollovers_until_sigint() {
    let (_tmp, log) = new_log();
    append(&log, &["--segment-pages", "1", "old 0", "old 1", "old 2"]);
    let mut follower = Follower::spawn(&log, &["-n", "2"]);
    follower.wait_for("the last 2 records", |l| l.len() == 2);
    assert_eq!(follower.lines(), ["old 1", "old 2"]);
    // Records of about 1000 bytes into 1-page segments: a rollover every few records.
    let new: Vec<String> = (0..40)
        .map(|i| format!("new {i} {}", "y".repeat(1000)))
        .collect();
    let input: String = new.iter().map(|l| format!("{l}\n")).collect();
    run_with_stdin(
        &[
            std::ffi::OsStr::new("append"),
            log.as_os_str(),
            std::ffi::OsStr::new("--segment-pages"),
            std::ffi::OsStr::new("1"),
        ],
        input.as_bytes(),
    )
    .ok();
    assert!(applog::verify(&log).expect("verify").segments.len() > 5);
    follower.wait_for("the new records", |l| l.len() == 42);
    let (run, lines) = follower.stop("INT");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(lines[2..], new[..]);
}

#[test]
fn tail_follow_waits_for_a_log_that_does_not_exist_yet() {
    let (_tmp, log) = new_log();
    let waiting = format!(
        "applog: note: there is no log in {} yet; waiting for one to be created\n",
        log.display()
    );
    let mut follower = Follower::spawn(&log, &["--format", "json"]);
    // It says once that it waits (a mistyped path would otherwise wait without a word).
    follower.wait_for_stderr(&waiting);
    std::thread::sleep(Duration::from_millis(300));
    assert!(follower.still_running(), "tail -f did not wait for the log");
    assert!(!log.exists(), "tail -f must not create the log");
    append(&log, &["first", "second"]);
    follower.wait_for("the records", |l| l.len() == 2);
    let (run, lines) = follower.stop("TERM");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, waiting.as_str()),
        "{run:?}"
    );
    let times: Vec<String> = common::cli::record_times(&log)
        .into_iter()
        .map(|t| common::cli::rfc3339_nanos(t.expect("a time")))
        .collect();
    assert_eq!(
        lines,
        [
            format!(
                r#"{{"seq":0,"time":"{}","len":5,"data":"first","encoding":"utf8"}}"#,
                times[0]
            ),
            format!(
                r#"{{"seq":1,"time":"{}","len":6,"data":"second","encoding":"utf8"}}"#,
                times[1]
            )
        ]
    );

    // An empty directory is a log about to be created, too.
    let (_tmp, log) = new_log();
    std::fs::create_dir(&log).expect("mkdir");
    let waiting = format!(
        "applog: note: there is no log in {} yet; waiting for one to be created\n",
        log.display()
    );
    let mut follower = Follower::spawn(&log, &[]);
    follower.wait_for_stderr(&waiting);
    assert!(
        follower.still_running(),
        "tail -f did not wait in an empty directory"
    );
    append(&log, &["here"]);
    follower.wait_for("the record", |l| l == ["here"]);
    let (run, _) = follower.stop("INT");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, waiting.as_str()),
        "{run:?}"
    );

    // Still interruptible while it waits.
    let (_tmp, log) = new_log();
    let mut follower = Follower::spawn(&log, &[]);
    follower.wait_for_stderr("waiting for one to be created");
    let (run, lines) = follower.stop("INT");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(lines.is_empty());
}

#[test]
fn tail_follow_from_past_the_end_waits_for_that_seq() {
    let (_tmp, log) = new_log();
    append(&log, &["0", "1"]);
    let mut follower = Follower::spawn(&log, &["--from", "5", "--format", "hex"]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(follower.still_running());
    assert!(follower.lines().is_empty());
    append(&log, &["2", "3", "4", "5", "6"]);
    follower.wait_for("seq 5 and 6", |l| l.len() == 4);
    let (run, lines) = follower.stop("INT");
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(
        lines,
        [
            "seq 5 len 1",
            "00000000  35                                                |5|",
            "seq 6 len 1",
            "00000000  36                                                |6|",
        ]
    );
}

/// An `applog append` process fed by a thread that writes numbered lines until the pipe
/// breaks or it is told to stop.
struct Feeder {
    child: Child,
    stop: Arc<AtomicBool>,
    feeder: JoinHandle<u64>,
}

fn spawn_fed_append(log: &Path, extra: &[&str], prefix: String, pause: Duration) -> Feeder {
    let mut child = applog()
        .arg("append")
        .arg(log)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn append");
    let mut stdin: ChildStdin = child.stdin.take().expect("stdin");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let feeder = std::thread::spawn(move || {
        let mut i = 0u64;
        while !stopped.load(Ordering::Relaxed) {
            let line = format!("{prefix}{i} {}\n", "p".repeat((i as usize * 37) % 400));
            if stdin.write_all(line.as_bytes()).is_err() || stdin.flush().is_err() {
                break; // the process was killed
            }
            i += 1;
            std::thread::sleep(pause);
        }
        i
    });
    Feeder {
        child,
        stop,
        feeder,
    }
}

impl Feeder {
    /// SIGKILL, wherever the process is.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
        self.stop.store(true, Ordering::Relaxed);
        self.feeder.join().expect("feeder");
    }

    /// Stops feeding, closes the input and waits for a clean exit.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.feeder.join().expect("feeder"); // drops stdin: end of input
        let out: Run = self.child.wait_with_output().expect("wait").into();
        assert_eq!(out.code, 0, "{out:?}");
    }
}

#[test]
fn tail_follow_survives_writers_killed_and_restarted() {
    let (_tmp, log) = new_log();
    let mut follower = Follower::spawn(&log, &["--from", "0"]);
    let waiting = format!(
        "applog: note: there is no log in {} yet; waiting for one to be created\n",
        log.display()
    );
    follower.wait_for_stderr(&waiting);
    for round in 0..4u32 {
        let extra: &[&str] = if round % 2 == 0 {
            &["--segment-pages", "1"]
        } else {
            &["--segment-pages", "1", "--sync-each"]
        };
        let feeder = spawn_fed_append(
            &log,
            extra,
            format!("round {round} line "),
            Duration::from_micros(200),
        );
        // Let it append (and roll over) for a while, then kill it wherever it is.
        let deadline = Instant::now() + PATIENCE;
        let start = follower.lines().len();
        while follower.lines().len() < start + 50 {
            follower.assert_running();
            assert!(Instant::now() < deadline, "round {round}: nothing followed");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50 + 37 * u64::from(round)));
        feeder.kill();
    }
    append(&log, &["the end"]);
    follower.wait_for("the last record", |l| {
        l.last().is_some_and(|last| last == "the end")
    });
    let (run, lines) = follower.stop("INT");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, waiting.as_str()),
        "{run:?}"
    );
    let expected = log_lines(&log);
    assert!(applog::verify(&log).expect("verify").segments.len() > 10);
    assert_eq!(
        lines.len(),
        expected.len(),
        "tail -f printed {} records, the log holds {}",
        lines.len(),
        expected.len()
    );
    assert!(lines == expected, "tail -f output differs from the log");
}

#[test]
fn append_print_seq_killed_keeps_every_printed_record() {
    let (_tmp, log) = new_log();
    let mut feeder = spawn_fed_append(
        &log,
        &["--sync-each", "--print-seq", "--segment-pages", "1"],
        "record ".into(),
        Duration::from_micros(100),
    );
    let mut stdout = BufReader::new(feeder.child.stdout.take().expect("stdout"));
    let mut printed = Vec::new();
    while printed.len() < 200 {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).expect("read") > 0,
            "append ended"
        );
        printed.push(line.trim_end().parse::<u64>().expect("a seq"));
    }
    feeder.kill();
    // Seqs printed before the kill that were still in the pipe.
    for line in stdout.lines() {
        printed.push(line.expect("read").parse().expect("a seq"));
    }
    assert_eq!(printed, (0..printed.len() as u64).collect::<Vec<_>>());

    let out = run(&[
        std::ffi::OsStr::new("tail"),
        log.as_os_str(),
        std::ffi::OsStr::new("--from"),
        std::ffi::OsStr::new("0"),
    ]);
    let records: Vec<&str> = out.ok().lines().collect();
    assert!(records.len() >= printed.len());
    for &seq in &printed {
        let i = seq as usize;
        let expected = format!("record {i} {}", "p".repeat((i * 37) % 400));
        assert_eq!(records[i], expected, "seq {seq}");
    }

    // recover takes over after the crash: nothing to refuse, everything durable.
    let out = run(&[std::ffi::OsStr::new("recover"), log.as_os_str()]);
    assert!(out.succeeded().contains("status     recovered"), "{out:?}");
    let report = applog::verify(&log).expect("verify");
    assert!(
        report.is_clean() && report.torn_tail.is_none(),
        "{report:?}"
    );
    let last = report.segments.last().expect("a segment");
    assert_eq!(last.synced_mark, last.data_end);
}

#[test]
fn copy_while_a_writer_appends_and_rolls() {
    let (tmp, log) = new_log();
    append(&log, &["seed"]);
    let feeder = spawn_fed_append(
        &log,
        &["--segment-pages", "1"],
        "live ".into(),
        Duration::from_micros(50),
    );
    let wait_until = |n: u64| {
        let deadline = Instant::now() + PATIENCE;
        while applog::verify(&log).expect("verify").next_seq < n {
            assert!(Instant::now() < deadline, "the writer does not append");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_until(200);
    let mut copies = Vec::new();
    for i in 0..3 {
        let dest = tmp.path().join(format!("copy{i}"));
        let before = applog::verify(&log).expect("verify").next_seq;
        let out = run(&[
            std::ffi::OsStr::new("copy"),
            log.as_os_str(),
            dest.as_os_str(),
        ]);
        out.ok();
        let after = applog::verify(&log).expect("verify").next_seq;
        let report = applog::verify(&dest).expect("verify the copy");
        assert!(
            report.is_clean() && report.torn_tail.is_none(),
            "{report:?}"
        );
        assert!(
            (before..=after).contains(&report.next_seq),
            "copy holds {} records; the log had {before} before and {after} after",
            report.next_seq
        );
        copies.push(dest);
        wait_until(after + 100);
    }
    feeder.finish();
    let source = log_lines(&log);
    for dest in copies {
        let copy = log_lines(&dest);
        assert_eq!(copy[..], source[..copy.len()], "{}", dest.display());
    }
}

#[test]
fn a_closed_pipe_ends_tail_quietly() {
    let (_tmp, log) = new_log();
    let records: Vec<String> = (0..50_000).map(|i| format!("r{i}")).collect();
    let input: String = records.iter().map(|l| format!("{l}\n")).collect();
    run_with_stdin(
        &[std::ffi::OsStr::new("append"), log.as_os_str()],
        input.as_bytes(),
    )
    .ok();
    let bin = env!("CARGO_BIN_EXE_applog");
    // `applog tail LOG --from 0 | head -1`, then the exit status and stderr of applog alone.
    let script = r#""$0" tail "$1" --from 0 2>"$2" | head -1; exit "${PIPESTATUS[0]}""#;
    let stderr = log.with_file_name("stderr");
    let out = std::process::Command::new("bash")
        .args(["-c", script, bin])
        .arg(&log)
        .arg(&stderr)
        .env_remove("RUST_LOG")
        .output();
    let Ok(out) = out else {
        common::skip("no bash here");
        return;
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout), "r0\n");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&stderr).expect("stderr"), "");

    // Following: the closed pipe is noticed while idle, and ends it with 0 too.
    let script = r#""$0" tail -f "$1" 2>"$2" | head -1; exit "${PIPESTATUS[0]}""#;
    let mut child = std::process::Command::new("bash")
        .args(["-c", script, bin])
        .arg(&log)
        .arg(&stderr)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .expect("bash");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    assert_eq!(first, "r49990\n");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tail -f did not notice the closed pipe"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&stderr).expect("stderr"), "");
}

#[test]
fn tail_follow_without_write_access_polls_and_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let is_root = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !is_root {
        common::skip("needs root to run the tool as another user");
        return;
    }
    let (tmp, log) = new_log();
    append(&log, &["--segment-pages", "1", "before"]);
    for dir in [tmp.path(), log.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // Files stay 0644 and root's: the follower (user 65534) may read, not write.
    let mut follower = Follower::spawn_as(&log, &["--from", "0"], Some(65534));
    follower.wait_for("the first record", |l| l == ["before"]);
    // Without write access it cannot sleep on the futex: it says once that it polls.
    let polling = format!(
        "applog: note: no write access to {}: waiting by polling (up to 2 ms latency)\n",
        log.join(SEG0).display()
    );
    follower.wait_for_stderr(&polling);
    let more: Vec<String> = (0..30)
        .map(|i| format!("after {i} {}", "w".repeat(500)))
        .collect();
    let mut args = vec!["--segment-pages", "1"];
    args.extend(more.iter().map(String::as_str));
    append(&log, &args);
    follower.wait_for("the new records", |l| l.len() == 31);
    let (run, lines) = follower.stop("INT");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, polling.as_str()),
        "{run:?}"
    );
    assert_eq!(lines[1..], more[..]);
}

/// The `kill` signals that end `tail -f`.
const STOP_SIGNALS: [&str; 2] = ["INT", "TERM"];

#[test]
fn tail_follow_ends_on_a_signal_while_stuck_writing_to_a_full_pipe() {
    let (_tmp, log) = new_log();
    // About 1 MB of records: far more than a pipe holds.
    let input: String = (0..20_000)
        .map(|i| format!("{i:05} {}\n", "z".repeat(44)))
        .collect();
    run_with_stdin(
        &[std::ffi::OsStr::new("append"), log.as_os_str()],
        input.as_bytes(),
    )
    .ok();
    for signal in STOP_SIGNALS {
        let mut child = applog()
            .arg("tail")
            .arg(&log)
            .args(["-f", "--from", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tail -f");
        // Nobody reads its output: once the pipe is full (64 KiB), the tool is stuck in a
        // write, where a signal handler that only sets a flag never gets looked at.
        let stdout = child.stdout.take().expect("stdout");
        let deadline = Instant::now() + PATIENCE;
        while rustix::io::ioctl_fionread(&stdout).expect("FIONREAD") < 65536 - 1024 {
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "tail -f exited"
            );
            assert!(Instant::now() < deadline, "tail -f does not fill the pipe");
            std::thread::sleep(Duration::from_millis(10));
        }
        send_signal(child.id(), signal);
        let (code, stderr) = wait_bounded(child);
        assert_eq!((code, stderr.as_str()), (Some(0), ""), "SIG{signal}");
        drop(stdout);
    }
}

#[test]
fn tail_follow_refuses_a_fifo_in_place_of_a_segment_file() {
    let (_tmp, log) = one_page_segments('f', 12);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&log)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    // The newest segment is gone (as if its writer died between sealing the one before and
    // creating it): tail -f reads up to the seal and waits for the next segment to appear.
    let next = segments.last().expect("a segment").clone();
    let base: usize = next
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("a segment name");
    std::fs::remove_file(&next).expect("rm");
    let mut follower = Follower::spawn(&log, &["--from", "0"]);
    follower.wait_for("the records before the seal", |l| l.len() == base);
    // A FIFO appears there: opening it for reading would wait for a writer to open it.
    let made = std::process::Command::new("mkfifo")
        .arg(&next)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    let (run, lines) = follower.wait_exit();
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            1,
            format!(
                "applog: error: not an applog log: {}: named like a segment but not a regular file\n",
                next.display()
            )
            .as_str()
        ),
        "{run:?}"
    );
    assert_eq!(lines, vec!["f".repeat(common::cli::ONE_PAGE_RECORD); base]);
}

#[test]
fn tail_follow_follows_a_log_directory_swapped_for_another() {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let (tmp, log) = new_log();
    append(&log, &["old 0", "old 1"]);
    let mut follower = Follower::spawn(&log, &["--from", "0"]);
    follower.wait_for("the old log's records", |l| l.len() == 2);
    // Another log takes the name in one step (as a restore from a copy would).
    let other = tmp.path().join("other");
    append(&other, &["new 0", "new 1", "new 2"]);
    renameat_with(CWD, &log, CWD, &other, RenameFlags::EXCHANGE).expect("RENAME_EXCHANGE");
    follower.wait_for("the new log's records", |l| l.len() == 5);
    // The old log, now under the other name, is followed no more.
    append(&other, &["old 2"]);
    append(&log, &["new 3"]);
    follower.wait_for("the new log's next record", |l| l.len() == 6);
    let (run, lines) = follower.stop("INT");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            0,
            format!(
                "applog: note: {} was replaced; following the new log from its first record\n",
                log.display()
            )
            .as_str()
        ),
        "{run:?}"
    );
    assert_eq!(
        lines,
        ["old 0", "old 1", "new 0", "new 1", "new 2", "new 3"]
    );
}

#[test]
fn tail_follow_follows_a_log_directory_removed_and_made_again() {
    let (_tmp, log) = new_log();
    append(&log, &["--segment-pages", "1", "old 0", "old 1"]);
    let mut follower = Follower::spawn(&log, &["-n", "1"]);
    follower.wait_for("the last record", |l| l == ["old 1"]);
    std::fs::remove_dir_all(&log).expect("rm -r");
    let removed = format!(
        "applog: note: {} was removed; waiting for a new log there, to follow it from its first record\n",
        log.display()
    );
    follower.wait_for_stderr(&removed);
    // Made again: a new log, followed from its first record (not its last one).
    append(&log, &["new 0", "new 1"]);
    follower.wait_for("the new log's records", |l| l.len() == 3);
    let (run, lines) = follower.stop("TERM");
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, removed.as_str()),
        "{run:?}"
    );
    assert_eq!(lines, ["old 1", "new 0", "new 1"]);
}

/// The staging directories of copies (`.<name>.applog-copy-<pid>`) in `parent`.
fn staging_dirs(parent: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(parent)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".applog-copy-"))
        })
        .collect()
}

/// Appends `n` records of 200 bytes to `log`.
fn grow(log: &Path, n: usize) {
    let input = format!("{}\n", "c".repeat(200)).repeat(n);
    run_with_stdin(
        &[std::ffi::OsStr::new("append"), log.as_os_str()],
        input.as_bytes(),
    )
    .ok();
}

/// Starts `applog copy LOG DEST` (DEST beside LOG) and returns it as soon as its staging
/// directory exists, that is while it copies. The source grows until a copy is slow enough
/// to be caught.
fn copy_in_flight(log: &Path, dest: &Path) -> (Child, PathBuf) {
    let parent = dest.parent().expect("parent");
    let mut records = 50_000;
    for _ in 0..6 {
        grow(log, records);
        let mut child = applog()
            .arg("copy")
            .arg(log)
            .arg(dest)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn copy");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(staging) = staging_dirs(parent).pop() {
                return (child, staging);
            }
            if let Some(status) = child.try_wait().expect("try_wait") {
                // Done before it was seen: try again with a bigger source.
                assert!(status.success(), "copy failed: {status}");
                std::fs::remove_dir_all(dest).expect("remove the copy");
                break;
            }
            assert!(Instant::now() < deadline, "copy neither ends nor stages");
            std::thread::sleep(Duration::from_millis(1));
        }
        records *= 2;
    }
    panic!("could not catch a copy in flight");
}

/// Waits (within `PATIENCE`) for `child` to end; its exit code and stderr.
fn wait_bounded(mut child: Child) -> (Option<i32>, String) {
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the process did not end");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    (status.code(), stderr)
}

#[test]
fn copy_interrupted_by_a_signal_leaves_nothing_behind() {
    let (tmp, log) = new_log();
    for signal in STOP_SIGNALS {
        let dest = tmp.path().join(format!("copy-{signal}"));
        let (child, staging) = copy_in_flight(&log, &dest);
        send_signal(child.id(), signal);
        let (code, stderr) = wait_bounded(child);
        assert_eq!(
            (code, stderr.as_str()),
            (
                Some(1),
                "applog: error: interrupted by a signal: no copy was made, and nothing of it is left\n"
            ),
            "SIG{signal}"
        );
        assert!(!staging.exists(), "SIG{signal} left {}", staging.display());
        assert!(!dest.exists());
        assert_eq!(staging_dirs(tmp.path()), Vec::<PathBuf>::new());
    }
}

#[test]
fn copy_killed_leaves_a_staging_directory_that_the_next_copy_removes() {
    let (tmp, log) = new_log();
    let dest = tmp.path().join("copy");
    let (mut child, staging) = copy_in_flight(&log, &dest);
    let pid = child.id();
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    assert!(staging.exists(), "nothing staged to clean up");
    assert!(!dest.exists());

    // A later copy into the same parent (to another destination) removes it.
    let second = tmp.path().join("second");
    let out = run(&[
        std::ffi::OsStr::new("copy"),
        log.as_os_str(),
        second.as_os_str(),
    ]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            0,
            format!(
                "applog: note: removed {}, left by a copy that did not finish (process {pid} is gone)\n",
                staging.display()
            )
            .as_str()
        ),
        "{out:?}"
    );
    assert!(!staging.exists());
    assert_eq!(staging_dirs(tmp.path()), Vec::<PathBuf>::new());
    assert!(applog::verify(&second).expect("verify").is_clean());

    // A live copy's staging directory is never taken for a stale one.
    let (child, staging) = copy_in_flight(&log, &dest);
    let out = run(&[
        std::ffi::OsStr::new("copy"),
        log.as_os_str(),
        tmp.path().join("third").as_os_str(),
    ]);
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    let (code, stderr) = wait_bounded(child);
    assert_eq!((code, stderr.as_str()), (Some(0), ""));
    assert!(!staging.exists() && dest.exists());
}
