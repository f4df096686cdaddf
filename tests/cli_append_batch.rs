//! `applog append` from a pipe appends the records that arrive together as one batch.
//!
//! Fault model: many lines (or NUL-terminated records) arriving at once; a line too long for
//! a record in the middle of them. Pass criteria: every record is appended in order, byte
//! for byte; records read in one go share one `append_batch` (observable: a batch's records
//! carry one time); the records before an overlong line are appended and synced, the tool
//! exits 1 naming the line.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;

use applog::Reader;
use common::cli::*;

/// Every record's bytes and time.
fn records(log: &std::path::Path) -> Vec<(Vec<u8>, Option<u64>)> {
    let mut r = Reader::open(log).expect("open reader");
    let mut v = Vec::new();
    while let Some(rec) = r.next().expect("read") {
        v.push((rec.data().to_vec(), rec.time_ns()));
    }
    v
}

#[test]
fn lines_piped_together_are_appended_in_batches_in_order() {
    for (delimiter, flag) in [(b'\n', None), (b'\0', Some("--nul"))] {
        let (_tmp, log) = new_log();
        let lines: Vec<String> = (0..5000).map(|i| format!("record {i}")).collect();
        let mut input = Vec::new();
        for l in &lines {
            input.extend_from_slice(l.as_bytes());
            input.push(delimiter);
        }
        let mut args = vec![OsStr::new("append"), log_arg(&log)];
        args.extend(flag.map(OsStr::new));
        assert_eq!(run_with_stdin(&args, &input).ok(), "");
        let got = records(&log);
        assert_eq!(got.len(), lines.len());
        for (i, (data, _)) in got.iter().enumerate() {
            assert_eq!(data, lines[i].as_bytes(), "record {i}");
        }
        // One time per batch (each append reads the clock): far fewer times than records.
        let times: BTreeSet<Option<u64>> = got.iter().map(|r| r.1).collect();
        assert!(
            times.len() * 10 < got.len(),
            "{} distinct times for {} records: not batched",
            times.len(),
            got.len()
        );
    }
}

#[test]
fn an_overlong_line_after_a_batch_keeps_the_lines_before_it() {
    let (_tmp, log) = new_log();
    let mut input = b"a\nb\nc\n".to_vec();
    input.extend(vec![b'x'; 100_000]);
    input.extend_from_slice(b"\nd\n");
    let out = run_with_stdin(
        &[
            OsStr::new("append"),
            log_arg(&log),
            OsStr::new("--segment-pages"),
            OsStr::new("1"),
        ],
        &input,
    );
    assert_eq!(out.code, 1, "{out:?}");
    let err = &out.stderr;
    assert!(
        err.contains("line 4 of standard input is longer than the"),
        "{err}"
    );
    assert!(err.contains("appended and synced 3 records"), "{err}");
    let got: Vec<Vec<u8>> = records(&log).into_iter().map(|r| r.0).collect();
    assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(applog::durable_seq(&log).unwrap(), 3);
}
