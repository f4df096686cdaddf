//! How `applog tail` prints records: `--format json` (one schema for every payload),
//! `--format raw`/`raw0` and `-0`, and `--template` with its tokens and escapes; bad
//! templates are usage errors.
#![cfg(unix)]

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::cli::*;
use serde_json::Value;

/// `applog tail LOG <extra>`.
fn tail(log: &Path, extra: &[&str]) -> Run {
    let mut args = vec![OsStr::new("tail"), log_arg(log)];
    args.extend(extra.iter().map(OsStr::new));
    run(&args)
}

/// The raw bytes `applog tail LOG <extra>` writes to a pipe (exit 0, nothing on stderr).
fn tail_bytes(log: &Path, extra: &[&str]) -> Vec<u8> {
    let out = applog()
        .arg("tail")
        .arg(log)
        .args(extra)
        .output()
        .expect("run applog");
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    out.stdout
}

/// A log of records that are not all text, appended by the tool (`--nul` carries any byte
/// but NUL; NUL itself goes through a record of its own).
fn mixed_log() -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, log) = new_log();
    run_with_stdin(
        &[OsStr::new("append"), log_arg(&log), OsStr::new("--nul")],
        b"\xff\xfeA\0ok\0line\nbreak\0",
    )
    .ok();
    let mut w = applog::Writer::open(&log, applog::Options::new()).expect("open writer");
    w.append(b"\x00\x01").expect("append");
    w.close().expect("close");
    (tmp, log)
}

#[test]
fn tail_json_has_the_same_keys_for_text_and_binary_records() {
    let (_tmp, log) = mixed_log();
    let times: Vec<String> = record_times(&log)
        .into_iter()
        .map(|t| format!("\"{}\"", rfc3339_nanos(t.expect("a time"))))
        .collect();
    let out = tail(&log, &["--format", "json"]);
    let want = [
        r#"{"seq":0,"time":T,"len":3,"data":"//5B","encoding":"base64"}"#,
        r#"{"seq":1,"time":T,"len":2,"data":"ok","encoding":"utf8"}"#,
        r#"{"seq":2,"time":T,"len":10,"data":"line\nbreak","encoding":"utf8"}"#,
        // NUL and other controls are valid UTF-8: escaped, not base64.
        r#"{"seq":3,"time":T,"len":2,"data":"\u0000\u0001","encoding":"utf8"}"#,
    ];
    let want: String = want
        .iter()
        .zip(&times)
        .map(|(line, time)| line.replace('T', time) + "\n")
        .collect();
    assert_eq!(out.ok(), want);
}

#[test]
fn tail_json_says_a_record_of_a_version_1_log_has_no_time() {
    let (_tmp, log) = new_log();
    common::v1::write_log(&log, &[b"old".to_vec(), b"older".to_vec()], 4);
    let out = tail(&log, &["--format", "json"]);
    assert_eq!(
        out.ok(),
        concat!(
            r#"{"seq":0,"time":null,"len":3,"data":"old","encoding":"utf8"}"#,
            "\n",
            r#"{"seq":1,"time":null,"len":5,"data":"older","encoding":"utf8"}"#,
            "\n",
        )
    );
}

#[test]
fn tail_json_escapes_utf8_records() {
    let (_tmp, log) = log_with(&[
        b"plain",
        br#"say "hi" \ bye"#,
        b"tab\there\x1f",
        "h\u{e9}llo \u{1f600}".as_bytes(),
        b"",
    ]);
    let out = tail(&log, &["--format", "json"]);
    let records: Vec<Value> = out
        .ok()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let data: Vec<&str> = records
        .iter()
        .map(|r| r["data"].as_str().expect("data"))
        .collect();
    assert_eq!(
        data,
        [
            "plain",
            r#"say "hi" \ bye"#,
            "tab\there\x1f",
            "h\u{e9}llo \u{1f600}",
            ""
        ]
    );
    for (seq, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], seq as u64);
        assert_eq!(r["encoding"], "utf8");
        assert!(r["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{r}");
        let keys: Vec<&str> = r
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys.len(), 5, "{r}");
    }
    assert_eq!(records[3]["len"], 11);
}

#[test]
fn tail_raw0_separates_records_with_nul_and_round_trips_through_append_nul() {
    let (_tmp, log) = log_with(&[b"one", b"two\nlines", b"", b"\xff"]);
    let want = b"one\0two\nlines\0\0\xff\0".to_vec();
    assert_eq!(tail_bytes(&log, &["-0"]), want);
    assert_eq!(tail_bytes(&log, &["--format", "raw0"]), want);
    // Back into a log with append --nul: the same records (the empty one aside, which
    // --nul skips as it skips empty lines).
    let (_tmp2, copy) = new_log();
    let nonempty: Vec<u8> = b"one\0two\nlines\0\xff\0".to_vec();
    run_with_stdin(
        &[OsStr::new("append"), log_arg(&copy), OsStr::new("--nul")],
        &nonempty,
    )
    .ok();
    assert_eq!(tail_bytes(&copy, &["-0"]), nonempty);
}

#[test]
fn tail_raw_prints_the_bytes_as_they_are() {
    let (_tmp, log) = log_with(&[b"a\x1b[31m", b"\xff\x00"]);
    assert_eq!(
        tail_bytes(&log, &["--format", "raw"]),
        b"a\x1b[31m\n\xff\x00\n"
    );
    // In a pipe, text is the same as raw.
    assert_eq!(tail_bytes(&log, &[]), b"a\x1b[31m\n\xff\x00\n");
}

#[test]
fn tail_template_prints_each_token() {
    let (_tmp, log) = log_with(&[b"hi", b"\xffthere"]);
    let out = tail_bytes(
        &log,
        &["--template", r"%s|%l|%p|%T|%t|100%%\t\\\0\n", "--from", "1"],
    );
    let t = record_times(&log)[1].expect("a time");
    let mut want = b"1|6|\xffthere|".to_vec();
    want.extend_from_slice(format!("{}|{t}|", rfc3339_nanos(t)).as_bytes());
    want.extend_from_slice(b"100%\t\\\0\n");
    assert_eq!(out, want);
    // A record without a time (version 1) prints `-` for both time tokens.
    let (_tmp, old) = new_log();
    common::v1::write_log(&old, &[b"v1".to_vec()], 4);
    assert_eq!(tail(&old, &["--template", "%s|%T|%t|%p"]).ok(), "0|-|-|v1");
    // Nothing is added after a record.
    assert_eq!(tail(&log, &["--template", "[%s]"]).ok(), "[0][1]");
    // Non-ASCII text in the template is kept.
    assert_eq!(
        tail(&log, &["--template", "é %s\\n", "-n", "1"]).ok(),
        "é 1\n"
    );
}

#[test]
fn tail_bad_templates_and_conflicting_formats_are_usage_errors() {
    let (_tmp, log) = log_with(&[b"a"]);
    for (template, says) in [
        ("%x", "unknown token %x"),
        ("%s %", "ends with a lone %"),
        (r"\q", r"unknown escape \q"),
        (r"%s\", r"ends with a lone \"),
    ] {
        let out = tail(&log, &["--template", template]);
        let err = out.usage_error();
        assert!(err.starts_with("applog: error: "), "{template}: {err}");
        assert!(err.contains(says), "{template}: {err}");
    }
    for extra in [
        &["-0", "--format", "json"][..],
        &["-0", "--template", "%s"],
        &["--template", "%s", "--format", "hex"],
        &["--format", "raw1"],
    ] {
        let out = tail(&log, extra);
        assert!(
            out.usage_error().starts_with("applog: error: "),
            "{extra:?}: {out:?}"
        );
    }
}
