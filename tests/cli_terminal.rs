//! The tool at a terminal (a real pseudo-terminal): `tail` shows binary records as a
//! placeholder there (and only there), unless `--format raw` asks for the bytes.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;

use common::cli::*;

fn tail_args<'a>(log: &'a std::path::Path, extra: &'a [&'a str]) -> Vec<&'a OsStr> {
    let mut args = vec![OsStr::new("tail"), log_arg(log)];
    args.extend(extra.iter().map(OsStr::new));
    args
}

/// Text, bytes that are not UTF-8, an escape sequence, a newline inside, a tab.
fn mixed_log() -> (tempfile::TempDir, std::path::PathBuf) {
    log_with(&[
        b"plain text",
        b"\xff\xfe\x00\x01",
        b"\x1b[2J\x1b[31mred",
        b"two\nlines",
        b"tab\tseparated",
    ])
}

#[test]
fn tail_at_a_terminal_shows_binary_records_as_a_placeholder() {
    let (_tmp, log) = mixed_log();
    let run = run_on_pty(&tail_args(&log, &[]), &[], OnTerminal::Stdout);
    assert_eq!((run.code, run.piped.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(
        run.terminal_text(),
        "plain text\n\
         [4 bytes of binary data]\n\
         [12 bytes of binary data]\n\
         [9 bytes of binary data]\n\
         tab\tseparated\n"
    );
}

#[test]
fn tail_format_raw_at_a_terminal_prints_the_bytes() {
    let (_tmp, log) = mixed_log();
    let run = run_on_pty(
        &tail_args(&log, &["--format", "raw", "-n", "3"]),
        &[],
        OnTerminal::Stdout,
    );
    assert_eq!(run.code, 0, "{run:?}");
    // The terminal turns each \n into \r\n.
    assert_eq!(
        run.terminal,
        b"\x1b[2J\x1b[31mred\r\ntwo\r\nlines\r\ntab\tseparated\r\n"
    );
}

#[test]
fn tail_into_a_pipe_prints_binary_records_as_they_are() {
    let (_tmp, log) = mixed_log();
    let out = applog()
        .args(tail_args(&log, &["-n", "4"]))
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        out.stdout,
        b"\xff\xfe\x00\x01\n\x1b[2J\x1b[31mred\ntwo\nlines\ntab\tseparated\n"
    );
}
