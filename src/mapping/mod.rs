//! The one module with `unsafe`: the memory mapping of a segment file.
//!
//! Nothing outside this module touches a mapped byte except through the functions below, and
//! each of them checks the precondition it relies on, so the rest of the crate is safe code.
//! The raw mapping (memmap2's `MmapRaw`) never hands out references by itself; this module
//! hands out exactly two kinds: `&[u8]` into a record frame that it has just validated, and
//! `&AtomicU32`/atomic access to aligned header words.
//!
//! # The soundness argument
//!
//! A segment file is mapped once over its whole *reservation*; the file itself is usually
//! shorter. Touching a page of the mapping at or past the end of the file raises SIGBUS and
//! past the reservation SIGSEGV, so every access checks `off + len <= limit()`, the smaller of
//! the reservation and the file size this mapping knows: set by the writer after it grew the
//! file, or observed with `fstat` by a reader. The log never shrinks a segment file (a torn
//! tail is zeroed in place), so a size once known stays valid.
//!
//! Other threads and processes write into the same pages while we read them, and Rust's memory
//! model does not describe memory shared with another process. What keeps us sound is the
//! *publish protocol*, which every writer of the format follows:
//!
//! 1. **Header words are atomic.** Frame headers, the segment magic and the synced mark are
//!    aligned 8-byte words, the wake word and the cut word aligned 4-byte words; they are only
//!    ever read and
//!    written with atomic operations, here and in every other process.
//! 2. **Payload before header.** The writer copies a frame's payload into place, then stores
//!    its header word with `Release`. A reader loads the header word (a `Relaxed` load followed
//!    by an `Acquire` fence: std promises only `Relaxed` loads on read-only memory), and when
//!    it is non-zero, the payload stores happened before.
//! 3. **Published bytes are never written again.** Once a frame's CRC has passed, its bytes
//!    stay as they are for as long as the file exists: the writer only writes past the last
//!    frame it published or validated ([`WriteMap`] enforces this with `frozen`), and recovery
//!    only zeroes bytes from the first frame that does not validate, or from the first frame
//!    of a batch whose last frame is missing, which no reader can have borrowed either
//!    (readers walk the same frames from the segment's start, stop at the first bad one, and
//!    check the rest of a batch with [`View::check_run`], which lends nothing, before they
//!    lend any of it; the frames of a batch found whole are then lent without a second CRC).
//!    That is what makes the `&[u8]` this module hands out sound.
//! 4. **Unvalidated bytes are read atomically.** Bytes that may still change under us (a
//!    payload whose CRC is not yet checked, garbage left by a crash that a recovering writer in
//!    this process may be zeroing, header fields next to the wake word) are copied out with
//!    atomic loads before anything looks at them; recovery zeroes with atomic stores. So no
//!    non-atomic read ever races a write in this process.
//! 5. On a copy-on-write file system (see `cow`) the writer stores nothing through the
//!    mapping: it writes the same bytes in the same order with `pwrite` (the payload, a
//!    `SeqCst` fence, then the header word), and checks and freezes ranges with
//!    [`WriteMap::check_unpublished`] and [`WriteMap::freeze_published`] as a store would.
//!    The kernel copies with plain stores, so a reader may load a header word half written
//!    (rule 1 does not hold for it): such a word fails its check (or the payload's CRC does),
//!    and readers take a bad frame past the synced mark for one not yet written, and wait.
//!    No `&[u8]` is lent before a frame validates, so rule 3 still holds.
//! 6. The one write over published bytes is the reopen rewrite (see
//!    `segment::WriteSegment::redirty`): it writes the *same* bytes through `pwrite`, in the
//!    kernel, to make pages the kernel may have marked clean after a failed write-back dirty
//!    again. No value a reader can observe changes.
//!
//! What breaks it, and is documented as outside the trust model: another program that
//! truncates a mapped segment file (SIGBUS in every process that maps it), a media error on a
//! mapped page (SIGBUS), or another program that writes into published frames (readers may
//! then see bytes change under a borrow; the CRC catches it only on the next read).
//!
//! All multi-byte values in a mapping are little-endian; the conversion happens here, in
//! [`View::load`] and [`WriteMap::store`], and nowhere else.
#![deny(clippy::undocumented_unsafe_blocks)]
// Words are cast from `*mut u8` only at offsets checked to be multiples of their size, from a
// page-aligned base (see each `SAFETY` comment).
#![allow(clippy::cast_ptr_alignment)]

#[cfg(not(target_has_atomic = "64"))]
compile_error!("applog needs 64-bit atomics: readers and the writer share 8-byte header words");

use std::fs::File;
use std::io;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use crate::format::{self, Frame, FRAME_HEADER_LEN};

mod write;
pub(crate) use write::{WakeView, WordMap, WriteMap};

/// Bytes read per chunk when the bytes after a frame are checked for zeros.
const CHUNK: usize = 512;

/// Bytes copied per chunk when a CRC is computed over atomically loaded bytes: small, since
/// the buffer is initialised on every frame and most records are small.
const CRC_CHUNK: usize = 128;

fn out_of_bounds(off: u64, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "internal error: access to {len} bytes at {off} is outside the file or the mapping"
        ),
    )
}

fn frozen_error(off: u64, frozen: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "internal error: write at {off} below the end of published frames ({frozen}); \
             published bytes are never written again"
        ),
    )
}

/// A read view of a mapping: bounds, atomic word loads, validated frames.
pub(crate) struct View {
    raw: Arc<MmapRaw>,
    /// Bytes of the file known to exist. Nothing at or past it is touched.
    size: u64,
    /// Payload offset and length of the last record frame [`frame`](Self::frame) validated,
    /// so that [`validated`](Self::validated) can lend it again without a second CRC.
    last: [AtomicU64; 2],
    /// Where the rest of the last batch [`check_run`](Self::check_run) found whole lies:
    /// `next << 32 | end`, the offset of the next frame of it not yet lent and the batch's
    /// end (offsets are below 2^31), with `run_seq`, the seq of the frame at `next`.
    /// [`frame`](Self::frame) lends that frame without a second CRC when asked for exactly
    /// that offset and seq, and moves on to the next; any other query (or a pair torn by
    /// two threads) takes the full check. 0: none.
    run: AtomicU64,
    run_seq: AtomicU64,
}

impl View {
    fn map(file: &File, reservation: u64, writable: bool) -> io::Result<View> {
        let len = usize::try_from(reservation).map_err(|_| out_of_bounds(0, reservation))?;
        let mut opts = MmapOptions::new();
        opts.len(len);
        let raw = if writable {
            opts.map_raw(file)?
        } else {
            opts.map_raw_read_only(file)?
        };
        Ok(View {
            raw: Arc::new(raw),
            size: 0,
            last: [AtomicU64::new(u64::MAX), AtomicU64::new(0)],
            run: AtomicU64::new(0),
            run_seq: AtomicU64::new(0),
        })
    }

    /// The reservation: the length of the mapping.
    pub(crate) fn reservation(&self) -> u64 {
        self.raw.len() as u64
    }

    /// The file size this mapping knows.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Bytes that may be touched: the smaller of the file size and the reservation.
    pub(crate) fn limit(&self) -> u64 {
        self.size.min(self.reservation())
    }

    /// Records that the file is now `size` bytes long (the caller set or observed it). The
    /// log never shrinks a file: a smaller value is ignored.
    pub(crate) fn set_size(&mut self, size: u64) {
        self.size = self.size.max(size);
    }

    /// `off` as an index into the mapping, when `[off, off + len)` lies inside the file and
    /// the mapping.
    fn check(&self, off: u64, len: u64) -> Option<usize> {
        match off.checked_add(len) {
            Some(end) if end <= self.limit() => usize::try_from(off).ok(),
            _ => None,
        }
    }

    fn word(&self, off: u64) -> Option<&AtomicU64> {
        if off % 8 != 0 {
            return None;
        }
        let at = self.check(off, 8)?;
        // SAFETY: `[at, at + 8)` is inside the mapping and the file (checked), so the pointer
        // is valid for 8 bytes for as long as `self` lives; `at` is a multiple of 8 from the
        // page-aligned base, so it is aligned for an AtomicU64. Words at such offsets are only
        // accessed atomically, here and in other processes (rule 1 of the module docs). Only
        // `WriteMap` and `WordMap` store through it, and only over writable mappings.
        Some(unsafe { AtomicU64::from_ptr(self.raw.as_mut_ptr().add(at).cast::<u64>()) })
    }

    /// Loads the little-endian 8-byte word at `off` with acquire semantics (a `Relaxed` load
    /// and an `Acquire` fence, which is sound on read-only memory); `None` when out of bounds
    /// or misaligned.
    #[inline]
    pub(crate) fn load(&self, off: u64) -> Option<u64> {
        let v = self.word(off)?.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        Some(u64::from_le(v))
    }

    /// Loads the little-endian 4-byte header word at `off` (the cut word) with acquire
    /// semantics, like [`load`](Self::load); `None` when out of bounds or not 4-aligned.
    #[inline]
    pub(crate) fn load32(&self, off: u64) -> Option<u32> {
        if off % 4 != 0 {
            return None;
        }
        let at = self.check(off, 4)?;
        // SAFETY: `[at, at + 4)` is inside the mapping and the file (checked), 4-aligned from
        // the page-aligned base. The cut word is only ever accessed atomically as a 4-byte
        // word, here and in other processes (rule 1), never as part of a wider word; a load
        // is sound on read-only memory.
        let v = unsafe { AtomicU32::from_ptr(self.raw.as_mut_ptr().add(at).cast::<u32>()) }
            .load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        Some(u32::from_le(v))
    }

    /// Copies `out.len()` bytes at `off` out of the mapping with atomic loads (rule 4): for
    /// bytes that may change while we read them. False when out of bounds.
    pub(crate) fn read_atomic(&self, off: u64, out: &mut [u8]) -> bool {
        let Some(at) = self.check(off, out.len() as u64) else {
            return false;
        };
        let base = self.raw.as_mut_ptr();
        // Bytes up to the first 8-byte boundary, then whole words, then the rest.
        let head = ((8 - at % 8) % 8).min(out.len());
        let (first, rest) = out.split_at_mut(head);
        let mut pos = at;
        for b in first.iter_mut() {
            // SAFETY: `pos` is inside the checked range; a byte is always aligned.
            *b = unsafe { AtomicU8::from_ptr(base.add(pos)) }.load(Ordering::Relaxed);
            pos += 1;
        }
        let mut words = rest.chunks_exact_mut(8);
        for w in &mut words {
            // SAFETY: `[pos, pos + 8)` is inside the checked range, hence inside the mapping
            // and the file; `pos` is 8-aligned from the page-aligned base. Atomic loads of any
            // bytes are sound against concurrent atomic or kernel writes.
            let v =
                unsafe { AtomicU64::from_ptr(base.add(pos).cast::<u64>()) }.load(Ordering::Relaxed);
            w.copy_from_slice(&v.to_ne_bytes());
            pos += 8;
        }
        for b in words.into_remainder() {
            // SAFETY: as for the head bytes.
            *b = unsafe { AtomicU8::from_ptr(base.add(pos)) }.load(Ordering::Relaxed);
            pos += 1;
        }
        fence(Ordering::Acquire);
        true
    }

    /// Whether every byte of `[off, limit())` is zero, read atomically.
    pub(crate) fn is_zero_from(&self, off: u64) -> bool {
        let limit = self.limit();
        let mut buf = [0u8; CHUNK];
        let mut at = off;
        while at < limit {
            let n = format::to_usize((limit - at).min(CHUNK as u64));
            if !self.read_atomic(at, &mut buf[..n]) || buf[..n].iter().any(|&b| b != 0) {
                return false;
            }
            at += n as u64;
        }
        true
    }

    /// Checks the frame at `off` as the frame of `seq` in a segment of frame layout `layout`
    /// whose CRC seed is `seed`; returns the verdict and, for a valid record, a borrow of its
    /// payload.
    ///
    /// The payload's CRC is computed over atomically loaded bytes; only once it matches is the
    /// borrow made (rule 3 of the module docs). The time word (version 2) is an aligned word,
    /// loaded atomically like the header word.
    #[inline]
    pub(crate) fn frame(
        &self,
        off: u64,
        seq: u64,
        seed: u32,
        layout: format::Layout,
    ) -> (Frame, &[u8]) {
        if let Some(found) = self.frame_in_run(off, seq, layout) {
            return found;
        }
        let frame = self.check_frame(off, seq, seed, layout);
        match frame {
            Frame::Record { len, .. } => {
                let start = off + layout.record_header_len();
                let len = u64::from(len);
                self.last[0].store(start, Ordering::Relaxed);
                self.last[1].store(len, Ordering::Relaxed);
                // SAFETY: `[start, start + len)` is the payload of the frame `check_frame`
                // just validated: its header word was loaded with acquire semantics, its
                // length was checked to lie inside the file, and its CRC matched the bytes in
                // place.
                (frame, unsafe { self.lend(start, len) })
            }
            _ => (frame, &[]),
        }
    }

    /// The next frame of the last whole batch [`check_run`](Self::check_run) validated, with
    /// its payload, without computing its CRC again: only when `off` and `seq` are exactly
    /// the offset and seq of that frame as the walk met it; `None` otherwise.
    #[inline]
    fn frame_in_run(&self, off: u64, seq: u64, layout: format::Layout) -> Option<(Frame, &[u8])> {
        let run = self.run.load(Ordering::Relaxed);
        let (start, end) = (run >> 32, run & u64::from(u32::MAX));
        if run == 0 || off != start || seq != self.run_seq.load(Ordering::Relaxed) {
            return None;
        }
        let format::Head::Record { len, more, .. } = format::decode_head(layout, self.load(off)?)
        else {
            return None;
        };
        let payload = off + layout.record_header_len();
        let len = u64::from(len);
        if payload + len > end {
            return None;
        }
        let time = if layout.has_time() {
            self.load(off + FRAME_HEADER_LEN)?
        } else {
            0
        };
        self.last[0].store(payload, Ordering::Relaxed);
        self.last[1].store(len, Ordering::Relaxed);
        // On to the next frame of the batch (none after its last).
        let next = off + layout.frame_len(len);
        let advanced = if next < end { (next << 32) | end } else { 0 };
        self.run.store(advanced, Ordering::Relaxed);
        self.run_seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        let frame = Frame::Record {
            len: format::to_u32(len),
            time,
            more,
        };
        // SAFETY: `[payload, payload + len)` lies inside `[start, end)` (checked above; `lend`
        // checks the file bounds), the frames of a batch that `check_run` validated in this
        // mapping one by one (each header word loaded with acquire semantics, each CRC
        // matched) and found whole. Every byte there belongs to a published frame, never
        // written again while the file exists (rule 3 of the module docs: recovery cuts only a
        // batch whose last frame is missing), so no write can alias the borrow. `off` and
        // `seq` are the offset and seq of a frame the walk validated (a torn pair from two
        // threads can only make a query miss), so the frame returned is the one it checked.
        Some((frame, unsafe { self.lend(payload, len) }))
    }

    /// Looks at the rest of the batch whose frame at `off` (of `seq`, `len` bytes of payload)
    /// is a valid record with `MORE`: checks the frames after it (as
    /// [`check_frame`](Self::check_frame), lending nothing) up to the first without `MORE`.
    /// When the batch is whole, remembers its frames, so that [`frame`](Self::frame) lends
    /// them without a second CRC. `None` when seqs would pass `u64::MAX`.
    pub(crate) fn check_run(
        &self,
        off: u64,
        seq: u64,
        len: u32,
        seed: u32,
        layout: format::Layout,
    ) -> Option<format::Run> {
        use format::{Run, RunBreak};
        let (first_len, first_seq) = (len, seq);
        let mut at = off + layout.frame_len(u64::from(len));
        let mut seq = seq;
        let mut records = 1;
        let torn = |at, records, why| Some(Run::Torn { at, records, why });
        loop {
            seq = seq.checked_add(1)?;
            if at + FRAME_HEADER_LEN > self.reservation() {
                return torn(at, records, RunBreak::Full);
            }
            match self.check_frame(at, seq, seed, layout) {
                Frame::Record { len, time, more } => {
                    at += layout.frame_len(u64::from(len));
                    records += 1;
                    if !more {
                        // The batch's second frame is the next one a reader asks for.
                        let second = off + layout.frame_len(u64::from(first_len));
                        self.run_seq
                            .store(first_seq.wrapping_add(1), Ordering::Relaxed);
                        self.run.store((second << 32) | at, Ordering::Relaxed);
                        return Some(Run::Whole {
                            end: at,
                            records,
                            time,
                        });
                    }
                }
                Frame::Empty => return torn(at, records, RunBreak::Empty),
                Frame::Seal => return torn(at, records, RunBreak::Seal),
                Frame::Bad(b) => return torn(at, records, RunBreak::Bad(b)),
            }
        }
    }

    /// As [`frame`](Self::frame), without lending the payload (nor remembering it for
    /// [`validated`](Self::validated)): the verdict alone, over atomically loaded bytes. For
    /// looking ahead at frames that may yet be cut (the rest of a batch: see `segment::run_end`).
    #[inline]
    pub(crate) fn check_frame(
        &self,
        off: u64,
        seq: u64,
        seed: u32,
        layout: format::Layout,
    ) -> Frame {
        let Some(word) = self.load(off) else {
            // No whole header word inside the file: nothing there (yet).
            return Frame::Empty;
        };
        let start = off + layout.record_header_len();
        let avail = self.limit().saturating_sub(start);
        let time = || self.load(off + FRAME_HEADER_LEN);
        format::check_frame(layout, seed, seq, word, time, avail, |mut h, len| {
            let mut buf = [0u8; CRC_CHUNK];
            let mut at = start;
            let mut left = u64::from(len);
            while left > 0 {
                let n = format::to_usize(left.min(CRC_CHUNK as u64));
                if !self.read_atomic(at, &mut buf[..n]) {
                    // Cannot happen: `len <= avail` was checked. Make the CRC fail.
                    return !h.clone().finalize();
                }
                h.update(&buf[..n]);
                at += n as u64;
                left -= n as u64;
            }
            h.finalize()
        })
    }

    /// The payload `[start, start + len)` of the last record frame [`frame`](Self::frame)
    /// validated, lent again without a second CRC; `None` for any other range.
    pub(crate) fn validated(&self, start: u64, len: u64) -> Option<&[u8]> {
        if self.last[0].load(Ordering::Relaxed) != start
            || self.last[1].load(Ordering::Relaxed) != len
        {
            return None;
        }
        // SAFETY: `frame` stored this exact pair after validating the frame whose payload it
        // is (a pair torn by two threads validating at once matches neither's query, and a
        // query matches only a pair its own thread stored after validating it).
        Some(unsafe { self.lend(start, len) })
    }

    /// Lends `[start, start + len)`; empty when out of bounds.
    ///
    /// # Safety
    /// The range must be the payload of a record frame this mapping validated (header word
    /// loaded with acquire semantics, CRC matched). Such bytes are a published frame, never
    /// written again while the file exists (rule 3 of the module docs), so no write can alias
    /// the shared borrow, which lives no longer than the mapping (`&self`).
    unsafe fn lend(&self, start: u64, len: u64) -> &[u8] {
        match (self.check(start, len), usize::try_from(len)) {
            // SAFETY: inside the mapping and the file (checked); immutable by the caller's
            // promise.
            (Some(at), Ok(n)) => unsafe {
                std::slice::from_raw_parts(self.raw.as_ptr().add(at), n)
            },
            _ => &[],
        }
    }
}

/// A read-only mapping of a segment (readers, `verify`, recovery's first look).
pub(crate) struct ReadMap(View);

impl ReadMap {
    /// Maps `reservation` bytes of `file` read-only. The mapping knows no file size yet.
    pub(crate) fn new(file: &File, reservation: u64) -> io::Result<ReadMap> {
        View::map(file, reservation, false).map(ReadMap)
    }
}

impl std::ops::Deref for ReadMap {
    type Target = View;
    fn deref(&self) -> &View {
        &self.0
    }
}

impl std::ops::DerefMut for ReadMap {
    fn deref_mut(&mut self) -> &mut View {
        &mut self.0
    }
}

#[cfg(test)]
mod tests;
