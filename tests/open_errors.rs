//! Opening what is not a healthy, free log: a second writer in the same process, foreign files
//! and directories.
//!
//! Fault model: a second `Writer::open` while a writer holds the log; directories and files
//! that are not applog's; a segment too small for a record.
//! Pass criterion: each gives its typed error (P4), names the file, and changes nothing on
//! disk; the first writer's records stay intact. (No test here spawns a process: a child holds copies of the
//! parent's lock files between `fork` and `exec`, which would disturb the lock tests; the
//! cross-process lock test lives in `cross_process.rs`.)

mod common;

use std::io;

use applog::{Error, Options, Reader, Writer};
use common::*;

#[test]
fn second_writer_is_locked_out_and_changes_nothing() {
    let d = tempfile::tempdir().unwrap();
    // No pretoucher for the holder (whatever `APPLOG_PRETOUCH` says): its thread would grow the
    // segment in the background, and the files must change only if the second writer does.
    let mut w = Writer::open(d.path(), Options::new().pretouch(0)).unwrap();
    w.append(b"one").unwrap();
    let before = snapshot(d.path());
    let err = Writer::open(d.path(), Options::new().segment_pages(7)).unwrap_err();
    match &err {
        Error::Locked { lock_file, pid } => {
            assert_eq!(lock_file, &d.path().join(applog::LOCK_FILE));
            // flock conflicts between open file descriptions, even in one process: the
            // holder /proc/locks names is this process.
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(err.to_string().contains(applog::LOCK_FILE), "{err}");
    assert!(
        err.to_string()
            .ends_with(&format!(", held by process {}", std::process::id())),
        "{err}"
    );
    assert_eq!(snapshot(d.path()), before);
    assert!(applog::is_locked(d.path()).unwrap());
    // Readers take no lock.
    assert_eq!(read_all(d.path()).len(), 1);
    drop(w);
    assert!(!applog::is_locked(d.path()).unwrap());
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    assert_eq!(w.append(b"two").unwrap(), 1);
}

#[test]
fn foreign_segment_file_is_not_a_log() {
    let d = tempfile::tempdir().unwrap();
    let foreign = d.path().join(applog::segment_name(0));
    std::fs::write(&foreign, b"this is someone's spreadsheet, not a log").unwrap();
    let before = snapshot(d.path());
    for err in [
        Writer::open(d.path(), Options::new()).unwrap_err(),
        Reader::open(d.path()).unwrap_err(),
        applog::verify(d.path()).unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::NotALog { path, .. } if *path == foreign),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("00000000000000000000.seg"),
            "{err}"
        );
    }
    // Not even a lock file was created.
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn truncated_segment_header_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let seg = d.path().join(applog::segment_name(0));
    std::fs::write(&seg, b"\x89APPLOG\n\x01\x00").unwrap();
    let before = snapshot(d.path());
    let err = Writer::open(d.path(), Options::new()).unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { segment, offset: 0, reason } if *segment == seg && reason.contains("truncated")),
        "{err:?}"
    );
    assert!(Reader::open(d.path()).is_err());
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn directory_of_other_files_is_not_a_log() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("notes.txt"), b"hello").unwrap();
    let before = snapshot(d.path());
    let err = Writer::open(d.path(), Options::new()).unwrap_err();
    assert!(
        matches!(&err, Error::NotALog { path, .. } if path == d.path()),
        "{err:?}"
    );
    assert!(matches!(Reader::open(d.path()), Err(Error::NotALog { .. })));
    assert_eq!(
        snapshot(d.path()),
        before,
        "no lock file, no segment created"
    );
    // An empty directory is not a log for readers, but a writer makes one there.
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Reader::open(empty.path()),
        Err(Error::NotALog { .. })
    ));
    Writer::open(empty.path(), Options::new()).unwrap();
    Reader::open(empty.path()).unwrap();
}

#[test]
fn a_stray_file_is_ignored_but_a_misnamed_segment_is_named_in_the_error() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new()).unwrap();
    w.append(b"kept").unwrap();
    w.sync().unwrap();
    drop(w);
    // Another program's file: ignored by everyone, never changed.
    std::fs::write(d.path().join("notes.txt"), b"hello").unwrap();
    drop(Writer::open(d.path(), Options::new()).unwrap());
    assert_eq!(applog::verify(d.path()).unwrap().records, 1);
    assert_eq!(std::fs::read(d.path().join("notes.txt")).unwrap(), b"hello");
    // A `.seg` file that is not named like a segment: an error naming it, for every reader
    // and the writer, and nothing changed.
    std::fs::write(d.path().join("7.seg"), b"").unwrap();
    let before = snapshot(d.path());
    let errors = [
        Writer::open(d.path(), Options::new())
            .map(drop)
            .unwrap_err(),
        Reader::open(d.path()).map(drop).unwrap_err(),
        applog::verify(d.path()).map(drop).unwrap_err(),
    ];
    for err in errors {
        assert!(
            matches!(&err, Error::NotALog { path, .. } if path.ends_with("7.seg")),
            "{err:?}"
        );
        assert!(err.to_string().contains("7.seg"), "{err}");
    }
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn regular_file_and_missing_path() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(
        matches!(Writer::open(&file, Options::new()), Err(Error::NotALog { path, .. }) if path == file)
    );
    assert!(matches!(Reader::open(&file), Err(Error::NotALog { .. })));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
    let missing = d.path().join("missing");
    let err = Reader::open(&missing).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, path, .. } if source.kind() == io::ErrorKind::NotFound && *path == missing),
        "{err:?}"
    );
    assert!(matches!(applog::verify(&missing), Err(Error::Io { .. })));
    // The message carries the operating system's reason itself (a service logging `{e}` keeps
    // it), and `source()` does not repeat it.
    assert_eq!(
        err.to_string(),
        format!(
            "could not open log {}: {}",
            missing.display(),
            io::Error::from_raw_os_error(2)
        )
    );
    assert!(std::error::Error::source(&err).is_none());
    // Nor is a missing log "not locked".
    let err = applog::is_locked(&missing).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, path, .. } if source.kind() == io::ErrorKind::NotFound && *path == missing),
        "{err:?}"
    );
    assert!(matches!(
        applog::is_locked(&file),
        Err(Error::NotALog { .. })
    ));
    // A writer creates the log directory, but not a chain of missing parents (a typo).
    let nested = d.path().join("a/b/log");
    let err = Writer::open(&nested, Options::new()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(!d.path().join("a").exists());
}

#[test]
fn foreign_segment_starting_with_zeros_is_not_rewritten() {
    // Leading zeros must not make a foreign file look like a segment whose creation was cut
    // short (which recovery would re-initialise).
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(2)).unwrap();
    w.append(b"real").unwrap();
    drop(w);
    let foreign = d.path().join(applog::segment_name(1));
    let mut bytes = vec![0u8; 16];
    bytes.extend_from_slice(b"a foreign file whose first bytes are zeros, padded out to a page");
    bytes.resize(4096, 7);
    std::fs::write(&foreign, &bytes).unwrap();
    let before = snapshot(d.path());
    let err = Writer::open(d.path(), Options::new()).unwrap_err();
    // Indistinguishable from an applog header whose first bytes were zeroed, with data after
    // it: reported as damage at offset 0, never re-initialised.
    assert!(
        matches!(&err, Error::Corrupt { segment, offset: 0, .. } if *segment == foreign),
        "{err:?}"
    );
    assert_eq!(snapshot(d.path()), before);
}

#[test]
fn seek_before_the_first_record_is_a_typed_error() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(2)).unwrap();
    for i in 0..100u32 {
        w.append(&i.to_le_bytes().repeat(50)).unwrap();
    }
    // Drop the oldest segment by hand (what retention will do): its records are gone.
    std::fs::remove_file(d.path().join(applog::segment_name(0))).unwrap();
    let first = applog::verify(d.path()).unwrap().first_seq;
    assert!(first > 0);
    let mut r = Reader::open(d.path()).unwrap();
    assert_eq!(r.next().unwrap().unwrap().seq(), first);
    let err = r.seek(first - 1).unwrap_err();
    assert!(
        matches!(err, Error::SeqBeforeStart { seq, first_seq } if seq == first - 1 && first_seq == first),
        "{err:?}"
    );
    r.seek(first + 3).unwrap();
    assert_eq!(r.next().unwrap().unwrap().seq(), first + 3);
}

#[test]
fn max_record_len_is_the_same_limit_for_append_and_batch() {
    let d = tempfile::tempdir().unwrap();
    // The current segment is large; the writer is reopened with small segments.
    drop(Writer::open(d.path(), Options::new().segment_pages(8)).unwrap());
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    let max = w.max_record_len() as usize;
    let too_big = vec![1u8; max + 1];
    assert!(matches!(
        w.append(&too_big),
        Err(Error::RecordTooLarge { .. })
    ));
    assert!(matches!(
        w.append_batch(&[&too_big]),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(w.append(&vec![1u8; max]).unwrap(), 0);
}

#[test]
fn a_roll_never_touches_a_file_that_already_has_the_next_name() {
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    w.append(&[5u8; 4000]).unwrap(); // 64 + 4008 bytes used: a 100-byte record must roll to seq 1
    let squatter = d.path().join(applog::segment_name(1));
    std::fs::write(&squatter, b"someone else's file").unwrap();
    let err = w.append(&[7u8; 100]).unwrap_err();
    assert!(
        matches!(&err, Error::Io { path, source, .. } if *path == squatter && source.kind() == io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(std::fs::read(&squatter).unwrap(), b"someone else's file");
    assert!(w.append(&[8u8; 100]).is_err());
    assert_eq!(std::fs::read(&squatter).unwrap(), b"someone else's file");
    // Once the name is free, the same writer goes on.
    std::fs::remove_file(&squatter).unwrap();
    assert_eq!(w.append(&[7u8; 100]).unwrap(), 1);
    drop(w);
    assert_eq!(read_all(d.path()).len(), 2);
}

#[test]
fn a_segment_whose_header_is_being_written_is_not_ready_yet_for_readers() {
    // What a reader can see while the writer creates a segment: the file grown to a page, the
    // header fields partly written, the magic (stored last) still zero.
    let d = tempfile::tempdir().unwrap();
    let mut w = Writer::open(d.path(), Options::new().segment_pages(1)).unwrap();
    w.append(&[1u8; 4000]).unwrap();
    w.append(&[2u8; 100]).unwrap(); // does not fit: seals segment 0, creates segment 1
    drop(w);
    let full = std::fs::read(d.path().join(applog::segment_name(1))).unwrap();
    let next = d.path().join(applog::segment_name(1));
    let mut partial = vec![0u8; full.len()];
    partial[8..20].copy_from_slice(&full[8..20]); // version, page size, pages; no CRC yet
    std::fs::write(&next, &partial).unwrap();
    let mut r = Reader::open(d.path()).unwrap();
    assert_eq!(r.next().unwrap().unwrap().seq(), 0);
    assert!(r.next().unwrap().is_none(), "not ready is not an error");
    let report = applog::verify(d.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn an_empty_smaller_segment_limits_records_instead_of_bricking_the_log() {
    // Found by the recovery fuzzer. The newest segment is empty and smaller than the options
    // now ask for. A record too large for it used to seal it with a seal naming itself, then
    // fail to create the next segment (same name): no writer could open the log again and
    // readers spun forever on the seal.
    let d = tempfile::tempdir().unwrap();
    drop(Writer::open(d.path(), Options::new().segment_pages(1)).unwrap());
    let mut w = Writer::open(d.path(), Options::new().segment_pages(8)).unwrap();
    let max = w.max_record_len() as usize;
    assert_eq!(
        max as u64,
        page() - 80,
        "the empty 1-page segment is the limit (less its header and one frame header)"
    );
    assert!(matches!(
        w.append(&vec![1u8; max + 1]),
        Err(Error::RecordTooLarge { .. })
    ));
    assert_eq!(w.append(&vec![2u8; max]).unwrap(), 0);
    drop(w);
    // Once the newest segment holds a record, a larger one rolls to a segment of the new size.
    let mut w = Writer::open(d.path(), Options::new().segment_pages(8)).unwrap();
    assert_eq!(w.max_record_len(), 8 * page() - 80);
    assert_eq!(
        w.append(&vec![3u8; 5000]).unwrap(),
        1,
        "rolls to a new segment"
    );
    w.append(b"more").unwrap();
    drop(w);
    assert_eq!(read_all(d.path()).len(), 3);
    assert!(applog::verify(d.path()).unwrap().is_clean());
}
