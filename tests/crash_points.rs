//! Every crash point, enumerated through the I/O seam.
//!
//! Fault model: a power cut right after any system call that changes durable state (create,
//! fallocate/ftruncate, pwrite, msync, directory fsync, unlink, rename), during rollover,
//! retention and recovery. `FaultFs` models the durable image apart from the live files and
//! writes it out after every call; each image is then opened as the log that crash would
//! leave. Also: a failed write-back whose pages the kernel left clean (fsyncgate) followed by
//! a reopen, and a sync that lies.
//!
//! Pass criterion: every image recovers (a writer opens it: no corruption is reported for a
//! crash), every record whose sync returned Ok before the crash point is there, and every
//! record there is byte for byte the one appended with its seq (no bad record is returned).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use applog::internals::{Call, Fault, FaultFs};
use applog::{Options, Reader, RecoveryMode, Writer};

fn payload(seq: u64) -> Vec<u8> {
    format!("r{seq}-")
        .repeat((seq % 40 + 1) as usize)
        .into_bytes()
}

/// Acknowledgements: after call number `.0`, every record below seq `.1` was durable (and,
/// with retention, every record below `.2` could be gone).
type Acks = Vec<(u64, u64, u64)>;

/// Reads every image in `images` (named by call number) and checks it against `acks`.
/// Returns how many images were checked.
fn check_images(images: &Path, acks: &Acks) -> usize {
    let mut n = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for image in dirs {
        let call: u64 = image
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let (durable, gone_below) = acks
            .iter()
            .filter(|a| a.0 <= call)
            .fold((0, 0), |acc, a| (acc.0.max(a.1), acc.1.max(a.2)));
        let log = image.join("log");
        if !log.exists() {
            assert_eq!(
                durable, 0,
                "image {call}: the log is gone but {durable} records were acknowledged"
            );
            continue;
        }
        // Reopen as a writer: recovery must accept every crash image.
        let w = Writer::open(&log, Options::new().segment_pages(1))
            .unwrap_or_else(|e| panic!("image {call}: recovery refused a crash image: {e}"));
        let next = w.next_seq();
        drop(w);
        let mut r = Reader::open(&log).unwrap();
        let mut seen = 0u64;
        let mut first = None;
        while let Some(rec) = r.next().unwrap_or_else(|e| panic!("image {call}: {e}")) {
            first.get_or_insert(rec.seq());
            assert_eq!(
                rec.data(),
                payload(rec.seq()),
                "image {call}: record {} differs",
                rec.seq()
            );
            seen = rec.seq() + 1;
        }
        assert_eq!(
            seen.max(first.unwrap_or(next)),
            next,
            "image {call}: reader and writer disagree"
        );
        assert!(
            next >= durable,
            "image {call}: {durable} records were acknowledged durable, {next} survived"
        );
        if durable > gone_below {
            let first = first.unwrap_or(next);
            assert!(
                first <= gone_below,
                "image {call}: records from {first} only; retention allowed removing below {gone_below}"
            );
        }
        n += 1;
    }
    n
}

/// A writer of one-page segments through `fs`.
fn writer(log: &Path, fs: &Arc<FaultFs>) -> Writer {
    Writer::open(log, Options::new().segment_pages(1).file_system(fs.clone())).unwrap()
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, Arc<FaultFs>) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let images = tmp.path().join("images");
    std::fs::create_dir(&root).unwrap();
    let fs = Arc::new(FaultFs::new(&root).unwrap());
    fs.snapshot_each_call(&images);
    (tmp, root, images, fs)
}

#[test]
fn every_crash_point_of_appends_rollovers_and_syncs_keeps_acknowledged_records() {
    let (_tmp, root, images, fs) = setup();
    let log = root.join("log");
    let mut acks = Acks::new();
    let mut w = writer(&log, &fs);
    for seq in 0..300u64 {
        assert_eq!(w.append(&payload(seq)).unwrap(), seq);
        if seq % 23 == 3 {
            w.sync().unwrap();
            acks.push((fs.calls(), seq + 1, 0));
        }
    }
    w.close().unwrap();
    acks.push((fs.calls(), 300, 0));
    let checked = check_images(&images, &acks);
    assert!(checked > 50, "only {checked} crash points");
    println!("crash points checked: {checked}");
}

#[test]
fn every_crash_point_of_retention_keeps_what_it_must() {
    let (_tmp, root, images, fs) = setup();
    let log = root.join("log");
    let mut acks = Acks::new();
    let mut w = writer(&log, &fs);
    for seq in 0..200u64 {
        w.append(&payload(seq)).unwrap();
    }
    w.sync().unwrap();
    acks.push((fs.calls(), 200, 0));
    let first = w.truncate_front(150).unwrap();
    assert!(first > 0 && first <= 150, "{first}");
    acks.push((fs.calls(), 200, first));
    for seq in 200..250u64 {
        w.append(&payload(seq)).unwrap();
    }
    w.sync().unwrap();
    acks.push((fs.calls(), 250, first));
    let first = w.truncate_front(240).unwrap();
    acks.push((fs.calls(), 250, first));
    w.close().unwrap();
    let checked = check_images(&images, &acks);
    assert!(checked > 20, "only {checked} crash points");
    println!("crash points checked: {checked}");
}

/// Records in `torn_log`: enough for four one-page segments, the third ending in a seal with
/// room after it (the test takes that seal away).
const TORN_RECORDS: u64 = 130;

/// A log whose newest segment ends in a torn tail (garbage after the last record), durably.
fn torn_log(root: &Path) -> PathBuf {
    let log = root.join("log");
    let mut w = Writer::open(&log, Options::new().segment_pages(1)).unwrap();
    for seq in 0..TORN_RECORDS {
        w.append(&payload(seq)).unwrap();
    }
    w.close().unwrap();
    let newest = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    let end = applog::verify(&log)
        .unwrap()
        .segments
        .last()
        .unwrap()
        .data_end;
    let mut bytes = std::fs::read(&newest).unwrap();
    let garbage = (bytes.len() - end as usize).min(24);
    assert!(
        garbage >= 8,
        "no room for a torn tail after the last record"
    );
    bytes[end as usize..end as usize + garbage].fill(0xAB);
    std::fs::write(&newest, bytes).unwrap();
    // And the seal before it lost (a crash between creating the newest segment and sealing
    // the one before), with its mark not yet covering it: recovery rewrites it too.
    let report = applog::verify(&log).unwrap();
    let before = &report.segments[report.segments.len() - 2];
    let mut bytes = std::fs::read(&before.path).unwrap();
    let at = before.data_end as usize;
    bytes[at..at + 8].fill(0);
    let mark = u32::try_from(applog::format::HEADER_LEN)
        .unwrap()
        .to_le_bytes();
    let header = applog::format::SegmentHeader::decode(&bytes).unwrap();
    let word = header.encode_synced_mark(u64::from(u32::from_le_bytes(mark)));
    bytes[48..56].copy_from_slice(&word.to_le_bytes());
    std::fs::write(&before.path, bytes).unwrap();
    log
}

#[test]
fn every_crash_point_of_recovery_recovers_again() {
    for explicit in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let log = torn_log(&root);
        let images = tmp.path().join("images");
        let fs = Arc::new(FaultFs::new(&root).unwrap());
        fs.snapshot_each_call(&images);
        if explicit {
            let report = applog::internals::recover_with(
                &log,
                RecoveryMode::CutTornTail,
                &(fs.clone() as _),
            )
            .unwrap();
            assert!(report.torn_tail.is_some());
        } else {
            let w = writer(&log, &fs);
            assert_eq!(w.next_seq(), TORN_RECORDS);
        }
        let acks = vec![(0, TORN_RECORDS, 0)];
        let checked = check_images(&images, &acks);
        assert!(checked >= 2, "only {checked} crash points");
        println!("crash points checked (explicit: {explicit}): {checked}");
    }
}

#[test]
fn a_reopen_after_a_failed_write_back_really_writes_what_it_then_calls_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let log = root.join("log");
    let fs = Arc::new(FaultFs::new(&root).unwrap());
    let opts = Options::new().file_system(fs.clone());
    let mut w = Writer::open(&log, opts.clone()).unwrap();
    w.append(&payload(0)).unwrap();
    w.sync().unwrap();
    for seq in 1..10 {
        w.append(&payload(seq)).unwrap();
    }
    // The write-back fails: the kernel marks the pages clean without writing them.
    fs.inject_all(Call::Msync, Fault::Fail(5));
    assert!(w.sync().is_err());
    // Poisoned, naming the file whose sync failed.
    assert!(matches!(
        w.sync(),
        Err(applog::Error::Poisoned { path: Some(_), .. })
    ));
    drop(w);
    fs.clear_faults();
    // Reopened, the first sync says records 0..10 are durable: they must be on "disk".
    let mut w = Writer::open(&log, opts).unwrap();
    assert_eq!(w.next_seq(), 10);
    w.sync().unwrap();
    drop(w);
    let image = tmp.path().join("image");
    fs.crash_image(&image).unwrap();
    let mut r = Reader::open(image.join("log")).unwrap();
    let mut n = 0;
    while let Some(rec) = r.next().unwrap() {
        assert_eq!(rec.data(), payload(rec.seq()));
        n += 1;
    }
    assert_eq!(
        n, 10,
        "a sync after reopening claimed records that never reached the disk"
    );
}

#[test]
fn a_sync_that_lies_is_seen_in_the_crash_image() {
    // The model itself: a lying msync persists nothing, so the image lacks what it claimed.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let log = root.join("log");
    let fs = Arc::new(FaultFs::new(&root).unwrap());
    let mut w = Writer::open(&log, Options::new().file_system(fs.clone())).unwrap();
    w.append(&payload(0)).unwrap();
    w.sync().unwrap();
    fs.inject_all(Call::Msync, Fault::Lie);
    w.append(&payload(1)).unwrap();
    w.sync().unwrap();
    drop(w);
    let image = tmp.path().join("image");
    fs.crash_image(&image).unwrap();
    let report = applog::verify(image.join("log")).unwrap();
    assert_eq!(report.next_seq, 1, "{report:?}");
}

#[test]
fn an_enospc_at_any_growth_step_is_an_error_and_loses_nothing() {
    for nth in 1..8 {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let log = root.join("log");
        let fs = Arc::new(FaultFs::new(&root).unwrap());
        let mut w = writer(&log, &fs);
        fs.inject(
            Call::Allocate,
            fs.calls_of(Call::Allocate) + nth,
            Fault::Fail(28),
        );
        let mut appended = 0;
        let mut failed = false;
        for seq in 0..200u64 {
            match w.append(&payload(appended)) {
                Ok(s) => {
                    assert_eq!(s, appended);
                    appended += 1;
                }
                Err(e) => {
                    assert!(e.is_no_space(), "{e}");
                    failed = true;
                }
            }
            let _ = seq;
        }
        assert!(
            failed,
            "the planned ENOSPC (allocate #{nth}) never happened"
        );
        w.close().unwrap();
        let got: Vec<_> = {
            let mut r = Reader::open(&log).unwrap();
            let mut v = Vec::new();
            while let Some(rec) = r.next().unwrap() {
                v.push(rec.data().to_vec());
            }
            v
        };
        assert_eq!(got.len() as u64, appended);
        for (i, d) in got.iter().enumerate() {
            assert_eq!(d, &payload(i as u64));
        }
    }
}

/// Every record of the log in `dir`, checked against `payload`.
fn records(dir: &Path) -> u64 {
    let mut r = Reader::open(dir).unwrap();
    let mut n = 0;
    while let Some(rec) = r.next().unwrap() {
        assert_eq!(rec.seq(), n);
        assert_eq!(rec.data(), payload(n));
        n += 1;
    }
    n
}

#[test]
fn every_crash_point_of_a_copy_leaves_no_copy_or_the_whole_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let log = root.join("log");
    let mut w = Writer::open(&log, Options::new().segment_pages(1)).unwrap();
    for seq in 0..80u64 {
        w.append(&payload(seq)).unwrap();
    }
    w.close().unwrap();
    let images = tmp.path().join("images");
    let fs = Arc::new(FaultFs::new(&root).unwrap());
    fs.snapshot_each_call(&images);
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let dyn_fs: Arc<dyn applog::internals::FileSystem> = fs.clone();
    let made = applog::internals::copy_with(&log, root.join("copy"), &dyn_fs, &cancel).unwrap();
    assert_eq!((made.first_seq, made.next_seq), (0, 80));
    let mut whole = 0;
    let mut none = 0;
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&images)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for image in &dirs {
        assert_eq!(
            records(&image.join("log")),
            80,
            "{}: the source changed",
            image.display()
        );
        let copy = image.join("copy");
        if copy.exists() {
            assert_eq!(records(&copy), 80, "{}: a partial copy", image.display());
            assert!(applog::verify(&copy).unwrap().is_clean());
            whole += 1;
        } else {
            none += 1;
        }
    }
    assert!(
        whole >= 1 && none > 10,
        "{whole} images with the copy, {none} without"
    );
    assert_eq!(records(&root.join("copy")), 80);
    println!("crash points checked: {}", dirs.len());
}

#[test]
fn a_copy_that_fails_to_publish_leaves_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let log = root.join("log");
    let mut w = Writer::open(&log, Options::new()).unwrap();
    w.append(b"a").unwrap();
    w.close().unwrap();
    let fs = Arc::new(FaultFs::new(&root).unwrap());
    fs.inject(Call::Rename, 1, Fault::Fail(5));
    let dyn_fs: Arc<dyn applog::internals::FileSystem> = fs.clone();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let err = applog::internals::copy_with(&log, root.join("copy"), &dyn_fs, &cancel).unwrap_err();
    assert!(matches!(err, applog::Error::Io { .. }), "{err:?}");
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("log")],
        "staging or copy left behind"
    );
    // Cancelled before it starts: Interrupted, nothing made.
    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    let err = applog::copy_cancellable(&log, root.join("copy2"), &cancel).unwrap_err();
    assert!(matches!(err, applog::Error::Interrupted), "{err:?}");
    assert!(!root.join("copy2").exists());
}
