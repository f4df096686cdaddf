//! Running the `applog` binary from integration tests: its exit status, stdout and stderr, and
//! logs to run it on.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use applog::{Options, Reader, Writer};

/// The first segment's file name.
pub const SEG0: &str = "00000000000000000000.seg";

/// The tool, with the library's default logging, and no slow-sync warning: how fast this
/// machine's disk syncs is not what a test of the tool checks (`slow_sync` tests the warning).
pub fn applog() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_applog"));
    cmd.env_remove("RUST_LOG").env("APPLOG_SLOW_SYNC", "3600");
    cmd
}

/// A copy of the `applog` binary in a directory anyone may enter, for running it as another
/// user, who may not reach the checkout (a clone in a 0700 home directory or in `mktemp -d`).
pub struct BinaryForAnyone {
    dir: tempfile::TempDir,
}

impl BinaryForAnyone {
    pub fn new() -> BinaryForAnyone {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let bin = dir.path().join("applog");
        std::fs::copy(env!("CARGO_BIN_EXE_applog"), &bin).expect("copy the binary");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        BinaryForAnyone { dir }
    }

    /// The copy, run as user and group `uid` (as root when `None`).
    pub fn command_as(&self, uid: Option<u32>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(self.dir.path().join("applog"));
        cmd.env_remove("RUST_LOG").env("APPLOG_SLOW_SYNC", "3600");
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        cmd
    }
}

/// A finished run of the tool.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Exit 0 with nothing on stderr; returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (0, ""),
            "stdout: {}",
            self.stdout
        );
        &self.stdout
    }

    /// Exit 0, with no error on stderr (the library's warnings may be there); returns stdout.
    #[track_caller]
    pub fn succeeded(&self) -> &str {
        assert_eq!(self.code, 0, "{self:?}");
        assert!(!self.stderr.contains("applog: error"), "{self:?}");
        &self.stdout
    }

    /// Exit 1 with nothing on stdout and one `applog: error:` line on stderr; returns it.
    #[track_caller]
    pub fn failed(&self) -> &str {
        assert_eq!(self.code, 1, "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        assert!(self.stderr.starts_with("applog: error: "), "{self:?}");
        &self.stderr
    }

    /// Exit 2 (usage), nothing on stdout.
    #[track_caller]
    pub fn usage_error(&self) -> &str {
        assert_eq!(self.code, 2, "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        &self.stderr
    }
}

pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Run {
    applog()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run applog")
        .into()
}

pub fn run_with_stdin<S: AsRef<OsStr>>(args: &[S], input: &[u8]) -> Run {
    let mut child = applog()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn applog");
    let mut stdin = child.stdin.take().expect("stdin");
    // The tool may stop reading early (after an error): a broken pipe here is no failure.
    if let Err(e) = stdin.write_all(input) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(stdin);
    child.wait_with_output().expect("wait applog").into()
}

/// A temporary directory and the path of a log inside it (not created).
pub fn new_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("log");
    (tmp, log)
}

/// A log holding `records`, synced and closed.
pub fn log_with(records: &[&[u8]]) -> (tempfile::TempDir, PathBuf) {
    let (tmp, log) = new_log();
    let mut w = Writer::open(&log, Options::new()).expect("open writer");
    w.append_batch(records).expect("append");
    w.close().expect("close");
    (tmp, log)
}

/// Every record of the log, read in this process.
pub fn read_all(log: &Path) -> Vec<Vec<u8>> {
    let mut reader = Reader::open(log).expect("open reader");
    let mut all = Vec::new();
    while let Some(r) = reader.next().expect("read") {
        assert_eq!(r.seq(), all.len() as u64);
        all.push(r.data().to_vec());
    }
    all
}

pub fn numbered(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("r{i}").into_bytes()).collect()
}

pub fn slices(records: &[Vec<u8>]) -> Vec<&[u8]> {
    records.iter().map(Vec::as_slice).collect()
}

/// `r<a>\n` .. `r<b-1>\n`.
pub fn numbered_lines(a: u64, b: u64) -> String {
    (a..b).map(|i| format!("r{i}\n")).collect()
}

/// A log of `n` records of 1000 bytes of `fill`, appended by the tool with 1-page segments
/// (so about 4 records per segment).
/// The record length of [`one_page_segments`]: frames of 1008 bytes (16 of header and time),
/// so that four of them fill a 4 KiB segment to its last byte, with no room for a seal.
pub const ONE_PAGE_RECORD: usize = 992;

/// A log of `n` records of [`ONE_PAGE_RECORD`] bytes of `fill`, appended by the tool into
/// one-page segments.
pub fn one_page_segments(fill: char, n: usize) -> (tempfile::TempDir, PathBuf) {
    let (tmp, log) = new_log();
    let input = format!("{}\n", fill.to_string().repeat(ONE_PAGE_RECORD)).repeat(n);
    append_in_one_page_segments(&log, &input);
    (tmp, log)
}

pub fn log_arg(log: &Path) -> &OsStr {
    log.as_os_str()
}

/// Appends the lines of `input` with the tool, into one-page segments.
pub fn append_in_one_page_segments(log: &Path, input: &str) {
    run_with_stdin(
        &[
            OsStr::new("append"),
            log_arg(log),
            OsStr::new("--segment-pages"),
            OsStr::new("1"),
        ],
        input.as_bytes(),
    )
    .ok();
}

/// Runs the tool with `args`, reads the first line of its output and closes the pipe: the
/// line, and how the tool ended (a closed output is a quiet end).
pub fn first_line_then_close(args: &[&OsStr]) -> (String, Run) {
    let mut child = applog()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).expect("read a line");
    drop(stdout);
    (first, child.wait_with_output().expect("wait").into())
}

/// How long a test waits for the tool to end by itself before it fails: generous, as two
/// cores are shared by several builds and test runs.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts the tool with `args`, its output piped.
pub fn spawn<S: AsRef<OsStr>>(args: &[S]) -> std::process::Child {
    applog()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn applog")
}

/// Waits for `child` to end by itself, collecting its piped output meanwhile (killing it
/// and failing after [`PATIENCE`]).
#[track_caller]
pub fn wait_for_exit(child: std::process::Child) -> Run {
    let pid = rustix::process::Pid::from_child(&child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output().expect("wait"));
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(output) => output.into(),
        Err(_) => {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let run: Run = rx.recv().expect("wait").into();
            panic!("applog did not end by itself: {run:?}");
        }
    }
}

/// Which of the tool's standard streams [`run_on_pty`] connects to the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnTerminal {
    Stdout,
    Stderr,
    Both,
}

/// A run of the tool with some of its output on a pseudo-terminal.
#[derive(Debug)]
pub struct PtyRun {
    pub code: i32,
    /// What the tool wrote to the terminal (the terminal turns `\n` into `\r\n`).
    pub terminal: Vec<u8>,
    /// The streams that went to pipes, as in [`Run`] (empty for those on the terminal).
    pub piped: Run,
}

impl PtyRun {
    /// The terminal's bytes as text, with the terminal's `\r\n` turned back into `\n`.
    pub fn terminal_text(&self) -> String {
        String::from_utf8_lossy(&self.terminal).replace("\r\n", "\n")
    }
}

/// Runs the tool with `args` and `env`, with `which` of stdout and stderr on a new
/// pseudo-terminal (80 columns), the other ones piped, and stdin closed.
pub fn run_on_pty(args: &[&OsStr], env: &[(&str, &str)], which: OnTerminal) -> PtyRun {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
        .expect("open a pseudo-terminal");
    grantpt(&master).expect("grantpt");
    unlockpt(&master).expect("unlockpt");
    let name = ptsname(&master, Vec::new()).expect("ptsname");
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(name.to_str().expect("utf-8 pty name"))
        .expect("open the terminal's other end");
    rustix::termios::tcsetwinsize(
        &slave,
        rustix::termios::Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .expect("set the window size");
    let mut cmd = applog();
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let tty = || Stdio::from(slave.try_clone().expect("dup the terminal"));
    match which {
        OnTerminal::Stdout => cmd.stdout(tty()).stderr(Stdio::piped()),
        OnTerminal::Stderr => cmd.stdout(Stdio::piped()).stderr(tty()),
        OnTerminal::Both => cmd.stdout(tty()).stderr(tty()),
    };
    let child = cmd.spawn().expect("spawn applog");
    drop(cmd);
    // The terminal is read while the child runs (a full terminal would stop it). This end
    // stays open here, so reading never fails. Once the child has ended, a marker written
    // here comes out after everything the child wrote (the terminal keeps the order): the
    // reader stops at it.
    const END: &[u8] = b"\x07applog-test-terminal-end\x07";
    let reader = std::thread::spawn(move || {
        let mut master = std::fs::File::from(master);
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while !all.ends_with(END) {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
        all.truncate(all.len().saturating_sub(END.len()));
        all
    });
    let piped = wait_for_exit(child);
    (&slave).write_all(END).expect("write the end marker");
    let terminal = reader.join().expect("terminal reader");
    drop(slave);
    PtyRun {
        code: piped.code,
        terminal,
        piped,
    }
}

/// `ns` (nanoseconds since the Unix epoch) as RFC 3339 in UTC with nine digits of fraction,
/// computed here from the calendar rules (not by the tool's code): what the tool prints.
pub fn rfc3339_nanos(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ns % 1_000_000_000
    )
}

/// Each record's time, read with the library (`None` for a record without one).
pub fn record_times(log: &Path) -> Vec<Option<u64>> {
    let mut r = Reader::open(log).expect("open reader");
    let mut v = Vec::new();
    while let Some(rec) = r.next().expect("read") {
        v.push(rec.time_ns());
    }
    v
}
