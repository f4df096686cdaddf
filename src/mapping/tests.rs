//! Tests of the mappings: bounds, freezing, batches, byte order.

use super::*;

fn file(len: u64) -> (tempfile::TempDir, File) {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("f"))
        .unwrap();
    f.set_len(len).unwrap();
    (dir, f)
}

#[test]
fn nothing_past_the_known_size_is_touched() {
    let (_d, f) = file(4096);
    let mut m = WriteMap::new(&f, 8192).unwrap();
    assert_eq!(m.load(0), None, "size not known yet");
    m.set_size(4096);
    assert_eq!(m.load(0), Some(0));
    assert_eq!(m.load(4096), None, "past the file");
    assert_eq!(m.load(4), None, "misaligned");
    assert!(m.write_payload(4090, &[1; 8]).is_err());
    assert!(m.store(4096, 1, Ordering::Relaxed).is_err());
    m.set_size(100); // never shrinks
    assert_eq!(m.limit(), 4096);
}

/// Writes a batch of version-2 frames from offset 64 (seqs from `seq`), published with
/// the first header last; returns each frame's offset.
fn batch(m: &WriteMap, seed: u32, seq: u64, payloads: &[&[u8]]) -> Vec<u64> {
    let layout = format::Layout::V2;
    let mut offs = Vec::new();
    let mut off = 64;
    let mut words = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let more = i + 1 < payloads.len();
        m.stage(off + 8, 7).unwrap(); // the time
        m.write_payload(off + 16, p).unwrap();
        words.push(format::frame_word(layout, seed, seq + i as u64, 7, more, p));
        offs.push(off);
        off += layout.frame_len(p.len() as u64);
    }
    for i in (1..offs.len()).rev() {
        m.stage(offs[i], words[i]).unwrap();
    }
    m.publish(offs[0], words[0], off, Ordering::Release)
        .unwrap();
    offs
}

#[test]
fn a_whole_batch_is_lent_frame_by_frame_only_at_the_seqs_the_walk_met() {
    let (_d, f) = file(4096);
    let mut m = WriteMap::new(&f, 4096).unwrap();
    m.set_size(4096);
    let layout = format::Layout::V2;
    let offs = batch(&m, 3, 10, &[b"one", b"two", b"three"]);
    let r = ReadMap::new(&f, 4096).unwrap();
    let mut r = r;
    r.set_size(4096);
    let (first, _) = r.frame(offs[0], 10, 3, layout);
    assert!(matches!(
        first,
        Frame::Record {
            len: 3,
            more: true,
            ..
        }
    ));
    assert!(matches!(
        r.check_run(offs[0], 10, 3, 3, layout),
        Some(format::Run::Whole { records: 3, .. })
    ));
    // Asked with another seq at the second frame's offset: the full check, which fails.
    assert!(matches!(
        r.frame(offs[1], 99, 3, layout).0,
        Frame::Bad(format::BadFrame::CrcMismatch { .. })
    ));
    // At the walk's own offset and seq: the frame, then the next one.
    assert_eq!(r.frame(offs[1], 11, 3, layout).1, b"two");
    let (last, payload) = r.frame(offs[2], 12, 3, layout);
    assert!(matches!(last, Frame::Record { more: false, .. }));
    assert_eq!(payload, b"three");
}

#[test]
fn words_are_little_endian_in_the_file() {
    let (_d, f) = file(4096);
    let mut m = WriteMap::new(&f, 4096).unwrap();
    m.set_size(4096);
    m.store(8, 0x0102_0304_0506_0708, Ordering::Release)
        .unwrap();
    let mut b = [0u8; 8];
    assert!(m.read_atomic(8, &mut b));
    assert_eq!(b, 0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(m.load(8), Some(0x0102_0304_0506_0708));
}

#[test]
fn published_bytes_cannot_be_written_or_zeroed_again() {
    let (_d, f) = file(4096);
    let mut m = WriteMap::new(&f, 4096).unwrap();
    m.set_size(4096);
    let seed = 7;
    m.write_payload(72, b"abc").unwrap();
    let word = format::record_word(seed, 0, b"abc");
    m.publish(64, word, 64 + format::frame_len(3), Ordering::Release)
        .unwrap();
    assert_eq!(
        m.frame(64, 0, seed, format::Layout::V1),
        (
            Frame::Record {
                len: 3,
                time: 0,
                more: false
            },
            &b"abc"[..]
        )
    );
    assert!(m.write_payload(72, b"xyz").is_err());
    assert!(m.zero_from(64).is_err());
    assert!(m.publish(64, word, 80, Ordering::Release).is_err());
    m.zero_from(80).unwrap();
    assert_eq!(m.frame(64, 0, seed, format::Layout::V1).1, b"abc");
}

#[test]
fn a_fresh_mapping_freezes_what_it_validates() {
    let (_d, f) = file(4096);
    let mut w = WriteMap::new(&f, 4096).unwrap();
    w.set_size(4096);
    w.write_payload(72, b"abc").unwrap();
    w.publish(64, format::record_word(1, 5, b"abc"), 80, Ordering::Release)
        .unwrap();
    drop(w);
    // A second writer (after a crash, say) has frozen nothing until it walks the frames.
    let mut w2 = WriteMap::new(&f, 4096).unwrap();
    w2.set_size(4096);
    assert_eq!(w2.frozen(), 0);
    assert_eq!(
        w2.frame(64, 5, 1, format::Layout::V1).0,
        Frame::Record {
            len: 3,
            time: 0,
            more: false
        }
    );
    assert_eq!(w2.frozen(), 80);
    assert!(w2.zero_from(72).is_err());
}

#[test]
fn a_read_only_mapping_sees_what_the_writer_published() {
    let (_d, f) = file(4096);
    let mut w = WriteMap::new(&f, 4096).unwrap();
    w.set_size(4096);
    let mut r = ReadMap::new(&f, 4096).unwrap();
    r.set_size(4096);
    assert_eq!(r.frame(64, 0, 3, format::Layout::V1).0, Frame::Empty);
    w.write_payload(72, b"hello").unwrap();
    assert_eq!(
        r.frame(64, 0, 3, format::Layout::V1).0,
        Frame::Empty,
        "not published yet"
    );
    w.publish(
        64,
        format::record_word(3, 0, b"hello"),
        80,
        Ordering::Release,
    )
    .unwrap();
    assert_eq!(
        r.frame(64, 0, 3, format::Layout::V1),
        (
            Frame::Record {
                len: 5,
                time: 0,
                more: false
            },
            &b"hello"[..]
        )
    );
    assert!(!r.is_zero_from(64));
    assert!(r.is_zero_from(80));
}
