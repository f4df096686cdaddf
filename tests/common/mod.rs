//! Helpers shared by the integration tests: an independent model of where frames land, and
//! snapshots of a log directory's bytes.
#![allow(dead_code)]

pub mod cli;
pub mod fixture;
pub mod harness;
pub mod mount;
pub mod nats;
#[cfg(feature = "ship")]
pub mod stream;
pub mod v1;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const HEADER: u64 = 64;
pub const PAGE: u64 = 4096;

/// Serialises the tests of one test binary that take it: a child process forked while another
/// test holds a writer open holds a copy of that writer's lock file until it execs, so a
/// reopen in that window sees `Error::Locked`. Files whose tests spawn processes and also
/// reopen logs in-process take this in every test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a test that cannot run here must fail rather than skip: when
/// `APPLOG_REQUIRE_PRIVILEGED` is `1` (or, unless it is `0`, when `CI` is set and not `false`
/// or `0`). CI runs as root with every tool installed, so a skip there is a regression.
pub fn skips_fail() -> bool {
    let set = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| v.trim().to_ascii_lowercase())
    };
    match set("APPLOG_REQUIRE_PRIVILEGED").as_deref() {
        Some("1") => return true,
        Some("0") => return false,
        _ => {}
    }
    matches!(set("CI"), Some(v) if !v.is_empty() && v != "false" && v != "0")
}

/// The one way a test skips what it cannot do here (not root, cannot mount, a tool missing).
/// Prints `SKIPPED: <test>: <reason>` to the real stderr, past the test harness's capture, so
/// that `cargo test` shows it even though the test passes; panics instead where
/// [`skips_fail`] (in CI). The caller returns right after.
#[track_caller]
pub fn skip(reason: impl std::fmt::Display) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    if skips_fail() {
        panic!(
            "{test} cannot run here and may not skip (CI or APPLOG_REQUIRE_PRIVILEGED=1): {reason}"
        );
    }
    // Not eprintln!: the harness captures that and shows it only for failing tests.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}

pub fn page() -> u64 {
    // The tests' model assumes the page size the writer uses. Observed once per process:
    // some tests ask for it per record.
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        let p = observed_page_size();
        assert!(p.is_power_of_two());
        p
    })
}

fn observed_page_size() -> u64 {
    // A fresh segment is exactly one page long (without a pretoucher growing it ahead):
    // read it back from the file system.
    let d = tempfile::tempdir().unwrap();
    let opts = applog::Options::new().segment_pages(4).pretouch(0);
    let w = applog::Writer::open(d.path(), opts).unwrap();
    let len = std::fs::metadata(d.path().join(applog::segment_name(0)))
        .unwrap()
        .len();
    drop(w);
    len
}

/// Bytes a record frame of `len` payload bytes takes in a segment of the current format
/// (version 2): the header word, the time word, the payload padded to 8 bytes.
pub fn frame_len(len: usize) -> u64 {
    16 + (len as u64).div_ceil(8) * 8
}

/// The same in a version-1 segment: no time word.
pub fn frame_len_v1(len: usize) -> u64 {
    8 + (len as u64).div_ceil(8) * 8
}

/// Where each record's frame lands, computed from the documented format alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub seq: u64,
    /// Base seq of the segment holding it.
    pub segment: u64,
    /// Offset of its frame in that segment.
    pub offset: u64,
    pub len: usize,
}

/// Places records of the given lengths into segments of `reservation` bytes: a frame goes at
/// the current offset if it fits in the reservation, otherwise the segment is sealed and the
/// next starts at offset 64.
pub fn place(lens: &[usize], reservation: u64) -> Vec<Placed> {
    // Each record on its own: a batch of one never rolls first.
    let ends: Vec<usize> = (1..=lens.len()).collect();
    place_batches(lens, &ends, reservation)
}

/// As [`place`], for records appended in batches, the batch `k` ending before record
/// `ends[k]`: a batch of two records or more that does not fit in what is left of a segment
/// holding records, but fits in an empty one, starts a new segment (the writer rolls first,
/// so that the batch lies in one segment).
pub fn place_batches(lens: &[usize], ends: &[usize], reservation: u64) -> Vec<Placed> {
    let mut out = Vec::new();
    let mut seg = 0;
    let mut off = HEADER;
    let mut start = 0;
    for &end in ends {
        let total: u64 = lens[start..end].iter().map(|&l| frame_len(l)).sum();
        if end - start > 1
            && off > HEADER
            && off + total > reservation
            && HEADER + total <= reservation
        {
            seg = start as u64;
            off = HEADER;
        }
        for (i, &len) in lens.iter().enumerate().take(end).skip(start) {
            let f = frame_len(len);
            if off + f > reservation {
                seg = i as u64;
                off = HEADER;
            }
            out.push(Placed {
                seq: i as u64,
                segment: seg,
                offset: off,
                len,
            });
            off += f;
        }
        start = end;
    }
    out
}

/// Deterministic payload for a seq: its length and bytes depend on the seq only.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Every file in a directory with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        m.insert(p.clone(), std::fs::read(&p).unwrap());
    }
    m
}

/// Reads every record currently in the log.
pub fn read_all(dir: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut r = applog::Reader::open(dir).unwrap();
    let mut v = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        v.push((rec.seq(), rec.data().to_vec()));
    }
    v
}

/// Copies a directory's files into a new directory.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

pub fn seg_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(applog::segment_name(base))
}

/// Overwrites bytes of a file in place (never changing its size unless writing past the end).
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .write_all_at(bytes, offset)
        .unwrap();
}

/// XORs one byte of a file with `mask`.
pub fn flip(path: &Path, offset: u64, mask: u8) {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut b, offset)
        .unwrap();
    write_at(path, offset, &[b[0] ^ mask]);
}

/// Sets a file's length (a crash that left it shorter, or longer).
pub fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// How much longer than the default to run the randomised tests: the `APPLOG_SOAK`
/// environment variable (a whole number, default 1) multiplies their iteration counts.
pub fn soak() -> u64 {
    match std::env::var("APPLOG_SOAK") {
        Ok(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|&n| n >= 1)
            .unwrap_or_else(|| panic!("APPLOG_SOAK must be a whole number >= 1, not {v:?}")),
        Err(_) => 1,
    }
}

/// The seed of a randomised test: `APPLOG_SEED` when set (to reproduce a run), otherwise
/// fresh. Printed either way, so that a failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("APPLOG_SEED") {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("APPLOG_SEED must be a number, not {v:?}")),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
        }
    };
    eprintln!("{test}: seed {seed} (replay with APPLOG_SEED={seed})");
    seed
}

/// A small, fast, seeded random number generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

/// The crash images a `FaultFs` wrote into `images` (one directory per call, named by its
/// number), in call order.
pub fn crash_images(images: &Path) -> Vec<(u64, PathBuf)> {
    let mut dirs: Vec<(u64, PathBuf)> = std::fs::read_dir(images)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (p.file_name().unwrap().to_str().unwrap().parse().unwrap(), p)
        })
        .collect();
    dirs.sort();
    dirs
}
