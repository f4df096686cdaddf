//! Colour and logging set-up: `NO_COLOR` (set and not empty) turns off every ANSI colour,
//! on a real terminal too; an invalid `RUST_LOG` is a one-line warning naming the bad
//! directive, then the default filter.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;

use common::cli::*;

const ESC: &[u8] = b"\x1b[";

fn has_ansi(bytes: &[u8]) -> bool {
    bytes.windows(ESC.len()).any(|w| w == ESC)
}

/// `RUST_LOG=debug applog append LOG x` with stderr on a terminal, with `env` added: what
/// the terminal showed.
fn debug_events_on_a_terminal(env: &[(&str, &str)]) -> Vec<u8> {
    let (_tmp, log) = new_log();
    let mut all_env = vec![("RUST_LOG", "debug")];
    all_env.extend_from_slice(env);
    let run = run_on_pty(
        &[OsStr::new("append"), log_arg(&log), OsStr::new("x")],
        &all_env,
        OnTerminal::Stderr,
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.terminal).contains("writer opened"),
        "no debug event on the terminal: {run:?}"
    );
    run.terminal
}

#[test]
fn tracing_output_is_coloured_at_a_terminal_unless_no_color() {
    assert!(has_ansi(&debug_events_on_a_terminal(&[])));
    // Set and not empty: no colour. Empty counts as not set (no-color.org).
    assert!(!has_ansi(&debug_events_on_a_terminal(&[("NO_COLOR", "1")])));
    assert!(!has_ansi(&debug_events_on_a_terminal(&[("NO_COLOR", "0")])));
    assert!(has_ansi(&debug_events_on_a_terminal(&[("NO_COLOR", "")])));
}

#[test]
fn help_is_coloured_at_a_terminal_unless_no_color() {
    let help = |env: &[(&str, &str)]| {
        let run = run_on_pty(
            &[OsStr::new("tail"), OsStr::new("--help")],
            env,
            OnTerminal::Both,
        );
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.terminal_text().contains("--until-seq"), "{run:?}");
        run.terminal
    };
    assert!(has_ansi(&help(&[])));
    assert!(!has_ansi(&help(&[("NO_COLOR", "1")])));
    // A usage error at a terminal too.
    let run = run_on_pty(
        &[OsStr::new("tail"), OsStr::new("--bogus")],
        &[("NO_COLOR", "yes")],
        OnTerminal::Both,
    );
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.terminal_text().contains("applog: error: "), "{run:?}");
    assert!(!has_ansi(&run.terminal), "{run:?}");
}

#[test]
fn tracing_output_into_a_pipe_is_never_coloured() {
    let (_tmp, log) = new_log();
    let out = applog()
        .args([OsStr::new("append"), log_arg(&log), OsStr::new("x")])
        .env("RUST_LOG", "debug")
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("writer opened"));
    assert!(!has_ansi(&out.stderr));
}

/// `applog append LOG x` with `RUST_LOG=spec`, output piped.
fn append_with_rust_log(spec: &str) -> Run {
    let (_tmp, log) = new_log();
    applog()
        .args([OsStr::new("append"), log_arg(&log), OsStr::new("x")])
        .env("RUST_LOG", spec)
        .output()
        .expect("run")
        .into()
}

#[test]
fn an_invalid_rust_log_is_one_warning_naming_it_then_the_default_filter() {
    // debug is valid, applog=loud is not: the whole of it is set aside, so no debug event.
    let out = append_with_rust_log("debug,applog=loud");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with("applog: warning: ignoring RUST_LOG: "),
        "{out:?}"
    );
    assert!(out.stderr.contains("\"applog=loud\""), "{out:?}");
    assert!(!out.stderr.contains("directive \"debug\""), "{out:?}");
    assert!(
        out.stderr.contains("using the default filter \"warn\""),
        "{out:?}"
    );
    assert!(!out.stderr.contains("DEBUG"), "{out:?}");

    // Each bad directive is named.
    let out = append_with_rust_log("[{,=x");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.contains("\"[{\""), "{out:?}");
    assert!(out.stderr.contains("\"=x\""), "{out:?}");
}

#[test]
fn a_valid_or_empty_rust_log_gives_no_warning() {
    let out = append_with_rust_log("applog=debug");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("DEBUG"), "{out:?}");
    assert!(!out.stderr.contains("warning"), "{out:?}");
    let out = append_with_rust_log("");
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
}
