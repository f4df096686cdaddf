use super::*;
use proptest::prelude::*;

fn hdr() -> SegmentHeader {
    SegmentHeader {
        layout: Layout::V1,
        page_size: 4096,
        segment_pages: 16,
        base_seq: 42,
        salt: 0x1234_5678_9abc_def0,
        starts_log: false,
    }
}

#[test]
fn header_round_trip() {
    let h = hdr();
    assert_eq!(SegmentHeader::decode(&h.encode()), Ok(h));
}

#[test]
fn zero_header_is_blank_and_zero_word_is_empty() {
    assert_eq!(SegmentHeader::decode(&[0u8; 64]), Err(HeaderError::Blank));
    assert_eq!(decode_head(Layout::V2, 0), Head::Empty);
    // The empty record never encodes to zero, whatever its CRC.
    for seq in 0..10_000u64 {
        assert_ne!(record_word(hdr().crc_seed(), seq, &[]), 0);
    }
}

#[test]
fn foreign_bytes_are_not_applog() {
    assert_eq!(
        SegmentHeader::decode(b"hello world, this is not an applog segment header at all......"),
        Err(HeaderError::NotApplog)
    );
    assert_eq!(SegmentHeader::decode(b"hi"), Err(HeaderError::NotApplog));
    assert_eq!(SegmentHeader::decode(&MAGIC), Err(HeaderError::Short));
    assert_eq!(SegmentHeader::decode(&MAGIC[..3]), Err(HeaderError::Short));
    assert_eq!(SegmentHeader::decode(&[0, 0, 0]), Err(HeaderError::Blank));
}

#[test]
fn every_header_bit_flip_is_caught() {
    let good = hdr().encode();
    for byte in 0..44 {
        for bit in 0..8 {
            let mut b = good;
            b[byte] ^= 1 << bit;
            assert!(
                SegmentHeader::decode(&b).is_err(),
                "flip {byte}:{bit} passed"
            );
        }
    }
}

#[test]
fn crc_seed_continues_the_salt() {
    // new_with_initial(crc(salt)) must equal hashing salt || rest.
    let h = hdr();
    let mut all = h.salt.to_le_bytes().to_vec();
    all.extend_from_slice(&7u64.to_le_bytes());
    all.extend_from_slice(&(3u32 | PRESENT).to_le_bytes());
    all.extend_from_slice(b"abc");
    assert_eq!(
        record_crc(h.crc_seed(), 7, 3, b"abc"),
        crc32fast::hash(&all)
    );
}

#[test]
fn frame_is_pinned_to_seq_and_salt() {
    let h = hdr();
    let w = record_word(h.crc_seed(), 5, b"payload");
    let ok = check_frame_in(h.crc_seed(), 5, w, b"payload");
    assert_eq!(
        ok,
        Frame::Record {
            len: 7,
            time: 0,
            more: false
        }
    );
    let other_seq = check_frame_in(h.crc_seed(), 6, w, b"payload");
    assert!(matches!(
        other_seq,
        Frame::Bad(BadFrame::CrcMismatch { .. })
    ));
    let other_salt = SegmentHeader { salt: 1, ..h };
    let stale = check_frame_in(other_salt.crc_seed(), 5, w, b"payload");
    assert!(matches!(stale, Frame::Bad(BadFrame::CrcMismatch { .. })));
    let short = check_frame_in(h.crc_seed(), 5, w, &b"payload"[..6]);
    assert_eq!(short, Frame::Bad(BadFrame::LengthOutOfBounds { len: 7 }));
}

fn v2(payload: &[u8], time: u64, more: bool) -> (u64, Vec<u8>) {
    let w = frame_word(Layout::V2, hdr().crc_seed(), 9, time, more, payload);
    let mut rest = time.to_le_bytes().to_vec();
    rest.extend_from_slice(payload);
    (w, rest)
}

#[test]
fn version_2_frame_carries_time_and_the_batch_bit() {
    let seed = hdr().crc_seed();
    let (w, rest) = v2(b"payload", 1_700_000_000_123_456_789, true);
    assert_eq!(
        check_frame_bytes(Layout::V2, seed, 9, w, &rest),
        Frame::Record {
            len: 7,
            time: 1_700_000_000_123_456_789,
            more: true
        }
    );
    assert_eq!(Layout::V2.frame_len(7), 16 + 8);
    assert_eq!(Layout::V1.frame_len(7), 8 + 8);
    // The time and the batch bit are covered by the CRC.
    for bit in 0..64 {
        let mut bad = rest.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(matches!(
            check_frame_bytes(Layout::V2, seed, 9, w, &bad),
            Frame::Bad(BadFrame::CrcMismatch { .. })
        ));
    }
    let flipped = w ^ u64::from(MORE);
    assert!(matches!(
        check_frame_bytes(Layout::V2, seed, 9, flipped, &rest),
        Frame::Bad(BadFrame::CrcMismatch { .. })
    ));
    // A frame without its time word in the file runs out of bounds.
    assert_eq!(
        check_frame_bytes(Layout::V2, seed, 9, w, &rest[..4]),
        Frame::Bad(BadFrame::LengthOutOfBounds { len: 7 })
    );
    // The same word read as version 1 does not pass.
    assert!(matches!(
        check_frame_bytes(Layout::V1, seed, 9, w, &rest),
        Frame::Bad(_)
    ));
}

#[test]
fn both_versions_decode_and_others_are_refused() {
    let v1 = hdr();
    let v2 = SegmentHeader {
        layout: Layout::V2,
        ..v1
    };
    assert_eq!(SegmentHeader::decode(&v1.encode()), Ok(v1));
    assert_eq!(SegmentHeader::decode(&v2.encode()), Ok(v2));
    let mut b = v2.encode();
    b[8] = 3;
    let crc = crc32fast::hash(&b[0..40]);
    b[40..44].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(
        SegmentHeader::decode(&b),
        Err(HeaderError::UnsupportedVersion(3))
    );
    // Version 2's length field has 30 bits.
    let big = SegmentHeader {
        page_size: 1 << 16,
        segment_pages: 1 << 15,
        ..v2
    };
    assert_eq!(big.max_record_len(), (1 << 30) - 1);
    assert_eq!(
        SegmentHeader {
            layout: Layout::V1,
            ..big
        }
        .max_record_len(),
        (1 << 31) - HEADER_LEN - 8
    );
}

#[test]
fn seal_round_trip() {
    let h = hdr();
    let w = seal_word(h.crc_seed(), 99);
    assert_eq!(check_frame_in(h.crc_seed(), 99, w, &[]), Frame::Seal);
    assert_eq!(
        check_frame_in(h.crc_seed(), 98, w, &[]),
        Frame::Bad(BadFrame::BadSeal)
    );
}

#[test]
fn synced_mark_round_trip_and_check() {
    let h = hdr();
    assert_eq!(h.decode_synced_mark(0), Some(0));
    let w = h.encode_synced_mark(4096);
    assert_eq!(h.decode_synced_mark(w), Some(4096));
    assert_eq!(h.decode_synced_mark(w ^ 1), None);
    assert_eq!(h.decode_synced_mark(w ^ (1 << 40)), None);
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), word in any::<u64>(), avail in any::<u64>()) {
        let _ = SegmentHeader::decode(&bytes);
        let r = check_frame_in(7, 1, word, &bytes[..(avail.min(bytes.len() as u64)) as usize]);
        // A random word is only accepted with a matching CRC.
        if let Frame::Record { len, .. } = r {
            prop_assert_eq!(record_word(7, 1, &bytes[..len as usize]), word);
        }
    }

    #[test]
    fn record_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..300), seq in any::<u64>(), seed in any::<u32>()) {
        let w = record_word(seed, seq, &payload);
        let r = check_frame_in(seed, seq, w, &payload);
        prop_assert_eq!(r, Frame::Record { len: payload.len() as u32, time: 0, more: false });
    }

    #[test]
    fn version_2_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..300), seq in any::<u64>(), seed in any::<u32>(), time in any::<u64>(), more in any::<bool>()) {
        let w = frame_word(Layout::V2, seed, seq, time, more, &payload);
        let mut rest = time.to_le_bytes().to_vec();
        rest.extend_from_slice(&payload);
        let r = check_frame_bytes(Layout::V2, seed, seq, w, &rest);
        prop_assert_eq!(r, Frame::Record { len: payload.len() as u32, time, more });
    }

    #[test]
    fn version_2_decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), word in any::<u64>()) {
        let r = check_frame_bytes(Layout::V2, 7, 1, word, &bytes);
        // A random word is only accepted with a matching CRC over the time and payload.
        if let Frame::Record { len, time, more } = r {
            prop_assert_eq!(frame_word(Layout::V2, 7, 1, time, more, &bytes[8..8 + len as usize]), word);
        }
    }
}
