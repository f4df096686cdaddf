//! Writable mappings: a segment's (the writer, recovery), a reader's wake word, and small
//! files of atomic words.

use std::fs::File;
use std::io;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use super::{frozen_error, out_of_bounds, View};
use crate::format::{self, Frame};

/// A writable mapping of a segment (the writer, recovery under the lock).
///
/// Clones share the one mapping (unmapped when the last clone goes) and its `frozen` mark:
/// a group-commit flush runs on a clone without the writer's lock.
#[derive(Clone)]
pub(crate) struct WriteMap {
    view: ViewRef,
    /// Every byte below this offset may belong to a published or validated frame: never
    /// written again through this mapping.
    frozen: Arc<AtomicU64>,
}

/// A `View` that can be cloned (the size is per clone: each owner knows its own).
struct ViewRef(View);

impl Clone for ViewRef {
    fn clone(&self) -> ViewRef {
        ViewRef(View {
            raw: Arc::clone(&self.0.raw),
            size: self.0.size,
            last: [AtomicU64::new(u64::MAX), AtomicU64::new(0)],
            run: AtomicU64::new(0),
            run_seq: AtomicU64::new(0),
        })
    }
}

impl std::ops::Deref for WriteMap {
    type Target = View;
    fn deref(&self) -> &View {
        &self.view.0
    }
}

impl std::ops::DerefMut for WriteMap {
    fn deref_mut(&mut self) -> &mut View {
        &mut self.view.0
    }
}

impl WriteMap {
    /// Maps `reservation` bytes of `file` read-write. Nothing is frozen yet: the caller must
    /// walk the existing frames with [`frame`](Self::frame) (which freezes what validates)
    /// before it writes into a file that may hold frames.
    pub(crate) fn new(file: &File, reservation: u64) -> io::Result<WriteMap> {
        Ok(WriteMap {
            view: ViewRef(View::map(file, reservation, true)?),
            frozen: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Where writes may start: the end of the last published or validated frame.
    pub(crate) fn frozen(&self) -> u64 {
        self.frozen.load(Ordering::Relaxed)
    }

    /// Raises the frozen mark to `end`. A load and a store, not a read-modify-write (the
    /// append path pays for it on every record): only the mapping's owner (the writer, or
    /// recovery, under the log's lock, one thread at a time) publishes or walks frames; the
    /// clones a checkpoint holds only flush and store marks.
    fn freeze(&self, end: u64) {
        if end > self.frozen.load(Ordering::Relaxed) {
            self.frozen.store(end, Ordering::Relaxed);
        }
    }

    /// As [`View::frame`], and freezes a valid record frame: this process may now hold a
    /// borrow of it, and readers elsewhere may too.
    #[inline]
    pub(crate) fn frame(
        &self,
        off: u64,
        seq: u64,
        seed: u32,
        layout: format::Layout,
    ) -> (Frame, &[u8]) {
        let (frame, payload) = self.view.0.frame(off, seq, seed, layout);
        // Only records are lent out: a seal is never borrowed (and one that names its own
        // segment is judged bad by the caller and cut).
        if let Frame::Record { len, .. } = frame {
            self.freeze(off + layout.frame_len(u64::from(len)));
        }
        (frame, payload)
    }

    /// Freezes `[0, end)`: recovery walked the frames below `end` (with
    /// [`View::check_frame`], which freezes nothing) and keeps them.
    pub(crate) fn freeze_kept(&self, end: u64) {
        self.freeze(end);
    }

    /// Freezes the segment header: bytes `[0, end)` are never written through this mapping
    /// again (the header is complete and readers may rely on it).
    pub(crate) fn freeze_header(&self, end: u64) {
        self.freeze(end);
    }

    /// Stores the little-endian 8-byte word at `off` (atomic; `Release` publishes every write
    /// before it). Header words may be stored at any time: they are only accessed atomically.
    pub(crate) fn store(&self, off: u64, value: u64, order: Ordering) -> io::Result<()> {
        self.word(off)
            .ok_or_else(|| out_of_bounds(off, 8))?
            .store(value.to_le(), order);
        Ok(())
    }

    /// Stores the header word of a frame at `off` (at or past the frozen mark) with `Relaxed`,
    /// without publishing it: for the frames of a batch after its first, which a `Release`
    /// [`publish`](Self::publish) of the first frame then publishes all together.
    pub(crate) fn stage(&self, off: u64, word: u64) -> io::Result<()> {
        let frozen = self.frozen();
        if off < frozen {
            return Err(frozen_error(off, frozen));
        }
        self.store(off, word, Ordering::Relaxed)
    }

    /// Checks that `[off, off + len)` may be written: inside the file and the mapping, and at
    /// or past the frozen mark. Returns the range's index into the mapping. For a writer that
    /// writes with `pwrite` rather than through the mapping (see `cow`), this is the check
    /// [`write_payload`](Self::write_payload) and [`publish`](Self::publish) make.
    pub(crate) fn check_unpublished(&self, off: u64, len: u64) -> io::Result<usize> {
        let frozen = self.frozen();
        if off < frozen {
            return Err(frozen_error(off, frozen));
        }
        self.check(off, len).ok_or_else(|| out_of_bounds(off, len))
    }

    /// Freezes `[0, end)` after a frame ending at `end` was published with `pwrite` (the caller
    /// checked it with [`check_unpublished`](Self::check_unpublished) first).
    pub(crate) fn freeze_published(&self, end: u64) {
        self.freeze(end);
    }

    /// Copies a frame's payload to `off`, which must lie at or past the frozen mark (bytes no
    /// reader can hold a borrow of). The caller publishes it with [`publish`](Self::publish).
    pub(crate) fn write_payload(&self, off: u64, bytes: &[u8]) -> io::Result<()> {
        let at = self.check_unpublished(off, bytes.len() as u64)?;
        // SAFETY: the destination is inside the writable mapping and the file (checked), and
        // at or past the frozen mark, so no frame there was published or validated: no shared
        // borrow of these bytes exists in this process, and readers elsewhere read them only
        // after the header store that follows (rule 2). `bytes` is ordinary memory, which
        // cannot overlap a shared file mapping's pages we are writing.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.raw.as_mut_ptr().add(at),
                bytes.len(),
            );
        }
        Ok(())
    }

    /// Publishes the frame whose header word goes at `off` and whose bytes end at `end`:
    /// stores the header with `order` (`Release` for the first frame readers will see) and
    /// freezes `[off, end)`.
    pub(crate) fn publish(&self, off: u64, word: u64, end: u64, order: Ordering) -> io::Result<()> {
        let frozen = self.frozen();
        if off < frozen {
            return Err(frozen_error(off, frozen));
        }
        self.store(off, word, order)?;
        self.freeze(end);
        Ok(())
    }

    /// Zeroes `[from, limit())` with atomic stores, the first header word first (so a reader
    /// looking there sees "nothing yet"). `from` must lie at or past the frozen mark: only
    /// bytes that never formed a validated frame are cut.
    pub(crate) fn zero_from(&self, from: u64) -> io::Result<()> {
        let frozen = self.frozen();
        if from < frozen {
            return Err(frozen_error(from, frozen));
        }
        let limit = self.limit();
        if from >= limit {
            return Ok(());
        }
        let base = self.raw.as_mut_ptr();
        let mut pos = usize::try_from(from).map_err(|_| out_of_bounds(from, 0))?;
        let end = usize::try_from(limit).map_err(|_| out_of_bounds(limit, 0))?;
        if pos % 8 == 0 && pos + 8 <= end {
            self.store(pos as u64, 0, Ordering::Release)?;
        }
        while pos < end {
            if pos % 8 == 0 && end - pos >= 8 {
                // SAFETY: `[pos, pos + 8)` is inside the mapping and the file (`end` is the
                // limit), 8-aligned, in a writable mapping, past the frozen mark (no borrow),
                // and stored atomically, so a concurrent atomic reader does not race.
                unsafe { AtomicU64::from_ptr(base.add(pos).cast::<u64>()) }
                    .store(0, Ordering::Relaxed);
                pos += 8;
            } else {
                // SAFETY: as above, for one byte.
                unsafe { AtomicU8::from_ptr(base.add(pos)) }.store(0, Ordering::Relaxed);
                pos += 1;
            }
        }
        fence(Ordering::Release);
        Ok(())
    }

    /// The 4-byte wake word at `off` (4-aligned, inside the file).
    pub(crate) fn word32(&self, off: u64) -> Option<&AtomicU32> {
        if off % 4 != 0 {
            return None;
        }
        let at = self.check(off, 4)?;
        // SAFETY: `[at, at + 4)` is inside the mapping and the file (checked), 4-aligned from
        // the page-aligned base; the mapping is writable, so read-modify-writes and futex
        // calls on it are sound. The wake word is only accessed atomically, never as part of a
        // wider word (rule 1).
        Some(unsafe { AtomicU32::from_ptr(self.raw.as_mut_ptr().add(at).cast::<u32>()) })
    }

    /// Faults `[off, off + len)` in writable with one `madvise(MADV_POPULATE_WRITE)`. Only a
    /// hint: on an error the stores fault the pages in one by one.
    pub(crate) fn prefault(&self, off: u64, len: u64) {
        let Some(at) = self.check(off, len) else {
            return;
        };
        let Ok(n) = usize::try_from(len) else {
            return;
        };
        if let Err(e) = self.raw.advise_range(memmap2::Advice::PopulateWrite, at, n) {
            tracing::debug!(error = %e, off, len, "MADV_POPULATE_WRITE failed; pages fault in on first store");
        }
    }

    /// Faults `[off, off + len)` in writable with `madvise(MADV_POPULATE_WRITE)` for the
    /// pretoucher (see `pretouch`): the pages become resident and writable in this mapping
    /// without a byte of them changing, so this is sound over any bytes, published or not.
    /// A page past the end of the file makes the call fail (`EFAULT`), never raise SIGBUS.
    ///
    /// # Errors
    /// The range lies outside what this mapping knows of the file; or the system's error
    /// (`EINVAL` before Linux 5.14, which lacks `MADV_POPULATE_WRITE`).
    pub(crate) fn populate(&self, off: u64, len: u64) -> io::Result<()> {
        let at = self
            .check(off, len)
            .ok_or_else(|| out_of_bounds(off, len))?;
        let n = usize::try_from(len).map_err(|_| out_of_bounds(off, len))?;
        self.raw.advise_range(memmap2::Advice::PopulateWrite, at, n)
    }

    /// `msync(MS_SYNC)` of `[off, off + len)`. Called only by the I/O seam (`crate::io`).
    pub(crate) fn msync(&self, off: u64, len: u64) -> io::Result<()> {
        let at = self
            .check(off, len)
            .ok_or_else(|| out_of_bounds(off, len))?;
        let n = usize::try_from(len).map_err(|_| out_of_bounds(off, len))?;
        self.raw.flush_range(at, n)
    }
}

/// A writable mapping of a segment's first page only, for a reader's wake word: the reader's
/// data mapping stays read-only.
pub(crate) struct WakeView(WriteMap);

impl WakeView {
    /// Maps the first `page` bytes of `file` (opened read-write) and knows `size` of them.
    pub(crate) fn new(file: &File, page: u64, size: u64) -> io::Result<WakeView> {
        let mut map = WriteMap::new(file, page)?;
        map.set_size(size.min(page));
        // Nothing but the wake word is ever written through this view.
        map.freeze_header(page);
        Ok(WakeView(map))
    }

    /// The wake word at `off`.
    pub(crate) fn word32(&self, off: u64) -> Option<&AtomicU32> {
        self.0.word32(off)
    }
}

/// A small writable mapping whose every 8-byte word is only ever accessed atomically, here and
/// in every other process: a consumer's position file (see `consumer::state`). Nothing in it
/// is lent out as bytes.
pub(crate) struct WordMap(View);

impl WordMap {
    /// Maps the first `len` bytes of `file` (opened read-write, at least `len` bytes long).
    pub(crate) fn new(file: &File, len: u64) -> io::Result<WordMap> {
        let mut view = View::map(file, len, true)?;
        view.set_size(len);
        Ok(WordMap(view))
    }

    /// Loads the word at `off` (`Relaxed` plus an `Acquire` fence); `None` out of bounds.
    #[inline]
    pub(crate) fn load(&self, off: u64) -> Option<u64> {
        self.0.load(off)
    }

    /// Stores the word at `off` with `order`.
    #[inline]
    pub(crate) fn store(&self, off: u64, value: u64, order: Ordering) -> io::Result<()> {
        self.0
            .word(off)
            .ok_or_else(|| out_of_bounds(off, 8))?
            .store(value.to_le(), order);
        Ok(())
    }

    /// `msync(MS_SYNC)` of the whole mapping.
    pub(crate) fn msync(&self) -> io::Result<()> {
        let n = usize::try_from(self.0.limit()).map_err(|_| out_of_bounds(0, self.0.limit()))?;
        self.0.raw.flush_range(0, n)
    }
}
