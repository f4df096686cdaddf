//! The metadata file, `applog.meta` in the log directory: its layout, decoding, and the
//! writer's side (the layout is documented for operators in `docs/metadata.md`).
//!
//! Three 4 KiB blocks, all integers little-endian:
//!
//! | offset | what |
//! |---|---|
//! | 0 | header: magic `APLGMETA` (8 bytes), version 1 (u64), slot length 4096 (u64), CRC-32 of those 24 bytes (u32), zero (u32); the rest of the block zero |
//! | 4096 | slot A |
//! | 8192 | slot B |
//!
//! A slot: CRC-32 (u32) over the slot's index (one byte, 0 or 1) and its bytes 4 to
//! `24 + len`; `len` (u32), the bytes of entries; generation (u64, from 1); the entry count
//! (u32); zero (u32); the entries, sorted by name, each the name's length (u8, 1 to 255), the
//! name (UTF-8), the value's length (u32) and the value; zeros to the end of the slot.
//!
//! The writer rewrites the slot that does not hold the newest valid generation, whole, with
//! the next generation (`pwrite`, then `fdatasync`); a reader takes the valid slot with the
//! higher generation. A write torn by a crash fails its slot's CRC, and the other slot, one
//! change older, is taken: a crash leaves the old contents or the new, never a mix. The
//! header is written once, when the file is created (written whole under `.applog.meta.new`,
//! synced, renamed into place, the directory synced), and never again.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Meta, META_FILE};
use crate::error::{Error, Result};
use crate::io::FileSystem;
use crate::word_file::{check_start, read_full};

/// `APLGMETA`, little-endian.
const MAGIC: u64 = u64::from_le_bytes(*b"APLGMETA");
/// The format version of a metadata file.
const VERSION: u64 = 1;
/// Length of the header block and of each slot.
const BLOCK: usize = 4096;
/// Offset of the slot length in the header.
const OFF_SLOT_LEN: usize = 16;
/// Offset of the header's CRC.
const OFF_HEADER_CRC: usize = 24;
/// The slots' offsets.
const SLOTS: [usize; 2] = [BLOCK, 2 * BLOCK];
/// The file's length.
pub(crate) const FILE_LEN: usize = 3 * BLOCK;
/// Bytes of a slot before its entries.
const SLOT_HEAD: usize = 24;
/// The most bytes of entries a slot holds.
pub(crate) const MAX_ENTRIES_LEN: usize = BLOCK - SLOT_HEAD;
/// Bytes an entry takes besides its name and value.
pub(crate) const ENTRY_OVERHEAD: usize = 5;
/// The longest name.
pub(crate) const MAX_NAME_LEN: usize = 255;
/// The name a new file is written under before it is renamed into place.
pub(crate) const TEMP_FILE: &str = ".applog.meta.new";

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

fn header_crc(b: &[u8]) -> u32 {
    crc32fast::hash(b.get(..OFF_HEADER_CRC).unwrap_or(&[]))
}

/// The CRC of slot `index` whose bytes (from its start) are `slot`, holding `len` bytes of
/// entries (at most [`MAX_ENTRIES_LEN`]).
fn slot_crc(index: usize, slot: &[u8], len: usize) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&[u8::from(index == 1)]);
    h.update(slot.get(4..SLOT_HEAD + len).unwrap_or(&[]));
    h.finalize()
}

/// Bytes of entries `meta` takes in a slot.
pub(crate) fn entries_len(meta: &Meta) -> usize {
    meta.entries
        .iter()
        .map(|(n, v)| ENTRY_OVERHEAD + n.len() + v.len())
        .sum()
}

/// Slot `index` holding `meta` as generation `generation` (the caller checked its size).
fn encode_slot(index: usize, generation: u64, meta: &Meta) -> Vec<u8> {
    let mut b = vec![0u8; SLOT_HEAD];
    for (name, value) in &meta.entries {
        // Lengths were checked: a name is at most 255 bytes, a value at most a slot.
        b.push(u8::try_from(name.len()).unwrap_or(u8::MAX));
        b.extend_from_slice(name.as_bytes());
        b.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
        b.extend_from_slice(value);
    }
    let len = b.len() - SLOT_HEAD;
    b.resize(BLOCK, 0);
    let len32 = u32::try_from(len).unwrap_or(u32::MAX);
    let count = u32::try_from(meta.entries.len()).unwrap_or(u32::MAX);
    b[4..8].copy_from_slice(&len32.to_le_bytes());
    b[8..16].copy_from_slice(&generation.to_le_bytes());
    b[16..20].copy_from_slice(&count.to_le_bytes());
    let crc = slot_crc(index, &b, len);
    b[0..4].copy_from_slice(&crc.to_le_bytes());
    b
}

/// A new file holding `meta` as generation 1 in slot A, slot B empty.
fn encode_new(meta: &Meta) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    b[0..8].copy_from_slice(&MAGIC.to_le_bytes());
    b[8..16].copy_from_slice(&VERSION.to_le_bytes());
    b[OFF_SLOT_LEN..OFF_SLOT_LEN + 8].copy_from_slice(&(BLOCK as u64).to_le_bytes());
    let crc = header_crc(&b);
    b[OFF_HEADER_CRC..OFF_HEADER_CRC + 4].copy_from_slice(&crc.to_le_bytes());
    b.extend_from_slice(&encode_slot(0, 1, meta));
    b.resize(FILE_LEN, 0);
    b
}

/// The entries and generation of slot `index`, or why it is not valid.
fn decode_slot(index: usize, s: &[u8]) -> Result<(u64, Meta), String> {
    if s.iter().all(|&b| b == 0) {
        return Err("never written".into());
    }
    let len = u32_at(s, 4) as usize;
    if len > MAX_ENTRIES_LEN {
        return Err(format!("its length {len} is larger than a slot"));
    }
    if u32_at(s, 0) != slot_crc(index, s, len) {
        return Err("CRC mismatch (a torn write or damage)".into());
    }
    let generation = u64_at(s, 8);
    if generation == 0 {
        return Err("generation 0".into());
    }
    let count = u32_at(s, 16) as usize;
    if u32_at(s, 20) != 0 {
        return Err("reserved bytes are not zero".into());
    }
    let mut meta = Meta::default();
    let mut at = SLOT_HEAD;
    let end = SLOT_HEAD + len;
    while at < end {
        let name_len = usize::from(s[at]);
        let name_at = at + 1;
        let value_len_at = name_at + name_len;
        if name_len == 0 || value_len_at + 4 > end {
            return Err(format!("bad entry at slot byte {at}"));
        }
        let Ok(name) = std::str::from_utf8(&s[name_at..value_len_at]) else {
            return Err(format!("entry name at slot byte {name_at} is not UTF-8"));
        };
        let value_len = u32_at(s, value_len_at) as usize;
        let value_at = value_len_at + 4;
        if value_len > end - value_at {
            return Err(format!(
                "entry value at slot byte {value_at} runs past the slot"
            ));
        }
        if meta
            .entries
            .keys()
            .next_back()
            .is_some_and(|last| **last >= *name)
        {
            return Err(format!("entry names out of order at slot byte {at}"));
        }
        meta.entries
            .insert(name.to_owned(), s[value_at..value_at + value_len].to_vec());
        at = value_at + value_len;
    }
    if meta.entries.len() != count {
        return Err(format!(
            "it says {count} entries and holds {}",
            meta.entries.len()
        ));
    }
    Ok((generation, meta))
}

/// What a metadata file holds: the newest valid slot's entries.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub meta: Meta,
    pub generation: u64,
    pub slot: usize,
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::MetaCorrupt {
        path: path.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// Decodes the first [`FILE_LEN`] bytes of a metadata file (fewer when it is shorter).
///
/// # Errors
/// `MetaCorrupt`, naming the byte offset of what is wrong.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<Loaded> {
    check_start(bytes, FILE_LEN, MAGIC, VERSION, "metadata file")
        .map_err(|(offset, reason)| corrupt(path, offset, reason))?;
    let slot_len = u64_at(bytes, OFF_SLOT_LEN);
    if slot_len != BLOCK as u64 {
        return Err(corrupt(
            path,
            OFF_SLOT_LEN as u64,
            format!("unknown slot length {slot_len}"),
        ));
    }
    if u32_at(bytes, OFF_HEADER_CRC) != header_crc(bytes) {
        return Err(corrupt(
            path,
            OFF_HEADER_CRC as u64,
            "the header fails its CRC",
        ));
    }
    let slots = SLOTS.map(|at| &bytes[at..at + BLOCK]);
    let decoded = [decode_slot(0, slots[0]), decode_slot(1, slots[1])];
    match decoded {
        [Ok((ga, a)), Ok((gb, b))] => Ok(if gb > ga {
            Loaded {
                meta: b,
                generation: gb,
                slot: 1,
            }
        } else {
            Loaded {
                meta: a,
                generation: ga,
                slot: 0,
            }
        }),
        [Ok((generation, meta)), Err(_)] => Ok(Loaded {
            meta,
            generation,
            slot: 0,
        }),
        [Err(_), Ok((generation, meta))] => Ok(Loaded {
            meta,
            generation,
            slot: 1,
        }),
        [Err(ra), Err(rb)] => {
            // Name the slot that held something (the damage is there), slot A if both did.
            let at = if slots[0].iter().all(|&b| b == 0) {
                SLOTS[1]
            } else {
                SLOTS[0]
            };
            Err(corrupt(
                path,
                at as u64,
                format!(
                    "neither slot is valid (slot A at byte {}: {ra}; slot B at byte {}: {rb})",
                    SLOTS[0], SLOTS[1]
                ),
            ))
        }
    }
}

/// Reads and decodes the metadata file at `path` (`None` when there is none). With
/// `retries`, a file both of whose slots fail is read again a few times: a reader without
/// the lock can race two quick writes.
pub(crate) fn read(path: &Path, retries: bool) -> Result<Option<Loaded>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("could not open metadata file", path, e)),
    };
    read_open(&file, path, if retries { 5 } else { 1 }).map(Some)
}

fn read_open(file: &File, path: &Path, tries: u32) -> Result<Loaded> {
    let mut last = None;
    for i in 0..tries {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut bytes = vec![0u8; FILE_LEN];
        let n = read_full(file, &mut bytes)
            .map_err(|e| Error::io("could not read metadata file", path, e))?;
        bytes.truncate(n);
        match decode(path, &bytes) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| corrupt(path, 0, "unreadable")))
}

/// The writer's side: what is stored, and the file (once there is one).
#[derive(Debug)]
pub(crate) struct Store {
    dir: PathBuf,
    path: PathBuf,
    fs: Arc<dyn FileSystem>,
    meta: Meta,
    file: Option<File>,
    /// The generation `meta` was stored as (0: never).
    generation: u64,
    /// The slot holding it (slot B before the first store, so that slot A is written first).
    slot: usize,
    /// The file was renamed into place but the directory not synced since.
    dir_unsynced: bool,
}

impl Store {
    /// Loads the metadata of the log in `dir` (the caller holds the log's lock).
    ///
    /// # Errors
    /// `MetaCorrupt`; `Io`.
    pub(crate) fn load(dir: &Path, fs: Arc<dyn FileSystem>) -> Result<Store> {
        let path = dir.join(META_FILE);
        let mut store = Store {
            dir: dir.to_owned(),
            path,
            fs,
            meta: Meta::default(),
            file: None,
            generation: 0,
            slot: 1,
            dir_unsynced: false,
        };
        let file = match OpenOptions::new().read(true).write(true).open(&store.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(store),
            Err(e) => return Err(Error::io("could not open metadata file", &store.path, e)),
        };
        let loaded = read_open(&file, &store.path, 1)?;
        store.meta = loaded.meta;
        store.generation = loaded.generation;
        store.slot = loaded.slot;
        store.file = Some(file);
        Ok(store)
    }

    pub(crate) fn meta(&self) -> &Meta {
        &self.meta
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `meta` (whose size the caller checked) durably.
    pub(crate) fn store(&mut self, meta: Meta) -> Result<()> {
        let target = 1 - self.slot;
        let generation = self.generation.checked_add(1).ok_or_else(|| {
            corrupt(
                &self.path,
                SLOTS[self.slot] as u64 + 8,
                "generation at its limit",
            )
        })?;
        match &self.file {
            None => {
                if meta.is_empty() {
                    return Ok(()); // nothing stored, nothing to store
                }
                self.create(&meta)?;
            }
            Some(file) => {
                let bytes = encode_slot(target, generation, &meta);
                self.fs
                    .write_at(file, &self.path, &bytes, SLOTS[target] as u64)
                    .and_then(|()| self.fs.sync_data(file, &self.path))
                    .map_err(|e| Error::create("could not write metadata file", &self.path, e))?;
            }
        }
        if self.dir_unsynced {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("could not sync log directory", &self.dir, e))?;
            self.dir_unsynced = false;
        }
        self.meta = meta;
        self.generation = generation;
        self.slot = target;
        Ok(())
    }

    /// Creates the file holding `meta` as generation 1: written whole and synced under
    /// [`TEMP_FILE`], then renamed into place (the directory is synced by the caller).
    fn create(&mut self, meta: &Meta) -> Result<()> {
        let tmp = self.dir.join(TEMP_FILE);
        // A leftover of a crash during an earlier creation (the lock is held: nobody else
        // writes it).
        match self.fs.remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("could not remove", &tmp, e)),
        }
        let file = self
            .fs
            .create_new(&tmp)
            .map_err(|e| Error::create("could not create metadata file", &tmp, e))?;
        let written = self
            .fs
            .write_at(&file, &tmp, &encode_new(meta), 0)
            .and_then(|()| self.fs.sync_data(&file, &tmp))
            .map_err(|e| Error::create("could not write metadata file", &tmp, e))
            .and_then(|()| {
                self.fs
                    .rename(&tmp, &self.path)
                    .map_err(|e| Error::io("could not rename metadata file to", &self.path, e))
            });
        if let Err(e) = written {
            let _ = self.fs.remove_file(&tmp);
            return Err(e);
        }
        self.file = Some(file);
        self.dir_unsynced = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &[u8])]) -> Meta {
        Meta {
            entries: pairs
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
                .collect(),
        }
    }

    fn both(a: &Meta, b: &Meta) -> Vec<u8> {
        let mut f = encode_new(a);
        f[SLOTS[1]..SLOTS[1] + BLOCK].copy_from_slice(&encode_slot(1, 2, b));
        f
    }

    #[test]
    fn a_new_file_decodes_to_its_entries() {
        let m = meta(&[("vote", b"term 3"), ("purged", b"")]);
        let l = decode(Path::new("m"), &encode_new(&m)).unwrap();
        assert_eq!((l.meta, l.generation, l.slot), (m, 1, 0));
    }

    #[test]
    fn the_newer_valid_slot_wins_and_a_torn_one_falls_back() {
        let (a, b) = (meta(&[("k", b"old")]), meta(&[("k", b"new")]));
        let f = both(&a, &b);
        assert_eq!(decode(Path::new("m"), &f).unwrap().meta, b);
        let mut torn = f.clone();
        torn[SLOTS[1] + 100..SLOTS[1] + BLOCK].fill(0); // only its first sector written
        torn[SLOTS[1] + 30] ^= 1;
        assert_eq!(decode(Path::new("m"), &torn).unwrap().meta, a);
    }

    #[test]
    fn any_flipped_bit_is_caught_or_falls_back() {
        let (a, b) = (meta(&[("a", b"1"), ("bb", b"22")]), meta(&[("a", b"3")]));
        let f = both(&a, &b);
        for byte in 0..FILE_LEN {
            for bit in 0..8 {
                let mut d = f.clone();
                d[byte] ^= 1 << bit;
                if let Ok(l) = decode(Path::new("m"), &d) {
                    assert!(l.meta == a || l.meta == b, "byte {byte} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn a_slot_swapped_into_the_other_place_fails_its_crc() {
        let m = meta(&[("k", b"v")]);
        let mut f = encode_new(&m);
        let a = f[SLOTS[0]..SLOTS[0] + BLOCK].to_vec();
        f[SLOTS[1]..SLOTS[1] + BLOCK].copy_from_slice(&a);
        f[SLOTS[0]..SLOTS[0] + BLOCK].fill(0);
        let e = decode(Path::new("m"), &f).unwrap_err();
        assert!(
            matches!(e, Error::MetaCorrupt { offset, .. } if offset == SLOTS[1] as u64),
            "{e}"
        );
    }
}
