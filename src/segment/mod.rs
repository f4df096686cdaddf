//! Segment files: opening one and judging its header ([`probe`]), and the two sides that use
//! a segment, which are separate types so that a reader cannot reach a write path:
//! [`ReadSegment`] (readers, `verify`) and [`WriteSegment`] (the writer and recovery, under the
//! lock: growth, publishing, seals, checkpoints).
//!
//! Every byte of a mapping is reached through `crate::mapping`, the crate's one module with
//! raw pointers; every system call that changes durable state through `crate::io`.

mod batch;
mod grow;
mod read;
mod sync;
mod write;

use std::fs::File;
use std::path::Path;

pub(crate) use batch::{run_end, Run, RunBreak};
pub(crate) use grow::Growth;
pub(crate) use read::ReadSegment;
pub(crate) use sync::SegmentSync;
pub(crate) use write::WriteSegment;

use crate::error::{Error, Result};
use crate::format::{self, BadFrame, Frame, HeaderError, SegmentHeader, HEADER_LEN};
use crate::mapping::{ReadMap, View};

/// The system's page size.
pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Where a segment stands when opened.
pub(crate) enum Opened<S> {
    /// A valid header: the segment, mapped over its reservation.
    Ready(S),
    /// A crashed creation, or one in progress by a live writer: the file is empty, or it is
    /// one page (at most) whose header was never completed and that holds nothing else. See
    /// [`probe`].
    Blank,
    /// The magic is zero but the file holds more than a blank one: a segment created by a
    /// rollover whose header a crash kept from the disk (its frames may have been written
    /// back), or damage. Only the segment before can tell (see `recovery::analyze`).
    Headless,
}

/// What both sides of a segment offer: its identity and its frames.
pub(crate) trait Segment {
    /// The segment file.
    fn path(&self) -> &Path;
    /// Its header.
    fn header(&self) -> &SegmentHeader;
    /// The mapping, for reads.
    fn view(&self) -> &View;
    /// Checks the frame at `off` as the frame of `seq`; returns the verdict and, for a valid
    /// record, its payload.
    fn frame_at(&self, off: u64, seq: u64) -> (Frame, &[u8]);
    /// As [`frame_at`](Self::frame_at), the verdict alone: lends nothing and, in a writable
    /// segment, freezes nothing. For frames that may still be cut (the rest of a batch: see
    /// [`run_end`]) and for walks that need no payload.
    fn check_at(&self, off: u64, seq: u64) -> Frame;
    /// Says that recovery keeps the frames below `end`: a writable segment never writes there
    /// again (see `mapping`). Nothing for a read-only one.
    fn keep(&self, _end: u64) {}
    /// Re-reads the file size (to see growth by a live writer); the writer knows it already.
    ///
    /// # Errors
    /// `Io` when the file cannot be examined.
    fn refresh_size(&mut self) -> Result<u64>;

    /// Bytes a record frame with a payload of `len` bytes occupies in this segment.
    fn frame_len(&self, len: u64) -> u64 {
        self.header().layout.frame_len(len)
    }

    /// The file size this handle knows.
    fn size(&self) -> u64 {
        self.view().size()
    }

    /// The reservation in bytes.
    fn reservation(&self) -> u64 {
        self.view().reservation()
    }

    /// The synced-mark word as stored, or `None` when it fails its check.
    fn synced_mark_checked(&self) -> Option<u64> {
        let word = self.view().load(format::SYNCED_MARK_OFFSET).unwrap_or(0);
        self.header().decode_synced_mark(word)
    }

    /// Where the log's end was cut in this segment (see `format::CUT_WORD_OFFSET`): `Ok(None)`
    /// when it was not, `Ok(Some(offset))` (frames from `offset` on are dead), or
    /// `Err(Corrupt)` at offset 60 when the word fails its check.
    ///
    /// # Errors
    /// `Corrupt` naming the segment.
    fn cut(&self) -> Result<Option<u64>> {
        let word = self.view().load32(format::CUT_WORD_OFFSET).unwrap_or(0);
        self.header()
            .decode_cut(word)
            .map_err(|()| crate::error::Error::Corrupt {
                segment: self.path().to_owned(),
                offset: format::CUT_WORD_OFFSET,
                reason: "cut word fails its check".into(),
            })
    }

    /// The synced mark: offset below which every frame had been made durable. 0 when none,
    /// or when the mark fails its check.
    fn synced_mark(&self) -> u64 {
        self.synced_mark_checked().unwrap_or(0)
    }
}

/// The frame verdict, with one rule the format alone cannot apply: a seal in a segment without
/// records would name the segment itself as its successor (and send readers back into it
/// forever); the writer never writes one.
fn judge<'a>(header: &SegmentHeader, seq: u64, frame: (Frame, &'a [u8])) -> (Frame, &'a [u8]) {
    match frame.0 {
        Frame::Seal if seq == header.base_seq => (Frame::Bad(BadFrame::EmptySeal), &[]),
        _ => frame,
    }
}

/// [`judge`] for a verdict alone.
fn judge_frame(header: &SegmentHeader, seq: u64, frame: Frame) -> Frame {
    judge(header, seq, (frame, &[])).0
}

/// Opens a segment file and returns it with its size. Never blocks (a FIFO named like a
/// segment is refused, not waited on) and refuses anything but a regular file.
pub(crate) fn open_file(path: &Path, writable: bool) -> Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(i32::try_from(rustix::fs::OFlags::NONBLOCK.bits()).unwrap_or_default())
        .open(path)
        .map_err(|e| Error::io("could not open segment", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io("could not stat segment", path, e))?;
    if !meta.is_file() {
        return Err(Error::NotALog {
            path: path.to_owned(),
            reason: "named like a segment but not a regular file".into(),
        });
    }
    Ok((file, meta.len()))
}

/// Reads a segment file's header and judges it:
///
/// - a valid header: `Ready`;
/// - a file that is provably a crashed creation (or one in progress): `Blank`. That is an
///   empty file, or a file of at most one page whose magic is zero (the writer stores it
///   last), whose synced mark, wake word and reserved bytes (44..64) are zero, and which holds
///   nothing but zeros after the header: no frame, nothing synced. Bytes 8..44 may hold any
///   part of the header fields, which one `pwrite` writes;
/// - a header of 64 zero bytes followed by anything non-zero, or longer than one page:
///   `Headless`. A segment created by a rollover has its header made durable by the
///   checkpoint that makes the seal before it durable, so a crash before that checkpoint can
///   leave it so; after it, or for any other segment, it is damage (`recovery::analyze`
///   decides, and readers ask the segment before); without the magic but with anything else
///   in the header: `Corrupt` at offset 0 (a damaged header);
/// - any other file without the magic: `NotALog`;
/// - a damaged header with the magic: `Corrupt` at offset 0.
pub(crate) fn probe(file: &File, path: &Path, size: u64) -> Result<Opened<SegmentHeader>> {
    if size == 0 {
        return Ok(Opened::Blank);
    }
    let page = page_size();
    let mut map =
        ReadMap::new(file, page).map_err(|e| Error::io("could not map segment", path, e))?;
    map.set_size(size);
    let mut bytes = [0u8; format::HEADER_BYTES];
    let n = format::to_usize(HEADER_LEN.min(size));
    if !map.read_atomic(0, &mut bytes[..n]) {
        return Err(Error::io(
            "could not read segment header of",
            path,
            std::io::Error::other("header outside the file"),
        ));
    }
    let corrupt = |reason: String| Error::Corrupt {
        segment: path.to_owned(),
        offset: 0,
        reason,
    };
    match SegmentHeader::decode(&bytes[..n]) {
        Ok(h) => Ok(Opened::Ready(h)),
        // The magic is stored last: without it, this is a creation that never finished (or
        // one under way), provided nothing else was ever written.
        Err(_) if bytes[..8] == [0; 8] => {
            // The header fields (bytes 8..44) come from one pwrite, which a reader may see
            // half done; the synced mark and the wake word (44..64) stay zero until the magic
            // is there, and nothing follows the header.
            if bytes[44..] == [0; 20] && size <= page && map.is_zero_from(HEADER_LEN) {
                return Ok(Opened::Blank);
            }
            // A header a crash kept from the disk reads as zeros, all 64 bytes of it (a device
            // writes a sector whole): a header partly zeroed is damage.
            if bytes[..n] == [0; format::HEADER_BYTES][..n] {
                return Ok(Opened::Headless);
            }
            Err(corrupt(format!(
                "segment header is damaged (its magic is zeroed) and the file holds data \
                 ({size} bytes): not a blank segment"
            )))
        }
        Err(HeaderError::NotApplog) => Err(Error::NotALog {
            path: path.to_owned(),
            reason: "the file does not start with the applog segment magic".into(),
        }),
        Err(e) => Err(corrupt(e.to_string())),
    }
}
