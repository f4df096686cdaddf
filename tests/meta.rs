//! A log's metadata (`Writer::set_meta`, `read_meta`): named values stored durably and
//! crash-atomically in `applog.meta`. Round trips across reopen, atomic multi-changes, the
//! limits, every crash point of a sequence of changes (through `FaultFs`), torn and damaged
//! files (layout in docs/metadata.md), and the shared and async writers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use applog::internals::{Call, Fault, FaultFs};
use applog::{read_meta, Error, Meta, Options, SharedWriter, Writer, META_FILE};

/// Offsets of the documented layout: the header, slot A, slot B.
const SLOT_A: usize = 4096;
const SLOT_B: usize = 8192;
const FILE_LEN: usize = 12288;

fn open(dir: &Path) -> Writer {
    Writer::open(dir, Options::default()).unwrap()
}

fn pairs(meta: &Meta) -> Vec<(String, Vec<u8>)> {
    meta.iter()
        .map(|(n, v)| (n.to_owned(), v.to_vec()))
        .collect()
}

fn corrupt_offset(e: &Error, path: &Path) -> u64 {
    match e {
        Error::MetaCorrupt {
            path: p, offset, ..
        } => {
            assert_eq!(p, path);
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            assert!(text.contains(&format!("byte offset {offset}")), "{text}");
            *offset
        }
        other => panic!("expected MetaCorrupt, got {other:?}"),
    }
}

#[test]
fn set_get_and_remove_round_trip_across_close_and_reopen() {
    let d = tempfile::tempdir().unwrap();
    let mut w = open(d.path());
    assert!(w.meta().is_empty());
    w.set_meta("vote", Some(b"term 3, node 1")).unwrap();
    w.set_meta("purged", Some(b"")).unwrap();
    assert_eq!(w.meta().get("vote"), Some(&b"term 3, node 1"[..]));
    assert_eq!(w.meta().len(), 2);
    w.close().unwrap();

    let mut w = open(d.path());
    assert_eq!(w.meta().get("vote"), Some(&b"term 3, node 1"[..]));
    assert_eq!(w.meta().get("purged"), Some(&b""[..]));
    w.set_meta("vote", None).unwrap();
    w.set_meta("absent", None).unwrap(); // removing a missing name is no error
    drop(w); // without close: the change is durable already

    let w = open(d.path());
    assert_eq!(pairs(w.meta()), [("purged".to_owned(), Vec::new())]);
    assert_eq!(read_meta(d.path()).unwrap(), *w.meta());
}

#[test]
fn set_meta_many_applies_every_change_in_order() {
    let d = tempfile::tempdir().unwrap();
    let mut w = open(d.path());
    w.set_meta("a", Some(b"1")).unwrap();
    w.set_meta_many(&[
        ("b", Some(b"2")),
        ("a", None),
        ("c", Some(b"first")),
        ("c", Some(b"last")),
    ])
    .unwrap();
    let want = [
        ("b".to_owned(), b"2".to_vec()),
        ("c".into(), b"last".to_vec()),
    ];
    assert_eq!(pairs(w.meta()), want);
    drop(w);
    assert_eq!(pairs(&read_meta(d.path()).unwrap()), want);
}

#[test]
fn a_log_that_never_stored_metadata_has_no_file_and_reads_empty() {
    let d = tempfile::tempdir().unwrap();
    let mut w = open(d.path());
    w.append(b"x").unwrap();
    w.set_meta("nothing", None).unwrap();
    assert!(!d.path().join(META_FILE).exists());
    assert_eq!(read_meta(d.path()).unwrap(), Meta::default());
    w.close().unwrap();
    assert!(read_meta(d.path()).unwrap().is_empty());

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), b"not a log").unwrap();
    assert!(matches!(
        read_meta(other.path()),
        Err(Error::NotALog { .. })
    ));
}

#[test]
fn read_meta_from_another_handle_sees_the_last_stored_value_while_the_writer_is_open() {
    let d = tempfile::tempdir().unwrap();
    let mut w = open(d.path());
    for term in 0..20u32 {
        w.set_meta("term", Some(&term.to_le_bytes())).unwrap();
        let seen = read_meta(d.path()).unwrap();
        assert_eq!(seen.get("term"), Some(&term.to_le_bytes()[..]));
        assert_eq!(seen, *w.meta());
    }
}

#[test]
fn too_large_metadata_is_refused_and_the_old_value_stays() {
    let d = tempfile::tempdir().unwrap();
    let mut w = open(d.path());
    w.set_meta("vote", Some(b"old")).unwrap();
    let big = vec![7u8; Meta::MAX_LEN];
    let e = w.set_meta("blob", Some(&big)).unwrap_err();
    match &e {
        Error::MetaTooLarge { path, len, max } => {
            assert_eq!(path, &d.path().join(META_FILE));
            assert_eq!(
                (*len, *max),
                (Meta::MAX_LEN + 5 + 4 + 5 + 4 + 3, Meta::MAX_LEN)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(META_FILE), "{e}");
    // Together with a change that fits: neither is made.
    let e = w.set_meta_many(&[("vote", Some(b"new")), ("blob", Some(&big))]);
    assert!(matches!(e, Err(Error::MetaTooLarge { .. })));
    assert_eq!(w.meta().get("vote"), Some(&b"old"[..]));
    assert_eq!(w.meta().get("blob"), None);
    drop(w);
    assert_eq!(
        pairs(&read_meta(d.path()).unwrap()),
        [("vote".to_owned(), b"old".to_vec())]
    );

    // Exactly the limit fits.
    let mut w = open(d.path());
    let fits = vec![1u8; Meta::MAX_LEN - (5 + 4 + 3) - 5 - 4];
    w.set_meta("blob", Some(&fits)).unwrap();
    assert_eq!(w.meta().encoded_len(), Meta::MAX_LEN);
    drop(w);
    assert_eq!(read_meta(d.path()).unwrap().get("blob"), Some(&fits[..]));
}

#[test]
fn empty_and_overlong_names_are_refused_and_nothing_changes() {
    let d = tempfile::tempdir().unwrap();
    let mut w = open(d.path());
    w.set_meta("k", Some(b"v")).unwrap();
    let long = "n".repeat(256);
    for bad in ["", long.as_str()] {
        let e = w
            .set_meta_many(&[("k", None), (bad, Some(b"x"))])
            .unwrap_err();
        assert!(matches!(e, Error::InvalidMetaName { .. }), "{e:?}");
    }
    assert_eq!(w.meta().get("k"), Some(&b"v"[..]));
    let longest = "é".repeat(127) + "x"; // 255 bytes of UTF-8
    w.set_meta(&longest, Some(b"ok")).unwrap();
    drop(w);
    assert_eq!(read_meta(d.path()).unwrap().get(&longest), Some(&b"ok"[..]));
}

/// A log whose metadata file holds "v1" in slot A (generation 1) and "v2" in slot B
/// (generation 2).
fn log_with_two_generations() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let mut w = open(d.path());
    w.set_meta("vote", Some(b"v1")).unwrap();
    w.set_meta("vote", Some(b"v2")).unwrap();
    drop(w);
    let path = d.path().join(META_FILE);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), FILE_LEN as u64);
    (d, path)
}

fn damage(path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    f(&mut bytes);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[test]
fn a_torn_write_of_the_newer_slot_reads_the_previous_value_and_the_next_write_replaces_it() {
    let (d, path) = log_with_two_generations();
    // Only slot B's first 28 bytes reached the disk (its head and the start of its first
    // entry), the rest is zeros.
    damage(&path, |b| b[SLOT_B + 28..].fill(0));
    assert_eq!(read_meta(d.path()).unwrap().get("vote"), Some(&b"v1"[..]));
    let mut w = open(d.path());
    assert_eq!(w.meta().get("vote"), Some(&b"v1"[..]));
    w.set_meta("vote", Some(b"v3")).unwrap();
    drop(w);
    // v3 went to the torn slot: slot A still holds v1.
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes[SLOT_A..SLOT_B].windows(2).any(|x| x == b"v1"));
    assert_eq!(read_meta(d.path()).unwrap().get("vote"), Some(&b"v3"[..]));

    // A slot half overwritten with the bytes of another change is torn too.
    let (d, path) = log_with_two_generations();
    damage(&path, |b| {
        let at = b[SLOT_B..].windows(2).position(|x| x == b"v2").unwrap();
        b[SLOT_B + at + 1] = b'9';
    });
    assert_eq!(read_meta(d.path()).unwrap().get("vote"), Some(&b"v1"[..]));
}

#[test]
fn a_flipped_byte_in_the_only_valid_slot_is_an_error_naming_file_and_offset() {
    let d = tempfile::tempdir().unwrap();
    let mut w = open(d.path());
    w.set_meta("vote", Some(b"only")).unwrap();
    drop(w);
    let path = d.path().join(META_FILE);
    let bytes = damage(&path, |b| {
        let at = b[SLOT_A..].windows(4).position(|x| x == b"only").unwrap();
        b[SLOT_A + at] ^= 0x20;
    });
    let e = read_meta(d.path()).unwrap_err();
    assert_eq!(corrupt_offset(&e, &path), SLOT_A as u64);
    let e = Writer::open(d.path(), Options::default()).unwrap_err();
    assert_eq!(corrupt_offset(&e, &path), SLOT_A as u64);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file was rewritten"
    );
}

#[test]
fn both_slots_bad_is_an_error_and_the_file_is_left_alone() {
    let (d, path) = log_with_two_generations();
    let bytes = damage(&path, |b| {
        b[SLOT_A + 8] ^= 1; // slot A's generation
        b[SLOT_B + 30] ^= 1; // slot B's first entry
    });
    let e = read_meta(d.path()).unwrap_err();
    assert_eq!(corrupt_offset(&e, &path), SLOT_A as u64);
    assert!(e.to_string().contains("neither slot is valid"), "{e}");
    let e = Writer::open(d.path(), Options::default()).unwrap_err();
    corrupt_offset(&e, &path);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_bad_magic_version_or_header_is_an_error_at_its_offset() {
    for (at, offset) in [(0, 0), (8, 8), (16, 16), (24, 24)] {
        let (d, path) = log_with_two_generations();
        damage(&path, |b| b[at] ^= 0x40);
        let e = read_meta(d.path()).unwrap_err();
        assert_eq!(corrupt_offset(&e, &path), offset, "byte {at}: {e}");
        let e = Writer::open(d.path(), Options::default()).unwrap_err();
        assert_eq!(corrupt_offset(&e, &path), offset);
    }
}

#[test]
fn a_truncated_or_empty_file_is_an_error_not_empty_metadata() {
    for len in [0, 100, SLOT_B, FILE_LEN - 1] {
        let (d, path) = log_with_two_generations();
        damage(&path, |b| b.truncate(len));
        let e = read_meta(d.path()).unwrap_err();
        assert_eq!(corrupt_offset(&e, &path), len as u64);
        assert!(
            e.to_string().contains("shorter than a metadata file"),
            "{e}"
        );
        assert!(Writer::open(d.path(), Options::default()).is_err());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len as u64);
    }
}

#[test]
fn the_shared_writer_stores_and_reads_metadata() {
    let d = tempfile::tempdir().unwrap();
    let w = SharedWriter::open(d.path(), Options::default()).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let w = w.clone();
            std::thread::spawn(move || {
                w.set_meta(&format!("t{i}"), Some(format!("{i}").as_bytes()))
                    .unwrap();
                w.append(b"r").unwrap();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    w.set_meta_many(&[("t0", None), ("x", Some(b"y"))]).unwrap();
    let m = w.meta();
    assert_eq!(m.len(), 4);
    assert_eq!(m.get("t3"), Some(&b"3"[..]));
    assert_eq!(m.get("t0"), None);
    w.close().unwrap();
    assert_eq!(read_meta(d.path()).unwrap(), m);
}

#[cfg(feature = "tokio")]
#[test]
fn the_async_writer_stores_and_reads_metadata() {
    use applog::tokio::AsyncWriter;
    let d = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let m = rt.block_on(async {
        let w = AsyncWriter::open(d.path(), Options::default())
            .await
            .unwrap();
        w.set_meta("vote", Some(b"term 9")).await.unwrap();
        w.set_meta_many(&[("purged", Some(b"41")), ("vote", Some(b"term 10"))])
            .await
            .unwrap();
        let e = w.set_meta("", Some(b"x")).await.unwrap_err();
        assert!(matches!(e, Error::InvalidMetaName { .. }));
        let m = w.meta();
        w.close().await.unwrap();
        m
    });
    assert_eq!(m.get("vote"), Some(&b"term 10"[..]));
    assert_eq!(m.get("purged"), Some(&b"41"[..]));
    assert_eq!(read_meta(d.path()).unwrap(), m);
}

/// A writer through a `FaultFs` rooted in `tmp/root`, whose log exists durably before the
/// changes start.
fn faulty(tmp: &Path) -> (Arc<FaultFs>, PathBuf, Writer) {
    let root = tmp.join("root");
    std::fs::create_dir(&root).unwrap();
    let fs = Arc::new(FaultFs::new(&root).unwrap());
    let log = root.join("log");
    let mut w = Writer::open(&log, Options::new().file_system(fs.clone())).unwrap();
    w.sync().unwrap();
    (fs, log, w)
}

#[test]
fn every_crash_point_of_a_sequence_of_changes_leaves_the_old_or_the_new_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    let (fs, _log, mut w) = faulty(tmp.path());
    fs.snapshot_each_call(&images);
    // history[i] is the metadata after change i; acked[i] the call count when it returned.
    let mut history = vec![Meta::default()];
    let mut acked = vec![fs.calls()];
    for i in 0..12u32 {
        let value = vec![u8::try_from(i).unwrap(); 100 * i as usize];
        match i % 3 {
            0 => w.set_meta("vote", Some(&value)).unwrap(),
            1 => w
                .set_meta_many(&[("purged", Some(&i.to_le_bytes())), ("big", Some(&value))])
                .unwrap(),
            _ => w
                .set_meta_many(&[("big", None), ("vote", Some(b"x"))])
                .unwrap(),
        }
        history.push(w.meta().clone());
        acked.push(fs.calls());
    }
    drop(w);
    let mut checked = 0;
    for entry in std::fs::read_dir(&images).unwrap() {
        let image = entry.unwrap().path();
        let call: u64 = image
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let k = acked.iter().rposition(|&a| a <= call).unwrap();
        let allowed = &history[k..(k + 2).min(history.len())];
        let log = image.join("log");
        let seen = read_meta(&log).unwrap_or_else(|e| panic!("image {call}: {e}"));
        if call == acked[k] {
            assert_eq!(
                seen, history[k],
                "image {call}, right after change {k} returned"
            );
        }
        assert!(
            allowed.contains(&seen),
            "image {call}: {seen:?} not in {allowed:?}"
        );
        let reopened = Writer::open(&log, Options::default()).unwrap();
        assert_eq!(*reopened.meta(), seen, "image {call}");
        checked += 1;
    }
    assert!(checked >= 12 * 2, "only {checked} crash points");
}

#[test]
fn a_failed_sync_keeps_the_old_metadata_and_a_retry_stores_the_new() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, log, mut w) = faulty(tmp.path());
    w.set_meta("vote", Some(b"v1")).unwrap();
    let n = fs.calls_of(Call::SyncData);
    fs.inject(Call::SyncData, n + 1, Fault::Fail(5));
    let e = w.set_meta("vote", Some(b"v2")).unwrap_err();
    assert!(e.to_string().contains(META_FILE), "{e}");
    assert_eq!(w.meta().get("vote"), Some(&b"v1"[..]));
    let image = tmp.path().join("image");
    fs.crash_image(&image).unwrap();
    assert_eq!(
        read_meta(image.join("log")).unwrap().get("vote"),
        Some(&b"v1"[..])
    );
    w.set_meta("vote", Some(b"v3")).unwrap();
    let image = tmp.path().join("image2");
    fs.crash_image(&image).unwrap();
    assert_eq!(
        read_meta(image.join("log")).unwrap().get("vote"),
        Some(&b"v3"[..])
    );
    drop(w);
    assert_eq!(read_meta(&log).unwrap().get("vote"), Some(&b"v3"[..]));
}

#[test]
fn a_failed_first_store_leaves_no_file_behind_and_a_retry_creates_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, log, mut w) = faulty(tmp.path());
    fs.inject(Call::Rename, fs.calls_of(Call::Rename) + 1, Fault::Fail(28));
    let e = w.set_meta("vote", Some(b"v1")).unwrap_err();
    assert!(e.to_string().contains(META_FILE), "{e}");
    assert!(w.meta().is_empty());
    let names: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("meta"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
    // The directory sync after the rename fails: the file is there, and the next store
    // syncs the directory again.
    fs.inject(
        Call::SyncDir,
        fs.calls_of(Call::SyncDir) + 1,
        Fault::Fail(5),
    );
    assert!(w.set_meta("vote", Some(b"v1")).is_err());
    w.set_meta("vote", Some(b"v2")).unwrap();
    let image = tmp.path().join("image");
    fs.crash_image(&image).unwrap();
    assert_eq!(
        read_meta(image.join("log")).unwrap().get("vote"),
        Some(&b"v2"[..])
    );
}

#[test]
fn a_copy_carries_the_metadata_over() {
    let d = tempfile::tempdir().unwrap();
    let (log, dest, plain) = (
        d.path().join("log"),
        d.path().join("copy"),
        d.path().join("plain"),
    );
    let mut w = open(&log);
    w.append(b"r").unwrap();
    w.set_meta_many(&[("vote", Some(b"term 4")), ("purged", Some(b"0"))])
        .unwrap();
    applog::copy(&log, &dest).unwrap();
    assert_eq!(read_meta(&dest).unwrap(), *w.meta());
    assert_eq!(*open(&dest).meta(), *w.meta());

    // A log without metadata gives a copy without a metadata file.
    let other = d.path().join("other");
    open(&other).append(b"r").unwrap();
    applog::copy(&other, &plain).unwrap();
    assert!(!plain.join(META_FILE).exists());

    // A damaged metadata file stops the copy, and nothing is made.
    drop(w);
    damage(&log.join(META_FILE), |b| b[0] ^= 1);
    let bad = d.path().join("bad");
    let e = applog::copy(&log, &bad).unwrap_err();
    assert!(matches!(e, Error::MetaCorrupt { .. }), "{e:?}");
    assert!(!bad.exists());
}

#[test]
fn a_directory_holding_only_a_metadata_file_is_not_a_log() {
    let d = tempfile::tempdir().unwrap();
    let (log, lone) = (d.path().join("log"), d.path().join("lone"));
    open(&log).set_meta("vote", Some(b"v")).unwrap();
    std::fs::create_dir(&lone).unwrap();
    std::fs::copy(log.join(META_FILE), lone.join(META_FILE)).unwrap();
    assert!(matches!(read_meta(&lone), Err(Error::NotALog { .. })));
    let e = Writer::open(&lone, Options::default()).unwrap_err();
    assert!(matches!(e, Error::NotALog { .. }), "{e:?}");
    let names: Vec<_> = std::fs::read_dir(&lone)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [META_FILE]);
}
