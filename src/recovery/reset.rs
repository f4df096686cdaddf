//! A reset (`Writer::reset` past the log's end) that a crash interrupted: the newest segment
//! starts the log anew (its header's `starts_log` flag), and the segments before it are dead.
//! `dir::list` already leaves them out of the log; this removes them, under the writer's lock.

use std::path::Path;
use std::sync::Arc;

use crate::dir::Entry;
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::segment::{Opened, WriteSegment};

/// Removes the segments a reset left dead (`dir::Listing::reset_dead`), telling readers that
/// still map one that it is gone (a cut word of 0: "removed", so they return
/// `Error::Rewound`), then fsyncs the directory.
///
/// # Errors
/// `Io` when a file cannot be removed or the directory not synced.
pub(crate) fn finish(dir: &Path, dead: &[Entry], fs: &Arc<dyn FileSystem>) -> Result<()> {
    if dead.is_empty() {
        return Ok(());
    }
    for e in dead {
        if let Ok(Opened::Ready(seg)) = WriteSegment::open(&e.path, fs) {
            // Best effort: the file goes anyway, and a reader that maps it then waits at
            // its end, as at any segment the writer stopped appending to.
            if let Err(err) = seg.store_cut(0, false) {
                tracing::debug!(segment = %e.path.display(), error = %err, "could not mark a segment removed by a reset");
            }
        }
        match fs.remove_file(&e.path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(Error::io(
                    "could not remove a segment before the log's reset",
                    &e.path,
                    err,
                ))
            }
        }
        tracing::info!(segment = %e.path.display(), "removed a segment before the log's reset");
    }
    fs.sync_dir(dir)
        .map_err(|e| Error::io("could not sync log directory", dir, e))
}
