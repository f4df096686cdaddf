//! `LogStore` from its public API: what survives a reopen, purge and truncate, the flush
//! callback, and errors.

use std::io;
use std::path::{Path, PathBuf};

use applog_raft::kv::{Request, TypeConfig};
use applog_raft::LogStore;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, RaftLogId, Vote};
use tokio::sync::oneshot;

type Store = LogStore<TypeConfig>;

fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(Request::Set {
            key: format!("key-{index}"),
            value: format!("value-{index}-of-term-{term}"),
        }),
    }
}

fn entries(term: u64, indexes: std::ops::Range<u64>) -> Vec<Entry<TypeConfig>> {
    indexes.map(|i| entry(term, i)).collect()
}

async fn open(dir: &Path) -> Store {
    Store::open(dir, applog::Options::default()).await.unwrap()
}

/// Appends and waits for the flush callback.
async fn append(store: &mut Store, batch: Vec<Entry<TypeConfig>>) {
    let (tx, rx) = oneshot::channel();
    store
        .append_entries(batch, move |r| drop(tx.send(r)))
        .await
        .unwrap();
    rx.await.unwrap().unwrap();
}

fn indexes(got: &[Entry<TypeConfig>]) -> Vec<u64> {
    got.iter().map(|e| e.get_log_id().index).collect()
}

#[tokio::test]
async fn entries_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, entries(1, 0..3)).await;
    append(&mut store, entries(1, 3..4)).await;
    append(&mut store, entries(2, 4..10)).await;
    store.close().await.unwrap();

    let mut store = open(dir.path()).await;
    let got = store.try_get_log_entries(..).await.unwrap();
    assert_eq!(got, [entries(1, 0..4), entries(2, 4..10)].concat());
    assert_eq!(
        indexes(&store.try_get_log_entries(3..=5).await.unwrap()),
        [3, 4, 5]
    );
    assert_eq!(
        indexes(&store.try_get_log_entries(8..).await.unwrap()),
        [8, 9]
    );
    assert!(store.try_get_log_entries(10..20).await.unwrap().is_empty());
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 9)));
    assert_eq!(state.last_purged_log_id, None);
    // The log continues where it was.
    append(&mut store, entries(2, 10..11)).await;
    assert_eq!(store.log().next_seq(), 11);
}

#[tokio::test]
async fn vote_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    assert_eq!(store.read_vote().await.unwrap(), None);
    store.save_vote(&Vote::new(3, 2)).await.unwrap();
    let mut committed = Vote::new(4, 1);
    committed.commit();
    store.save_vote(&committed).await.unwrap();
    drop(store); // without close: the vote was durable when save_vote returned

    let mut store = open(dir.path()).await;
    assert_eq!(store.read_vote().await.unwrap(), Some(committed));
}

#[tokio::test]
async fn purge_past_the_end_then_append_continues_at_purged_plus_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, entries(1, 0..5)).await;
    // What openraft does after installing a snapshot that is ahead of the log.
    store.purge(log_id(3, 2, 20)).await.unwrap();
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 2, 20)));
    assert_eq!(state.last_log_id, Some(log_id(3, 2, 20)));
    assert!(store.try_get_log_entries(..).await.unwrap().is_empty());
    assert_eq!(store.log().next_seq(), 21);

    append(&mut store, entries(3, 21..23)).await;
    store.close().await.unwrap();

    let mut store = open(dir.path()).await;
    assert_eq!(
        indexes(&store.try_get_log_entries(..).await.unwrap()),
        [21, 22]
    );
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(3, 2, 20)));
    assert_eq!(state.last_log_id, Some(log_id(3, 1, 22)));
    // applog's own reader sees the same log: it starts at 21.
    let mut reader = applog::Reader::open(dir.path()).unwrap();
    assert_eq!(reader.next().unwrap().map(|r| r.seq()), Some(21));
}

#[tokio::test]
async fn reads_never_return_purged_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, entries(1, 0..10)).await;
    store.purge(log_id(1, 1, 4)).await.unwrap();
    let mut reader = store.get_log_reader().await;
    assert_eq!(
        indexes(&store.try_get_log_entries(0..10).await.unwrap()),
        [5, 6, 7, 8, 9]
    );
    assert_eq!(
        indexes(&reader.try_get_log_entries(..=6).await.unwrap()),
        [5, 6]
    );
    assert!(reader.try_get_log_entries(2..5).await.unwrap().is_empty());
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 4)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 9)));
    // A purge below the last one changes nothing.
    store.purge(log_id(1, 1, 2)).await.unwrap();
    assert_eq!(
        store.get_log_state().await.unwrap().last_purged_log_id,
        Some(log_id(1, 1, 4))
    );
    store.close().await.unwrap();

    let mut store = open(dir.path()).await;
    assert_eq!(
        indexes(&store.try_get_log_entries(..).await.unwrap()),
        [5, 6, 7, 8, 9]
    );
    assert_eq!(
        store.get_log_state().await.unwrap().last_purged_log_id,
        Some(log_id(1, 1, 4))
    );
}

#[tokio::test]
async fn truncate_removes_the_end_inside_a_batch_and_appends_continue_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    let mut reader = store.get_log_reader().await;
    append(&mut store, entries(1, 0..10)).await;
    assert_eq!(reader.try_get_log_entries(..).await.unwrap().len(), 10);
    // Index 6 lies inside the batch 0..10.
    store.truncate(log_id(1, 1, 6)).await.unwrap();
    assert_eq!(
        indexes(&store.try_get_log_entries(..).await.unwrap()),
        [0, 1, 2, 3, 4, 5]
    );
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 1, 5))
    );
    append(&mut store, entries(2, 6..8)).await;
    // A reader that read the old end reads the new one.
    assert_eq!(
        reader.try_get_log_entries(5..).await.unwrap(),
        [entries(1, 5..6), entries(2, 6..8)].concat()
    );
    store.close().await.unwrap();

    let mut store = open(dir.path()).await;
    assert_eq!(
        store.try_get_log_entries(..).await.unwrap(),
        [entries(1, 0..6), entries(2, 6..8)].concat()
    );
}

#[tokio::test]
async fn an_append_that_would_leave_a_hole_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, entries(1, 0..3)).await;
    let (tx, mut rx) = oneshot::channel();
    let err = store
        .append_entries(entries(1, 5..6), move |r| drop(tx.send(r)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expected index 3, got 5"), "{err}");
    assert!(
        rx.try_recv().is_err(),
        "the callback was called for entries never written"
    );
    let gap = vec![entry(1, 3), entry(1, 5)];
    let err = store.append_entries(gap, |_| {}).await.unwrap_err();
    assert!(err.to_string().contains("expected index 4, got 5"), "{err}");
    assert_eq!(store.log().next_seq(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_callback_comes_only_once_the_entries_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    let mut waits = Vec::new();
    // Many appends in a row, none waited for: their callbacks share flushes.
    for i in 0..50 {
        let (tx, rx) = oneshot::channel();
        let at = dir.path().to_owned();
        store
            .append_entries(entries(1, i..i + 1), move |r| {
                // What the files say is durable, read when openraft would be told.
                drop(tx.send(r.map(|()| applog::durable_seq(&at))));
            })
            .await
            .unwrap();
        waits.push((i, rx));
    }
    for (index, rx) in waits {
        let durable = rx.await.unwrap().unwrap().unwrap();
        assert!(
            durable > index,
            "entry {index} reported flushed with only {durable} durable"
        );
    }
    // An empty append is told once everything before it is durable.
    let (tx, rx) = oneshot::channel();
    let at = dir.path().to_owned();
    store
        .append_entries(Vec::new(), move |r| {
            drop(tx.send(r.map(|()| applog::durable_seq(&at))))
        })
        .await
        .unwrap();
    assert_eq!(rx.await.unwrap().unwrap().unwrap(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_is_reported_to_the_callback_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    store
        .log()
        .shared()
        .set_sync_hook(|_| Err(io::Error::other("injected flush failure")));
    let (tx, rx) = oneshot::channel();
    store
        .append_entries(entries(1, 0..2), move |r| drop(tx.send(r)))
        .await
        .unwrap();
    let err = rx.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("injected flush failure"), "{err}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_corrupt_log_is_a_storage_error_naming_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, entries(1, 0..5)).await;
    store.close().await.unwrap();
    // Damage entry 2's bytes in the (synced) segment file.
    let segment = segment_files(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = bytes.windows(5).position(|w| w == b"key-2").unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();

    let outcome = match Store::open(dir.path(), applog::Options::default()).await {
        Err(e) => Err(e),
        Ok(mut store) => store.try_get_log_entries(..).await.map(drop),
    };
    let err = outcome.unwrap_err();
    let name = segment.file_name().unwrap().to_string_lossy().into_owned();
    assert!(err.to_string().contains(&name), "{err}");
}

#[tokio::test]
async fn a_record_that_is_not_an_entry_is_a_storage_error_naming_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = applog::Writer::open(dir.path(), applog::Options::default()).unwrap();
    log.append(&[0xff; 3]).unwrap();
    log.close().unwrap();
    let mut store = open(dir.path()).await;
    let err = store.try_get_log_entries(..).await.unwrap_err();
    assert!(err.to_string().contains("index 0"), "{err}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_new_log_starts_at_its_first_entry_and_purged_entries_are_not_stored_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, entries(1, 5..8)).await;
    assert_eq!(store.log().shared().first_seq(), 5);
    assert_eq!(
        indexes(&store.try_get_log_entries(..).await.unwrap()),
        [5, 6, 7]
    );
    store.purge(log_id(1, 1, 6)).await.unwrap();
    // Entries up to the purged one are covered by it: left out; the rest continue the log.
    append(&mut store, [entries(1, 5..7), entries(1, 8..9)].concat()).await;
    assert_eq!(
        indexes(&store.try_get_log_entries(..).await.unwrap()),
        [7, 8]
    );
    // Once purged, the log no longer starts anywhere it likes.
    let err = store
        .append_entries(entries(1, 12..13), |_| {})
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("expected index 9, got 12"),
        "{err}"
    );
}

#[tokio::test]
async fn a_purge_past_the_end_that_a_crash_interrupted_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path()).await;
    append(&mut store, entries(1, 0..5)).await;
    store.close().await.unwrap();
    // The purged id stored, the crash before the log was reset.
    let mut log = applog::Writer::open(dir.path(), applog::Options::default()).unwrap();
    let purged = postcard::to_stdvec(&log_id::<u64>(2, 1, 20)).unwrap();
    log.set_meta(applog_raft::PURGED_META, Some(&purged))
        .unwrap();
    log.close().unwrap();

    let mut store = open(dir.path()).await;
    assert_eq!(store.log().next_seq(), 21);
    assert!(store.try_get_log_entries(..).await.unwrap().is_empty());
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(2, 1, 20)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 20)));
    append(&mut store, entries(2, 21..22)).await;
}

#[tokio::test]
async fn a_damaged_vote_is_a_storage_error_naming_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = applog::Writer::open(dir.path(), applog::Options::default()).unwrap();
    log.set_meta(applog_raft::VOTE_META, Some(b"\xff\xff\xff"))
        .unwrap();
    log.close().unwrap();
    let mut store = open(dir.path()).await;
    let err = store.read_vote().await.unwrap_err();
    assert!(err.to_string().contains(applog_raft::VOTE_META), "{err}");
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );
}
