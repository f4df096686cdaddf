//! applog as the log storage of an [openraft](https://docs.rs/openraft/0.9) node.
//!
//! [`LogStore`] implements openraft 0.9's log storage (`RaftLogStorage` and
//! `RaftLogReader`, storage API v2) on an applog log: a Raft log index is an applog seq,
//! each entry one record, encoded with [postcard](https://docs.rs/postcard). The entries of
//! one `append` are one crash-atomic applog batch; openraft is told they are flushed once
//! they are durable, through applog's group commit. The vote and the last purged log id are
//! kept in the log's metadata, durably and crash-atomically. Any number of [`LogReader`]s
//! read the entries lock-free.
//!
//! [`kv`] is a small in-memory key-value state machine with its type config, for tests and
//! examples.
//!
//! # Example
//!
//! The store on its own (openraft calls the same through its traits; see the `cluster`
//! example for a three-node cluster):
//!
//! ```
//! use applog_raft::kv::TypeConfig;
//! use applog_raft::LogStore;
//! use openraft::storage::{RaftLogReader, RaftLogStorage};
//! use openraft::testing::{blank_ent, log_id};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let mut log = LogStore::<TypeConfig>::open(dir.path(), applog::Options::default()).await?;
//! // openraft: Raft::new(node_id, config, network, log, state_machine)
//!
//! let (tx, flushed) = tokio::sync::oneshot::channel();
//! let entries = [blank_ent::<TypeConfig>(1, 1, 0), blank_ent(1, 1, 1)];
//! log.append_entries(entries, move |outcome| drop(tx.send(outcome))).await?;
//! flushed.await??; // durable now
//!
//! assert_eq!(log.try_get_log_entries(1..).await?.len(), 1);
//! assert_eq!(log.get_log_state().await?.last_log_id, Some(log_id(1, 1, 1)));
//! log.close().await?;
//! # Ok(()) }
//! ```

// openraft's `StorageError`, which its storage traits return, is large; this crate returns it
// as it is.
#![allow(clippy::result_large_err)]
#![warn(missing_docs)]

mod codec;
pub mod kv;
mod log_store;
mod reader;

pub use log_store::{LogStore, PURGED_META, VOTE_META};
pub use reader::LogReader;
