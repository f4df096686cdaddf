//! Segments built byte by byte from the documented layout: logs in the version-1 format
//! (records without a time), as an older applog wrote them, and version-2 segments with
//! chosen times.

use std::path::Path;

use applog::format::{self, Layout, SegmentHeader, HEADER_LEN};

/// Writes a version-1 segment file at `dir` (created), base seq `base`, holding `records`,
/// all synced (the synced mark covers them). With `seal`, the segment ends with a seal naming
/// the next seq. The file is the smallest page multiple that holds it, as a writer leaves it.
pub fn write_segment(dir: &Path, base: u64, pages: u32, records: &[Vec<u8>], seal: bool) {
    let records: Vec<(Vec<u8>, u64)> = records.iter().map(|r| (r.clone(), 0)).collect();
    write_segment_in(Layout::V1, dir, base, pages, &records, seal);
}

/// As [`write_segment`], in `layout`, each record with its time (ignored in version 1).
pub fn write_segment_in(
    layout: Layout,
    dir: &Path,
    base: u64,
    pages: u32,
    records: &[(Vec<u8>, u64)],
    seal: bool,
) {
    std::fs::create_dir_all(dir).unwrap();
    let page = super::page();
    let header = SegmentHeader {
        layout,
        page_size: u32::try_from(page).unwrap(),
        segment_pages: pages,
        base_seq: base,
        salt: 0x5eed_0000_0000_0001 ^ base,
        starts_log: false,
    };
    let seed = header.crc_seed();
    let mut bytes = header.encode().to_vec();
    let mut off = HEADER_LEN as usize;
    let skip = (layout.record_header_len() - 8) as usize;
    for (i, (data, time)) in records.iter().enumerate() {
        let seq = base + i as u64;
        let frame = layout.frame_len(data.len() as u64) as usize;
        bytes.resize(off + frame, 0);
        let word = format::frame_word(layout, seed, seq, *time, false, data);
        bytes[off..off + 8].copy_from_slice(&word.to_le_bytes());
        if layout.has_time() {
            bytes[off + 8..off + 16].copy_from_slice(&time.to_le_bytes());
        }
        bytes[off + 8 + skip..off + 8 + skip + data.len()].copy_from_slice(data);
        off += frame;
    }
    if seal {
        let next = base + records.len() as u64;
        bytes.resize(off + 8, 0);
        bytes[off..off + 8].copy_from_slice(&format::seal_word(seed, next).to_le_bytes());
        off += 8;
    }
    assert!(off as u64 <= header.reservation(), "the records do not fit");
    let mark = header.encode_synced_mark(off as u64);
    let at = format::SYNCED_MARK_OFFSET as usize;
    bytes[at..at + 8].copy_from_slice(&mark.to_le_bytes());
    bytes.resize((off as u64).div_ceil(page) as usize * page as usize, 0);
    std::fs::write(dir.join(applog::segment_name(base)), bytes).unwrap();
}

/// A version-1 log in `dir`: `records` in sealed 1-page segments of `per_segment` records each
/// (the last one not sealed).
pub fn write_log(dir: &Path, records: &[Vec<u8>], per_segment: usize) {
    let chunks: Vec<&[Vec<u8>]> = records.chunks(per_segment).collect();
    let mut base = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        write_segment(dir, base, 1, chunk, i + 1 < chunks.len());
        base += chunk.len() as u64;
    }
}
