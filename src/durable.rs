//! The durable position of a log, as any reader in any process can learn it: from the synced
//! marks in the segment headers (see `docs/format.md`). A frame is durable when it ends at or
//! below its segment's synced mark.

use std::path::Path;

use crate::dir;
use crate::error::{Error, Result};
use crate::format::{self, Frame, HEADER_LEN};
use crate::segment::{Opened, ReadSegment, Segment};

/// The log's durable position: every record below the returned seq is durable (it survives a
/// power cut), as the synced marks in the segment headers say. Any process that may read the
/// log can ask, while the writer runs; it takes no lock and writes nothing.
///
/// It reads the newest segment that holds a synced mark and checks the frames below the mark
/// (their CRCs), so it costs about as much as reading that segment up to its mark: call it
/// when you need it, not per record. A writer's own [`SharedWriter::durable_seq`] is cheaper
/// (it knows). Records the log no longer has (removed by retention) are not counted against
/// it: an empty log, or one with nothing synced since its first record, returns its first seq.
///
/// Anything that leaves the machine (replication, acknowledgements to remote clients) should
/// use only records below this seq: a record above it can vanish in a power cut, and its seq
/// be given to a different record.
///
/// [`SharedWriter::durable_seq`]: crate::SharedWriter::durable_seq
///
/// # Example
/// ```
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut writer = applog::Writer::open(dir.path(), applog::Options::default())?;
/// writer.append(b"a")?;
/// writer.append(b"b")?;
/// assert_eq!(applog::durable_seq(dir.path())?, 0); // appended, not synced
/// writer.sync()?;
/// assert_eq!(applog::durable_seq(dir.path())?, 2);
/// # Ok(()) }
/// ```
///
/// # Errors
/// As [`Reader::open`](crate::Reader::open): [`Error::Io`], [`Error::NotALog`],
/// [`Error::Corrupt`] (a damaged segment header).
pub fn durable_seq(dir: impl AsRef<Path>) -> Result<u64> {
    let dir = dir.as_ref();
    let listing = dir::list_log(dir)?;
    for e in listing.segments.iter().rev() {
        let mut seg = match ReadSegment::open(&e.path) {
            Ok(Opened::Ready(seg)) => seg,
            Ok(Opened::Blank | Opened::Headless) => continue,
            // Removed by retention since the listing: older ones are gone too.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => break,
            Err(err) => return Err(err),
        };
        // Frames from a cut of the log's end on are removed, durable or not.
        let mark = match seg.cut()? {
            Some(cut) => seg.synced_mark().min(cut.max(HEADER_LEN)),
            None => seg.synced_mark(),
        };
        if mark > 0 {
            // The mark may lie past the size seen when the file was opened: look again, so
            // that frames below it are not taken for out of bounds.
            seg.refresh_size()?;
            return Ok(durable_in(&seg, mark));
        }
    }
    Ok(listing.segments.first().map_or(0, |e| e.base))
}

/// The first seq in `seg` not below its synced `mark`: its base plus the records that end
/// at or below the mark (after a durable seal, the next segment's base). A record of a batch
/// counts only when the batch's last frame ends at or below the mark too, as for a
/// [`durable_only`](crate::Reader::durable_only) reader.
fn durable_in(seg: &ReadSegment, mark: u64) -> u64 {
    let mut off = HEADER_LEN;
    let mut seq = seg.header().base_seq;
    // The seq of the first frame of the batch being walked (frames with `MORE`).
    let mut batch = None;
    while off + format::FRAME_HEADER_LEN <= mark {
        match seg.check_at(off, seq) {
            Frame::Record { len, more, .. } => {
                let end = off + seg.frame_len(u64::from(len));
                if end > mark {
                    break;
                }
                batch = if more { batch.or(Some(seq)) } else { None };
                off = end;
                seq += 1;
            }
            // A seal below the mark: the whole segment is durable, and the next starts here.
            Frame::Seal | Frame::Empty | Frame::Bad(_) => break,
        }
    }
    batch.unwrap_or(seq)
}
