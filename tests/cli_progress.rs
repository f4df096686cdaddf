//! Progress on stderr for `verify` and `copy`: drawn on a terminal (a real pseudo-terminal)
//! once the work has taken `--progress-after` seconds, never into a pipe (where the output
//! is byte for byte what it is without it); `applog::copy_with_progress` reports from 0 to
//! every record.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use common::cli::*;

/// A log of `n` records.
fn log_of(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    log_with(&slices(&numbered(n)))
}

#[test]
fn verify_draws_progress_on_a_terminal_from_progress_after() {
    let (_tmp, log) = log_of(100);
    let run = run_on_pty(
        &[OsStr::new("verify"), log_arg(&log)],
        &[("APPLOG_PROGRESS_AFTER", "0")],
        OnTerminal::Stderr,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let shown = run.terminal_text();
    assert!(
        shown.contains(&format!("verifying {} (1 segment, ", log.display())),
        "{shown:?}"
    );
    // The report itself is unchanged on stdout.
    assert!(run.piped.stdout.ends_with("status     clean\n"), "{run:?}");
}

#[test]
fn copy_draws_a_bar_of_records_on_a_terminal() {
    let (tmp, log) = log_of(100);
    let dest = tmp.path().join("dest");
    let run = run_on_pty(
        &[
            OsStr::new("copy"),
            log_arg(&log),
            dest.as_os_str(),
            OsStr::new("--progress-after"),
            OsStr::new("0"),
        ],
        &[],
        OnTerminal::Stderr,
    );
    assert_eq!(run.code, 0, "{run:?}");
    let shown = run.terminal_text();
    assert!(
        shown.contains(&format!("checking {}", log.display())),
        "{shown:?}"
    );
    assert!(shown.contains("/100 records"), "{shown:?}");
    assert!(
        run.piped.stdout.starts_with("copied 100 records"),
        "{run:?}"
    );
    assert_eq!(read_all(&dest).len(), 100);
}

#[test]
fn nothing_is_drawn_before_progress_after() {
    let (tmp, log) = log_of(10);
    let dest = tmp.path().join("dest");
    for args in [
        vec![OsStr::new("verify"), log_arg(&log)],
        vec![OsStr::new("copy"), log_arg(&log), dest.as_os_str()],
    ] {
        let run = run_on_pty(
            &args,
            &[("APPLOG_PROGRESS_AFTER", "3600")],
            OnTerminal::Stderr,
        );
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.terminal, b"", "{run:?}");
    }
}

#[test]
fn progress_never_goes_into_a_pipe() {
    let (tmp, log) = log_of(100);
    let plain = run(&[OsStr::new("verify"), log_arg(&log)]);
    let asked = applog()
        .args([OsStr::new("verify"), log_arg(&log)])
        .env("APPLOG_PROGRESS_AFTER", "0")
        .output()
        .expect("run");
    assert!(asked.status.success(), "{asked:?}");
    assert_eq!(asked.stdout, plain.ok().as_bytes());
    assert_eq!(asked.stderr, b"");

    let dest = tmp.path().join("dest");
    let out = run(&[
        OsStr::new("copy"),
        log_arg(&log),
        dest.as_os_str(),
        OsStr::new("--progress-after"),
        OsStr::new("0"),
    ]);
    assert_eq!(
        out.ok(),
        format!(
            "copied 100 records (seq 0..100) from {} to {}, verified and synced\n",
            log.display(),
            dest.display()
        )
    );
}

#[test]
fn bad_progress_after_values_are_usage_errors() {
    let (tmp, log) = log_of(1);
    let dest = tmp.path().join("dest");
    for args in [
        vec![OsStr::new("verify"), log_arg(&log)],
        vec![OsStr::new("copy"), log_arg(&log), dest.as_os_str()],
    ] {
        for value in ["-1", "soon", ""] {
            let mut with_flag = args.clone();
            with_flag.extend([OsStr::new("--progress-after"), OsStr::new(value)]);
            let out = run(&with_flag);
            assert!(out.usage_error().starts_with("applog: error: "), "{out:?}");
        }
        for value in ["-1", "soon", ""] {
            let out: Run = applog()
                .args(&args)
                .env("APPLOG_PROGRESS_AFTER", value)
                .output()
                .expect("run")
                .into();
            assert!(
                out.usage_error()
                    .contains(&format!("{value:?} is not a number of seconds")),
                "{out:?}"
            );
        }
    }
    assert!(!dest.exists());
}

#[test]
fn copy_with_progress_reports_from_zero_to_every_record() {
    let (tmp, log) = log_of(10_000);
    let calls = Mutex::new(Vec::new());
    let made = applog::copy_with_progress(
        &log,
        tmp.path().join("dest"),
        &AtomicBool::new(false),
        &|done, total| calls.lock().expect("lock").push((done, total)),
    )
    .expect("copy");
    assert_eq!(made.next_seq, 10_000);
    let calls = calls.into_inner().expect("lock");
    assert_eq!(calls.first(), Some(&(0, 10_000)));
    assert_eq!(calls.last(), Some(&(10_000, 10_000)));
    // In between, every 4096 records.
    assert_eq!(
        calls,
        [
            (0, 10_000),
            (4096, 10_000),
            (8192, 10_000),
            (10_000, 10_000)
        ]
    );
}
