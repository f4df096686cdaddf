//! Small files of 8-byte little-endian words: a consumer's position file and the writer's
//! stats file. Both start with a magic word and a version word, hold two check-worded slots,
//! and are read with `pread` by any process. What they share lives here: reading one whole,
//! taking a word out of it, and checking its first words.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Offset of the magic word.
pub(crate) const OFF_MAGIC: u64 = 0;
/// Offset of the version word.
pub(crate) const OFF_VERSION: u64 = 8;

/// A word offset as an index (every offset of these files is below a page).
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn idx(off: u64) -> usize {
    off as usize
}

/// The little-endian word at `off`; 0 when `bytes` is too short (callers check the length
/// with [`check_start`] first).
pub(crate) fn word(bytes: &[u8], off: u64) -> u64 {
    let at = idx(off);
    let mut w = [0u8; 8];
    if let Some(b) = bytes.get(at..at + 8) {
        w.copy_from_slice(b);
    }
    u64::from_le_bytes(w)
}

/// Reads from the start of `file` into `out` until it is full or the file ends; how many
/// bytes were read.
pub(crate) fn read_full(file: &File, out: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < out.len() {
        match file.read_at(&mut out[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Checks that `bytes` (the start of a `what`, such as "stats file") is at least `used`
/// bytes long and starts with `magic` and `version`. On failure, the byte offset of what is
/// wrong and why.
pub(crate) fn check_start(
    bytes: &[u8],
    used: usize,
    magic: u64,
    version: u64,
    what: &str,
) -> Result<(), (u64, String)> {
    if bytes.len() < used {
        return Err((
            bytes.len() as u64,
            format!(
                "the file is {} bytes long, shorter than a {what}",
                bytes.len()
            ),
        ));
    }
    if word(bytes, OFF_MAGIC) != magic {
        return Err((OFF_MAGIC, format!("not an applog {what} (bad magic)")));
    }
    let found = word(bytes, OFF_VERSION);
    if found != version {
        return Err((OFF_VERSION, format!("unknown {what} version {found}")));
    }
    Ok(())
}
