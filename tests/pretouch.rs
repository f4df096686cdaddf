//! The pretoucher (`Options::pretouch`): a thread that grows the active segment's file one
//! page at a time ahead of the data and faults the new pages in.
//!
//! Fault model: the pretoucher racing the writer's own growth, rollovers into small segments
//! (a lead larger than a segment), records of every size (several pages, a whole segment),
//! cuts of the log's end (`truncate_back`), resets, a writer dropped without a sync (a crash
//! of the process as far as the files go), a full tmpfs; file systems with and without the
//! automatic default (tmpfs on, ext4 off, ramfs without fallocate). Pass criteria: no SIGBUS
//! (P4); every segment file is at least as long as its data and never more than the lead
//! past it (the growth rule's bound); the log reads back exactly (P1, P3), `verify` is clean
//! on the live log and after the writer is gone (zero pages after the data are a clean end);
//! a full disk is `Error::NoSpace` from `append`, and the log recovers every record appended
//! before it.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use applog::{Error, Options, Writer};
use common::*;

const LEAD: u32 = 8;
/// The automatic lead on tmpfs, as the guide documents it.
const TMPFS_LEAD: u32 = 32;

/// Checks the bound on every segment: at least the data's pages, at most `lead` pages more.
/// Returns whether some segment is grown ahead of its data.
fn check_bound(log: &Path, lead: u32) -> bool {
    let page = page();
    let report = applog::verify(log).unwrap();
    assert!(report.is_clean(), "{report:?}");
    let mut ahead = false;
    for s in &report.segments {
        let data = s.data_end.next_multiple_of(page);
        assert!(
            s.file_size >= data && s.file_size <= data + u64::from(lead) * page,
            "{} is {} bytes long for {} bytes of frames (lead {lead} pages)",
            s.path.display(),
            s.file_size,
            s.data_end
        );
        ahead |= s.file_size > data;
    }
    ahead
}

/// As [`check_bound`], for a log whose end was cut: a segment keeps the length it had
/// before the cut (`before`) when that is longer (a file is never shrunk).
fn check_bound_after_cut(log: &Path, lead: u32, before: &BTreeMap<PathBuf, u64>) {
    let page = page();
    let report = applog::verify(log).unwrap();
    assert!(report.is_clean(), "{report:?}");
    for s in &report.segments {
        let data = s.data_end.next_multiple_of(page);
        let kept = before.get(&s.path).copied().unwrap_or(0);
        assert!(
            s.file_size >= data && s.file_size <= kept.max(data + u64::from(lead) * page),
            "{} is {} bytes long for {} bytes of frames (lead {lead} pages, {kept} before the cut)",
            s.path.display(),
            s.file_size,
            s.data_end
        );
    }
}

fn sizes(log: &Path) -> BTreeMap<PathBuf, u64> {
    applog::verify(log)
        .unwrap()
        .segments
        .into_iter()
        .map(|s| (s.path, s.file_size))
        .collect()
}

/// Waits (up to a minute: no speed is assumed) until some segment is grown ahead of its data.
fn wait_until_ahead(log: &Path, lead: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        // (A log another process is still creating may not verify yet.)
        if applog::verify(log).is_ok_and(|r| !r.segments.is_empty()) && check_bound(log, lead) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Appends records of every shape, checking the bound after each; returns their lengths.
fn append_shapes(w: &mut Writer, log: &Path, segment_pages: u32, lead: u32) -> Vec<usize> {
    let page = page() as usize;
    let max = page * segment_pages as usize - 80;
    let mut lens = Vec::new();
    for i in 0..400 {
        lens.push(match i % 10 {
            0 => 0,
            1 => page,
            2 => 3 * page + 5,
            3 if i % 50 == 3 => max,
            _ => 100 + i,
        });
    }
    let first = w.next_seq();
    for (i, &len) in lens.iter().enumerate() {
        let seq = first + i as u64;
        assert_eq!(w.append(&payload(seq, len)).unwrap(), seq);
        if i % 7 == 0 {
            check_bound(log, lead);
        }
    }
    let batch: Vec<Vec<u8>> = (0..16).map(|k| payload(first + 400 + k, 128)).collect();
    w.append_batch(&batch).unwrap();
    lens.extend([128; 16]);
    check_bound(log, lead);
    lens
}

fn check_records(log: &Path, lens: &[usize]) {
    let got = read_all(log);
    assert_eq!(got.len(), lens.len());
    for (i, (seq, data)) in got.iter().enumerate() {
        assert_eq!(*seq, i as u64);
        assert_eq!(data, &payload(i as u64, lens[i]), "record {i}");
    }
}

#[test]
fn a_pretouched_log_stays_within_the_lead_and_reads_back_exactly() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let opts = Options::new().segment_pages(64).pretouch(LEAD);
    let mut w = Writer::open(&log, opts.clone()).unwrap();
    let lens = append_shapes(&mut w, &log, 64, LEAD);
    assert!(
        wait_until_ahead(&log, LEAD),
        "the pretoucher grows the file ahead"
    );
    // The writer goes without a sync: the zeros past its data are a clean end.
    drop(w);
    check_bound(&log, LEAD);
    let report = applog::verify(&log).unwrap();
    assert!(report.torn_tail.is_none(), "{report:?}");
    check_records(&log, &lens);
    let mut w = Writer::open(&log, opts).unwrap();
    assert_eq!(w.append(b"after").unwrap(), lens.len() as u64);
}

#[test]
fn a_lead_longer_than_a_segment_stops_at_its_reservation_across_rollovers() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let mut w = Writer::open(&log, Options::new().segment_pages(4).pretouch(64)).unwrap();
    let lens = append_shapes(&mut w, &log, 4, 64);
    let reservation = 4 * page();
    assert!(applog::verify(&log)
        .unwrap()
        .segments
        .iter()
        .all(|s| s.file_size <= reservation));
    w.close().unwrap();
    check_records(&log, &lens);
}

#[test]
fn truncate_back_and_reset_under_a_pretoucher_keep_the_log_exact() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let mut w = Writer::open(&log, Options::new().segment_pages(16).pretouch(LEAD)).unwrap();
    let mut lens = append_shapes(&mut w, &log, 16, LEAD);
    // Cut the end back into an older segment, then inside the active one.
    for cut in [lens.len() as u64 / 2, lens.len() as u64 / 2 - 3] {
        let before = sizes(&log);
        w.truncate_back(cut).unwrap();
        lens.truncate(cut as usize);
        check_bound_after_cut(&log, LEAD, &before);
        for seq in cut..cut + 100 {
            w.append(&payload(seq, 200)).unwrap();
            lens.push(200);
        }
        check_bound_after_cut(&log, LEAD, &before);
        check_records(&log, &lens);
    }
    w.reset(10_000).unwrap();
    for seq in 10_000..10_300 {
        assert_eq!(w.append(&payload(seq, 150)).unwrap(), seq);
    }
    check_bound(&log, LEAD);
    drop(w);
    let got = read_all(&log);
    assert_eq!(got.len(), 300);
    assert!(got.iter().all(|(seq, data)| *data == payload(*seq, 150)));
    assert!(applog::verify(&log).unwrap().is_clean());
}

#[test]
fn a_full_tmpfs_under_a_pretoucher_is_no_space_and_recovers_every_record() {
    let _serial = serial();
    let m = match mount::tmpfs(2 << 20) {
        Ok(m) => m,
        Err(why) => return skip(format_args!("cannot mount a tmpfs here: {why}")),
    };
    let log = m.dir.join("log");
    let mut w = Writer::open(&log, Options::new().segment_pages(64).pretouch(LEAD)).unwrap();
    let mut appended = 0u64;
    let err = loop {
        match w.append(&payload(appended, 300)) {
            Ok(seq) => {
                assert_eq!(seq, appended);
                appended += 1;
            }
            Err(e) => break e,
        }
        assert!(appended < 1_000_000, "the tmpfs never filled");
    };
    assert!(matches!(err, Error::NoSpace { .. }), "{err}");
    assert!(
        err.to_string().contains(&m.dir.display().to_string()),
        "{err}"
    );
    // Still full: still an error, never a signal.
    assert!(w.append(&payload(appended, 300)).is_err());
    drop(w);
    let got = read_all(&log);
    assert_eq!(got.len() as u64, appended);
    assert!(got.iter().all(|(seq, data)| *data == payload(*seq, 300)));
    check_bound(&log, LEAD);
}

/// Appends small records with the automatic choice; returns whether a segment grew ahead.
fn grows_ahead_by_default(dir: &Path) -> bool {
    let log = dir.join("log");
    let mut w = Writer::open(&log, Options::new()).unwrap();
    for seq in 0..2000 {
        w.append(&payload(seq, 128)).unwrap();
    }
    // Off, the file is exactly its data's pages at once; on, it is ahead within a minute.
    let ahead = wait_until_ahead_or_settled(&log);
    w.close().unwrap();
    ahead
}

/// With the automatic lead: whether the file grows ahead (polled for up to a minute when it
/// could; a file exactly as long as its data with no thread to grow it stays so).
fn wait_until_ahead_or_settled(log: &Path) -> bool {
    if std::env::var_os("APPLOG_PRETOUCH").is_some() {
        return wait_until_ahead(log, 64);
    }
    let tmpfs = {
        let st = rustix::fs::statfs(log).unwrap();
        #[allow(clippy::unnecessary_cast)]
        let t = st.f_type as i64 & 0xFFFF_FFFF;
        t == 0x0102_1994
    };
    if tmpfs {
        wait_until_ahead(log, TMPFS_LEAD)
    } else {
        check_bound(log, 0)
    }
}

#[test]
fn the_automatic_lead_is_on_for_tmpfs_and_off_for_ext4_and_ramfs() {
    if std::env::var_os("APPLOG_PRETOUCH").is_some() {
        return skip("APPLOG_PRETOUCH overrides the automatic choice");
    }
    let _serial = serial();
    match mount::tmpfs(64 << 20) {
        Ok(m) => assert!(grows_ahead_by_default(&m.dir), "tmpfs: on"),
        Err(why) => skip(format_args!("cannot mount a tmpfs here: {why}")),
    }
    match mount::ext4(64 << 20) {
        Ok(m) => assert!(!grows_ahead_by_default(&m.dir), "ext4: off"),
        Err(why) => skip(format_args!("cannot mount an ext4 image here: {why}")),
    }
    match mount::ramfs() {
        Ok(m) => assert!(!grows_ahead_by_default(&m.dir), "ramfs: off"),
        Err(why) => skip(format_args!("cannot mount a ramfs here: {why}")),
    }
}

#[test]
fn pretouch_on_a_file_system_without_fallocate_grows_with_zeros_within_the_lead() {
    let _serial = serial();
    let m = match mount::ramfs() {
        Ok(m) => m,
        Err(why) => return skip(format_args!("cannot mount a ramfs here: {why}")),
    };
    let log = m.dir.join("log");
    let mut w = Writer::open(&log, Options::new().segment_pages(64).pretouch(LEAD)).unwrap();
    let lens = append_shapes(&mut w, &log, 64, LEAD);
    assert!(wait_until_ahead(&log, LEAD));
    w.close().unwrap();
    check_records(&log, &lens);
}

/// `applog append` started with `APPLOG_PRETOUCH` set (any program using the automatic
/// choice): its segment grows ahead of the data while it waits for input, within the lead; a
/// value that is not a number is ignored with a warning, not an error.
#[test]
fn the_environment_variable_sets_the_lead_of_a_running_program() {
    use std::io::Write;
    use std::process::Stdio;
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("log");
    let mut child = common::cli::applog()
        .args([std::ffi::OsStr::new("append"), log.as_os_str()])
        .env("APPLOG_PRETOUCH", "16")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n").unwrap();
    stdin.flush().unwrap();
    assert!(wait_until_ahead(&log, 16), "the segment grew ahead");
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    check_bound(&log, 16);
    assert_eq!(read_all(&log).len(), 2);

    let bogus = common::cli::applog()
        .args([
            std::ffi::OsStr::new("append"),
            log.as_os_str(),
            std::ffi::OsStr::new("three"),
        ])
        .env("APPLOG_PRETOUCH", "lots")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(bogus.status.success(), "{bogus:?}");
    let warned = String::from_utf8_lossy(&bogus.stderr);
    assert!(
        warned.contains("APPLOG_PRETOUCH is not a number of pages"),
        "{warned}"
    );
    assert_eq!(read_all(&log).len(), 3);
}
