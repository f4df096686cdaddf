//! The log's end cut by `Writer::truncate_back` (see "Cutting the log's end" in the format
//! documentation): where a seq's frame lies, and finishing a cut, which the writer does right
//! after the cut word is durable and recovery does again after a crash interrupted it.
//!
//! A cut segment `C`, cut at offset `O` where the frame of seq `S` lies, ends at `O`. Every
//! segment file after it that is not named `S` is dead (it existed when the cut was made: they
//! all started above `S`) and is removed. A segment cut at its first frame holds no live
//! record and bears `S`'s name: it is replaced by a new, empty segment with one `rename`.

use std::path::Path;
use std::sync::Arc;

use super::scan::{scan_read, Stop};
use crate::dir::{self, Entry};
use crate::error::{Error, Result};
use crate::format::{Frame, HEADER_LEN};
use crate::io::FileSystem;
use crate::segment::{Opened, ReadSegment, Segment, WriteSegment};

/// The offset of seq `seq`'s frame in `seg` (`HEADER_LEN` for its base; the offset after its
/// last record for the seq after it).
///
/// A cut may lie inside a batch: the batch then ends at the cut (its frames before the cut
/// are all durable, since the writer syncs before it cuts).
///
/// # Errors
/// `Corrupt` when the frames stop before `seq`.
pub(crate) fn offset_of<S: Segment>(seg: &S, seq: u64) -> Result<u64> {
    let layout = seg.header().layout;
    let (mut off, mut at) = (HEADER_LEN, seg.header().base_seq);
    while at < seq {
        match seg.check_at(off, at) {
            Frame::Record { len, .. } => {
                off += layout.frame_len(u64::from(len));
                at += 1;
            }
            other => {
                return Err(Error::Corrupt {
                    segment: seg.path().to_owned(),
                    offset: off,
                    reason: format!("looking for the frame of seq {seq}: {other:?} at seq {at}"),
                })
            }
        }
    }
    Ok(off)
}

/// The cut offset stored in a segment's header, if any (`None` for a damaged one).
fn cut_of(entry: &Entry) -> Result<Option<u64>> {
    match ReadSegment::open(&entry.path) {
        // 0 ("removed by a cut before it") after a cut is removed with the rest; met first,
        // it ends the log like a cut at the segment's first record.
        Ok(Opened::Ready(seg)) => match seg.cut() {
            Ok(cut) => Ok(cut.map(|c| c.max(HEADER_LEN))),
            // A damaged header or cut word is for the scan to report (or for
            // `recover --truncate-at-corruption` to cut).
            Err(Error::Corrupt { .. }) => Ok(None),
            Err(e) => Err(e),
        },
        Ok(Opened::Blank | Opened::Headless) | Err(Error::Corrupt { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Finishes every cut in the log (under the writer's lock): removes the segments a cut left
/// dead, replaces a segment cut at its first frame by an empty one, and fsyncs the directory.
/// Returns the segments left, oldest first.
///
/// # Errors
/// `Corrupt` (a damaged cut word), `Io`, `NoSpace`.
pub(crate) fn finish(
    dir: &Path,
    entries: Vec<Entry>,
    segment_pages: u32,
    fs: &Arc<dyn FileSystem>,
) -> Result<Vec<Entry>> {
    let mut i = 0;
    while let Some(entry) = entries.get(i) {
        i += 1;
        let Some(offset) = cut_of(entry)? else {
            continue;
        };
        let scanned = scan_read(entry.clone())?;
        if scanned.stop != Stop::Cut {
            // Its frames stop before the cut: damage, for recovery to report.
            return Ok(entries);
        }
        let next = scanned.next_seq;
        let successor = offset > HEADER_LEN && entries.get(i).is_some_and(|e| e.base == next);
        if successor {
            continue;
        }
        let dead = &entries[i..];
        for e in dead {
            if let Ok(Opened::Ready(seg)) = WriteSegment::open(&e.path, fs) {
                // For readers that map it: the whole segment was removed by the cut before it.
                seg.store_cut(0, false)?;
            }
            fs.remove_file(&e.path).map_err(|err| {
                Error::io("could not remove a segment past the cut", &e.path, err)
            })?;
            tracing::info!(segment = %e.path.display(), "removed a segment past the log's cut end");
        }
        if offset == HEADER_LEN {
            replace(dir, entry, segment_pages, fs)?;
        } else if !dead.is_empty() {
            fs.sync_dir(dir)
                .map_err(|e| Error::io("could not sync log directory", dir, e))?;
        }
        let mut entries = entries;
        entries.truncate(i);
        return Ok(entries);
    }
    Ok(entries)
}

/// Replaces the segment `entry`, cut at its first frame, by a new empty segment with the same
/// base: created as `<name>.cut`, its header durable, then renamed over it, and the directory
/// fsynced.
fn replace(dir: &Path, entry: &Entry, segment_pages: u32, fs: &Arc<dyn FileSystem>) -> Result<()> {
    let tmp = dir.join(format!("{}.cut", dir::segment_name(entry.base)));
    match fs.remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("could not remove", &tmp, e)),
    }
    drop(WriteSegment::create(
        &tmp,
        entry.base,
        segment_pages,
        fs,
        true,
    )?);
    fs.rename_over(&tmp, &entry.path)
        .map_err(|e| Error::io("could not rename a new segment over", &entry.path, e))?;
    fs.sync_dir(dir)
        .map_err(|e| Error::io("could not sync log directory", dir, e))?;
    tracing::info!(segment = %entry.path.display(), "started the segment cut at its first record again");
    Ok(())
}
