//! Modelled power loss: the images a power cut can leave on disk.
//!
//! Fault model: the machine loses power at a moment when some records were appended after
//! the last `sync` that returned Ok. The test runs a writer in this process, snapshots every
//! file right after each successful sync (the durable image: nothing changes a synced byte,
//! and the synced mark a sync stores is already true) and again after more appends, batches
//! and rollovers (the live image), then builds images a power cut could leave:
//! - every page that was durable, plus any subset of the pages written since (dirty pages are
//!   written back in any order, one page at a time);
//! - each file's size anywhere between its durable size and its live size, in whole pages
//!   (the size is written back independently of the data: pages past it are lost, and pages
//!   inside it that were never written back read as zeros);
//! - segment files created since the last sync present or absent, in creation order (a
//!   journaled file system commits directory entries in order); when present, with at least
//!   the header page where the writer made it durable when it created the file (a log's first
//!   segment, one after a segment full to its last byte);
//! - in half the images, each segment's synced mark replaced by one it held at an earlier
//!   sync, or by none: a checkpoint writes the active segment's mark out only now and then,
//!   so the mark on disk may lag (it never runs ahead of the durable data);
//! - then, in most images, one page torn (each 512-byte sector old or new: a sector is the
//!   unit a disk writes atomically) or filled with garbage from some offset on. Garbage only
//!   lands in bytes that hold no synced data and not in the first 64 bytes of a file (a
//!   segment whose header is garbage is a foreign file, which the log never rewrites).
//!
//! The writer appends single records and batches (`append_batch`), some of which do not fit
//! in what is left of a segment (the writer rolls first, so that each batch lies in one
//! segment: checked on the live files).
//!
//! Pass criterion: for every image, `verify` reports no corruption; a reader yields only the
//! appended records, in order, byte for byte (P1, P3), and never part of a batch; the writer
//! opens it (P4) with an exact prefix of the appended records that ends at a batch boundary,
//! never inside a batch (P1), and holds every record synced (P2); after that the log verifies
//! clean without a torn tail and takes appends.
//!
//! Thousands of images per run (2,400 by default; `APPLOG_SOAK` multiplies), generated from
//! a printed seed (`APPLOG_SEED` replays a run).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use applog::{Options, Writer};
use common::*;

const SECTOR: usize = 512;

type Files = BTreeMap<String, Vec<u8>>;

fn files(dir: &Path) -> Files {
    let mut m = Files::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        m.insert(name, std::fs::read(e.path()).unwrap());
    }
    m
}

/// The record with seq `seq` of a scenario's stream.
fn record(stream: u64, seq: u64) -> Vec<u8> {
    let mut r = Rng(stream ^ seq.wrapping_mul(0x9FB2_1C65_1E98_DF25));
    let len = match r.below(10) {
        0 => 0,
        1..=5 => r.below(100),
        6..=8 => 100 + r.below(1500),
        _ => 3000 + r.below(4000),
    };
    payload(stream ^ seq, len as usize)
}

/// What a moment of a scenario left: the durable and live images, the records synced and
/// the records appended by then.
struct Moment {
    durable: Files,
    live: Files,
    synced: u64,
    appended: u64,
    /// Order the files were created in (segment names sort by creation).
    new_files: Vec<String>,
    /// Every synced-mark word each file held at a sync up to now, 0 (none) included.
    marks: BTreeMap<String, Vec<u64>>,
    /// Seqs that lie inside a batch (a batch `a..b` puts `a + 1..b` here): the log may not
    /// end at one of them, since a batch survives whole or not at all.
    inside: BTreeSet<u64>,
}

/// What is durable of a segment file created since the last sync: its header page, when the
/// writer made it durable as it created the file (the header fields, no mark, no frames yet).
/// It does so for a log's first segment and for one after a segment full to its last byte; a
/// segment that a rollover creates just before it seals the one before gets its header made
/// durable by the next checkpoint, so until then nothing of it is.
fn created_baseline(m: &Moment, name: &str, live: &[u8], page: usize) -> Vec<u8> {
    let prev = m
        .live
        .range::<String, _>(..name.to_string())
        .rev()
        .find(|(n, _)| n.ends_with(".seg"));
    let vouched = match prev {
        None => true,
        Some((_, bytes)) => !ends_in_seal(bytes),
    };
    if name.ends_with(".seg") && live.len() >= page && vouched {
        let mut h = live[..48].to_vec();
        h.resize(page, 0);
        h
    } else {
        Vec::new()
    }
}

/// Whether the live bytes of a segment end in a seal (walking frame lengths, as the format
/// lays them out; no CRC needed for the model's own images).
fn ends_in_seal(bytes: &[u8]) -> bool {
    let Ok(h) = applog::format::SegmentHeader::decode(bytes) else {
        return false;
    };
    let reservation = h.reservation() as usize;
    let mut off = 64;
    while off + 8 <= reservation.min(bytes.len()) {
        let word = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap());
        let lenw = word as u32;
        if word == 0 {
            return false;
        }
        if lenw == u32::MAX {
            return true;
        }
        let len = u64::from(lenw) & h.layout.max_len();
        off += h.layout.frame_len(len) as usize;
    }
    false
}

/// Builds one image a power cut at `m` could leave.
fn image(m: &Moment, page: usize, rng: &mut Rng) -> Files {
    let mut out = Files::new();
    // How many of the files created since the last sync made it into the directory.
    let keep_new = rng.below(m.new_files.len() as u64 + 1) as usize;
    let mut dirty_pages: Vec<(String, usize)> = Vec::new();
    for (name, live) in &m.live {
        let durable = m.durable.get(name);
        if durable.is_none() {
            let idx = m.new_files.iter().position(|n| n == name).unwrap();
            if idx >= keep_new {
                continue;
            }
        }
        let created = created_baseline(m, name, live, page);
        let old = durable.unwrap_or(&created);
        // Size: a page multiple between the durable size and the live size.
        let (lo, hi) = (old.len() / page, live.len().div_ceil(page));
        let pages = lo + rng.below((hi - lo) as u64 + 1) as usize;
        let size = (pages * page).min(live.len()).max(old.len());
        let mut img = old.clone();
        img.resize(size, 0);
        for p in 0..size.div_ceil(page) {
            let r = p * page..((p + 1) * page).min(size);
            let new = live.get(r.clone()).unwrap_or(&[]);
            if new != &img[r.start..r.start + new.len()] {
                dirty_pages.push((name.clone(), p));
                if rng.chance(1, 2) {
                    img[r.start..r.start + new.len()].copy_from_slice(new);
                }
            }
        }
        if img.len() >= 56 && rng.chance(1, 2) {
            let old = m.marks.get(name).map_or(&[0][..], |v| &v[..]);
            let word = old[rng.below(old.len() as u64) as usize];
            img[48..56].copy_from_slice(&word.to_le_bytes());
        }
        out.insert(name.clone(), img);
    }
    // One page torn or garbage.
    match rng.below(4) {
        0 => {}
        1 | 2 if !dirty_pages.is_empty() => {
            let (name, p) = dirty_pages[rng.below(dirty_pages.len() as u64) as usize].clone();
            let img = out.get_mut(&name).unwrap();
            let live = &m.live[&name];
            let end = ((p + 1) * page).min(img.len());
            for s in (p * page..end).step_by(SECTOR) {
                let e = (s + SECTOR).min(end);
                if rng.chance(1, 2) {
                    if let Some(new) = live.get(s..e) {
                        img[s..e].copy_from_slice(new);
                    }
                } else {
                    let created = created_baseline(m, &name, live, page);
                    let old = m.durable.get(&name).unwrap_or(&created).get(s..e);
                    match old {
                        Some(old) => img[s..e].copy_from_slice(old),
                        None => img[s..e].fill(0),
                    }
                }
            }
        }
        _ => {
            // Garbage from a random offset to the end of a page, past every synced byte.
            let names: Vec<&String> = out.keys().filter(|n| n.ends_with(".seg")).collect();
            if names.is_empty() {
                return out;
            }
            let name = names[rng.below(names.len() as u64) as usize].clone();
            let protected = m.durable.get(&name).map_or(0, |d| synced_end(d)).max(64);
            let img = out.get_mut(&name).unwrap();
            if img.len() <= protected {
                return out;
            }
            let from = protected + rng.below((img.len() - protected) as u64) as usize;
            let to = ((from / page + 1) * page).min(img.len());
            let g = payload(rng.next(), to - from);
            img[from..to].copy_from_slice(&g);
        }
    }
    out
}

/// Where the synced data of a durable segment file ends: its synced mark (right after the
/// sync that the durable image was taken after, the mark is exact).
fn synced_end(durable: &[u8]) -> usize {
    let Ok(h) = applog::format::SegmentHeader::decode(durable) else {
        return 0;
    };
    let word = u64::from_le_bytes(durable[48..56].try_into().unwrap());
    h.decode_synced_mark(word).unwrap() as usize
}

/// Whether a batch whose records are `batch` fits in one segment of `pages` pages: the
/// writer then writes it in one segment, whole (a larger one goes in one part per segment).
fn fits_in_a_segment(batch: &[Vec<u8>], page: usize, pages: u32) -> bool {
    let frames: usize = batch.iter().map(|r| 16 + r.len().div_ceil(8) * 8).sum();
    frames <= page * pages as usize - 64
}

/// Checks on the live files that the batch `first..end` lies in one segment: no segment
/// starts inside it.
fn assert_in_one_segment(dir: &Path, first: u64, end: u64) {
    for name in files(dir).keys().filter(|n| n.ends_with(".seg")) {
        let base: u64 = name.trim_end_matches(".seg").parse().unwrap();
        assert!(
            base <= first || base >= end,
            "the batch {first}..{end} was split: segment {name} starts inside it"
        );
    }
}

/// Whether recovery cut a torn batch in an image: its report says so.
fn torn_batch_in(dir: &Path) -> bool {
    applog::verify(dir)
        .ok()
        .and_then(|r| r.torn_tail)
        .is_some_and(|t| t.reason.contains("torn batch"))
}

fn check_image(img: &Files, m: &Moment, stream: u64, dir: &Path, what: &str) -> bool {
    std::fs::create_dir(dir).unwrap();
    for (name, bytes) in img {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let report = applog::verify(dir).unwrap_or_else(|e| panic!("{what}: verify failed: {e}"));
    assert!(report.is_clean(), "{what}: {report:#?}");
    let torn_batch = torn_batch_in(dir);
    assert!(report.next_seq >= m.synced, "{what}: P2: {report:#?}");
    let mut r = applog::Reader::open(dir).unwrap();
    let mut n = 0;
    while let Some(rec) = r.next().unwrap_or_else(|e| panic!("{what}: reader: {e}")) {
        assert_eq!(rec.seq(), n, "{what}: P1");
        assert!(rec.data() == record(stream, n), "{what}: P3: record {n}");
        n += 1;
    }
    assert!(n <= report.next_seq, "{what}");
    assert!(
        !m.inside.contains(&n),
        "{what}: a reader yielded part of a batch: records up to {n}"
    );
    assert!(
        !m.inside.contains(&report.next_seq),
        "{what}: verify keeps part of a batch: {report:#?}"
    );
    let mut w = Writer::open(dir, Options::new().segment_pages(3))
        .unwrap_or_else(|e| panic!("{what}: P4: recovery failed: {e}"));
    let next = w.next_seq();
    assert_eq!(
        next, report.next_seq,
        "{what}: verify and recovery disagree"
    );
    assert!(
        next >= m.synced && next <= m.appended,
        "{what}: P1/P2: {next} records recovered, {} synced, {} appended",
        m.synced,
        m.appended
    );
    assert!(
        !m.inside.contains(&next),
        "{what}: P1: recovery kept part of a batch: the log ends at seq {next}, inside one"
    );
    w.append(&record(stream, next)).unwrap();
    w.sync().unwrap();
    drop(w);
    let got = read_all(dir);
    assert_eq!(got.len() as u64, next + 1, "{what}");
    for (seq, data) in &got {
        assert!(*data == record(stream, *seq), "{what}: P3: record {seq}");
    }
    let after = applog::verify(dir).unwrap();
    assert!(
        after.is_clean() && after.torn_tail.is_none(),
        "{what}: {after:#?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
    torn_batch
}

/// A scratch directory on a tmpfs when there is one: recovery syncs what it changes.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap())
}

#[test]
fn power_loss_images_recover_every_synced_record() {
    let seed = seed("power_loss_images");
    let mut rng = Rng(seed);
    let page = page() as usize;
    let scenarios = 20 * soak();
    let images_per_moment = 40;
    let work = scratch();
    let (mut images, mut torn_cases, mut lost_records, mut torn_batches) = (0u64, 0u64, 0u64, 0);
    for sc in 0..scenarios {
        let stream = rng.next();
        let logdir = work.path().join(format!("live{sc}"));
        let pages = 2 + rng.below(3) as u32;
        let opts = Options::new()
            .segment_pages(pages)
            .grow_pages(1 + rng.below(2) as u32);
        let mut inside = BTreeSet::new();
        let mut w = Writer::open(&logdir, opts).unwrap();
        let mut next = 0u64;
        let mut marks: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for moment in 0..3 {
            // Appended and synced.
            for _ in 0..rng.below(12) {
                w.append(&record(stream, next)).unwrap();
                next += 1;
            }
            w.sync().unwrap();
            let durable = files(&logdir);
            let synced = next;
            for (name, bytes) in &durable {
                let seen = marks.entry(name.clone()).or_insert_with(|| vec![0]);
                if let Some(word) = bytes.get(48..56) {
                    seen.push(u64::from_le_bytes(word.try_into().unwrap()));
                }
            }
            // Appended after the sync: records, batches, rollovers.
            for _ in 0..1 + rng.below(15) {
                if rng.chance(1, 3) {
                    let n = 1 + rng.below(6);
                    let b: Vec<Vec<u8>> = (next..next + n).map(|s| record(stream, s)).collect();
                    assert_eq!(w.append_batch(&b).unwrap(), next..next + n);
                    if fits_in_a_segment(&b, page, pages) {
                        assert_in_one_segment(&logdir, next, next + n);
                        inside.extend(next + 1..next + n);
                    }
                    next += n;
                } else {
                    w.append(&record(stream, next)).unwrap();
                    next += 1;
                }
            }
            let live = files(&logdir);
            let new_files = live
                .keys()
                .filter(|n| !durable.contains_key(*n))
                .cloned()
                .collect();
            let m = Moment {
                durable,
                live,
                synced,
                appended: next,
                new_files,
                marks: marks.clone(),
                inside: inside.clone(),
            };
            for i in 0..images_per_moment {
                let img = image(&m, page, &mut rng);
                let what = format!("scenario {sc} moment {moment} image {i} (seed {seed})");
                let dir = work.path().join("img");
                torn_batches += u64::from(check_image(&img, &m, stream, &dir, &what));
                images += 1;
                if img != m.live {
                    torn_cases += 1;
                }
            }
            lost_records += m.appended - m.synced;
        }
        drop(w);
        std::fs::remove_dir_all(&logdir).unwrap();
    }
    eprintln!(
        "power_loss_images: {images} images ({torn_cases} differing from the live files, \
         {torn_batches} with a torn batch cut whole), {lost_records} unsynced records at risk"
    );
    assert!(torn_cases * 2 > images);
    assert!(
        torn_batches > 0,
        "no image tore a batch: the model lost its batches"
    );
}
