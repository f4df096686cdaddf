//! The fuzz targets' checks, driven by proptest inside `cargo test` (`fuzz/` runs the same
//! checks under cargo-fuzz for as long as one likes).
//!
//! Fault model: arbitrary bytes where a frame header, a segment header or a whole segment
//! file is expected: valid frames with up to eight damaged bytes, a synced mark anywhere, a
//! file length anywhere, or raw bytes after a valid header.
//! Pass criterion: decoding accepts nothing the encoder did not write; a reader, `verify` and
//! recovery never panic (P4) and only ever yield the records that were written, in order,
//! byte for byte (P1, P3); recovery keeps every undamaged record below the synced mark (P2);
//! a failed open changes no file; after recovery the log verifies clean and takes appends.
//! Cases scale with `APPLOG_SOAK`.

mod common;

use common::harness;
use proptest::prelude::*;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases * common::soak() as u32,
        ..ProptestConfig::default()
    }
}

/// Inputs shaped like the structured mode: mostly valid frames, then damage.
fn structured() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..600))
        .prop_map(|(mode, rest)| std::iter::once(mode | 1).chain(rest).collect())
}

proptest! {
    #![proptest_config(config(2000))]
    #[test]
    fn frame_decoding_of_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        harness::check_frame_decoding(&data);
    }
}

proptest! {
    #![proptest_config(config(300))]
    #[test]
    fn recovery_of_damaged_segments(data in structured()) {
        let d = tempfile::tempdir().unwrap();
        harness::check_recovery(d.path(), &data);
    }

    #[test]
    fn recovery_of_raw_segment_bytes(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let d = tempfile::tempdir().unwrap();
        let mut data = data;
        if let Some(m) = data.first_mut() { *m &= !1; }
        harness::check_recovery(d.path(), &data);
    }
}
