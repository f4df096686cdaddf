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

use std::fmt;

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

/// The fixed fields of a segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The frame layout (format version) of the segment.
    pub layout: Layout,
    /// Page size the segment was created with.
    pub page_size: u32,
    /// Reservation in pages.
    pub segment_pages: u32,
    /// Seq of the first record in the segment.
    pub base_seq: u64,
    /// Random value that every frame CRC of this segment covers.
    pub salt: u64,
}

/// Why bytes are not a valid segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    Short,
    /// All zeros: a segment whose header was never written (created, then a crash).
    Blank,
    /// The magic is missing: not an applog segment.
    NotApplog,
    /// A format version this build does not know.
    UnsupportedVersion(u32),
    /// The header CRC does not match.
    BadCrc,
    /// A field has an impossible value.
    BadField(&'static str),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Short => write!(f, "segment header is truncated"),
            HeaderError::Blank => write!(f, "segment header is blank (never written)"),
            HeaderError::NotApplog => write!(f, "no applog magic"),
            HeaderError::UnsupportedVersion(v) => write!(f, "unsupported format version {v}"),
            HeaderError::BadCrc => write!(f, "segment header checksum mismatch"),
            HeaderError::BadField(name) => write!(f, "segment header field `{name}` is invalid"),
        }
    }
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

impl SegmentHeader {
    /// The reservation (mapping length) in bytes.
    pub fn reservation(&self) -> u64 {
        u64::from(self.page_size) * u64::from(self.segment_pages)
    }

    /// The CRC state every frame checksum of this segment starts from.
    pub fn crc_seed(&self) -> u32 {
        crc32fast::hash(&self.salt.to_le_bytes())
    }

    /// The largest payload a frame in this segment can carry.
    pub fn max_record_len(&self) -> u64 {
        self.reservation()
            .saturating_sub(HEADER_LEN + self.layout.record_header_len())
            .min(self.layout.max_len())
    }

    /// Encodes the header; the synced mark is zero.
    pub fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut b = [0u8; HEADER_BYTES];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&self.layout.version().to_le_bytes());
        b[12..16].copy_from_slice(&self.page_size.to_le_bytes());
        b[16..20].copy_from_slice(&self.segment_pages.to_le_bytes());
        b[24..32].copy_from_slice(&self.base_seq.to_le_bytes());
        b[32..40].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32fast::hash(&b[0..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and validates a header from the first bytes of a segment file.
    pub fn decode(b: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let Some(b) = b.get(..HEADER_BYTES) else {
            // Too short: blank if all zeros, foreign if what is there differs from the magic,
            // otherwise a truncated applog header.
            let prefix = b.get(..b.len().min(MAGIC.len())).unwrap_or_default();
            return if b.iter().all(|&x| x == 0) {
                Err(HeaderError::Blank)
            } else if !MAGIC.starts_with(prefix) {
                Err(HeaderError::NotApplog)
            } else {
                Err(HeaderError::Short)
            };
        };
        if b[0..8] != MAGIC {
            if b.iter().all(|&x| x == 0) {
                return Err(HeaderError::Blank);
            }
            return Err(HeaderError::NotApplog);
        }
        let version = le_u32(b, 8);
        let Some(layout) = Layout::of_version(version) else {
            return Err(HeaderError::UnsupportedVersion(version));
        };
        if le_u32(b, 40) != crc32fast::hash(&b[0..40]) {
            return Err(HeaderError::BadCrc);
        }
        let h = SegmentHeader {
            layout,
            page_size: le_u32(b, 12),
            segment_pages: le_u32(b, 16),
            base_seq: le_u64(b, 24),
            salt: le_u64(b, 32),
        };
        if !h.page_size.is_power_of_two() || h.page_size < 512 {
            return Err(HeaderError::BadField("page size"));
        }
        if h.segment_pages == 0 || h.reservation() > MAX_RESERVATION {
            return Err(HeaderError::BadField("segment pages"));
        }
        if le_u32(b, 20) != 0 {
            return Err(HeaderError::BadField("flags"));
        }
        // Outside the CRC: bytes 44..48 and 60..64 are reserved and zero. (The synced mark at
        // 48..56 carries its own check; the wake word at 56..60 may hold any value.)
        if le_u32(b, 44) != 0 || le_u32(b, 60) != 0 {
            return Err(HeaderError::BadField("reserved"));
        }
        Ok(h)
    }

    /// The synced-mark word for `offset`.
    pub fn encode_synced_mark(&self, offset: u64) -> u64 {
        let offset = to_u32(offset);
        let check = self.mark_check(offset);
        (u64::from(check) << 32) | u64::from(offset)
    }

    /// Decodes a synced-mark word: `Some(offset)` (0 when none was ever written), or `None`
    /// when the word fails its check.
    pub fn decode_synced_mark(&self, word: u64) -> Option<u64> {
        if word == 0 {
            return Some(0);
        }
        let (offset, check) = halves(word);
        (check == self.mark_check(offset) && u64::from(offset) <= self.reservation())
            .then_some(u64::from(offset))
    }

    fn mark_check(&self, offset: u32) -> u32 {
        let mut h = crc32fast::Hasher::new_with_initial(self.crc_seed());
        h.update(b"synced");
        h.update(&offset.to_le_bytes());
        h.finalize()
    }
}

/// What an 8-byte frame header word says, before the payload is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    /// Zero: nothing published here yet.
    Empty,
    /// A record frame with this payload length and CRC.
    Record {
        /// Payload length.
        len: u32,
        /// Stored CRC.
        crc: u32,
        /// Version 2: the next frame belongs to the same batch.
        more: bool,
    },
    /// A seal frame with this CRC.
    Seal {
        /// Stored CRC.
        crc: u32,
    },
    /// Non-zero but without the PRESENT bit: garbage.
    Garbage,
}

/// Splits a header word of a segment in `layout`.
#[inline]
pub fn decode_head(layout: Layout, word: u64) -> Head {
    let (lenw, crc) = halves(word);
    if word == 0 {
        Head::Empty
    } else if lenw == SEAL_WORD {
        Head::Seal { crc }
    } else if lenw & PRESENT == 0 {
        Head::Garbage
    } else {
        match layout {
            Layout::V1 => Head::Record {
                len: lenw & !PRESENT,
                crc,
                more: false,
            },
            Layout::V2 => Head::Record {
                len: lenw & (MORE - 1),
                crc,
                more: lenw & MORE != 0,
            },
        }
    }
}

/// The length word of a record frame: PRESENT, MORE (version 2 only) and the length.
#[inline]
fn length_word(layout: Layout, len: u32, more: bool) -> u32 {
    match layout {
        Layout::V1 => (len & !PRESENT) | PRESENT,
        Layout::V2 => (len & (MORE - 1)) | PRESENT | if more { MORE } else { 0 },
    }
}

/// The CRC state of a record frame before its payload: seeded with the segment's salt, then
/// the seq, the length word and (version 2) the time. Feed it the payload and finalize it.
#[inline]
pub fn record_hasher(
    layout: Layout,
    seed: u32,
    seq: u64,
    len: u32,
    more: bool,
    time: u64,
) -> crc32fast::Hasher {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    let mut pre = [0u8; 20];
    pre[..8].copy_from_slice(&seq.to_le_bytes());
    pre[8..12].copy_from_slice(&length_word(layout, len, more).to_le_bytes());
    match layout {
        Layout::V1 => h.update(&pre[..12]),
        Layout::V2 => {
            pre[12..].copy_from_slice(&time.to_le_bytes());
            h.update(&pre);
        }
    }
    h
}

/// CRC of a version-1 record frame.
#[inline]
#[cfg(any(test, feature = "fault-injection"))]
pub fn record_crc(seed: u32, seq: u64, len: u32, payload: &[u8]) -> u32 {
    let mut h = record_hasher(Layout::V1, seed, seq, len, false, 0);
    h.update(payload);
    h.finalize()
}

/// The header word of a version-1 record frame. `len` must be below 2^31 (guaranteed by
/// [`MAX_RESERVATION`]).
#[cfg(any(test, feature = "fault-injection"))]
pub fn record_word(seed: u32, seq: u64, payload: &[u8]) -> u64 {
    frame_word(Layout::V1, seed, seq, 0, false, payload)
}

/// The header word of a record frame in `layout`, with the append `time` and the batch bit
/// `more` (both ignored in version 1). The length must fit the layout's length field
/// ([`Layout::max_len`]; the writer checks it first).
#[inline]
pub fn frame_word(
    layout: Layout,
    seed: u32,
    seq: u64,
    time: u64,
    more: bool,
    payload: &[u8],
) -> u64 {
    let len = to_u32(payload.len() as u64);
    let mut h = record_hasher(layout, seed, seq, len, more, time);
    h.update(payload);
    let crc = h.finalize();
    (u64::from(crc) << 32) | u64::from(length_word(layout, len, more))
}

/// CRC of a seal frame that says the next segment starts at `next_seq`.
pub fn seal_crc(seed: u32, next_seq: u64) -> u32 {
    let mut h = crc32fast::Hasher::new_with_initial(seed);
    let mut pre = [0u8; 12];
    pre[..8].copy_from_slice(&next_seq.to_le_bytes());
    pre[8..].copy_from_slice(&SEAL_WORD.to_le_bytes());
    h.update(&pre);
    h.finalize()
}

/// The header word of a seal frame.
pub fn seal_word(seed: u32, next_seq: u64) -> u64 {
    (u64::from(seal_crc(seed, next_seq)) << 32) | u64::from(SEAL_WORD)
}

/// Why a frame is bad.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFrame {
    /// The header word is non-zero but not a frame.
    Garbage,
    /// The length runs past the reservation or the file size.
    LengthOutOfBounds {
        /// The length field.
        len: u32,
    },
    /// The CRC does not match.
    CrcMismatch {
        /// Stored CRC.
        stored: u32,
        /// CRC of the bytes present.
        actual: u32,
    },
    /// A seal frame whose CRC does not match.
    BadSeal,
    /// A valid seal in a segment that holds no record: it would name the segment itself as
    /// the next one.
    EmptySeal,
}

impl fmt::Display for BadFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadFrame::Garbage => write!(f, "frame header is not a frame"),
            BadFrame::LengthOutOfBounds { len } => {
                write!(f, "frame length {len} runs past the end of the segment")
            }
            BadFrame::CrcMismatch { stored, actual } => write!(
                f,
                "frame checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
            ),
            BadFrame::BadSeal => write!(f, "seal frame checksum mismatch"),
            BadFrame::EmptySeal => write!(f, "seal frame in a segment without records"),
        }
    }
}

/// The result of checking the frame at some offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Nothing published here yet.
    Empty,
    /// A valid record with this payload length; the frame occupies
    /// [`Layout::frame_len`]`(len)` bytes.
    Record {
        /// Payload length.
        len: u32,
        /// Append time, nanoseconds since the Unix epoch; 0 when unknown (version 1).
        time: u64,
        /// The next frame belongs to the same batch (version 2).
        more: bool,
    },
    /// A valid seal: the segment ends here.
    Seal,
    /// A bad frame.
    Bad(BadFrame),
}

/// How a run of frames of one batch (version 2: frames with `MORE`, ended by the first frame
/// without it) ends, looked at from one of its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// The batch is whole: its last frame ends at `end`; `records` frames from the one looked
    /// at, the last appended at `time`.
    Whole {
        /// Offset after the batch's last frame.
        end: u64,
        /// Frames from the one looked at to the last, both included.
        records: u64,
        /// The last frame's time.
        time: u64,
    },
    /// A torn batch: its frames stop at `at`, for `why`, before a frame without `MORE`;
    /// `records` valid frames lie before `at`.
    Torn {
        /// Where the frames stop.
        at: u64,
        /// Valid frames of the batch before `at`, the one looked at included.
        records: u64,
        /// What is at `at`.
        why: RunBreak,
    },
}

/// Where the frames of a torn batch stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunBreak {
    /// An empty header word (or the end of the file).
    Empty,
    /// A seal: the writer never seals in the middle of a batch.
    Seal,
    /// The end of the segment's reservation.
    Full,
    /// A bad frame.
    Bad(BadFrame),
}

impl fmt::Display for RunBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunBreak::Empty => write!(f, "nothing was written there"),
            RunBreak::Seal => write!(f, "a seal"),
            RunBreak::Full => write!(f, "the end of the segment"),
            RunBreak::Bad(b) => write!(f, "{b}"),
        }
    }
}

/// Checks one frame.
///
/// `word` is the header word at the frame's offset; `time` loads the time word (version 2;
/// `None` when it lies outside the file); `avail` is how many bytes exist after the record
/// header ([`Layout::record_header_len`]; up to the smaller of file size and reservation);
/// `payload_crc` finishes the CRC given the [`record_hasher`] state and the payload length,
/// and is only called once `len <= avail` has been checked.
#[inline]
pub fn check_frame(
    layout: Layout,
    seed: u32,
    seq: u64,
    word: u64,
    time: impl FnOnce() -> Option<u64>,
    avail: u64,
    payload_crc: impl FnOnce(crc32fast::Hasher, u32) -> u32,
) -> Frame {
    match decode_head(layout, word) {
        Head::Empty => Frame::Empty,
        Head::Garbage => Frame::Bad(BadFrame::Garbage),
        Head::Seal { crc } => {
            if crc == seal_crc(seed, seq) {
                Frame::Seal
            } else {
                Frame::Bad(BadFrame::BadSeal)
            }
        }
        Head::Record { len, crc, more } => {
            let time = match layout {
                Layout::V1 => Some(0),
                Layout::V2 => time(),
            };
            let Some(time) = time.filter(|_| u64::from(len) <= avail) else {
                return Frame::Bad(BadFrame::LengthOutOfBounds { len });
            };
            let actual = payload_crc(record_hasher(layout, seed, seq, len, more, time), len);
            if actual == crc {
                Frame::Record { len, time, more }
            } else {
                Frame::Bad(BadFrame::CrcMismatch {
                    stored: crc,
                    actual,
                })
            }
        }
    }
}

/// [`check_frame`] of a version-1 frame over a payload in a byte slice (`payload` holds at
/// least `avail` bytes).
#[cfg(any(test, feature = "fault-injection"))]
pub fn check_frame_in(seed: u32, seq: u64, word: u64, payload: &[u8]) -> Frame {
    check_frame_bytes(Layout::V1, seed, seq, word, payload)
}

/// [`check_frame`] over the bytes after a frame's header word (`rest`: for version 2 the time
/// word, then the payload).
#[cfg(any(test, feature = "fault-injection"))]
pub fn check_frame_bytes(layout: Layout, seed: u32, seq: u64, word: u64, rest: &[u8]) -> Frame {
    let skip = to_usize(layout.record_header_len() - FRAME_HEADER_LEN);
    let payload = rest.get(skip..).unwrap_or_default();
    let time = || {
        rest.get(..8)
            .filter(|_| layout == Layout::V2)
            .map(|b| le_u64(b, 0))
    };
    check_frame(
        layout,
        seed,
        seq,
        word,
        time,
        payload.len() as u64,
        |mut h, len| {
            h.update(payload.get(..len as usize).unwrap_or_default());
            h.finalize()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hdr() -> SegmentHeader {
        SegmentHeader {
            layout: Layout::V1,
            page_size: 4096,
            segment_pages: 16,
            base_seq: 42,
            salt: 0x1234_5678_9abc_def0,
        }
    }

    #[test]
    fn header_round_trip() {
        let h = hdr();
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn zero_header_is_blank_and_zero_word_is_empty() {
        assert_eq!(SegmentHeader::decode(&[0u8; 64]), Err(HeaderError::Blank));
        assert_eq!(decode_head(Layout::V2, 0), Head::Empty);
        // The empty record never encodes to zero, whatever its CRC.
        for seq in 0..10_000u64 {
            assert_ne!(record_word(hdr().crc_seed(), seq, &[]), 0);
        }
    }

    #[test]
    fn foreign_bytes_are_not_applog() {
        assert_eq!(
            SegmentHeader::decode(
                b"hello world, this is not an applog segment header at all......"
            ),
            Err(HeaderError::NotApplog)
        );
        assert_eq!(SegmentHeader::decode(b"hi"), Err(HeaderError::NotApplog));
        assert_eq!(SegmentHeader::decode(&MAGIC), Err(HeaderError::Short));
        assert_eq!(SegmentHeader::decode(&MAGIC[..3]), Err(HeaderError::Short));
        assert_eq!(SegmentHeader::decode(&[0, 0, 0]), Err(HeaderError::Blank));
    }

    #[test]
    fn every_header_bit_flip_is_caught() {
        let good = hdr().encode();
        for byte in 0..44 {
            for bit in 0..8 {
                let mut b = good;
                b[byte] ^= 1 << bit;
                assert!(
                    SegmentHeader::decode(&b).is_err(),
                    "flip {byte}:{bit} passed"
                );
            }
        }
    }

    #[test]
    fn crc_seed_continues_the_salt() {
        // new_with_initial(crc(salt)) must equal hashing salt || rest.
        let h = hdr();
        let mut all = h.salt.to_le_bytes().to_vec();
        all.extend_from_slice(&7u64.to_le_bytes());
        all.extend_from_slice(&(3u32 | PRESENT).to_le_bytes());
        all.extend_from_slice(b"abc");
        assert_eq!(
            record_crc(h.crc_seed(), 7, 3, b"abc"),
            crc32fast::hash(&all)
        );
    }

    #[test]
    fn frame_is_pinned_to_seq_and_salt() {
        let h = hdr();
        let w = record_word(h.crc_seed(), 5, b"payload");
        let ok = check_frame_in(h.crc_seed(), 5, w, b"payload");
        assert_eq!(
            ok,
            Frame::Record {
                len: 7,
                time: 0,
                more: false
            }
        );
        let other_seq = check_frame_in(h.crc_seed(), 6, w, b"payload");
        assert!(matches!(
            other_seq,
            Frame::Bad(BadFrame::CrcMismatch { .. })
        ));
        let other_salt = SegmentHeader { salt: 1, ..h };
        let stale = check_frame_in(other_salt.crc_seed(), 5, w, b"payload");
        assert!(matches!(stale, Frame::Bad(BadFrame::CrcMismatch { .. })));
        let short = check_frame_in(h.crc_seed(), 5, w, &b"payload"[..6]);
        assert_eq!(short, Frame::Bad(BadFrame::LengthOutOfBounds { len: 7 }));
    }

    fn v2(payload: &[u8], time: u64, more: bool) -> (u64, Vec<u8>) {
        let w = frame_word(Layout::V2, hdr().crc_seed(), 9, time, more, payload);
        let mut rest = time.to_le_bytes().to_vec();
        rest.extend_from_slice(payload);
        (w, rest)
    }

    #[test]
    fn version_2_frame_carries_time_and_the_batch_bit() {
        let seed = hdr().crc_seed();
        let (w, rest) = v2(b"payload", 1_700_000_000_123_456_789, true);
        assert_eq!(
            check_frame_bytes(Layout::V2, seed, 9, w, &rest),
            Frame::Record {
                len: 7,
                time: 1_700_000_000_123_456_789,
                more: true
            }
        );
        assert_eq!(Layout::V2.frame_len(7), 16 + 8);
        assert_eq!(Layout::V1.frame_len(7), 8 + 8);
        // The time and the batch bit are covered by the CRC.
        for bit in 0..64 {
            let mut bad = rest.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(matches!(
                check_frame_bytes(Layout::V2, seed, 9, w, &bad),
                Frame::Bad(BadFrame::CrcMismatch { .. })
            ));
        }
        let flipped = w ^ u64::from(MORE);
        assert!(matches!(
            check_frame_bytes(Layout::V2, seed, 9, flipped, &rest),
            Frame::Bad(BadFrame::CrcMismatch { .. })
        ));
        // A frame without its time word in the file runs out of bounds.
        assert_eq!(
            check_frame_bytes(Layout::V2, seed, 9, w, &rest[..4]),
            Frame::Bad(BadFrame::LengthOutOfBounds { len: 7 })
        );
        // The same word read as version 1 does not pass.
        assert!(matches!(
            check_frame_bytes(Layout::V1, seed, 9, w, &rest),
            Frame::Bad(_)
        ));
    }

    #[test]
    fn both_versions_decode_and_others_are_refused() {
        let v1 = hdr();
        let v2 = SegmentHeader {
            layout: Layout::V2,
            ..v1
        };
        assert_eq!(SegmentHeader::decode(&v1.encode()), Ok(v1));
        assert_eq!(SegmentHeader::decode(&v2.encode()), Ok(v2));
        let mut b = v2.encode();
        b[8] = 3;
        let crc = crc32fast::hash(&b[0..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            SegmentHeader::decode(&b),
            Err(HeaderError::UnsupportedVersion(3))
        );
        // Version 2's length field has 30 bits.
        let big = SegmentHeader {
            page_size: 1 << 16,
            segment_pages: 1 << 15,
            ..v2
        };
        assert_eq!(big.max_record_len(), (1 << 30) - 1);
        assert_eq!(
            SegmentHeader {
                layout: Layout::V1,
                ..big
            }
            .max_record_len(),
            (1 << 31) - HEADER_LEN - 8
        );
    }

    #[test]
    fn seal_round_trip() {
        let h = hdr();
        let w = seal_word(h.crc_seed(), 99);
        assert_eq!(check_frame_in(h.crc_seed(), 99, w, &[]), Frame::Seal);
        assert_eq!(
            check_frame_in(h.crc_seed(), 98, w, &[]),
            Frame::Bad(BadFrame::BadSeal)
        );
    }

    #[test]
    fn synced_mark_round_trip_and_check() {
        let h = hdr();
        assert_eq!(h.decode_synced_mark(0), Some(0));
        let w = h.encode_synced_mark(4096);
        assert_eq!(h.decode_synced_mark(w), Some(4096));
        assert_eq!(h.decode_synced_mark(w ^ 1), None);
        assert_eq!(h.decode_synced_mark(w ^ (1 << 40)), None);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), word in any::<u64>(), avail in any::<u64>()) {
            let _ = SegmentHeader::decode(&bytes);
            let r = check_frame_in(7, 1, word, &bytes[..(avail.min(bytes.len() as u64)) as usize]);
            // A random word is only accepted with a matching CRC.
            if let Frame::Record { len, .. } = r {
                prop_assert_eq!(record_word(7, 1, &bytes[..len as usize]), word);
            }
        }

        #[test]
        fn record_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..300), seq in any::<u64>(), seed in any::<u32>()) {
            let w = record_word(seed, seq, &payload);
            let r = check_frame_in(seed, seq, w, &payload);
            prop_assert_eq!(r, Frame::Record { len: payload.len() as u32, time: 0, more: false });
        }

        #[test]
        fn version_2_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..300), seq in any::<u64>(), seed in any::<u32>(), time in any::<u64>(), more in any::<bool>()) {
            let w = frame_word(Layout::V2, seed, seq, time, more, &payload);
            let mut rest = time.to_le_bytes().to_vec();
            rest.extend_from_slice(&payload);
            let r = check_frame_bytes(Layout::V2, seed, seq, w, &rest);
            prop_assert_eq!(r, Frame::Record { len: payload.len() as u32, time, more });
        }

        #[test]
        fn version_2_decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), word in any::<u64>()) {
            let r = check_frame_bytes(Layout::V2, 7, 1, word, &bytes);
            // A random word is only accepted with a matching CRC over the time and payload.
            if let Frame::Record { len, time, more } = r {
                prop_assert_eq!(frame_word(Layout::V2, 7, 1, time, more, &bytes[8..8 + len as usize]), word);
            }
        }
    }
}
