//! A log's identity (`log-id`): created with the log, stable for its life, new for a copy,
//! and a damaged identity file is an error for what needs it, not for the writer.

use std::path::Path;

use applog::{existing_log_id, log_id, Options, Writer, LOG_ID_FILE};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[test]
fn a_writer_creates_the_identity_with_the_log_and_keeps_it() {
    let tmp = tmp();
    let log = tmp.path().join("log");
    let mut w = Writer::open(&log, Options::new()).expect("create");
    let id = existing_log_id(&log)
        .expect("read")
        .expect("created with the log");
    assert_eq!(id.len(), 32, "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );
    w.append(b"one").expect("append");
    w.sync().expect("sync");
    drop(w);
    let w = Writer::open(&log, Options::new()).expect("reopen");
    drop(w);
    assert_eq!(
        log_id(&log).expect("log_id"),
        id,
        "the identity changed on reopen"
    );
    assert_eq!(existing_log_id(&log).expect("read"), Some(id));
}

#[test]
fn a_log_made_before_identities_gets_one_on_the_first_open() {
    let tmp = tmp();
    let log = tmp.path().join("log");
    drop(Writer::open(&log, Options::new()).expect("create"));
    std::fs::remove_file(log.join(LOG_ID_FILE)).expect("remove identity");
    assert_eq!(existing_log_id(&log).expect("read"), None);
    drop(Writer::open(&log, Options::new()).expect("reopen"));
    assert!(existing_log_id(&log).expect("read").is_some());
}

#[test]
fn two_logs_never_share_an_identity() {
    let tmp = tmp();
    let ids: Vec<String> = (0..8)
        .map(|i| {
            let log = tmp.path().join(format!("log{i}"));
            drop(Writer::open(&log, Options::new()).expect("create"));
            log_id(&log).expect("log_id")
        })
        .collect();
    for (i, a) in ids.iter().enumerate() {
        for b in &ids[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn a_copy_is_another_log_with_its_own_identity() {
    let tmp = tmp();
    let log = tmp.path().join("log");
    let mut w = Writer::open(&log, Options::new()).expect("create");
    w.append(b"x").expect("append");
    w.sync().expect("sync");
    drop(w);
    let copy = tmp.path().join("copy");
    applog::copy(&log, &copy).expect("copy");
    drop(Writer::open(&copy, Options::new()).expect("open copy"));
    let (a, b) = (log_id(&log).expect("id"), log_id(&copy).expect("id"));
    assert_ne!(
        a, b,
        "a copy shipped into the stream of its original would be deduplicated against it"
    );
}

fn damage(log: &Path) {
    std::fs::write(log.join(LOG_ID_FILE), b"not an id\n").expect("damage");
}

#[test]
fn a_damaged_identity_is_an_error_naming_the_file_and_is_left_alone() {
    let tmp = tmp();
    let log = tmp.path().join("log");
    drop(Writer::open(&log, Options::new()).expect("create"));
    damage(&log);
    // The writer still opens: appending does not need the identity.
    let mut w =
        Writer::open(&log, Options::new()).expect("a damaged identity does not stop the writer");
    w.append(b"x").expect("append");
    drop(w);
    for e in [
        log_id(&log).unwrap_err(),
        existing_log_id(&log).unwrap_err(),
    ] {
        let text = e.to_string();
        assert!(text.contains(LOG_ID_FILE), "{text}");
    }
    // Nobody replaced it with a new identity: that would ship the log as another one.
    assert_eq!(
        std::fs::read(log.join(LOG_ID_FILE)).expect("read"),
        b"not an id\n"
    );
}
