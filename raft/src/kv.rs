//! A small key-value state machine and its type config: what the tests, the example and the
//! bench run on top of [`LogStore`](crate::LogStore). Keep your own state machine in a real
//! service.
//!
//! The state is in memory. Its snapshots are kept in memory too ([`KvStateMachine::new`]), or
//! also in a file ([`KvStateMachine::open`]): openraft purges the log up to a snapshot, so a
//! node that restarts after a purge must find that snapshot again (its log no longer has the
//! entries before it). Each snapshot is written to a temporary file, synced and renamed over
//! the last one, so a crash leaves the old snapshot or the new one.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};

use crate::codec;

/// A command of the key-value state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Sets `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
}

/// What applying a [`Request`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The key's value before the command.
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// The type config of the key-value state machine: node ids are `u64`, nodes
    /// [`BasicNode`](openraft::BasicNode), entries openraft's own
    /// [`Entry`](openraft::Entry), snapshots `Cursor<Vec<u8>>`, on tokio.
    pub TypeConfig:
        D = Request,
        R = Response,
);

/// The node id of [`TypeConfig`].
pub type NodeId = u64;

#[derive(Default)]
struct State {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
    data: BTreeMap<String, String>,
    snapshot: Option<(SnapshotMeta<NodeId, openraft::BasicNode>, Vec<u8>)>,
    snapshots_built: u64,
}

/// The key-value state machine (`Clone`: every clone is the same machine).
#[derive(Clone, Default)]
pub struct KvStateMachine {
    state: Arc<Mutex<State>>,
    /// Where snapshots are kept, if anywhere but in memory.
    snapshot_file: Option<Arc<PathBuf>>,
}

/// A snapshot as its file holds it.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    data: Vec<u8>,
}

impl std::fmt::Debug for KvStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("KvStateMachine")
            .field("last_applied", &st.last_applied)
            .field("keys", &st.data.len())
            .finish_non_exhaustive()
    }
}

impl KvStateMachine {
    /// An empty state machine whose snapshots are kept in memory only.
    pub fn new() -> KvStateMachine {
        KvStateMachine::default()
    }

    /// A state machine whose snapshots are kept in the file `path` too: it starts from the
    /// snapshot there, if there is one (its state, last applied log id and membership), and
    /// writes each new snapshot there, durably, before it is used.
    ///
    /// # Errors
    /// A [`StorageError`] naming the file when it cannot be read or is not a snapshot.
    pub fn open(path: impl AsRef<Path>) -> Result<KvStateMachine, StorageError<NodeId>> {
        let path = path.as_ref().to_owned();
        let mut state = State::default();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let file: SnapshotFile =
                    codec::decode(&bytes, || format!("the snapshot in {}", path.display()))
                        .map_err(read_error)?;
                state.data = codec::decode(&file.data, || {
                    format!("the state in the snapshot {}", path.display())
                })
                .map_err(read_error)?;
                state.last_applied = file.meta.last_log_id;
                state.membership = file.meta.last_membership.clone();
                state.snapshot = Some((file.meta, file.data));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(read_error(FileError::new(
                    "could not read the snapshot",
                    &path,
                    e,
                )))
            }
        }
        Ok(KvStateMachine {
            state: Arc::new(Mutex::new(state)),
            snapshot_file: Some(Arc::new(path)),
        })
    }

    /// Writes a snapshot to the snapshot file, if there is one: a temporary file, synced,
    /// renamed over the last one, and the directory synced.
    fn persist(
        &self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        data: &[u8],
    ) -> Result<(), StorageError<NodeId>> {
        let Some(path) = self.snapshot_file.as_deref() else {
            return Ok(());
        };
        let write_error = |e: FileError| -> StorageError<NodeId> {
            StorageIOError::write_snapshot(Some(meta.signature()), AnyError::new(&e)).into()
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            data: data.to_vec(),
        };
        let bytes =
            codec::encode(&file, || format!("snapshot {}", meta.snapshot_id)).map_err(|e| {
                StorageError::from(StorageIOError::write_snapshot(
                    Some(meta.signature()),
                    AnyError::new(&e),
                ))
            })?;
        let tmp = path.with_extension("tmp");
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut f = File::create(&tmp)
            .map_err(|e| write_error(FileError::new("could not create", &tmp, e)))?;
        f.write_all(&bytes)
            .map_err(|e| write_error(FileError::new("could not write", &tmp, e)))?;
        f.sync_all()
            .map_err(|e| write_error(FileError::new("could not sync", &tmp, e)))?;
        std::fs::rename(&tmp, path)
            .map_err(|e| write_error(FileError::new("could not rename over", path, e)))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| write_error(FileError::new("could not sync the directory", dir, e)))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key`, as applied so far.
    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().data.get(key).cloned()
    }

    /// Every key and value, as applied so far.
    pub fn data(&self) -> BTreeMap<String, String> {
        self.lock().data.clone()
    }

    /// The last log id applied.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.lock().last_applied
    }
}

fn read_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(AnyError::new(&e)).into()
}

/// An I/O error with what was done and to which file.
#[derive(Debug)]
struct FileError {
    op: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

impl FileError {
    fn new(op: &'static str, path: &Path, source: std::io::Error) -> FileError {
        FileError {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

impl std::error::Error for FileError {}

impl RaftSnapshotBuilder<TypeConfig> for KvStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, data) = {
            let mut st = self.lock();
            let data =
                codec::encode(&st.data, || "the key-value state".to_owned()).map_err(read_error)?;
            st.snapshots_built += 1;
            let snapshot_id = match &st.last_applied {
                Some(id) => format!("{}-{}-{}", id.leader_id, id.index, st.snapshots_built),
                None => format!("none-{}", st.snapshots_built),
            };
            let meta = SnapshotMeta {
                last_log_id: st.last_applied,
                last_membership: st.membership.clone(),
                snapshot_id,
            };
            (meta, data)
        };
        // Durable before openraft may purge the log up to it.
        self.persist(&meta, &data)?;
        self.lock().snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for KvStateMachine {
    type SnapshotBuilder = KvStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        StorageError<NodeId>,
    > {
        let st = self.lock();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut st = self.lock();
        let mut responses = Vec::new();
        for entry in entries {
            st.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => responses.push(Response::default()),
                EntryPayload::Normal(Request::Set { key, value }) => {
                    let previous = st.data.insert(key, value);
                    responses.push(Response { previous });
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(entry.log_id), m);
                    responses.push(Response::default());
                }
            }
        }
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let data: BTreeMap<String, String> =
            codec::decode(&bytes, || format!("snapshot {}", meta.snapshot_id)).map_err(|e| {
                StorageError::from(StorageIOError::read_snapshot(
                    Some(meta.signature()),
                    AnyError::new(&e),
                ))
            })?;
        self.persist(meta, &bytes)?;
        let mut st = self.lock();
        st.data = data;
        st.last_applied = meta.last_log_id;
        st.membership = meta.last_membership.clone();
        st.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.lock().snapshot.clone().map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
