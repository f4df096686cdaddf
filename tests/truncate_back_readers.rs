//! Readers and tailers meet a cut of the log's end (`Writer::truncate_back`): records before
//! it stay readable (borrows included), a reader past it gets `Error::Rewound`, never a
//! removed record.

use applog::{Error, Options, Reader, Tailer, Writer};
use std::path::Path;

fn opts() -> Options {
    Options::new().segment_pages(1)
}

fn payload(i: u64) -> Vec<u8> {
    let mut r = format!("old {i:04}").into_bytes();
    r.resize(100, b'.');
    r
}

fn log_with(dir: &Path, n: u64) -> Writer {
    let mut w = Writer::open(dir, opts()).unwrap();
    for i in 0..n {
        w.append(&payload(i)).unwrap();
    }
    w
}

#[test]
fn a_reader_before_the_cut_keeps_its_borrow_and_reads_on_into_the_new_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    let mut r = Reader::open(dir).unwrap();
    for i in 0..20 {
        assert_eq!(r.next().unwrap().unwrap().seq(), i);
    }
    let held = r.next().unwrap().unwrap();
    let copy = held.data().to_vec();
    w.truncate_back(42).unwrap();
    w.append(b"new 42").unwrap();
    // The borrow still shows the same bytes: nothing was written over them.
    assert_eq!(held.data(), &copy[..]);
    assert_eq!(held.data(), &payload(20)[..]);
    for i in 21..42 {
        let rec = r.next().unwrap().unwrap();
        assert_eq!((rec.seq(), rec.data()), (i, &payload(i)[..]));
    }
    let rec = r.next().unwrap().unwrap();
    assert_eq!((rec.seq(), rec.data()), (42, &b"new 42"[..]));
    assert!(r.next().unwrap().is_none());
}

#[test]
fn a_reader_that_stopped_exactly_at_the_cut_reads_the_new_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    let mut r = Reader::open(dir).unwrap();
    for i in 0..42 {
        assert_eq!(r.next().unwrap().unwrap().seq(), i);
    }
    w.truncate_back(42).unwrap();
    assert!(r.next().unwrap().is_none());
    w.append(b"new 42").unwrap();
    let rec = r.next().unwrap().unwrap();
    assert_eq!((rec.seq(), rec.data()), (42, &b"new 42"[..]));
}

#[test]
fn a_reader_past_the_cut_in_the_same_segment_is_rewound() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    let mut r = Reader::open(dir).unwrap();
    for i in 0..=99 {
        assert_eq!(r.next().unwrap().unwrap().seq(), i);
    }
    // Reader in the newest segment, past the cut in that same segment.
    w.truncate_back(98).unwrap();
    w.append(b"new 98").unwrap();
    let err = r.next().unwrap_err();
    assert!(matches!(err, Error::Rewound { seq: 100, .. }), "{err:?}");
    // It stays rewound: it never yields a removed record, nor a new one as if it followed.
    assert!(matches!(r.next(), Err(Error::Rewound { .. })));
    // Seeking back below the cut goes on with the log as it is now.
    r.seek(97).unwrap();
    assert_eq!(r.next().unwrap().unwrap().data(), &payload(97)[..]);
    assert_eq!(r.next().unwrap().unwrap().data(), b"new 98");
}

#[test]
fn a_reader_in_a_segment_wholly_past_the_cut_is_rewound() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    let mut r = Reader::open(dir).unwrap();
    for i in 0..90 {
        assert_eq!(r.next().unwrap().unwrap().seq(), i);
    }
    w.truncate_back(10).unwrap();
    // Even once the log grows past where the reader was, in new files of the same names.
    for i in 10..100 {
        w.append(format!("new {i}").as_bytes()).unwrap();
    }
    let err = r.next().unwrap_err();
    assert!(matches!(err, Error::Rewound { seq: 90, .. }), "{err:?}");
    assert!(err.to_string().contains("cut"), "{err}");
}

#[test]
fn a_reader_at_a_segment_replaced_by_a_cut_at_its_first_record_reads_the_new_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    let base = applog::verify(dir).unwrap().segments[2].base_seq;
    let mut r = Reader::open(dir).unwrap();
    for i in 0..=base {
        assert_eq!(r.next().unwrap().unwrap().seq(), i);
    }
    // Past the cut by one record: rewound.
    w.truncate_back(base).unwrap();
    assert!(matches!(r.next(), Err(Error::Rewound { .. })));
    // A reader that had read up to the base goes on into the new file of the same name.
    let mut r = Reader::open(dir).unwrap();
    for i in 0..base {
        assert_eq!(r.next().unwrap().unwrap().seq(), i);
    }
    w.append(b"again").unwrap();
    let rec = r.next().unwrap().unwrap();
    assert_eq!((rec.seq(), rec.data()), (base, &b"again"[..]));
}

#[test]
fn a_tailer_waiting_at_the_end_is_told_of_the_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let mut w = log_with(&dir, 50);
    let mut t = Tailer::open(&dir, 0).unwrap();
    for i in 0..50 {
        assert_eq!(t.next().unwrap().seq(), i);
    }
    let waiting = std::thread::spawn(move || match t.next() {
        Ok(rec) => Ok(rec.seq()),
        Err(e) => Err(e),
    });
    // Whether the tailer is asleep yet or not, it must end with the cut, never a record.
    w.truncate_back(45).unwrap();
    let got = waiting.join().unwrap();
    assert!(
        matches!(got, Err(Error::Rewound { seq: 50, .. })),
        "{got:?}"
    );
}

#[test]
fn verify_reports_the_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    w.truncate_back(42).unwrap();
    drop(w);
    let v = applog::verify(dir).unwrap();
    assert!(v.is_clean(), "{:?}", v.corruptions);
    assert_eq!(v.next_seq, 42);
    let cut: Vec<_> = v.segments.iter().filter(|s| s.cut_at.is_some()).collect();
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].base_seq + cut[0].records, 42);
    assert_eq!(cut[0].cut_at, Some(cut[0].data_end));
    assert!(v.removed_by_cut.is_empty());
}

#[test]
fn applog_verify_prints_the_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut w = log_with(dir, 100);
    w.truncate_back(42).unwrap();
    drop(w);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_applog"))
        .arg("verify")
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("cut ") && l.ends_with("the log's end was cut at seq 42")),
        "{text}"
    );
    assert!(text.contains("next seq   42"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_applog"))
        .args(["verify", "--format", "json"])
        .arg(dir)
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["cuts"][0]["seq"], 42, "{json}");
    assert_eq!(
        json["removed_by_cut"].as_array().map(Vec::len),
        Some(0),
        "{json}"
    );
}
