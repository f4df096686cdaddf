//! The checks behind the fuzz targets (`fuzz/fuzz_targets/`) and their proptest twins
//! (`tests/fuzz_twins.rs`): one implementation, two drivers. Depends on `applog` and `std`
//! only, so that the fuzz crate can include this file with `#[path]`.
//!
//! Every check is one of the pass criteria: P1 what is read is an exact prefix of
//! what was written, P3 no record differs from what was written, P4 no panic: failures are
//! typed errors.

use std::path::Path;

use applog::format::{self, Frame, Layout, SegmentHeader, HEADER_LEN};

/// Reads bytes from the front of the input, then zeros once it runs out.
pub struct Input<'a>(pub &'a [u8]);

impl Input<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }
    pub fn rest(&mut self) -> &[u8] {
        std::mem::take(&mut self.0)
    }
}

/// Fuzz target 1: decoding a frame or a segment header from arbitrary bytes never panics,
/// and accepts nothing the encoder did not produce.
pub fn check_frame_decoding(data: &[u8]) {
    let mut inp = Input(data);
    let layout = if inp.u8() & 1 == 0 {
        Layout::V2
    } else {
        Layout::V1
    };
    let seed = inp.u32();
    let seq = inp.u64();
    let word = inp.u64();
    let bytes = inp.rest();
    // Version 2: the time word, then the payload.
    let skip = (layout.record_header_len() - 8) as usize;
    let time_of = |b: &[u8]| {
        b.get(..skip)
            .filter(|t| t.len() == 8)
            .map_or(0, |t| u64::from_le_bytes(t.try_into().unwrap()))
    };
    let frame = format::check_frame_bytes(layout, seed, seq, word, bytes);
    match frame {
        Frame::Record { len, time, more } => {
            let payload = &bytes[skip..];
            assert!(
                len as usize <= payload.len(),
                "accepted a length past the bytes"
            );
            assert_eq!(time, time_of(bytes), "time is not the time word");
            assert!(layout == Layout::V2 || !more, "a batch bit in version 1");
            assert_eq!(
                format::frame_word(layout, seed, seq, time, more, &payload[..len as usize]),
                word,
                "accepted a record the encoder would not write"
            );
        }
        Frame::Seal => assert_eq!(format::seal_word(seed, seq), word),
        Frame::Empty => assert_eq!(word, 0),
        Frame::Bad(_) => assert_ne!(word, 0),
    }
    // What the encoder writes always decodes back.
    if bytes.len() >= skip {
        let payload = &bytes[skip..];
        let len = payload.len().min(1 << 16);
        let (time, more) = (time_of(bytes), seq % 2 == 0 && layout == Layout::V2);
        let w = format::frame_word(layout, seed, seq, time, more, &payload[..len]);
        assert_eq!(
            format::check_frame_bytes(layout, seed, seq, w, bytes),
            Frame::Record {
                len: len as u32,
                time,
                more
            }
        );
    }
    // Headers: only the encoder's bytes decode, and they round-trip.
    if let Ok(h) = SegmentHeader::decode(bytes) {
        assert_eq!(&h.encode()[..44], &bytes[..44]);
        assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
        if let Some(off) = h.decode_synced_mark(word) {
            assert!(off <= h.reservation());
            assert!(word == 0 || h.encode_synced_mark(off) == word);
        }
    }
}

/// What a structured input built: the records whose frames were written with a valid CRC,
/// in seq order, and how many of them (from the first) are undamaged and below the synced
/// mark.
pub struct Built {
    pub records: Vec<Vec<u8>>,
    /// Each record's time (version 2; `None` in a version-1 segment).
    pub times: Vec<Option<u64>>,
    pub durable: usize,
    /// Whether each seq lies inside a batch (version 2: the frame before it has `MORE`), so
    /// that the log may not end there: a batch is kept whole or not at all.
    pub inside: Vec<bool>,
    /// The first seq of a batch whose last frame was never written (its frames end with
    /// `MORE` set): no record from there on may be kept.
    pub torn_batch: Option<usize>,
}

impl Built {
    /// Checks that a log holding the first `n` records keeps only whole batches.
    fn check_whole_batches(&self, n: usize, what: &str) {
        assert!(
            !self.inside.get(n).copied().unwrap_or(false),
            "{what}: the log ends at seq {n}, inside a batch"
        );
        if let Some(torn) = self.torn_batch {
            assert!(
                n <= torn,
                "{what}: {n} records, but the batch from seq {torn} has no last frame"
            );
        }
    }
}

fn put(buf: &mut Vec<u8>, at: u64, bytes: &[u8]) {
    let at = at as usize;
    if buf.len() < at + bytes.len() {
        buf.resize(at + bytes.len(), 0);
    }
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// Builds one segment file (base seq 0) from the input: a valid header, valid frames, maybe
/// a seal and a synced mark, then damage (bytes XORed, a new file length). Returns the file
/// bytes and what was built. With the first byte's low bit clear, the rest of the input is
/// taken as the body after a valid header, verbatim.
pub fn build_segment(data: &[u8]) -> (Vec<u8>, Built) {
    let mut inp = Input(data);
    let mode = inp.u8();
    let layout = if mode & 0x08 == 0 {
        Layout::V2
    } else {
        Layout::V1
    };
    let header = SegmentHeader {
        layout,
        page_size: [512u32, 1024, 4096, 4096][usize::from(mode >> 1) & 3],
        segment_pages: u32::from(inp.u8() % 8) + 1,
        base_seq: 0,
        salt: inp.u64(),
        starts_log: false,
    };
    let reservation = header.reservation();
    let seed = header.crc_seed();
    let mut file = header.encode().to_vec();
    let mut built = Built {
        records: Vec::new(),
        times: Vec::new(),
        durable: 0,
        inside: vec![false],
        torn_batch: None,
    };
    if mode & 1 == 0 {
        let body = inp.rest();
        let room = (reservation - HEADER_LEN) as usize;
        file.extend_from_slice(&body[..body.len().min(room)]);
        return (file, built);
    }
    // Frames.
    let mut off = HEADER_LEN;
    let mut ends = Vec::new();
    let n = inp.u8() % 64;
    // Frames left in the batch being written (version 2): every frame of a batch but its
    // last has `MORE`. A batch the frames run out in has no last frame: a torn batch.
    let mut batch_left = 0u8;
    let mut batch_start = 0;
    for i in 0..n {
        if layout == Layout::V2 && batch_left == 0 {
            let b = inp.u8();
            if b % 4 == 0 {
                batch_left = 2 + (b / 4) % 5;
                batch_start = built.records.len();
            }
        }
        let more = batch_left > 1;
        batch_left = batch_left.saturating_sub(1);
        let len = match inp.u8() {
            0..=199 => usize::from(inp.u8()),
            200..=249 => usize::from(inp.u16() % 5000),
            _ => 0,
        };
        let flen = layout.frame_len(len as u64);
        if off + flen > reservation {
            break;
        }
        let payload: Vec<u8> = (0..len).map(|k| (k as u8) ^ (i ^ mode)).collect();
        let time = 1_700_000_000_000_000_000 + u64::from(i) * 1000;
        let word = format::frame_word(layout, seed, u64::from(i), time, more, &payload);
        put(&mut file, off, &word.to_le_bytes());
        let skip = layout.record_header_len() - 8;
        if layout.has_time() {
            put(&mut file, off + 8, &time.to_le_bytes());
        }
        put(&mut file, off + 8 + skip, &payload);
        built.times.push(layout.has_time().then_some(time));
        off += flen;
        ends.push(off);
        built.records.push(payload);
        built.inside.push(more);
        built.torn_batch = more.then_some(batch_start);
    }
    if mode & 0x10 != 0 && off + 8 <= reservation {
        let next = built.records.len() as u64;
        put(&mut file, off, &format::seal_word(seed, next).to_le_bytes());
        off += 8;
    }
    // The synced mark at a frame boundary (or anywhere, when mode says so).
    let mark = match mode & 0x60 {
        0x00 => 0,
        0x20 => ends
            .get(usize::from(inp.u8()) % (ends.len() + 1))
            .copied()
            .unwrap_or(0),
        0x40 => ends.last().copied().unwrap_or(0),
        _ => u64::from(inp.u16()),
    };
    if mark != 0 {
        put(
            &mut file,
            format::SYNCED_MARK_OFFSET,
            &header.encode_synced_mark(mark).to_le_bytes(),
        );
    }
    // File length: a page multiple past the data (as the writer leaves it), or any length.
    let page = u64::from(header.page_size);
    let natural = format::round_up(off, page).min(reservation);
    let len = if mode & 0x80 != 0 {
        u64::from(inp.u16()).min(reservation)
    } else {
        natural
    };
    file.resize(len as usize, 0);
    let original = file.clone();
    // Damage: up to 8 XORs anywhere in the file.
    for _ in 0..(inp.u8() % 9) {
        if file.is_empty() {
            break;
        }
        let at = usize::from(inp.u16()) % file.len();
        file[at] ^= inp.u8().max(1);
    }
    // Records below the mark whose bytes (header word and payload) are all still there.
    let mut start = HEADER_LEN as usize;
    for (i, r) in built.records.iter().enumerate() {
        let end = start + layout.record_header_len() as usize + r.len();
        if ends[i] > mark || end > file.len() || file[start..end] != original[start..end] {
            break;
        }
        // The header must also be intact for the mark to count.
        if file[..HEADER_LEN as usize] != original[..HEADER_LEN as usize] {
            break;
        }
        built.durable = i + 1;
        start = format::round_up(end as u64, 8) as usize;
    }
    (file, built)
}

/// A record as read back: seq, bytes, time.
type Read = (u64, Vec<u8>, Option<u64>);

fn read_all(dir: &Path) -> applog::Result<Vec<Read>> {
    let mut r = applog::Reader::open(dir)?;
    let mut v = Vec::new();
    while let Some(rec) = r.next()? {
        v.push((rec.seq(), rec.data().to_vec(), rec.time_ns()));
        assert!(v.len() < 1_000_000, "reader loops");
    }
    Ok(v)
}

fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with(applog::LOCK_FILE))
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// Fuzz target 2: `dir` (empty, existing) gets a segment file built from the input; then a
/// reader, `verify`, and a writer (recovery) look at it. Checks P1, P3 and P4, that a failed
/// open changes nothing, that recovery keeps every undamaged synced record, and that after
/// recovery the log verifies clean and takes appends.
pub fn check_recovery(dir: &Path, data: &[u8]) {
    let (bytes, built) = build_segment(data);
    let seg = dir.join(applog::segment_name(0));
    std::fs::write(&seg, &bytes).unwrap();
    let is_written = |got: &[Read]| {
        for (i, (seq, rec, time)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64, "P1: seqs are dense from 0");
            if let Some(want) = built.records.get(i) {
                assert_eq!(rec, want, "P3: record {i} differs from what was written");
                assert_eq!(time, &built.times[i], "P3: record {i}'s time differs");
            }
        }
    };
    let before = read_all(dir);
    if let Ok(got) = &before {
        is_written(got);
        built.check_whole_batches(got.len(), "a reader");
    }
    let report = applog::verify(dir);
    let snapshot = files(dir);
    let opts = applog::Options::new().segment_pages(2);
    match applog::Writer::open(dir, opts.clone()) {
        Err(e) => {
            assert!(
                matches!(
                    e,
                    applog::Error::Corrupt { .. } | applog::Error::NotALog { .. }
                ),
                "unexpected error {e:?}"
            );
            if let Ok(r) = &report {
                if r.is_clean() {
                    assert!(
                        !matches!(e, applog::Error::Corrupt { .. }),
                        "verify was clean, open says {e}"
                    );
                }
            }
            assert_eq!(files(dir), snapshot, "a failed open changed files");
        }
        Ok(mut w) => {
            let n = w.next_seq();
            let after = read_all(dir).expect("a recovered log reads");
            assert_eq!(after.len() as u64, n);
            is_written(&after);
            built.check_whole_batches(after.len(), "recovery");
            assert!(
                after.len() >= built.durable,
                "P2: {} records were synced and undamaged, {} recovered",
                built.durable,
                after.len()
            );
            if let Ok(got) = &before {
                // What a reader saw before recovery is still there after it.
                assert!(got.len() <= after.len());
                assert_eq!(&after[..got.len()], &got[..]);
            }
            if let Ok(r) = &report {
                assert!(r.is_clean(), "open succeeded, verify said {r:?}");
                assert_eq!(r.next_seq, n);
                built.check_whole_batches(r.records as usize, "verify");
            }
            w.append(b"after recovery").unwrap();
            w.sync().unwrap();
            drop(w);
            let r = applog::verify(dir).unwrap();
            assert!(r.is_clean() && r.torn_tail.is_none(), "{r:?}");
            assert_eq!(r.next_seq, n + 1);
        }
    }
}
