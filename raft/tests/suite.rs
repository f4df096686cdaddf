//! openraft's own storage test suite (`openraft::testing::Suite`) on `LogStore`, with a new
//! applog directory for every store it builds.

use applog_raft::kv::{KvStateMachine, NodeId, TypeConfig};
use applog_raft::LogStore;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{AnyError, StorageError, StorageIOError};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, KvStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<TypeConfig>, KvStateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(AnyError::new(&e)))?;
        let log = LogStore::open(dir.path(), applog::Options::default()).await?;
        Ok((dir, log, KvStateMachine::new()))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder).unwrap();
}
