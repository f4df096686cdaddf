//! The key-value state machine: applying, and snapshots kept in a file across a restart.

use applog_raft::kv::{KvStateMachine, Request, Response, TypeConfig};
use openraft::storage::RaftStateMachine;
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, RaftSnapshotBuilder};

fn set(index: u64, key: &str, value: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Request::Set {
            key: key.into(),
            value: value.into(),
        }),
    }
}

#[tokio::test]
async fn a_snapshot_in_its_file_is_where_a_restarted_state_machine_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot");
    let mut sm = KvStateMachine::open(&path).unwrap();
    assert_eq!(sm.applied_state().await.unwrap().0, None);
    let out = sm
        .apply([set(0, "a", "1"), set(1, "a", "2")])
        .await
        .unwrap();
    assert_eq!(
        out[1],
        Response {
            previous: Some("1".into())
        }
    );
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    sm.apply([set(2, "b", "3")]).await.unwrap(); // after the snapshot: not in it
    drop(sm);

    let mut sm = KvStateMachine::open(&path).unwrap();
    assert_eq!(sm.get("a").as_deref(), Some("2"));
    assert_eq!(sm.get("b"), None);
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 1, 1)));
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test]
async fn an_installed_snapshot_is_kept_in_the_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut leader = KvStateMachine::new();
    leader.apply([set(0, "k", "v")]).await.unwrap();
    let snapshot = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let path = dir.path().join("snapshot");
    let mut follower = KvStateMachine::open(&path).unwrap();
    follower
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    drop(follower);
    let follower = KvStateMachine::open(&path).unwrap();
    assert_eq!(follower.get("k").as_deref(), Some("v"));
    assert_eq!(follower.last_applied(), Some(log_id(1, 1, 0)));
}

#[test]
fn a_damaged_snapshot_file_is_a_storage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snapshot");
    std::fs::write(&path, b"\xff\xff\xff\xff").unwrap();
    let err = KvStateMachine::open(&path).unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}
