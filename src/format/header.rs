//! The segment header: its fields, encoding, validation and the synced mark.

use std::fmt;

use super::{
    halves, le_u32, le_u64, to_u32, Layout, HEADER_BYTES, HEADER_LEN, MAGIC, MAX_RESERVATION,
};

/// Bits of the cut word that hold the cut offset in 8-byte units.
const CUT_OFFSET_MASK: u32 = (1 << 28) - 1;

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
    /// The segment starts the log anew (flag bit 0): it was created by a reset
    /// (`Writer::reset`), and every segment with a lower base is removed.
    pub starts_log: bool,
}

/// The `flags` bit of a segment that starts the log anew.
const FLAG_STARTS_LOG: u32 = 1;

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
        let flags = if self.starts_log { FLAG_STARTS_LOG } else { 0 };
        b[20..24].copy_from_slice(&flags.to_le_bytes());
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
            starts_log: le_u32(b, 20) & FLAG_STARTS_LOG != 0,
        };
        if !h.page_size.is_power_of_two() || h.page_size < 512 {
            return Err(HeaderError::BadField("page size"));
        }
        if h.segment_pages == 0 || h.reservation() > MAX_RESERVATION {
            return Err(HeaderError::BadField("segment pages"));
        }
        if le_u32(b, 20) & !FLAG_STARTS_LOG != 0 {
            return Err(HeaderError::BadField("flags"));
        }
        // Outside the CRC: bytes 44..48 are reserved and zero. (The synced mark at 48..56 and
        // the cut word at 60..64 carry their own checks; the wake word at 56..60 may hold any
        // value.)
        if le_u32(b, 44) != 0 {
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

    /// The cut word for a cut at `offset`: 8-aligned, below the reservation, and either at
    /// least the header length (the frame of the first seq removed) or 0 (the whole segment
    /// was removed by a cut before it). `offset / 8` in bits 0..28, a check in bits 28..32.
    pub fn encode_cut(&self, offset: u64) -> u32 {
        let eighths = to_u32(offset / 8) & CUT_OFFSET_MASK;
        eighths | (self.cut_check(eighths * 8) << 28)
    }

    /// Decodes a cut word: `Ok(None)` when the segment is not cut, `Ok(Some(offset))` (0: the
    /// whole segment was removed by a cut before it), or `Err(())` when the word fails its
    /// check (damaged after it was written).
    #[allow(clippy::result_unit_err)]
    pub fn decode_cut(&self, word: u32) -> Result<Option<u64>, ()> {
        if word == 0 {
            return Ok(None);
        }
        let eighths = word & CUT_OFFSET_MASK;
        let offset = u64::from(eighths) * 8;
        if word >> 28 != self.cut_check(eighths * 8)
            || (offset != 0 && offset < HEADER_BYTES as u64)
            || offset >= self.reservation()
        {
            return Err(());
        }
        Ok(Some(offset))
    }

    /// One of the 4-bit values with at least two bits set, so that no single bit flipped in
    /// a zero word makes a valid cut.
    fn cut_check(&self, offset: u32) -> u32 {
        const CHECKS: [u32; 11] = [3, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15];
        let mut h = crc32fast::Hasher::new_with_initial(self.crc_seed());
        h.update(b"cut");
        h.update(&offset.to_le_bytes());
        CHECKS[(h.finalize() % 11) as usize]
    }

    fn mark_check(&self, offset: u32) -> u32 {
        let mut h = crc32fast::Hasher::new_with_initial(self.crc_seed());
        h.update(b"synced");
        h.update(&offset.to_le_bytes());
        h.finalize()
    }
}
