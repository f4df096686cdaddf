//! A three-node Raft cluster in one process, each node's log in its own applog directory.
//!
//! The nodes talk through an in-process network (each RPC is a call on the other node's
//! `Raft` handle). Each node keeps its log in `node-N/log` and its state machine's last
//! snapshot in `node-N/snapshot`. The cluster elects a leader and replicates key-value writes; then one
//! follower is shut down, more writes go on without it (the others take snapshots and purge
//! their logs meanwhile), and it is started again from its directory and catches up. At the
//! end every node's directory is read with `applog::Reader`, and the logs must agree on every
//! index two of them or more hold.
//!
//! ```text
//! cargo run -p applog-raft --example cluster            # in a temporary directory
//! cargo run -p applog-raft --example cluster -- DIR     # in DIR/node-1, DIR/node-2, DIR/node-3
//! ```
//!
//! Prints a summary; exits 1 when the logs disagree or the cluster fails.

mod network;

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use applog_raft::kv::{KvStateMachine, NodeId, Request, TypeConfig};
use applog_raft::LogStore;
use openraft::{BasicNode, Config, LogId, Raft, SnapshotPolicy, Vote};

use network::Router;

type BoxError = Box<dyn Error + Send + Sync>;

/// How long any one step may take before the run fails (elections, catching up).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// What one node's log directory holds at the end.
#[derive(Debug)]
pub struct NodeLog {
    /// The node.
    pub id: NodeId,
    /// Its directory.
    pub dir: PathBuf,
    /// The records in it, by index (= applog seq).
    pub records: BTreeMap<u64, Vec<u8>>,
    /// The vote and the last purged log id in the log's metadata, as text.
    pub meta: String,
}

/// What a run found.
#[derive(Debug)]
pub struct Summary {
    /// The leader when the writes were made.
    pub leader: NodeId,
    /// The follower that was shut down and started again.
    pub restarted: NodeId,
    /// The key-value writes made (each committed).
    pub writes: usize,
    /// The last log index every node applied.
    pub applied: u64,
    /// Each node's log.
    pub logs: Vec<NodeLog>,
    /// The indexes that two logs or more hold (each compared).
    pub shared: usize,
    /// Each index where the logs differ, with what differs.
    pub disagreements: Vec<String>,
    /// The state machines are the same on every node.
    pub same_state: bool,
}

impl Summary {
    /// The logs agree on every index they share, and the state machines are the same.
    pub fn ok(&self) -> bool {
        self.disagreements.is_empty() && self.same_state
    }
}

/// A running node.
struct Node {
    raft: Raft<TypeConfig>,
    state: KvStateMachine,
}

/// Node `id`'s applog directory (its snapshot file is beside it).
fn node_dir(root: &Path, id: NodeId) -> PathBuf {
    root.join(format!("node-{id}")).join("log")
}

/// Starts node `id` on the log in its directory (created if new) and makes it reachable.
async fn start(
    id: NodeId,
    root: &Path,
    router: &Router,
    config: &Arc<Config>,
) -> Result<Node, BoxError> {
    let dir = node_dir(root, id);
    // A node that was just shut down lets go of its log as soon as its last flush ends.
    let since = Instant::now();
    while dir.exists() && applog::is_locked(&dir)? {
        if since.elapsed() > STEP_TIMEOUT {
            return Err(format!("the log in {} stays locked", dir.display()).into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::create_dir_all(&dir)?;
    // Small segments (2 pages), so that purges remove files in a run this short.
    let log = LogStore::<TypeConfig>::open(&dir, applog::Options::new().segment_pages(2)).await?;
    // The state machine starts from its last snapshot: the log was purged up to it.
    let state = KvStateMachine::open(root.join(format!("node-{id}")).join("snapshot"))?;
    let raft = Raft::new(id, Arc::clone(config), router.clone(), log, state.clone()).await?;
    router.add(id, raft.clone());
    Ok(Node { raft, state })
}

/// Shuts node `id` down: unreachable first, then its Raft task stops and its log is closed.
async fn stop(id: NodeId, router: &Router) -> Result<(), BoxError> {
    if let Some(raft) = router.remove(id) {
        raft.shutdown()
            .await
            .map_err(|e| format!("node {id} did not shut down: {e}"))?;
    }
    Ok(())
}

/// The current leader, as the nodes that are up see it.
async fn leader(nodes: &BTreeMap<NodeId, Node>) -> Result<NodeId, BoxError> {
    let any = nodes.values().next().ok_or("no node is up")?;
    let m = any
        .raft
        .wait(Some(STEP_TIMEOUT))
        .metrics(
            |m| m.current_leader.is_some_and(|l| nodes.contains_key(&l)),
            "a leader among the nodes that are up",
        )
        .await?;
    m.current_leader.ok_or_else(|| "no leader".into())
}

/// Writes `key = value` through the leader; retried (bounded) while leadership moves.
async fn write(
    nodes: &BTreeMap<NodeId, Node>,
    key: String,
    value: String,
) -> Result<NodeId, BoxError> {
    let mut last_error = None;
    for _ in 0..20 {
        let id = leader(nodes).await?;
        let Some(node) = nodes.get(&id) else { continue };
        match node
            .raft
            .client_write(Request::Set {
                key: key.clone(),
                value: value.clone(),
            })
            .await
        {
            Ok(_) => return Ok(id),
            Err(e) => {
                last_error = Some(e.to_string());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Err(format!("could not write {key}: {}", last_error.unwrap_or_default()).into())
}

/// Runs the whole scenario with the node directories under `root`, `writes` writes in each of
/// its two phases.
pub async fn run(root: &Path, writes: usize) -> Result<Summary, BoxError> {
    let config = Arc::new(
        Config {
            cluster_name: "applog-raft-example".into(),
            heartbeat_interval: 50,
            election_timeout_min: 300,
            election_timeout_max: 600,
            // Snapshots and purges while a node is down, so that it catches up from a
            // snapshot and its log continues after the snapshot's last index.
            snapshot_policy: SnapshotPolicy::LogsSinceLast(writes as u64 / 2),
            max_in_snapshot_log_to_keep: 5,
            purge_batch_size: 1,
            ..Config::default()
        }
        .validate()?,
    );
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        nodes.insert(id, start(id, root, &router, &config).await?);
    }
    let first = &nodes[&1].raft;
    if !first.is_initialized().await? {
        let members: BTreeMap<NodeId, BasicNode> =
            (1..=3).map(|id| (id, BasicNode::default())).collect();
        first.initialize(members).await?;
    }

    // Phase 1: every node up.
    let mut leader_id = leader(&nodes).await?;
    for i in 0..writes {
        leader_id = write(&nodes, format!("key-{i}"), format!("value-{i}")).await?;
    }
    // Phase 2: a follower down, the others go on.
    let restarted = *nodes
        .keys()
        .find(|&&id| id != leader_id)
        .ok_or("no follower")?;
    nodes.remove(&restarted);
    stop(restarted, &router).await?;
    for i in 0..writes {
        leader_id = write(&nodes, format!("key-{i}"), format!("value-{i}-again")).await?;
    }
    // Phase 3: it comes back from its directory and catches up.
    nodes.insert(restarted, start(restarted, root, &router, &config).await?);
    let last = nodes[&leader_id]
        .raft
        .metrics()
        .borrow()
        .last_log_index
        .ok_or("the leader has no log")?;
    for node in nodes.values() {
        node.raft
            .wait(Some(STEP_TIMEOUT))
            .applied_index_at_least(Some(last), "caught up")
            .await?;
    }
    let states: Vec<_> = nodes.values().map(|n| n.state.data()).collect();
    let same_state = states.windows(2).all(|w| w[0] == w[1]) && states[0].len() == writes;

    for id in 1..=3 {
        stop(id, &router).await?;
    }
    drop(nodes);

    // Every node's log, read back from its directory.
    let mut logs = Vec::new();
    for id in 1..=3 {
        let dir = node_dir(root, id);
        let mut records = BTreeMap::new();
        let mut reader = applog::Reader::open(&dir)?;
        while let Some(rec) = reader.next()? {
            records.insert(rec.seq(), rec.data().to_vec());
        }
        let meta = describe_meta(&applog::read_meta(&dir)?);
        logs.push(NodeLog {
            id,
            dir,
            records,
            meta,
        });
    }
    let (shared, disagreements) = compare(&logs);
    Ok(Summary {
        leader: leader_id,
        restarted,
        writes: 2 * writes,
        applied: last,
        logs,
        shared,
        disagreements,
        same_state,
    })
}

/// The vote and the last purged log id a node's log keeps in its metadata (read without the
/// log's lock, as any process can).
fn describe_meta(meta: &applog::Meta) -> String {
    let vote = meta
        .get(applog_raft::VOTE_META)
        .and_then(|b| postcard::from_bytes::<Vote<NodeId>>(b).ok())
        .map_or_else(|| "none".to_owned(), |v| v.to_string());
    let purged = meta
        .get(applog_raft::PURGED_META)
        .and_then(|b| postcard::from_bytes::<LogId<NodeId>>(b).ok())
        .map_or_else(|| "none".to_owned(), |id| id.to_string());
    format!("vote {vote}, last purged {purged}")
}

/// How many indexes two logs or more hold, and where the logs that hold an index differ.
fn compare(logs: &[NodeLog]) -> (usize, Vec<String>) {
    let indexes: BTreeSet<u64> = logs
        .iter()
        .flat_map(|l| l.records.keys().copied())
        .collect();
    let mut shared = 0;
    let mut disagreements = Vec::new();
    for index in indexes {
        let holders: Vec<_> = logs
            .iter()
            .filter_map(|l| l.records.get(&index).map(|r| (l.id, r)))
            .collect();
        let [(first_id, first), rest @ ..] = holders.as_slice() else {
            continue;
        };
        if rest.is_empty() {
            continue;
        }
        shared += 1;
        for (id, record) in rest {
            if record != first {
                disagreements.push(format!(
                    "index {index}: node {first_id} and node {id} hold different entries"
                ));
            }
        }
    }
    (shared, disagreements)
}

fn print(summary: &Summary) {
    println!(
        "leader: node {}; restarted: node {}; {} writes committed, every node applied up to index {}",
        summary.leader, summary.restarted, summary.writes, summary.applied
    );
    for log in &summary.logs {
        let first = log.records.keys().next();
        let last = log.records.keys().next_back();
        match (first, last) {
            (Some(f), Some(l)) => println!(
                "node {}: {} entries, indexes {f}..={l}; {}; in {}",
                log.id,
                log.records.len(),
                log.meta,
                log.dir.display()
            ),
            _ => println!(
                "node {}: no entries; {}; in {}",
                log.id,
                log.meta,
                log.dir.display()
            ),
        }
    }
    println!(
        "indexes held by two nodes or more, compared: {}",
        summary.shared
    );
    println!("state machines the same: {}", summary.same_state);
    if summary.disagreements.is_empty() {
        println!("the logs agree on every index they share");
    } else {
        for d in &summary.disagreements {
            println!("DISAGREEMENT {d}");
        }
    }
}

fn main() -> ExitCode {
    let arg = std::env::args_os().nth(1).map(PathBuf::from);
    let temp = match arg {
        Some(_) => None,
        None => match tempfile::tempdir() {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("cluster: could not make a temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let root = match (&arg, &temp) {
        (Some(path), _) => path.clone(),
        (None, Some(t)) => t.path().to_owned(),
        (None, None) => return ExitCode::FAILURE,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cluster: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&root, 100)) {
        Ok(summary) => {
            print(&summary);
            if summary.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("cluster: {e}");
            ExitCode::FAILURE
        }
    }
}
