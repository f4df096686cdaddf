//! A consumer's position file, `consumers/<name>` in the log directory: its layout, how a
//! position is written so that a crash mid-write leaves the previous one, and how it is read.
//!
//! The file is one page long; the first 192 bytes are used, all of them 8-byte little-endian
//! words that are only ever accessed atomically (see `mapping::WordMap`):
//!
//! | offset | word |
//! |---|---|
//! | 0 | magic `APLGCONS` |
//! | 8 | format version (1) |
//! | 16 | creation time (Unix nanoseconds) |
//! | 24 | the process that holds the consumer (0 when none said so) |
//! | 32 | state: 0 active, 1 parked |
//! | 40, 48, 56 | when parked: its position, how many bytes it lagged, when (Unix ns) |
//! | 64, 112 | position slots A and B (5 words each) |
//!
//! A slot holds `next_seq` (the first seq not committed), the commit time, a hint of where
//! that record lies (segment base seq and byte offset; `u64::MAX` when unknown) and a check
//! word over the other four. A commit writes the slot that does *not* hold the newest
//! position, check word last (`Release`); the newest slot whose check word matches is the
//! position. A crash in the middle of a commit leaves that slot failing its check and the
//! other one holding the position before, so a consumer resumes at or before what it
//! committed, never after. Both slots failing is damage.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::mapping::WordMap;
use crate::word_file::{check_start, idx, read_full, word, OFF_MAGIC, OFF_VERSION};

/// `APLGCONS`, little-endian.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"APLGCONS");
/// The format version of a consumer file.
pub(crate) const VERSION: u64 = 1;
/// Bytes of the file in use.
pub(crate) const USED: usize = 192;

const OFF_CREATED: u64 = 16;
const OFF_HOLDER: u64 = 24;
const OFF_STATE: u64 = 32;
const OFF_PARKED_SEQ: u64 = 40;
const OFF_PARKED_LAG: u64 = 48;
const OFF_PARKED_AT: u64 = 56;
const SLOTS: [u64; 2] = [64, 112];

const STATE_ACTIVE: u64 = 0;
const STATE_PARKED: u64 = 1;

/// "No hint": the record's place in the log is not known.
pub(crate) const NO_HINT: u64 = u64::MAX;

/// A committed position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The first seq not committed.
    pub seq: u64,
    /// When it was committed, in Unix nanoseconds.
    pub time: u64,
    /// The base seq of the segment that holds `seq` (or will), or `NO_HINT`.
    pub base: u64,
    /// The byte offset of `seq`'s frame in that segment, or `NO_HINT`.
    pub off: u64,
}

impl Slot {
    /// The check word: a bijective mix of the four words, so that damage to any one of them
    /// (or zeroes where a slot was) fails it.
    fn check(&self) -> u64 {
        mix(self.seq
            ^ self.time.rotate_left(16)
            ^ self.base.rotate_left(32)
            ^ self.off.rotate_left(48)
            ^ 0x6170_706c_6f67_5f63)
    }
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Why a consumer was parked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Parked {
    /// Its position when parked.
    pub seq: u64,
    /// How many bytes of the log lay between its position and the end.
    pub lag_bytes: u64,
    /// When, in Unix nanoseconds.
    pub at: u64,
}

/// What a consumer file says, read at one moment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub holder: u64,
    pub parked: Option<Parked>,
    pub position: Slot,
    /// Which slot holds `position`.
    pub slot: usize,
}

fn damaged(name: &str, path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::ConsumerCorrupt {
        name: name.to_owned(),
        path: path.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// Decodes the used bytes of a consumer file.
///
/// # Errors
/// `ConsumerCorrupt`, naming the byte offset of what is wrong.
pub(crate) fn decode(name: &str, path: &Path, bytes: &[u8]) -> Result<Snapshot> {
    check_start(bytes, USED, MAGIC, VERSION, "consumer file")
        .map_err(|(offset, reason)| damaged(name, path, offset, reason))?;
    let parked = match word(bytes, OFF_STATE) {
        STATE_ACTIVE => None,
        STATE_PARKED => Some(Parked {
            seq: word(bytes, OFF_PARKED_SEQ),
            lag_bytes: word(bytes, OFF_PARKED_LAG),
            at: word(bytes, OFF_PARKED_AT),
        }),
        other => {
            return Err(damaged(
                name,
                path,
                OFF_STATE,
                format!("unknown consumer state {other}"),
            ))
        }
    };
    let slots = SLOTS.map(|at| {
        let s = Slot {
            seq: word(bytes, at),
            time: word(bytes, at + 8),
            base: word(bytes, at + 16),
            off: word(bytes, at + 24),
        };
        (s.check() == word(bytes, at + 32)).then_some(s)
    });
    let (slot, position) = match slots {
        [Some(a), Some(b)] if b.seq > a.seq || (b.seq == a.seq && b.time > a.time) => (1, b),
        [Some(a), _] => (0, a),
        [None, Some(b)] => (1, b),
        [None, None] => {
            return Err(damaged(
                name,
                path,
                SLOTS[0],
                "both position records fail their check word",
            ))
        }
    };
    Ok(Snapshot {
        holder: word(bytes, OFF_HOLDER),
        parked,
        position,
        slot,
    })
}

/// The used bytes of a new consumer file at `position`.
pub(crate) fn encode_new(position: Slot, now: u64) -> Vec<u8> {
    let mut b = vec![0u8; USED];
    let mut put = |off: u64, v: u64| {
        let at = idx(off);
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    };
    put(OFF_MAGIC, MAGIC);
    put(OFF_VERSION, VERSION);
    put(OFF_CREATED, now);
    for at in SLOTS {
        put(at, position.seq);
        put(at + 8, position.time);
        put(at + 16, position.base);
        put(at + 24, position.off);
        put(at + 32, position.check());
    }
    b
}

/// Reads a consumer file with `pread` (no mapping, no lock: any process that may read the
/// file can). A commit racing the read can leave the slot it writes failing its check in
/// what was read; the other slot then holds the position before. Retries a few times before
/// it calls a file whose slots both fail damaged.
///
/// # Errors
/// `Io`; `ConsumerCorrupt`.
pub(crate) fn read(name: &str, path: &Path, file: &File) -> Result<Snapshot> {
    let mut last = None;
    for _ in 0..3 {
        let mut bytes = vec![0u8; USED];
        let n = read_full(file, &mut bytes)
            .map_err(|e| Error::io("could not read consumer file", path, e))?;
        bytes.truncate(n);
        match decode(name, path, &bytes) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
        std::thread::yield_now();
    }
    Err(last.unwrap_or_else(|| damaged(name, path, 0, "unreadable")))
}

/// A consumer file mapped read-write: by its holder (to commit) and by retention (to park).
pub(crate) struct Mapped {
    map: WordMap,
    /// The slot that holds the newest position (the holder only).
    slot: usize,
}

impl Mapped {
    /// Maps `file` (opened read-write; `len` bytes long, at least `USED`).
    pub(crate) fn new(file: &File, len: u64, slot: usize) -> std::io::Result<Mapped> {
        Ok(Mapped {
            map: WordMap::new(file, len)?,
            slot,
        })
    }

    /// Writes `pos` into the slot that does not hold the newest position: four `Relaxed`
    /// stores and the check word with `Release`. No system call.
    #[inline]
    pub(crate) fn commit(&mut self, pos: Slot) -> std::io::Result<()> {
        let next = 1 - self.slot;
        let at = SLOTS[next];
        self.map.store(at, pos.seq, Ordering::Relaxed)?;
        self.map.store(at + 8, pos.time, Ordering::Relaxed)?;
        self.map.store(at + 16, pos.base, Ordering::Relaxed)?;
        self.map.store(at + 24, pos.off, Ordering::Relaxed)?;
        self.map.store(at + 32, pos.check(), Ordering::Release)?;
        self.slot = next;
        Ok(())
    }

    /// Writes `pos` into both slots (a reset, by a process that holds the consumer).
    pub(crate) fn reset(&mut self, pos: Slot) -> std::io::Result<()> {
        self.commit(pos)?;
        self.commit(pos)?;
        self.map.store(OFF_STATE, STATE_ACTIVE, Ordering::Release)
    }

    /// Whether the consumer is parked, and how.
    #[inline]
    pub(crate) fn parked(&self) -> Option<Parked> {
        if self.map.load(OFF_STATE)? == STATE_PARKED {
            Some(Parked {
                seq: self.map.load(OFF_PARKED_SEQ)?,
                lag_bytes: self.map.load(OFF_PARKED_LAG)?,
                at: self.map.load(OFF_PARKED_AT)?,
            })
        } else {
            None
        }
    }

    /// Parks the consumer: what it is told first, then the state word (`Release`).
    pub(crate) fn park(&self, how: Parked) -> std::io::Result<()> {
        self.map.store(OFF_PARKED_SEQ, how.seq, Ordering::Relaxed)?;
        self.map
            .store(OFF_PARKED_LAG, how.lag_bytes, Ordering::Relaxed)?;
        self.map.store(OFF_PARKED_AT, how.at, Ordering::Relaxed)?;
        self.map.store(OFF_STATE, STATE_PARKED, Ordering::Release)
    }

    /// Says which process holds the consumer (0: none).
    pub(crate) fn set_holder(&self, pid: u64) -> std::io::Result<()> {
        self.map.store(OFF_HOLDER, pid, Ordering::Relaxed)
    }

    /// Makes everything stored so far durable (`msync`).
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        self.map.msync()
    }
}

/// Now, in Unix nanoseconds, from the coarse real-time clock (a few nanoseconds, no system
/// call; resolution a few milliseconds, plenty for "when it last committed").
#[inline]
pub(crate) fn now_coarse() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(seq: u64) -> Slot {
        Slot {
            seq,
            time: 7,
            base: 0,
            off: 64,
        }
    }

    #[test]
    fn a_new_file_decodes_to_its_position() {
        let b = encode_new(slot(42), 1);
        let s = decode("c", Path::new("c"), &b).unwrap();
        assert_eq!(s.position, slot(42));
        assert!(s.parked.is_none());
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_other() {
        let mut b = encode_new(slot(42), 1);
        // Slot B half rewritten to 50: its check word no longer matches.
        b[SLOTS[1] as usize..SLOTS[1] as usize + 8].copy_from_slice(&50u64.to_le_bytes());
        let s = decode("c", Path::new("c"), &b).unwrap();
        assert_eq!(s.position.seq, 42);
        assert_eq!(s.slot, 0);
    }

    #[test]
    fn any_flipped_bit_in_a_slot_fails_its_check() {
        let b = encode_new(slot(42), 1);
        for byte in SLOTS[0] as usize..SLOTS[0] as usize + 40 {
            for bit in 0..8 {
                let mut d = b.clone();
                d[byte] ^= 1 << bit;
                // The other slot still holds the position.
                let s = decode("c", Path::new("c"), &d).unwrap();
                assert_eq!((s.slot, s.position), (1, slot(42)), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn both_slots_damaged_is_an_error_naming_the_offset() {
        let mut b = encode_new(slot(42), 1);
        b[SLOTS[0] as usize] ^= 1;
        b[SLOTS[1] as usize] ^= 1;
        match decode("c", Path::new("c"), &b) {
            Err(Error::ConsumerCorrupt { offset, .. }) => assert_eq!(offset, SLOTS[0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zeroed_and_foreign_files_are_errors() {
        assert!(decode("c", Path::new("c"), &[0u8; USED]).is_err());
        assert!(decode("c", Path::new("c"), &[0u8; 10]).is_err());
        let mut b = encode_new(slot(1), 1);
        b[OFF_STATE as usize] = 9;
        assert!(decode("c", Path::new("c"), &b).is_err());
    }
}
