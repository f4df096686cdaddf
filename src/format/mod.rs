//! The on-disk format: the segment header and the record frames.
//!
//! Pure functions over byte slices and integers: no I/O, no raw pointers, and no panic on any
//! input. `docs/format.md` draws the same layout. All integers are little-endian.
//!
//! ```text
//! segment file
//! +----------------------+---------+---------+-----+------+-------------------------+
//! | header (64 bytes)    | frame 0 | frame 1 | ... | seal | zeros up to file size   |
//! +----------------------+---------+---------+-----+------+-------------------------+
//!
//! segment header
//!  offset size field
//!   0      8   magic            89 41 50 50 4C 4F 47 0A  ("\x89APPLOG\n")
//!   8      4   format version   2 (1: frames without a time; still read)
//!  12      4   page size        bytes, a power of two
//!  16      4   segment pages    reservation = page size * segment pages
//!  20      4   flags            0 (reserved)
//!  24      8   base seq         seq of the first record; also the file name
//!  32      8   salt             random, chosen when the segment is created
//!  40      4   header CRC       CRC-32 of bytes 0..40
//!  44      4   reserved         0
//!  48      8   synced mark      low 32 bits: offset below which every frame was durable;
//!                               high 32 bits: check = CRC-32(salt, offset). 0 = none yet.
//!  56      4   wake word        bit 0: a reader may be waiting; bits 1..32: wake epoch.
//!                               Only for waking readers (see `notify`); not checked.
//!  60      4   reserved         0
//!
//! record frame, version 2 (8-byte aligned)
//!  offset size field
//!   0      4   length word      bit 31 set (PRESENT); bit 30: MORE (the next frame belongs to
//!                               the same batch); bits 0..30: payload length
//!   4      4   CRC              CRC-32(salt, seq, length word, time, payload)
//!   8      8   time             nanoseconds since the Unix epoch when it was appended;
//!                               0: unknown (a record copied from a version-1 segment)
//!  16      len payload
//!  16+len  pad zeros up to the next multiple of 8
//!
//! record frame, version 1: as version 2 without the time word (the payload at 8) and
//! without the MORE bit (bits 0..31 are the length); the CRC covers salt, seq, length word
//! and payload.
//!
//! seal frame (both versions): length word 0xFFFF_FFFF, CRC-32(salt, next seq, length
//! word), no payload. It ends a segment; the next segment's base seq is the seal's seq.
//! ```
//!
//! The 8-byte frame header is published with one aligned atomic store, after the payload is in
//! place. A header word of zero means "nothing here yet". Because the PRESENT bit is always
//! set in a real frame, a zero-filled page can never decode as a record, not even the empty
//! record whose CRC happens to be 0. The CRC covers the seq and the segment's salt, so a frame
//! copied to another position, left over in a reused file, or written for another segment
//! does not pass.

/// The 8 magic bytes every segment file starts with.
pub const MAGIC: [u8; 8] = *b"\x89APPLOG\n";
/// The format version this crate writes new segments in. It reads version 1 too.
#[cfg(any(test, feature = "fault-injection"))]
pub const VERSION: u32 = 2;
/// Length of the segment header; the first frame starts here.
pub const HEADER_LEN: u64 = HEADER_BYTES as u64;
/// [`HEADER_LEN`] as a `usize`, for arrays.
pub const HEADER_BYTES: usize = 64;
/// Length of a frame header.
pub const FRAME_HEADER_LEN: u64 = 8;
/// Frames start at multiples of this.
pub const ALIGN: u64 = 8;
/// The largest reservation a segment may have (so a length fits in 31 bits).
pub const MAX_RESERVATION: u64 = 1 << 31;
/// Offset of the synced mark inside the header.
pub const SYNCED_MARK_OFFSET: u64 = 48;
/// Offset of the 32-bit wake word inside the header (see `notify`).
pub const WAKE_WORD_OFFSET: u64 = 56;
/// Offset of the 32-bit cut word inside the header: where the log's end was cut (see
/// [`SegmentHeader::encode_cut`]).
pub const CUT_WORD_OFFSET: u64 = 60;

const PRESENT: u32 = 1 << 31;
/// Version 2: the frame after this one belongs to the same batch.
const MORE: u32 = 1 << 30;
const SEAL_WORD: u32 = u32::MAX;

/// How the record frames of a segment are laid out: by the format version in its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Version 1: an 8-byte header word, then the payload. No time, no batch bit.
    V1,
    /// Version 2: the header word, the 8-byte time, then the payload.
    V2,
}

impl Layout {
    /// The layout new segments are written in.
    pub const CURRENT: Layout = Layout::V2;

    /// The layout of a format version, if this build knows it.
    pub fn of_version(version: u32) -> Option<Layout> {
        match version {
            1 => Some(Layout::V1),
            2 => Some(Layout::V2),
            _ => None,
        }
    }

    /// The format version number.
    pub const fn version(self) -> u32 {
        match self {
            Layout::V1 => 1,
            Layout::V2 => 2,
        }
    }

    /// Bytes before a record's payload: the header word, and the time in version 2.
    #[inline]
    pub fn record_header_len(self) -> u64 {
        match self {
            Layout::V1 => FRAME_HEADER_LEN,
            Layout::V2 => FRAME_HEADER_LEN + 8,
        }
    }

    /// Bytes a record frame with a payload of `len` bytes occupies, padding included.
    #[inline]
    pub fn frame_len(self, len: u64) -> u64 {
        self.record_header_len() + round_up(len, ALIGN)
    }

    /// The largest payload length the length field can hold.
    pub fn max_len(self) -> u64 {
        match self {
            Layout::V1 => u64::from(!PRESENT),
            Layout::V2 => u64::from(MORE - 1),
        }
    }

    /// Whether records carry their append time.
    pub fn has_time(self) -> bool {
        self == Layout::V2
    }
}

/// The low and the high 32 bits of a word.
pub(crate) fn halves(word: u64) -> (u32, u32) {
    let b = word.to_le_bytes();
    (
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

/// An offset or length inside a segment as a `usize`. They are at most [`MAX_RESERVATION`]
/// (2 GiB), which fits in the `usize` of every target the crate builds for (it needs 64-bit
/// atomics, so no 16-bit target); saturates rather than wraps all the same.
pub(crate) fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// An offset or length inside a segment as a `u32`: at most [`MAX_RESERVATION`] (2^31), so it
/// fits; saturates rather than wraps all the same.
pub(crate) fn to_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Rounds `n` up to a multiple of `to` (a power of two). Saturates instead of overflowing.
pub fn round_up(n: u64, to: u64) -> u64 {
    debug_assert!(to.is_power_of_two());
    n.checked_add(to - 1).map_or(!(to - 1), |v| v & !(to - 1))
}

/// Bytes a version-1 frame with a payload of `len` bytes occupies, padding included.
#[cfg(any(test, feature = "fault-injection"))]
pub fn frame_len(len: u64) -> u64 {
    Layout::V1.frame_len(len)
}

pub(crate) fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

pub(crate) fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

mod frame;
mod header;
#[cfg(test)]
mod tests;

pub use frame::*;
pub use header::*;
