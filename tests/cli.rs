//! The `applog` command-line tool, run as a separate process: every command and flag, its
//! output on stdout, its diagnostics on stderr, and its exit status (0 success; 1 corrupt,
//! locked or failed; 2 bad usage).
#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use applog::{Options, Reader, Writer};
use common::cli::*;
use common::snapshot;

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
    // More than the 2 GiB a segment may have.
    let err = run(&[
        OsStr::new("append"),
        log_arg(&log),
        OsStr::new("--segment-pages"),
        OsStr::new("4000000000"),
        OsStr::new("x"),
    ]);
    assert!(
        err.usage_error()
            .contains("applog: error: invalid options: segment_pages 4000000000"),
        "{err:?}"
    );
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

    // The output (about 700 KB) is far larger than the pipe: tail is still writing when the
    // pipe closes.
    let (first, out) = first_line_then_close(&[
        OsStr::new("tail"),
        log_arg(&log),
        OsStr::new("--from"),
        OsStr::new("0"),
    ]);
    assert_eq!(first, "r0\n");
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

/// A synced log of three records, appended one by one (not as a batch, which would be cut
/// whole), whose second record has one byte flipped; returns the second frame's offset.
fn corrupt_log() -> (tempfile::TempDir, PathBuf, u64) {
    let (tmp, log) = new_log();
    let mut w = Writer::open(&log, Options::new()).expect("open writer");
    for r in [&b"alpha"[..], b"bravo", b"charlie"] {
        w.append(r).expect("append");
    }
    w.close().expect("close");
    // Header 64 bytes; "alpha" takes a 16-byte frame header (header word and time) and 8
    // bytes of padded payload.
    let second = 64 + 16 + 8;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(log.join(SEG0))
        .expect("open segment");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, second + 17).expect("read");
    assert_eq!(&b, b"r", "the layout changed");
    f.write_at(b"R", second + 17).expect("write");
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
    let out = run(&[
        OsStr::new("tail"),
        log_arg(&log),
        OsStr::new("--from"),
        OsStr::new("0"),
    ]);
    assert_eq!((out.code, out.stdout.as_str()), (1, "alpha\n"), "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("applog: error: corrupt log: {at}")),
        "{out:?}"
    );
    // The last N records of a damaged log cannot be told: tail says so up front, as verify.
    let out = run(&[OsStr::new("tail"), log_arg(&log)]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    assert!(out.stderr.starts_with("applog: error: the log "), "{out:?}");
    assert!(out.stderr.contains(&at), "{out:?}");

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

    let id = applog::existing_log_id(&log)
        .expect("read identity")
        .expect("the writer created the identity");
    // Exact sizes, to compare with the library's (tests/cli_info.rs: the rounded ones).
    let out = run(&[OsStr::new("info"), log_arg(&log), OsStr::new("--bytes")]);
    let text = out.ok();
    for line in [
        format!("identity   {id}\n"),
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
        format!(r#""log_id":"{id}""#),
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
    let (tmp, log) = new_log();
    let dest = tmp.path().join("dest");
    for cmd in ["tail", "verify", "info", "recover", "copy"] {
        let mut args = vec![OsStr::new(cmd), log_arg(&log)];
        if cmd == "copy" {
            args.push(dest.as_os_str());
        }
        let out = run(&args);
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
    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).expect("list").count(), 0);
}

#[test]
fn a_directory_that_is_not_a_log_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join("notes.txt"), b"not a log").expect("write");
    let dest = tmp.path().join("dest");
    for dir in [&empty, &other] {
        for args in [
            &["tail"][..],
            &["verify"],
            &["info"],
            &["recover"],
            &["copy", "DEST"],
        ] {
            let mut all = vec![OsStr::new(args[0]), dir.as_os_str()];
            all.extend(args[1..].iter().map(|_| dest.as_os_str()));
            let out = run(&all);
            let err = out.failed();
            assert!(
                err.contains(&format!("not an applog log: {}", dir.display())),
                "{args:?}: {err}"
            );
        }
    }
    // With other files in it, even `tail -f` and `append` refuse it (an empty directory is
    // where a log is about to be created: `tail -f` waits, `append` creates one).
    for args in [&["tail", "-f"][..], &["append", "x"]] {
        let mut all = vec![OsStr::new(args[0]), other.as_os_str()];
        all.extend(args[1..].iter().map(OsStr::new));
        assert!(run(&all).failed().contains("not an applog log"), "{args:?}");
    }
    assert_eq!(std::fs::read_dir(&empty).expect("list").count(), 0);
    assert_eq!(std::fs::read_dir(&other).expect("list").count(), 1);
    assert!(!dest.exists());
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
        &["tail", "-f"],
        &["verify"],
        &["info"],
        &["recover"],
        &["recover", "--truncate-at-corruption"],
        &["copy", "dest"],
    ] {
        let dest = tmp.path().join("dest");
        let mut all = vec![OsStr::new(args[0]), file.as_os_str()];
        if args[0] == "copy" {
            all.push(dest.as_os_str());
            let out = run(&all);
            assert!(out.failed().contains("not an applog log"), "{out:?}");
            assert!(!dest.exists());
            continue;
        }
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
        &["tail", log, "--follow=yes"],
        &["append", log, "--nul", "x"],
        &["append", log, "--whole", "x"],
        &["append", log, "--whole", "--nul"],
        &["append", log, "--print-seq=1"],
        &["recover"],
        &["recover", log, "--truncate"],
        &["copy", log],
        &["copy"],
        &["frobnicate", log],
        &[],
    ] {
        let out = run(args);
        assert!(
            out.usage_error().starts_with("applog: error: "),
            "{args:?}: {out:?}"
        );
    }
    let out = run(&["tail", log, "--format", "xml"]);
    assert!(
        out.stderr
            .starts_with("applog: error: invalid value 'xml' for '--format <FORMAT>'"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("[possible values: text, raw, raw0, json, hex]"),
        "{out:?}"
    );
    let out = run(&["verify", log, "--format", "hex"]);
    assert!(
        out.stderr.contains("[possible values: text, json]"),
        "{out:?}"
    );
    // Help is not an error.
    assert!(run(&["tail", "--help"]).ok().contains("--format"));
    for cmd in ["append", "tail", "verify", "recover", "info", "copy"] {
        assert!(run(&["--help"]).ok().contains(cmd), "{cmd}");
        assert!(
            run(&[cmd, "--help"]).ok().contains("Usage: applog"),
            "{cmd}"
        );
    }
    assert_eq!(
        read_all(Path::new(log)),
        vec![b"a".to_vec()],
        "nothing changed"
    );
}

// ---------------------------------------------------------------- append flags

#[test]
fn append_nul_splits_on_nul_bytes() {
    let (_tmp, log) = new_log();
    let out = run_with_stdin(
        &[OsStr::new("append"), log_arg(&log), OsStr::new("--nul")],
        b"a\0b\nc\0\0last",
    );
    assert_eq!(out.ok(), "");
    assert_eq!(
        read_all(&log),
        vec![
            b"a".to_vec(),
            b"b\nc".to_vec(),
            Vec::new(),
            b"last".to_vec()
        ]
    );
}

#[test]
fn append_whole_takes_all_of_stdin_as_one_record() {
    let (_tmp, log) = new_log();
    let input = b"line one\nline two\n\0binary\xff\n";
    let out = run_with_stdin(
        &[OsStr::new("append"), log_arg(&log), OsStr::new("--whole")],
        input,
    );
    assert_eq!(out.ok(), "");
    run_with_stdin(
        &[OsStr::new("append"), log_arg(&log), OsStr::new("--whole")],
        b"",
    )
    .ok();
    assert_eq!(read_all(&log), vec![input.to_vec(), Vec::new()]);

    // Too large for one record: an error, and nothing is appended.
    let out = run_with_stdin(
        &[
            OsStr::new("append"),
            log_arg(&log),
            OsStr::new("--whole"),
            OsStr::new("--segment-pages"),
            OsStr::new("1"),
        ],
        &vec![b'x'; 100_000],
    );
    assert!(
        out.failed().contains("standard input is longer than the"),
        "{out:?}"
    );
    assert_eq!(read_all(&log).len(), 2);
}

#[test]
fn append_print_seq_prints_each_seq_once_durable() {
    let (_tmp, log) = new_log();
    let args = |extra: &[&'static str]| -> Vec<std::ffi::OsString> {
        let mut v = vec![
            "append".into(),
            log.clone().into_os_string(),
            "--print-seq".into(),
        ];
        v.extend(extra.iter().map(|s| s.into()));
        v
    };
    assert_eq!(run(&args(&["a", "b", "c"])).ok(), "0\n1\n2\n");
    assert_eq!(run(&args(&["d", "--sync-each"])).ok(), "3\n");
    assert_eq!(run_with_stdin(&args(&[]), b"e\nf\n").ok(), "4\n5\n");
    assert_eq!(
        run_with_stdin(&args(&["--sync-each", "--nul"]), b"g\0h\0").ok(),
        "6\n7\n"
    );
    assert_eq!(run_with_stdin(&args(&["--whole"]), b"i\nj\n").ok(), "8\n");
    // Without --print-seq, nothing is printed.
    assert_eq!(
        run(&[OsStr::new("append"), log_arg(&log), OsStr::new("k")]).ok(),
        ""
    );
    let report = applog::verify(&log).expect("verify");
    assert_eq!(report.next_seq, 10);
    let seg = report.segments.last().expect("a segment");
    assert_eq!(seg.synced_mark, seg.data_end, "everything is durable");
}

/// A running `applog append` reading its standard input from a pipe.
struct Appender {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

fn spawn_append(log: &Path, extra: &[&str]) -> Appender {
    let mut child = applog()
        .arg("append")
        .arg(log)
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    Appender {
        stdin: child.stdin.take().expect("stdin"),
        stdout: BufReader::new(child.stdout.take().expect("stdout")),
        child,
    }
}

/// The synced mark and the data end of the newest segment.
fn newest_marks(log: &Path) -> (u64, u64) {
    let report = applog::verify(log).expect("verify");
    let seg = report.segments.last().expect("a segment");
    (seg.synced_mark, seg.data_end)
}

#[test]
fn append_sync_each_makes_each_record_durable_before_printing_its_seq() {
    let (_tmp, log) = new_log();
    let mut app = spawn_append(&log, &["--sync-each", "--print-seq"]);
    for seq in 0..5u64 {
        app.stdin
            .write_all(format!("record {seq}\n").as_bytes())
            .expect("write");
        app.stdin.flush().expect("flush");
        let mut line = String::new();
        app.stdout.read_line(&mut line).expect("read a seq");
        assert_eq!(line, format!("{seq}\n"));
        // Printed only once durable: the segment's synced mark already covers the record.
        let (mark, end) = newest_marks(&log);
        assert_eq!(mark, end, "seq {seq} printed before it was durable");
        assert_eq!(read_all(&log).len() as u64, seq + 1);
    }
    drop(app.stdin);
    let out: Run = app.child.wait_with_output().expect("wait").into();
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
}

#[test]
fn append_from_a_stream_syncs_when_input_pauses() {
    let (_tmp, log) = new_log();
    let mut app = spawn_append(&log, &["--print-seq"]);
    app.stdin.write_all(b"one\ntwo\n").expect("write");
    app.stdin.flush().expect("flush");
    // stdin stays open; the pause makes the command sync and print the seqs.
    let mut lines = String::new();
    app.stdout.read_line(&mut lines).expect("read");
    app.stdout.read_line(&mut lines).expect("read");
    assert_eq!(lines, "0\n1\n");
    let (mark, end) = newest_marks(&log);
    assert_eq!(mark, end, "not durable while the stream pauses");
    app.stdin.write_all(b"three\n").expect("write");
    drop(app.stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut app.stdout, &mut rest).expect("read");
    assert_eq!(rest, "2\n");
    let out: Run = app.child.wait_with_output().expect("wait").into();
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
}

#[test]
fn append_streams_with_flat_memory() {
    let (_tmp, log) = new_log();
    let mut app = spawn_append(&log, &[]);
    let pid = app.child.id();
    // Anonymous memory of the process (heap, stacks), in KiB.
    let rss_anon = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("RssAnon")
    };
    let line = format!("{}\n", "x".repeat(99));
    let chunk = line.repeat(10_000); // 1 MB
    let mut samples = Vec::new();
    for i in 0..48 {
        app.stdin.write_all(chunk.as_bytes()).expect("write");
        if i % 8 == 7 {
            samples.push(rss_anon());
        }
    }
    drop(app.stdin);
    let out: Run = app.child.wait_with_output().expect("wait").into();
    out.ok();
    assert_eq!(applog::verify(&log).expect("verify").records, 480_000);
    // 48 MB went through; the process's own memory must not grow with it.
    let (first, max) = (samples[0], *samples.iter().max().expect("samples"));
    assert!(
        max < first + 8 * 1024 && max < 64 * 1024,
        "anonymous memory grew while streaming: {samples:?} KiB"
    );
}

// ---------------------------------------------------------------- recover

#[test]
fn recover_cuts_a_torn_tail_and_says_what_it_cut() {
    let (_tmp, log) = log_with(&[b"alpha", b"bravo"]);
    let offset = tear_tail(&log);
    let size = std::fs::metadata(log.join(SEG0)).expect("stat").len();
    let out = run(&[OsStr::new("recover"), log_arg(&log)]);
    // Said once, in the report on stdout: no warning about the same cut on stderr.
    let text = out.ok();
    assert!(
        text.contains(&format!(
            "torn tail  cut {} bytes at byte offset {offset} of {} (",
            size - offset,
            log.join(SEG0).display()
        )),
        "{text}"
    );
    assert!(text.contains("next seq   2\n"), "{text}");
    assert!(text.contains("status     recovered"), "{text}");
    let report = applog::verify(&log).expect("verify");
    assert!(
        report.torn_tail.is_none() && report.is_clean(),
        "{report:?}"
    );
    assert_eq!(read_all(&log), vec![b"alpha".to_vec(), b"bravo".to_vec()]);

    // Nothing left to cut.
    let text = run(&[OsStr::new("recover"), log_arg(&log)])
        .ok()
        .to_string();
    assert!(text.contains("torn tail  none\n"), "{text}");
}

#[test]
fn recover_refuses_corruption_unless_asked_to_truncate() {
    let (_tmp, log, offset) = corrupt_log();
    let before = snapshot(&log);
    let out = run(&[OsStr::new("recover"), log_arg(&log)]);
    let err = out.failed();
    assert!(
        err.contains(&format!(
            "corrupt log: {} at byte offset {offset}: ",
            log.join(SEG0).display()
        )),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(err.contains("--truncate-at-corruption"), "{err}");
    assert_eq!(snapshot(&log), before);

    let out = run(&[
        OsStr::new("recover"),
        log_arg(&log),
        OsStr::new("--truncate-at-corruption"),
    ]);
    // Said once, in the report on stdout: no warning about the same truncation on stderr.
    let text = out.ok();
    assert!(
        text.contains(&format!(
            "truncated  at byte offset {offset} of {}: dropped 2 records from seq 1\n",
            log.join(SEG0).display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "corrupt    {} at byte offset {offset}: ",
            log.join(SEG0).display()
        )),
        "{text}"
    );
    assert!(text.contains("next seq   1\n"), "{text}");
    assert_eq!(
        run(&[
            OsStr::new("tail"),
            log_arg(&log),
            OsStr::new("--from"),
            OsStr::new("0")
        ])
        .ok(),
        "alpha\n"
    );
    assert!(run(&[OsStr::new("verify"), log_arg(&log)])
        .ok()
        .contains("status     clean\n"));
    assert_eq!(
        run(&[
            OsStr::new("append"),
            log_arg(&log),
            OsStr::new("--print-seq"),
            OsStr::new("new")
        ])
        .ok(),
        "1\n"
    );
}

#[test]
fn recover_a_locked_log_fails_and_changes_nothing() {
    let (_tmp, log) = log_with(&[b"a"]);
    tear_tail(&log);
    let writer_lock = std::fs::File::open(log.join(applog::LOCK_FILE)).expect("lock file");
    fs2::FileExt::lock_exclusive(&writer_lock).expect("lock");
    let before = snapshot(&log);
    for extra in [None, Some("--truncate-at-corruption")] {
        let mut args = vec![OsStr::new("recover"), log_arg(&log)];
        args.extend(extra.map(OsStr::new));
        let err = run(&args).failed().to_string();
        assert!(
            err.contains(&format!(
                "locked by another writer (lock file {})",
                log.join(applog::LOCK_FILE).display()
            )),
            "{err}"
        );
    }
    assert_eq!(snapshot(&log), before);
}

// ---------------------------------------------------------------- copy

#[test]
fn copy_makes_a_verified_durable_copy() {
    let (tmp, log) = one_page_segments('z', 40);
    run_with_stdin(
        &[
            OsStr::new("append"),
            log_arg(&log),
            OsStr::new("--segment-pages"),
            OsStr::new("1"),
        ],
        b"\xff\x00\n",
    )
    .ok();
    let dest = tmp.path().join("copy");
    let out = run(&[OsStr::new("copy"), log_arg(&log), dest.as_os_str()]);
    assert_eq!(
        out.ok(),
        format!(
            "copied 41 records (seq 0..41) from {} to {}, verified and synced\n",
            log.display(),
            dest.display()
        )
    );
    assert_eq!(read_all(&dest), read_all(&log));
    let report = applog::verify(&dest).expect("verify");
    assert!(
        report.is_clean() && report.torn_tail.is_none(),
        "{report:?}"
    );
    assert!(report.segments.len() > 1, "the copy rolls over too");
    for s in &report.segments {
        let end = s.data_end + if s.sealed { 8 } else { 0 };
        assert!(
            s.synced_mark >= end.min(s.reservation),
            "not durable: {s:?}"
        );
    }
    assert!(!applog::is_locked(&dest).expect("lock"));
    // Nothing but the two logs beside them: the staging directory is gone.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["copy", "log"]);
    // The copy is a log like any other.
    assert_eq!(
        run(&[
            OsStr::new("append"),
            dest.as_os_str(),
            OsStr::new("--print-seq"),
            OsStr::new("more")
        ])
        .ok(),
        "41\n"
    );
}

#[test]
fn copy_keeps_the_records_before_a_torn_tail() {
    let (tmp, log) = log_with(&[b"alpha", b"bravo"]);
    tear_tail(&log);
    let dest = tmp.path().join("copy");
    run(&[OsStr::new("copy"), log_arg(&log), dest.as_os_str()]).ok();
    assert_eq!(read_all(&dest), vec![b"alpha".to_vec(), b"bravo".to_vec()]);
    assert!(applog::verify(&dest).expect("verify").torn_tail.is_none());
}

#[test]
fn copy_refuses_an_existing_dest_and_a_corrupt_log() {
    let (tmp, log) = log_with(&[b"alpha"]);
    let existing_dir = tmp.path().join("dir");
    std::fs::create_dir(&existing_dir).expect("mkdir");
    let existing_file = tmp.path().join("file");
    std::fs::write(&existing_file, b"keep me").expect("write");
    for dest in [&existing_dir, &existing_file, &log] {
        let out = run(&[OsStr::new("copy"), log_arg(&log), dest.as_os_str()]);
        assert!(
            out.failed()
                .contains(&format!("{} already exists", dest.display())),
            "{out:?}"
        );
    }
    assert_eq!(std::fs::read_dir(&existing_dir).expect("list").count(), 0);
    assert_eq!(std::fs::read(&existing_file).expect("read"), b"keep me");

    let missing_parent = tmp.path().join("no").join("dest");
    let out = run(&[
        OsStr::new("copy"),
        log_arg(&log),
        missing_parent.as_os_str(),
    ]);
    assert!(
        out.failed()
            .contains("could not create the copy's directory"),
        "{out:?}"
    );

    let (tmp, log, offset) = corrupt_log();
    let dest = tmp.path().join("copy");
    let out = run(&[OsStr::new("copy"), log_arg(&log), dest.as_os_str()]);
    assert!(
        out.failed().contains(&format!(
            "{} at byte offset {offset}",
            log.join(SEG0).display()
        )),
        "{out:?}"
    );
    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).expect("list").count(), 1);
}

// ---------------------------------------------------------------- damaged or unreadable files

/// Every command on `log`, expecting exit 1 with an error that contains `expect`, and no file
/// of the log changed.
fn every_command_fails(log: &Path, expect: &str, truncating_repairs: bool) {
    let before = snapshot(log);
    let dest = log.with_file_name("dest");
    let commands: [&[&OsStr]; 9] = [
        &[OsStr::new("append"), log_arg(log), OsStr::new("x")],
        &[OsStr::new("tail"), log_arg(log)],
        &[
            OsStr::new("tail"),
            log_arg(log),
            OsStr::new("--from"),
            OsStr::new("0"),
        ],
        &[OsStr::new("tail"), log_arg(log), OsStr::new("-f")],
        &[OsStr::new("verify"), log_arg(log)],
        &[OsStr::new("info"), log_arg(log)],
        &[OsStr::new("recover"), log_arg(log)],
        &[
            OsStr::new("recover"),
            log_arg(log),
            OsStr::new("--truncate-at-corruption"),
        ],
        &[OsStr::new("copy"), log_arg(log), dest.as_os_str()],
    ];
    for args in commands {
        if truncating_repairs && args.len() == 3 && args[2] == "--truncate-at-corruption" {
            continue;
        }
        let mut cmd = applog();
        cmd.args(args).stdin(Stdio::null());
        let out: Run = cmd.output().expect("run").into();
        // verify and info print their report before they fail.
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(
            out.stderr.starts_with("applog: error: "),
            "{args:?}: {out:?}"
        );
        assert!(out.stderr.contains(expect), "{args:?}: {out:?}");
    }
    assert_eq!(snapshot(log), before, "nothing changed");
    assert!(!dest.exists());
}

#[test]
fn a_foreign_segment_file_is_refused_by_every_command() {
    let (_tmp, log) = log_with(&[b"a", b"b"]);
    let foreign = log.join("00000000000000000002.seg");
    std::fs::write(&foreign, b"PK\x03\x04 this is a zip file, not a segment").expect("write");
    every_command_fails(
        &log,
        &format!(
            "not an applog log: {}: the file does not start with the applog segment magic",
            foreign.display()
        ),
        false,
    );
}

#[test]
fn a_truncated_segment_header_is_refused_by_every_command() {
    let (_tmp, log) = log_with(&[b"a", b"b"]);
    let seg = log.join(SEG0);
    let header = std::fs::read(&seg).expect("read")[..30].to_vec();
    std::fs::write(&seg, &header).expect("write");
    every_command_fails(
        &log,
        &format!(
            "{} at byte offset 0: segment header is truncated",
            seg.display()
        ),
        true,
    );
    // Asked to, recover removes the damaged segment; its records cannot be counted.
    let out = run(&[
        OsStr::new("recover"),
        log_arg(&log),
        OsStr::new("--truncate-at-corruption"),
    ]);
    assert!(
        out.ok().contains(&format!(
            "truncated  at byte offset 0 of {}: dropped an unknown number of records from seq 0\n",
            seg.display()
        )),
        "{out:?}"
    );
    assert!(!seg.exists());
    assert_eq!(
        run(&[
            OsStr::new("append"),
            log_arg(&log),
            OsStr::new("--print-seq"),
            OsStr::new("x")
        ])
        .ok(),
        "0\n"
    );
}

#[test]
fn unreadable_files_are_refused_by_every_command() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, log) = log_with(&[b"a", b"b"]);
    let seg = log.join(SEG0);
    let is_root = std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    // As root, permissions are not checked: run the tool as an unprivileged user instead,
    // with the directories open to it and the files not.
    let as_user = is_root.then_some(65534);
    for dir in [tmp.path(), log.as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    // Readers may read the lock file, not write it; nobody but root reads the segment.
    std::fs::set_permissions(&seg, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    std::fs::set_permissions(
        log.join(applog::LOCK_FILE),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let reading = format!("{}: Permission denied", seg.display());
    let locking = format!(
        "{}: Permission denied",
        log.join(applog::LOCK_FILE).display()
    );
    // The unprivileged user may not reach the checkout: it runs a copy of the binary.
    let bin = BinaryForAnyone::new();
    let before = snapshot(&log);
    for (args, expect) in [
        (&["tail"][..], &reading),
        (&["tail", "-f"], &reading),
        (&["verify"], &reading),
        (&["info"], &reading),
        (&["append", "x"], &locking),
        (&["recover"], &locking),
    ] {
        let out: Run = bin
            .command_as(as_user)
            .arg(args[0])
            .arg(&log)
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .expect("run")
            .into();
        assert!(out.failed().contains(expect.as_str()), "{args:?}: {out:?}");
    }
    assert_eq!(snapshot(&log), before, "nothing changed");
}

#[test]
fn append_print_seq_to_a_closed_pipe_stops_quietly_and_keeps_the_records() {
    let (_tmp, log) = new_log();
    let mut child = applog()
        .args([
            OsStr::new("append"),
            log_arg(&log),
            OsStr::new("--print-seq"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(child.stdout.take()); // nobody reads the seqs
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"a\nb\n").expect("write");
    drop(stdin);
    let out: Run = child.wait_with_output().expect("wait").into();
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert_eq!(read_all(&log), vec![b"a".to_vec(), b"b".to_vec()]);
    let (mark, end) = newest_marks(&log);
    assert_eq!(mark, end, "durable");
}

/// Writes `lines` to a child's stdin; a broken pipe (a tool that stopped reading) is no
/// failure of the test itself.
fn feed(stdin: &mut std::process::ChildStdin, lines: &str) {
    if let Err(e) = stdin
        .write_all(lines.as_bytes())
        .and_then(|()| stdin.flush())
    {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
}

#[test]
fn append_print_seq_whose_reader_left_still_appends_and_syncs_every_record() {
    // `applog append LOG --print-seq --sync-each | head -0`: the first seq printed after the
    // first record's sync finds the pipe closed. The rest of the input must still go in.
    let (_tmp, log) = new_log();
    let mut app = spawn_append(&log, &["--sync-each", "--print-seq"]);
    drop(app.stdout); // the reader of the seqs is gone
    feed(&mut app.stdin, &numbered_lines(0, 300));
    drop(app.stdin);
    let out: Run = app.child.wait_with_output().expect("wait").into();
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert_eq!(read_all(&log), numbered(300));
    let (mark, end) = newest_marks(&log);
    assert_eq!(mark, end, "exit 0 without every record durable");

    // Streaming: the seqs are printed after the sync at a pause in the input, which finds
    // the pipe closed; the input after the pause must still go in.
    let (_tmp, log) = new_log();
    let mut app = spawn_append(&log, &["--print-seq"]);
    drop(app.stdout);
    feed(&mut app.stdin, &numbered_lines(0, 100));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // (The log may not be created yet.)
        let synced = applog::verify(&log).is_ok_and(|report| {
            report.next_seq == 100
                && report
                    .segments
                    .last()
                    .is_some_and(|s| s.synced_mark == s.data_end)
        });
        if synced {
            break; // synced at the pause, and so tried to print the seqs
        }
        assert!(Instant::now() < deadline, "no sync at a pause in the input");
        std::thread::sleep(Duration::from_millis(10));
    }
    feed(&mut app.stdin, &numbered_lines(100, 200));
    drop(app.stdin);
    let out: Run = app.child.wait_with_output().expect("wait").into();
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    assert_eq!(read_all(&log), numbered(200));
    let (mark, end) = newest_marks(&log);
    assert_eq!(mark, end, "exit 0 without every record durable");
}

#[test]
fn copy_keeps_the_seqs_of_a_log_that_does_not_start_at_zero() {
    let (tmp, log) = one_page_segments('q', 20);
    let report = applog::verify(&log).expect("verify");
    // Old segments removed by hand (as retention would).
    for s in &report.segments[..2] {
        std::fs::remove_file(&s.path).expect("remove");
    }
    let first = report.segments[2].base_seq;
    let dest = tmp.path().join("copy");
    let out = run(&[OsStr::new("copy"), log_arg(&log), dest.as_os_str()]);
    assert!(
        out.ok()
            .starts_with(&format!("copied {} records (seq {first}..20)", 20 - first)),
        "{out:?}"
    );
    let copy = applog::verify(&dest).expect("verify");
    assert_eq!((copy.first_seq, copy.next_seq), (first, 20));
    assert!(copy.is_clean() && copy.torn_tail.is_none(), "{copy:?}");
    assert_eq!(
        run(&[
            OsStr::new("tail"),
            dest.as_os_str(),
            OsStr::new("--from"),
            OsStr::new("0")
        ])
        .ok(),
        run(&[
            OsStr::new("tail"),
            log_arg(&log),
            OsStr::new("--from"),
            OsStr::new("0")
        ])
        .ok()
    );
}
