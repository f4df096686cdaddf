//! The `cluster` example's scenario, run as a test: three nodes on applog logs elect a leader,
//! replicate, lose a follower and get it back from its directory, and their logs agree.

#[path = "../examples/cluster/main.rs"]
#[allow(dead_code)]
mod cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_restart_a_follower_and_their_logs_agree() {
    let root = tempfile::tempdir().unwrap();
    let summary = cluster::run(root.path(), 40).await.unwrap();
    assert!(
        summary.disagreements.is_empty(),
        "{:?}",
        summary.disagreements
    );
    assert!(summary.same_state, "the state machines differ");
    assert_eq!(summary.writes, 80);
    assert!(
        summary.shared > 0,
        "no index is held by two nodes: {summary:?}"
    );
    assert_ne!(summary.leader, summary.restarted);
}
