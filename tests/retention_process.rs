//! Retention while a reader in another process holds the segments it removes.
//!
//! Fault model: `truncate_front` unlinks segment files that another process has mapped and is
//! reading. Pass criterion: the other process reads every record of the segment it holds,
//! byte for byte, after the file is gone (an unlinked file stays mapped; nothing is shrunk,
//! so no SIGBUS), then gets `SeqBeforeStart` naming the log's new first seq, and a fresh
//! reader in that process starts there.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use applog::{Error, Options, Reader, Writer};
use common::*;

fn len_of(seq: u64) -> usize {
    (seq as usize * 7) % 200
}

#[test]
fn a_reader_in_another_process_keeps_reading_a_removed_segment() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(2)).unwrap();
    for seq in 0..3000u64 {
        w.append(&payload(seq, len_of(seq))).unwrap();
    }
    w.sync().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "retention_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("APPLOG_RETENTION_DIR", d.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdin = child.stdin.take().unwrap();
    loop {
        let line = lines.next().expect("child output").unwrap();
        if line.contains("child: holding segment 0") {
            break;
        }
    }
    // Remove every segment but the active one, while the child holds the first.
    let first = w.truncate_front(u64::MAX).unwrap();
    assert!(!seg_path(d.path(), 0).exists());
    assert!(
        first > 1000,
        "several segments removed (first seq now {first})"
    );
    writeln!(stdin, "go").unwrap();
    drop(stdin);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let out = rest.join("\n");
    assert!(status.success(), "child failed:\n{out}");
    assert!(
        out.contains(&format!("child: new first seq {first}")),
        "{out}"
    );
}

#[test]
#[ignore = "run as a child process by a_reader_in_another_process_keeps_reading_a_removed_segment"]
fn retention_child() {
    let dir = std::env::var_os("APPLOG_RETENTION_DIR").expect("run by the parent test");
    let mut r = Reader::open(&dir).unwrap();
    assert_eq!(r.next().unwrap().unwrap().seq(), 0);
    println!("child: holding segment 0");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "go");
    let mut next = 1;
    let (seq, first_seq) = loop {
        match r.next() {
            Ok(Some(rec)) => {
                assert_eq!(rec.seq(), next);
                assert!(rec.data() == payload(next, len_of(next)), "record {next}");
                next += 1;
            }
            Ok(None) => panic!("stopped at {next} without an error"),
            Err(Error::SeqBeforeStart { seq, first_seq }) => break (seq, first_seq),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(seq, next, "the whole removed segment was read");
    println!("child: read {next} records of the removed segment");
    let mut fresh = Reader::open(&dir).unwrap();
    assert_eq!(fresh.next().unwrap().unwrap().seq(), first_seq);
    println!("child: new first seq {first_seq}");
}
