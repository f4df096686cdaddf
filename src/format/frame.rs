//! Record and seal frames: header words, CRCs, and checking a frame.

use std::fmt;

use super::{halves, to_u32, Layout, MORE, PRESENT, SEAL_WORD};

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
    let skip = super::to_usize(layout.record_header_len() - super::FRAME_HEADER_LEN);
    let payload = rest.get(skip..).unwrap_or_default();
    let time = || {
        rest.get(..8)
            .filter(|_| layout == Layout::V2)
            .map(|b| super::le_u64(b, 0))
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
