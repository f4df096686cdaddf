//! The `applog` command-line tool, run as a separate process: every command and flag, its
//! output on stdout, its diagnostics on stderr, and its exit status (0 success; 1 corrupt,
//! locked or failed; 2 bad usage).
#![cfg(unix)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use applog::{Options, Reader, Writer};

/// The first segment's file name.
const SEG0: &str = "00000000000000000000.seg";

fn applog() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_applog"));
    cmd.env_remove("RUST_LOG");
    cmd
}

/// A finished run of the tool.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
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
    fn ok(&self) -> &str {
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (0, ""),
            "stdout: {}",
            self.stdout
        );
        &self.stdout
    }

    /// Exit 1 with nothing on stdout and one `applog: error:` line on stderr; returns it.
    #[track_caller]
    fn failed(&self) -> &str {
        assert_eq!(self.code, 1, "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        assert!(self.stderr.starts_with("applog: error: "), "{self:?}");
        &self.stderr
    }

    /// Exit 2 (usage), nothing on stdout.
    #[track_caller]
    fn usage_error(&self) -> &str {
        assert_eq!(self.code, 2, "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        &self.stderr
    }
}

fn run<S: AsRef<OsStr>>(args: &[S]) -> Run {
    applog()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run applog")
        .into()
}

fn run_with_stdin<S: AsRef<OsStr>>(args: &[S], input: &[u8]) -> Run {
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
fn new_log() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("log");
    (tmp, log)
}

/// A log holding `records`, synced and closed.
fn log_with(records: &[&[u8]]) -> (tempfile::TempDir, PathBuf) {
    let (tmp, log) = new_log();
    let mut w = Writer::open(&log, Options::new()).expect("open writer");
    w.append_batch(records).expect("append");
    w.close().expect("close");
    (tmp, log)
}

/// Every record of the log, read in this process.
fn read_all(log: &Path) -> Vec<Vec<u8>> {
    let mut reader = Reader::open(log).expect("open reader");
    let mut all = Vec::new();
    while let Some(r) = reader.next().expect("read") {
        assert_eq!(r.seq(), all.len() as u64);
        all.push(r.data().to_vec());
    }
    all
}

fn numbered(n: u64) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("r{i}").into_bytes()).collect()
}

fn slices(records: &[Vec<u8>]) -> Vec<&[u8]> {
    records.iter().map(Vec::as_slice).collect()
}

/// `r<a>\n` .. `r<b-1>\n`.
fn numbered_lines(a: u64, b: u64) -> String {
    (a..b).map(|i| format!("r{i}\n")).collect()
}

/// A log of `n` records of 1000 bytes of `fill`, appended by the tool with 1-page segments
/// (so about 4 records per segment).
fn one_page_segments(fill: char, n: usize) -> (tempfile::TempDir, PathBuf) {
    let (tmp, log) = new_log();
    let input = format!("{}\n", fill.to_string().repeat(1000)).repeat(n);
    run_with_stdin(
        &[
            OsStr::new("append"),
            log_arg(&log),
            OsStr::new("--segment-pages"),
            OsStr::new("1"),
        ],
        input.as_bytes(),
    )
    .ok();
    (tmp, log)
}

fn log_arg(log: &Path) -> &OsStr {
    log.as_os_str()
}

// ---------------------------------------------------------------- append

#[test]
fn append_arguments_are_records() {
    let (_tmp, log) = new_log();
    let out = run(&[
        OsStr::new("append"),
        log_arg(&log),
        OsStr::new("one"),
        OsStr::new("two words"),
        OsStr::new(""),
    ]);
    assert_eq!(out.ok(), "");
    assert_eq!(
        read_all(&log),
        vec![b"one".to_vec(), b"two words".to_vec(), Vec::new()]
    );

    // A second run appends after the first.
    run(&[OsStr::new("append"), log_arg(&log), OsStr::new("three")]).ok();
    assert_eq!(read_all(&log).len(), 4);
    assert_eq!(
        run(&[OsStr::new("tail"), log_arg(&log)]).ok(),
        "one\ntwo words\n\nthree\n"
    );
}

#[test]
fn append_reads_stdin_one_record_per_line() {
    let (_tmp, log) = new_log();
    // An empty line is an empty record; `\r` is kept; the last line needs no newline.
    let out = run_with_stdin(
        &[OsStr::new("append"), log_arg(&log)],
        b"one\ntwo\r\n\nthree",
    );
    assert_eq!(out.ok(), "");
    assert_eq!(
        read_all(&log),
        vec![
            b"one".to_vec(),
            b"two\r".to_vec(),
            Vec::new(),
            b"three".to_vec()
        ]
    );
    // Binary bytes pass through unchanged.
    run_with_stdin(&[OsStr::new("append"), log_arg(&log)], b"\xff\x00\xfe\n").ok();
    assert_eq!(read_all(&log)[4], b"\xff\x00\xfe");
}

#[test]
fn append_from_stdin_appends_each_line_as_it_arrives() {
    let (_tmp, log) = new_log();
    let mut child = applog()
        .args([OsStr::new("append"), log_arg(&log)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"first\n").expect("write");
    stdin.flush().expect("flush");
    // The record is readable while stdin is still open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        if let Ok(mut reader) = Reader::open(&log) {
            if let Some(r) = reader.next().expect("read") {
                break r.data().to_vec();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the first line was not appended before EOF"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(seen, b"first");
    stdin.write_all(b"second\n").expect("write");
    drop(stdin);
    let out: Run = child.wait_with_output().expect("wait").into();
    out.ok();
    assert_eq!(read_all(&log), vec![b"first".to_vec(), b"second".to_vec()]);
}

#[test]
fn append_syncs_before_exit() {
    let (_tmp, log) = new_log();
    run_with_stdin(&[OsStr::new("append"), log_arg(&log)], b"a\nb\nc\n").ok();
    let report = applog::verify(&log).expect("verify");
    let seg = report.segments.last().expect("a segment");
    assert_eq!(report.next_seq, 3);
    assert_eq!(
        seg.synced_mark, seg.data_end,
        "the records are not all durable"
    );
}

#[test]
fn append_creates_the_log_but_not_missing_parents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("log");
    run_with_stdin(&[OsStr::new("append"), log_arg(&log)], b"").ok();
    let report = applog::verify(&log).expect("verify");
    assert_eq!((report.records, report.next_seq), (0, 0));
    assert_eq!(run(&[OsStr::new("tail"), log_arg(&log)]).ok(), "");

    // A mistyped path does not become a tree of directories.
    let typo = tmp.path().join("a").join("b").join("log");
    let out = run_with_stdin(&[OsStr::new("append"), log_arg(&typo)], b"x\n");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("applog: error: "), "{}", out.stderr);
    assert!(out.stderr.contains("log"), "{}", out.stderr);
    assert!(!tmp.path().join("a").exists());
}

#[test]
fn append_segment_pages_sets_the_segment_size() {
    let (_tmp, log) = one_page_segments('x', 30);
    let report = applog::verify(&log).expect("verify");
    assert_eq!(report.records, 30);
    let page = report.segments[0].reservation;
    assert!(
        page.is_power_of_two() && page >= 4096,
        "reservation of one page: {page}"
    );
    let per_segment = (page - 64) / 1008;
    assert_eq!(
        report.segments.len() as u64,
        30u64.div_ceil(per_segment),
        "{report:?}"
    );

    let err = run(&[
        OsStr::new("append"),
        log_arg(&log),
        OsStr::new("--segment-pages"),
        OsStr::new("0"),
        OsStr::new("x"),
    ]);
    assert!(err.usage_error().contains("--segment-pages"), "{err:?}");
    let err = run(&[
        OsStr::new("append"),
        log_arg(&log),
        OsStr::new("--segment-pages"),
        OsStr::new("many"),
        OsStr::new("x"),
    ]);
    err.usage_error();
    assert_eq!(read_all(&log).len(), 30);
}

#[test]
fn append_a_line_too_long_fails_and_keeps_the_lines_before() {
    let (_tmp, log) = new_log();
    // One page per segment holds less than 100 000 bytes whatever the page size (up to 64 KiB).
    let mut input = b"ok\n".to_vec();
    input.extend(vec![b'x'; 100_000]);
    input.extend(b"\nnever\n");
    let out = run_with_stdin(
        &[
            OsStr::new("append"),
            log_arg(&log),
            OsStr::new("--segment-pages"),
            OsStr::new("1"),
        ],
        &input,
    );
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    assert!(
        out.stderr
            .contains("applog: error: line 2 of standard input is longer than"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("applog: note: appended and synced 1 record (seq 0..1) before the error"),
        "{out:?}"
    );
    assert_eq!(read_all(&log), vec![b"ok".to_vec()]);
}

#[test]
fn append_an_argument_too_large_appends_nothing() {
    let (_tmp, log) = new_log();
    let big = "x".repeat(100_000);
    let out = run(&[
        "append",
        log.to_str().expect("utf-8 path"),
        "small",
        &big,
        "--segment-pages",
        "1",
    ]);
    let err = out.failed();
    assert!(
        err.contains("record of 100000 bytes is larger than"),
        "{err}"
    );
    assert_eq!(read_all(&log), Vec::<Vec<u8>>::new());
}

#[test]
fn append_to_a_locked_log_fails_and_names_the_lock_file() {
    let (_tmp, log) = log_with(&[b"a"]);
    let writer = Writer::open(&log, Options::new()).expect("open writer");
    let out = run(&[OsStr::new("append"), log_arg(&log), OsStr::new("b")]);
    let err = out.failed();
    assert!(err.contains("locked"), "{err}");
    assert!(
        err.contains(&log.join(applog::LOCK_FILE).display().to_string()),
        "{err}"
    );
    // Readers take no lock.
    assert_eq!(run(&[OsStr::new("tail"), log_arg(&log)]).ok(), "a\n");
    drop(writer);
    run(&[OsStr::new("append"), log_arg(&log), OsStr::new("b")]).ok();
    assert_eq!(read_all(&log).len(), 2);
}

// ---------------------------------------------------------------- tail

#[test]
fn tail_prints_the_last_n_records() {
    let (_tmp, log) = log_with(&slices(&numbered(25)));
    let tail = |extra: &[&str]| {
        let mut args = vec![OsStr::new("tail"), log_arg(&log)];
        args.extend(extra.iter().map(OsStr::new));
        run(&args).ok().to_string()
    };
    assert_eq!(tail(&[]), numbered_lines(15, 25), "10 by default");
    assert_eq!(tail(&["-n", "3"]), numbered_lines(22, 25));
    assert_eq!(tail(&["--count", "1"]), "r24\n");
    assert_eq!(tail(&["-n", "0"]), "");
    assert_eq!(tail(&["-n", "1000"]), numbered_lines(0, 25));
}

#[test]
fn tail_prints_exactly_n_records_while_a_writer_appends() {
    let (_tmp, log) = log_with(&slices(&numbered(10)));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut w = Writer::open(&log, Options::new()).expect("open writer");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let seq = w.next_seq();
                w.append(format!("r{seq}").as_bytes()).expect("append");
                std::thread::sleep(Duration::from_micros(50));
            }
        })
    };
    for _ in 0..20 {
        let out = run(&[
            OsStr::new("tail"),
            log_arg(&log),
            OsStr::new("-n"),
            OsStr::new("5"),
        ]);
        let seqs: Vec<u64> = out
            .ok()
            .lines()
            .map(|l| l.trim_start_matches('r').parse().expect("a number"))
            .collect();
        assert_eq!(seqs.len(), 5, "{out:?}");
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    appender.join().expect("appender");
}

#[test]
fn tail_from_prints_every_record_from_a_seq() {
    let (_tmp, log) = log_with(&slices(&numbered(25)));
    let tail_from = |seq: &str| {
        run(&[
            OsStr::new("tail"),
            log_arg(&log),
            OsStr::new("--from"),
            OsStr::new(seq),
        ])
    };
    assert_eq!(tail_from("0").ok(), numbered_lines(0, 25));
    assert_eq!(tail_from("20").ok(), numbered_lines(20, 25));
    assert_eq!(tail_from("24").ok(), "r24\n");
    // Past the end: nothing, and that is no error.
    assert_eq!(tail_from("25").ok(), "");
    assert_eq!(tail_from("1000000").ok(), "");

    tail_from("-1").usage_error();
    let out = run(&[
        OsStr::new("tail"),
        log_arg(&log),
        OsStr::new("--from"),
        OsStr::new("3"),
        OsStr::new("-n"),
        OsStr::new("2"),
    ]);
    assert!(out.usage_error().contains("cannot be used with"), "{out:?}");
}

#[test]
fn tail_json_escapes_utf8_records() {
    let (_tmp, log) = log_with(&[
        b"plain",
        br#"say "hi" \ bye"#,
        b"tab\there\nline\x01\x1f",
        "h\u{e9}llo \u{1f600}".as_bytes(),
        b"",
    ]);
    let out = run(&[
        OsStr::new("tail"),
        log_arg(&log),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    let expected = [
        r#"{"seq":0,"len":5,"data":"plain"}"#,
        r#"{"seq":1,"len":14,"data":"say \"hi\" \\ bye"}"#,
        r#"{"seq":2,"len":15,"data":"tab\u0009here\u000aline\u0001\u001f"}"#,
        "{\"seq\":3,\"len\":11,\"data\":\"h\u{e9}llo \u{1f600}\"}",
        r#"{"seq":4,"len":0,"data":""}"#,
    ];
    assert_eq!(out.ok(), expected.map(|l| format!("{l}\n")).concat());
}

#[test]
fn tail_json_gives_base64_for_records_that_are_not_utf8() {
    let (_tmp, log) = new_log();
    // Written through the tool: stdin carries any bytes (arguments cannot hold NUL).
    run_with_stdin(
        &[OsStr::new("append"), log_arg(&log)],
        b"\xff\xfe\x00A\nok\n\xc3\n",
    )
    .ok();
    let out = run(&[
        OsStr::new("tail"),
        log_arg(&log),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    assert_eq!(
        out.ok(),
        concat!(
            r#"{"seq":0,"len":4,"data_b64":"//4AQQ=="}"#,
            "\n",
            r#"{"seq":1,"len":2,"data":"ok"}"#,
            "\n",
            r#"{"seq":2,"len":1,"data_b64":"ww=="}"#,
            "\n",
        )
    );
}

#[test]
fn tail_hex_prints_the_seq_and_a_hex_dump() {
    let (_tmp, log) = log_with(&[b"hello, world\n\x00\xff!", b""]);
    let out = run(&[
        OsStr::new("tail"),
        log_arg(&log),
        OsStr::new("--format"),
        OsStr::new("hex"),
    ]);
    assert_eq!(
        out.ok(),
        "seq 0 len 16\n\
         00000000  68 65 6c 6c 6f 2c 20 77  6f 72 6c 64 0a 00 ff 21  |hello, world...!|\n\
         seq 1 len 0\n"
    );
    let (_tmp, log) = log_with(&[&b"0123456789abcdefXYZ"[..]]);
    let out = run(&[
        OsStr::new("tail"),
        log_arg(&log),
        OsStr::new("--format"),
        OsStr::new("hex"),
    ]);
    assert_eq!(
        out.ok(),
        "seq 0 len 19\n\
         00000000  30 31 32 33 34 35 36 37  38 39 61 62 63 64 65 66  |0123456789abcdef|\n\
         00000010  58 59 5a                                          |XYZ|\n"
    );
}

#[test]
fn tail_stops_quietly_when_stdout_is_closed() {
    let (_tmp, log) = new_log();
    let mut w = Writer::open(&log, Options::new()).expect("open writer");
    let records = numbered(100_000);
    w.append_batch(&records).expect("append");
    w.close().expect("close");

    let mut child = applog()
        .args([
            OsStr::new("tail"),
            log_arg(&log),
            OsStr::new("--from"),
            OsStr::new("0"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read a line");
    assert_eq!(first, "r0\n");
    // The output (about 700 KB) is far larger than the pipe: tail is still writing now.
    drop(stdout);
    let out: Run = child.wait_with_output().expect("wait").into();
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
}

#[test]
fn tail_reports_other_write_errors() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        return; // no /dev/full here
    };
    let (_tmp, log) = log_with(&[b"a"]);
    let out: Run = applog()
        .args([OsStr::new("tail"), log_arg(&log)])
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
    assert!(out.stderr.contains("(os error 28)"), "{out:?}");
}

// ---------------------------------------------------------------- verify

#[test]
fn verify_a_clean_log() {
    let (_tmp, log) = log_with(&[b"alpha", b"bravo", b"charlie"]);
    let out = run(&[OsStr::new("verify"), log_arg(&log)]);
    let text = out.ok();
    for line in [
        "segments   1\n",
        "records    3\n",
        "first seq  0\n",
        "next seq   3\n",
        "status     clean\n",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    assert!(
        text.contains(&format!("log        {}\n", log.display())),
        "{text}"
    );
    assert!(!text.contains("torn tail"), "{text}");

    let out = run(&[
        OsStr::new("verify"),
        log_arg(&log),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    let json = out.ok();
    assert_eq!(json.lines().count(), 1, "{json}");
    for field in [
        r#""clean":true"#,
        r#""segments":1"#,
        r#""records":3"#,
        r#""first_seq":0"#,
        r#""next_seq":3"#,
        r#""torn_tail":null"#,
        r#""corruptions":[]"#,
    ] {
        assert!(json.contains(field), "{field} missing from {json}");
    }
}

/// Writes non-zero bytes right after the last record, inside the file: a torn tail.
fn tear_tail(log: &Path) -> u64 {
    let report = applog::verify(log).expect("verify");
    let seg = report.segments.last().expect("a segment");
    assert!(seg.file_size >= seg.data_end + 16);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .expect("open segment");
    f.write_at(&[0xA5; 16], seg.data_end)
        .expect("write garbage");
    seg.data_end
}

#[test]
fn verify_reports_a_torn_tail_but_it_is_not_corruption() {
    let (_tmp, log) = log_with(&[b"alpha", b"bravo"]);
    let offset = tear_tail(&log);
    let out = run(&[OsStr::new("verify"), log_arg(&log)]);
    let text = out.ok();
    assert!(
        text.contains(&format!(
            "torn tail  {} at byte offset {offset}: ",
            log.join(SEG0).display()
        )),
        "{text}"
    );
    assert!(
        text.contains("status     clean (with a torn tail)\n"),
        "{text}"
    );
    assert!(text.contains("records    2\n"), "{text}");

    let out = run(&[
        OsStr::new("verify"),
        log_arg(&log),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    let json = out.ok();
    assert!(json.contains(r#""clean":true"#), "{json}");
    assert!(
        json.contains(&format!(
            r#""torn_tail":{{"segment":"{}","offset":{offset},"#,
            log.join(SEG0).display()
        )),
        "{json}"
    );
    assert!(json.contains(r#""corruptions":[]"#), "{json}");

    // The good records are still there for tail, and the next append cuts the tail.
    assert_eq!(
        run(&[OsStr::new("tail"), log_arg(&log)]).ok(),
        "alpha\nbravo\n"
    );
    let out = run(&[OsStr::new("append"), log_arg(&log), OsStr::new("charlie")]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("cut a torn tail"),
        "the warning is shown by default: {out:?}"
    );
    assert!(run(&[OsStr::new("verify"), log_arg(&log)])
        .ok()
        .contains("status     clean\n"));
    assert_eq!(read_all(&log).len(), 3);
}

/// A synced log of three records whose second record has one byte flipped; returns the
/// second frame's offset.
fn corrupt_log() -> (tempfile::TempDir, PathBuf, u64) {
    let (tmp, log) = log_with(&[b"alpha", b"bravo", b"charlie"]);
    // Header 64 bytes; "alpha" takes an 8-byte frame header and 8 bytes of padded payload.
    let second = 64 + 8 + 8;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(log.join(SEG0))
        .expect("open segment");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, second + 9).expect("read");
    assert_eq!(&b, b"r", "the layout changed");
    f.write_at(b"R", second + 9).expect("write");
    (tmp, log, second)
}

#[test]
fn verify_reports_corruption_with_file_and_offset() {
    let (_tmp, log, offset) = corrupt_log();
    let at = format!("{} at byte offset {offset}: ", log.join(SEG0).display());

    let out = run(&[OsStr::new("verify"), log_arg(&log)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(&format!("corrupt    {at}")), "{out:?}");
    assert!(
        out.stdout.contains("status     CORRUPT (1 problem)"),
        "{out:?}"
    );
    assert!(out.stderr.starts_with("applog: error: the log "), "{out:?}");
    assert!(out.stderr.contains(&at), "{out:?}");

    let out = run(&[
        OsStr::new("verify"),
        log_arg(&log),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains(r#""clean":false"#), "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            r#""corruptions":[{{"segment":"{}","offset":{offset},"reason":"#,
            log.join(SEG0).display()
        )),
        "{out:?}"
    );

    // Reading through the damage fails too, after the good record before it.
    let out = run(&[OsStr::new("tail"), log_arg(&log)]);
    assert_eq!((out.code, out.stdout.as_str()), (1, "alpha\n"), "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("applog: error: corrupt log: {at}")),
        "{out:?}"
    );

    let out = run(&[OsStr::new("info"), log_arg(&log)]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("status     CORRUPT"), "{out:?}");
    assert!(out.stderr.contains(&at), "{out:?}");

    // Nothing was changed by any of it.
    let out = run(&[OsStr::new("append"), log_arg(&log), OsStr::new("x")]);
    assert!(
        out.failed().contains(&format!("corrupt log: {at}")),
        "{out:?}"
    );
}

// ---------------------------------------------------------------- info

#[test]
fn info_describes_segments_and_the_lock() {
    let (_tmp, log) = one_page_segments('y', 12);
    let report = applog::verify(&log).expect("verify");
    let n = report.segments.len();
    assert!(n > 1, "{report:?}");
    let page = report.segments[0].reservation;

    let out = run(&[OsStr::new("info"), log_arg(&log)]);
    let text = out.ok();
    for line in [
        "locked     no\n".to_string(),
        format!("page size  {page} bytes\n"),
        format!("segments   {n}\n"),
        "records    12\n".to_string(),
        "next seq   12\n".to_string(),
        "status     clean\n".to_string(),
    ] {
        assert!(text.contains(&line), "{line:?} missing from:\n{text}");
    }
    // One table row per segment, with its seq range, size and reservation.
    for s in &report.segments {
        let name = s
            .path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let row = text
            .lines()
            .find(|l| l.starts_with(&name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"));
        let cols: Vec<String> = row.split_whitespace().map(String::from).collect();
        let want = [
            name.clone(),
            s.base_seq.to_string(),
            (s.base_seq + s.records).to_string(),
            s.records.to_string(),
            s.file_size.to_string(),
            page.to_string(),
            "1".to_string(),
        ];
        assert_eq!(cols[..7], want, "{row}");
    }

    let out = run(&[
        OsStr::new("info"),
        log_arg(&log),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    let json = out.ok();
    assert_eq!(json.lines().count(), 1, "{json}");
    for field in [
        r#""locked":false"#.to_string(),
        format!(r#""page_size":{page}"#),
        r#""first_seq":0"#.to_string(),
        r#""next_seq":12"#.to_string(),
        r#""records":12"#.to_string(),
        r#""clean":true"#.to_string(),
        format!(r#""segments":[{{"file":"{SEG0}","first_seq":0,"#),
        format!(r#""reservation":{page},"pages":1,"page_size":{page}"#),
    ] {
        assert!(json.contains(&field), "{field} missing from {json}");
    }
    assert_eq!(json.matches(r#"{"file":"#).count(), n, "{json}");

    let writer = Writer::open(&log, Options::new()).expect("open writer");
    let text = run(&[OsStr::new("info"), log_arg(&log)]).ok().to_string();
    assert!(text.contains("locked     yes"), "{text}");
    let json = run(&[
        OsStr::new("info"),
        log_arg(&log),
        OsStr::new("--format"),
        OsStr::new("json"),
    ])
    .ok()
    .to_string();
    assert!(json.contains(r#""locked":true"#), "{json}");
    drop(writer);
}

// ---------------------------------------------------------------- failures for every command

#[test]
fn a_missing_log_is_an_error() {
    let (_tmp, log) = new_log();
    for cmd in ["tail", "verify", "info"] {
        let out = run(&[OsStr::new(cmd), log_arg(&log)]);
        let err = out.failed();
        assert!(err.contains(&log.display().to_string()), "{cmd}: {err}");
        // The source chain is printed: the operating system's error ends the line.
        assert!(
            err.ends_with(": No such file or directory (os error 2)\n"),
            "{cmd}: {err}"
        );
    }
    let out = run(&[
        OsStr::new("tail"),
        log_arg(&log),
        OsStr::new("--from"),
        OsStr::new("0"),
    ]);
    out.failed();
    assert!(!log.exists(), "reading commands must not create the log");
}

#[test]
fn an_empty_directory_is_not_a_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for cmd in ["tail", "verify", "info"] {
        let out = run(&[OsStr::new(cmd), tmp.path().as_os_str()]);
        assert!(out.failed().contains("not an applog log"), "{cmd}: {out:?}");
    }
}

#[test]
fn a_regular_file_is_not_a_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("file");
    std::fs::write(&file, b"hello").expect("write");
    for args in [
        &["append", "x"][..],
        &["tail"],
        &["tail", "--from", "0"],
        &["verify"],
        &["info"],
    ] {
        let mut all = vec![OsStr::new(args[0]), file.as_os_str()];
        all.extend(args[1..].iter().map(OsStr::new));
        let out = run(&all);
        let err = out.failed();
        assert!(
            err.contains(&format!("not an applog log: {}", file.display())),
            "{args:?}: {err}"
        );
    }
    assert_eq!(std::fs::read(&file).expect("read"), b"hello");
}

#[test]
fn bad_usage_exits_2() {
    let (_tmp, log) = log_with(&[b"a"]);
    let log = log.to_str().expect("utf-8 path");
    for args in [
        &["tail", log, "--format", "xml"][..],
        &["verify", log, "--format", "hex"],
        &["info", log, "--format", "yaml"],
        &["tail", log, "-n", "many"],
        &["tail"],
        &["frobnicate", log],
        &[],
    ] {
        let out = run(args);
        assert!(!out.usage_error().is_empty(), "{args:?}");
    }
    let out = run(&["tail", log, "--format", "xml"]);
    assert!(out.stderr.contains("invalid value 'xml'"), "{out:?}");
    // Help is not an error.
    assert!(run(&["tail", "--help"]).ok().contains("--format"));
}
