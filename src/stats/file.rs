//! The writer's stats file, `applog.stats` in the log directory: its layout, how the writer
//! keeps it current, and how any process reads it (the layout is documented for operators in
//! `docs/metrics.md`).
//!
//! The file is one page long; the first 224 bytes are used, all of them 8-byte little-endian
//! words that are only ever accessed atomically (see `mapping::WordMap`):
//!
//! | offset | word |
//! |---|---|
//! | 0 | magic `APLGSTAT` |
//! | 8 | format version (1) |
//! | 16 | the writer's process id |
//! | 24 | when the writer opened the log (Unix nanoseconds) |
//! | 32 | header check word (over the four words above) |
//! | 40 | state: 1 open, 2 closed cleanly, 3 let go with records not durable |
//! | 48, 56 | zero (reserved) |
//! | 64, 144 | figure slots A and B (10 words each) |
//!
//! A slot holds a generation, the figures (records and payload bytes appended since the open,
//! next seq, durable seq, syncs, slow syncs, the last sync's duration in nanoseconds, when
//! the slot was written) and a check word over them and the header. The writer writes the
//! slot its next generation picks (generation mod 2), check word last with `Release`; a
//! reader takes the valid slot with the higher generation. A writer killed in the middle of
//! an update leaves the other slot, one update older, valid.
//!
//! The writer replaces the file at each open (written whole under a temporary name, then
//! renamed into place), so a reader never sees one half initialised, and never sees a
//! previous writer's figures mixed with this one's.
//!
//! On a copy-on-write file system (btrfs, see `cow`) the file is made no-copy-on-write and
//! written with `pwrite`, never with stores through a mapping: a store into a written page
//! there can need new space, and on a full file system the process that stores gets SIGBUS.
//! Readers read the file with `read`, so a slot half written by a `pwrite` fails its check and
//! the other slot is taken, as after a writer killed in the middle of an update.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::mapping::WordMap;
use crate::word_file::{check_start, idx, read_full, word, OFF_MAGIC, OFF_VERSION};

/// `APLGSTAT`, little-endian.
const MAGIC: u64 = u64::from_le_bytes(*b"APLGSTAT");
/// The format version of a stats file.
const VERSION: u64 = 1;
/// Bytes of the file in use.
const USED: usize = 224;
/// The file's length: one page of the smallest size Linux has (a larger page maps it whole
/// too).
const FILE_LEN: u64 = 4096;

const OFF_PID: u64 = 16;
const OFF_STARTED: u64 = 24;
const OFF_HEADER_CHECK: u64 = 32;
const OFF_STATE: u64 = 40;
const SLOTS: [u64; 2] = [64, 144];
/// Words of a slot before its check word.
const N_WORDS: usize = 9;
const SLOT_WORDS: u64 = N_WORDS as u64;

pub(crate) const STATE_OPEN: u64 = 1;
pub(crate) const STATE_CLOSED: u64 = 2;
pub(crate) const STATE_RELEASED: u64 = 3;

/// The figures of one slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Figures {
    pub generation: u64,
    pub records: u64,
    pub bytes: u64,
    pub next_seq: u64,
    pub durable_seq: u64,
    pub syncs: u64,
    pub slow_syncs: u64,
    pub last_sync_ns: u64,
    pub updated_ns: u64,
}

impl Figures {
    fn words(&self) -> [u64; N_WORDS] {
        [
            self.generation,
            self.records,
            self.bytes,
            self.next_seq,
            self.durable_seq,
            self.syncs,
            self.slow_syncs,
            self.last_sync_ns,
            self.updated_ns,
        ]
    }

    fn from_words(w: [u64; N_WORDS]) -> Figures {
        Figures {
            generation: w[0],
            records: w[1],
            bytes: w[2],
            next_seq: w[3],
            durable_seq: w[4],
            syncs: w[5],
            slow_syncs: w[6],
            last_sync_ns: w[7],
            updated_ns: w[8],
        }
    }

    /// The check word of a slot holding these figures under a header whose check is
    /// `header`.
    fn check(&self, header: u64) -> u64 {
        self.words()
            .iter()
            .fold(header ^ 0x6170_706c_6f67_5f73, |h, w| mix(h ^ w))
    }
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn header_check(pid: u64, started: u64) -> u64 {
    [MAGIC, VERSION, pid, started]
        .iter()
        .fold(0x6170_706c_6f67_5f68, |h, w| mix(h ^ w))
}

/// What a stats file says, read at one moment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    pub pid: u64,
    pub started_ns: u64,
    pub state: u64,
    pub figures: Figures,
}

fn damaged(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    Error::StatsCorrupt {
        path: path.to_owned(),
        offset,
        reason: reason.into(),
    }
}

/// Decodes the used bytes of a stats file.
///
/// # Errors
/// `StatsCorrupt`, naming the byte offset of what is wrong.
pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<Snapshot> {
    check_start(bytes, USED, MAGIC, VERSION, "stats file")
        .map_err(|(offset, reason)| damaged(path, offset, reason))?;
    let (pid, started_ns) = (word(bytes, OFF_PID), word(bytes, OFF_STARTED));
    let header = header_check(pid, started_ns);
    if word(bytes, OFF_HEADER_CHECK) != header {
        return Err(damaged(
            path,
            OFF_HEADER_CHECK,
            "the header fails its check word",
        ));
    }
    let state = word(bytes, OFF_STATE);
    if !(STATE_OPEN..=STATE_RELEASED).contains(&state) {
        return Err(damaged(
            path,
            OFF_STATE,
            format!("unknown writer state {state}"),
        ));
    }
    let slots = SLOTS.map(|at| {
        let mut w = [0u64; N_WORDS];
        for (i, v) in w.iter_mut().enumerate() {
            *v = word(bytes, at + 8 * i as u64);
        }
        let f = Figures::from_words(w);
        (f.check(header) == word(bytes, at + 8 * SLOT_WORDS)).then_some(f)
    });
    let figures = match slots {
        [Some(a), Some(b)] => {
            if b.generation > a.generation {
                b
            } else {
                a
            }
        }
        [Some(f), None] | [None, Some(f)] => f,
        [None, None] => {
            return Err(damaged(
                path,
                SLOTS[0],
                "both figure slots fail their check word",
            ))
        }
    };
    Ok(Snapshot {
        pid,
        started_ns,
        state,
        figures,
    })
}

/// The used bytes of a new stats file.
fn encode_new(pid: u64, started_ns: u64, figures: Figures) -> Vec<u8> {
    let mut b = vec![0u8; idx(FILE_LEN)];
    let mut put = |off: u64, v: u64| {
        let at = idx(off);
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    };
    let header = header_check(pid, started_ns);
    put(OFF_MAGIC, MAGIC);
    put(OFF_VERSION, VERSION);
    put(OFF_PID, pid);
    put(OFF_STARTED, started_ns);
    put(OFF_HEADER_CHECK, header);
    put(OFF_STATE, STATE_OPEN);
    let at = SLOTS[idx(figures.generation % 2)];
    for (i, w) in figures.words().iter().enumerate() {
        put(at + 8 * i as u64, *w);
    }
    put(at + 8 * SLOT_WORDS, figures.check(header));
    b
}

/// Reads the stats file at `path` with `pread` (no mapping, no lock). An update racing the
/// read can leave the slot it writes failing its check in what was read; the other slot then
/// holds the figures before. Retries a few times before it calls a file damaged.
///
/// # Errors
/// `Io` (`NotFound` when there is no stats file); `StatsCorrupt`.
pub(crate) fn read(path: &Path) -> Result<Snapshot> {
    let file = File::open(path).map_err(|e| Error::io("could not open stats file", path, e))?;
    let mut last = None;
    for _ in 0..5 {
        let mut bytes = vec![0u8; USED];
        let n = read_full(&file, &mut bytes)
            .map_err(|e| Error::io("could not read stats file", path, e))?;
        bytes.truncate(n);
        match decode(path, &bytes) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(last.unwrap_or_else(|| damaged(path, 0, "unreadable")))
}

/// The writer's side: the mapped file, and what it last published. Every update is a few
/// plain atomic stores into the shared page, no system call.
pub(crate) struct StatsFile {
    path: PathBuf,
    out: Words,
    header: u64,
    last: Figures,
}

/// How the writer stores words into its stats file.
enum Words {
    /// Atomic stores through a shared mapping.
    Mapped(WordMap),
    /// `pwrite`, on a copy-on-write file system (see the module docs).
    Written(File),
}

impl Words {
    /// Stores the words `words` from `off` on (`Release` for the last one when mapped).
    fn store(&self, off: u64, words: &[u64], last: Ordering) -> io::Result<()> {
        match self {
            Words::Mapped(map) => {
                for (i, w) in words.iter().enumerate() {
                    let order = if i + 1 == words.len() {
                        last
                    } else {
                        Ordering::Relaxed
                    };
                    map.store(off + 8 * i as u64, *w, order)?;
                }
                Ok(())
            }
            Words::Written(file) => {
                let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
                file.write_all_at(&bytes, off)
            }
        }
    }
}

impl StatsFile {
    /// Creates the stats file of the log in `dir` for this writer (replacing any there),
    /// holding `figures`.
    ///
    /// # Errors
    /// `Io`, naming the file.
    pub(crate) fn create(dir: &Path, started_ns: u64, figures: Figures) -> Result<StatsFile> {
        let path = dir.join(super::STATS_FILE);
        let pid = u64::from(std::process::id());
        let tmp = dir.join(format!(".{}.{pid}", super::STATS_FILE));
        let made = (|| {
            // A name of this process's own, made anew (a leftover of a crash is replaced,
            // and nothing that a link there points to is written).
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&tmp)?;
            let by_pwrite = crate::cow::writes_by_pwrite(&f);
            if by_pwrite {
                // While it is empty: btrfs takes the attribute only then.
                crate::cow::prepare_new_file(&f, &tmp).map_err(io::Error::other)?;
            }
            f.write_all(&encode_new(pid, started_ns, figures))?;
            std::fs::rename(&tmp, &path)?;
            if by_pwrite {
                return Ok::<_, io::Error>(Words::Written(f));
            }
            Ok(Words::Mapped(WordMap::new(&f, FILE_LEN)?))
        })();
        match made {
            Ok(out) => Ok(StatsFile {
                path,
                out,
                header: header_check(pid, started_ns),
                last: figures,
            }),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(Error::create("could not create stats file", path, e))
            }
        }
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Publishes `figures` (their generation is set here) into the slot the next
    /// generation picks: the words with `Relaxed`, the check word with `Release`.
    pub(crate) fn publish(&mut self, mut figures: Figures) -> io::Result<()> {
        figures.generation = self.last.generation.wrapping_add(1);
        figures.updated_ns = super::now_ns();
        let at = SLOTS[idx(figures.generation % 2)];
        self.out.store(at, &figures.words(), Ordering::Relaxed)?;
        self.out.store(
            at + 8 * SLOT_WORDS,
            &[figures.check(self.header)],
            Ordering::Release,
        )?;
        self.last = figures;
        Ok(())
    }

    /// Stores the writer's state (`STATE_*`).
    pub(crate) fn set_state(&self, state: u64) -> io::Result<()> {
        self.out.store(OFF_STATE, &[state], Ordering::Release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(gen: u64, next: u64) -> Figures {
        Figures {
            generation: gen,
            records: next,
            next_seq: next,
            ..Figures::default()
        }
    }

    fn bytes_with_both(a: Figures, b: Figures) -> Vec<u8> {
        let mut bytes = encode_new(7, 9, a);
        let header = header_check(7, 9);
        let at = idx(SLOTS[idx(b.generation % 2)]);
        for (i, w) in b.words().iter().enumerate() {
            bytes[at + 8 * i..at + 8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        let c = at + 8 * idx(SLOT_WORDS);
        bytes[c..c + 8].copy_from_slice(&b.check(header).to_le_bytes());
        bytes
    }

    #[test]
    fn a_new_file_decodes_to_its_figures() {
        let s = decode(Path::new("s"), &encode_new(7, 9, figures(0, 5))).unwrap();
        assert_eq!((s.pid, s.started_ns, s.state), (7, 9, STATE_OPEN));
        assert_eq!(s.figures, figures(0, 5));
    }

    #[test]
    fn the_newer_valid_slot_wins_and_a_torn_one_falls_back() {
        let b = bytes_with_both(figures(4, 40), figures(5, 50));
        assert_eq!(decode(Path::new("s"), &b).unwrap().figures.next_seq, 50);
        let mut torn = b.clone();
        let at = idx(SLOTS[1]) + 24; // slot B's next seq, half rewritten
        torn[at] ^= 0xff;
        assert_eq!(decode(Path::new("s"), &torn).unwrap().figures.next_seq, 40);
    }

    #[test]
    fn any_flipped_bit_in_the_used_bytes_is_caught_or_harmless() {
        let b = bytes_with_both(figures(4, 40), figures(5, 50));
        for byte in 0..USED {
            for bit in 0..8 {
                let mut d = b.clone();
                d[byte] ^= 1 << bit;
                if let Ok(s) = decode(Path::new("s"), &d) {
                    // Only a fall back to the other slot, or a bit of the reserved words,
                    // or of the state word that still names a state, decodes.
                    assert!(
                        [40, 50].contains(&s.figures.next_seq),
                        "byte {byte} bit {bit}"
                    );
                    assert_eq!((s.pid, s.started_ns), (7, 9), "byte {byte} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn foreign_short_and_zeroed_files_are_errors_naming_the_offset() {
        let off = |bytes: &[u8]| match decode(Path::new("s"), bytes) {
            Err(Error::StatsCorrupt { offset, .. }) => offset,
            other => panic!("{other:?}"),
        };
        assert_eq!(off(&[0u8; 10]), 10);
        assert_eq!(off(&[0u8; USED]), OFF_MAGIC);
        let mut b = encode_new(7, 9, figures(0, 5));
        b[idx(OFF_VERSION)] = 2;
        assert_eq!(off(&b), OFF_VERSION);
        let mut b = encode_new(7, 9, figures(0, 5));
        b[idx(OFF_PID)] ^= 1;
        assert_eq!(off(&b), OFF_HEADER_CHECK);
        let mut b = encode_new(7, 9, figures(0, 5));
        b[idx(OFF_STATE)] = 9;
        assert_eq!(off(&b), OFF_STATE);
        let mut b = encode_new(7, 9, figures(0, 5));
        b[idx(SLOTS[0])] ^= 1;
        assert_eq!(off(&b), SLOTS[0]);
    }
}
