//! Frame and segment-header decoding of arbitrary bytes: never panics, accepts only what the
//! encoder writes. The checks are shared with the proptest twin in `tests/fuzz_twins.rs`.
#![no_main]

#[path = "../../tests/common/harness.rs"]
#[allow(dead_code)]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::check_frame_decoding(data));
