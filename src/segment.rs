//! One mapped segment file: map the reservation, grow the file ahead of writes, publish frames,
//! flush with msync. All of the crate's `unsafe` lives in this module, in [`Mapping`].
//!
//! # Assumptions (the soundness argument)
//!
//! A segment file is mapped once over its whole reservation; the file itself is usually
//! shorter. Touching a page of the mapping at or past the end of the file raises SIGBUS, so
//! every access goes through [`Mapping`], which knows the file size this process has set
//! (writer) or observed with `fstat` (reader) and refuses any byte at or past it. The log
//! never shrinks a segment file (torn tails are zeroed in place), so a size once observed
//! stays valid. If another program truncates a segment file, processes that have it mapped
//! get SIGBUS: that is the one documented hazard we cannot prevent.
//!
//! Other processes write into the same pages while we read them. Rust's memory model does
//! not describe memory shared with another process, so we rely on the following, which the
//! publish protocol establishes:
//! - Header words (segment magic, frame headers, synced mark) are read and written only with
//!   aligned 8-byte atomic operations.
//! - A frame's payload is written before its header word is stored with `Release`; a reader
//!   that loads a non-zero header word with `Acquire` sees the payload bytes. Bytes of a frame
//!   whose CRC passed are never written again while the log lives (recovery only zeroes bytes
//!   after the last good frame), so handing out `&[u8]` into them is sound.
//! - Bytes that are not yet published (or garbage after a crash) may change under a reader
//!   while it computes a CRC over them; the CRC then fails or the header is still zero, and
//!   nothing derived from those bytes is returned.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{is_enospc, Error, Result};
use crate::format::{
    self, BadFrame, Frame, HeaderError, SegmentHeader, HEADER_LEN, SYNCED_MARK_OFFSET,
};

/// The system's page size.
pub(crate) fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Blocks are reserved with `fallocate` this many bytes at a time (capped at the
/// reservation), ahead of the file size, so that growing by a page is one call that only sets
/// the size.
const ALLOCATE_CHUNK: u64 = 64 * 1024;

/// A mapping of a segment's reservation that knows how much of it the file backs.
///
/// Clones share the one mapping (it is unmapped when the last clone is dropped), each with the
/// file size its owner knew when it cloned: the file never shrinks, so that size stays valid.
/// The writer hands a clone to a group-commit flush that runs without the writer's lock (see
/// [`SegmentSync`]); the mapping outlives a segment the writer seals and drops meanwhile.
#[derive(Clone)]
pub(crate) struct Mapping {
    raw: Arc<MmapRaw>,
    /// Bytes of the file known to exist. Nothing at or past it is touched.
    size: u64,
    writable: bool,
}

fn out_of_bounds(off: u64, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "internal error: access to {len} bytes at {off} is outside the file or the mapping"
        ),
    )
}

impl Mapping {
    fn map(file: &File, reservation: u64, writable: bool) -> io::Result<Mapping> {
        let len = usize::try_from(reservation).map_err(|_| out_of_bounds(0, reservation))?;
        let mut opts = MmapOptions::new();
        opts.len(len);
        let raw = if writable {
            opts.map_raw(file)?
        } else {
            opts.map_raw_read_only(file)?
        };
        Ok(Mapping {
            raw: Arc::new(raw),
            size: 0,
            writable,
        })
    }

    fn reservation(&self) -> u64 {
        self.raw.len() as u64
    }

    /// Bytes that may be touched: the smaller of the file size and the reservation.
    pub(crate) fn limit(&self) -> u64 {
        self.size.min(self.reservation())
    }

    /// Records that the file is now `size` bytes long. The caller has set or observed it.
    fn set_size(&mut self, size: u64) {
        self.size = size;
    }

    fn check(&self, off: u64, len: u64) -> io::Result<usize> {
        match off.checked_add(len) {
            Some(end) if end <= self.limit() => Ok(off as usize),
            _ => Err(out_of_bounds(off, len)),
        }
    }

    fn word(&self, off: u64) -> Option<&AtomicU64> {
        if off % 8 != 0 {
            return None;
        }
        let at = self.check(off, 8).ok()?;
        // SAFETY: `at + 8` is inside both the mapping and the file (checked above), and `at`
        // is 8-aligned relative to the page-aligned base of the mapping, so the pointer is
        // valid and aligned for an AtomicU64. The word is only ever accessed atomically (by
        // this and other processes), as the module docs state.
        Some(unsafe { AtomicU64::from_ptr(self.raw.as_mut_ptr().add(at).cast::<u64>()) })
    }

    /// The 4-byte word at `off` (4-aligned, inside the file), for the wake word only.
    fn word32(&self, off: u64) -> Option<&AtomicU32> {
        if off % 4 != 0 {
            return None;
        }
        let at = self.check(off, 4).ok()?;
        // SAFETY: `at + 4` is inside both the mapping and the file (checked above), and `at`
        // is 4-aligned relative to the page-aligned base of the mapping, so the pointer is
        // valid and aligned for an AtomicU32. The wake word is only ever accessed through
        // atomics and futex calls (by this and other processes), never as part of a wider
        // word. Callers use read-modify-writes on it only through a writable mapping (see
        // `Segment::wake_word`), so no store ever hits a read-only page.
        Some(unsafe { AtomicU32::from_ptr(self.raw.as_mut_ptr().add(at).cast::<u32>()) })
    }

    /// Loads the 8-byte word at `off` with `Acquire`; `None` when it is out of bounds.
    pub(crate) fn load(&self, off: u64) -> Option<u64> {
        self.word(off).map(|w| w.load(Ordering::Acquire))
    }

    /// Stores an 8-byte word at `off`: `Release` publishes everything written before it.
    fn store(&self, off: u64, value: u64, order: Ordering) -> io::Result<()> {
        if !self.writable {
            return Err(out_of_bounds(off, 8));
        }
        self.word(off)
            .ok_or_else(|| out_of_bounds(off, 8))?
            .store(value, order);
        Ok(())
    }

    /// Copies `bytes` to `off`. Only for bytes no reader trusts yet (unpublished frames).
    fn write(&self, off: u64, bytes: &[u8]) -> io::Result<()> {
        let at = self.check(off, bytes.len() as u64)?;
        if !self.writable {
            return Err(out_of_bounds(off, bytes.len() as u64));
        }
        // SAFETY: the destination range is inside the mapping and the file (checked), the
        // mapping is writable, and `bytes` is ordinary memory that cannot overlap a shared
        // file mapping we own. No reference to this range exists: it is not published.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.raw.as_mut_ptr().add(at),
                bytes.len(),
            )
        };
        Ok(())
    }

    /// Zeroes `len` bytes at `off` (cutting a torn tail; these bytes were never a valid frame
    /// past the last good one, so no reference to them was ever handed out).
    fn zero(&self, off: u64, len: u64) -> io::Result<()> {
        let at = self.check(off, len)?;
        if !self.writable {
            return Err(out_of_bounds(off, len));
        }
        // SAFETY: inside the mapping and the file (checked), mapping writable; see above.
        unsafe { std::ptr::write_bytes(self.raw.as_mut_ptr().add(at), 0, len as usize) };
        Ok(())
    }

    /// Borrows `len` bytes at `off`, or `None` when out of bounds. Callers use it for frame
    /// bytes whose header they loaded with `Acquire` (see the module docs for why the borrow
    /// is sound once the CRC passed, and harmless before).
    pub(crate) fn bytes(&self, off: u64, len: u64) -> Option<&[u8]> {
        let at = self.check(off, len).ok()?;
        // SAFETY: the range is inside the mapping and the file (checked), so every byte is
        // readable without a fault, and the mapping lives as long as `&self`.
        Some(unsafe { std::slice::from_raw_parts(self.raw.as_ptr().add(at), len as usize) })
    }

    /// Faults `[off, off + len)` in writable with one `madvise(MADV_POPULATE_WRITE)`, instead
    /// of one page fault per page at the first store. Only a hint: on an error (an older
    /// kernel, say) the stores fault the pages in one by one as they would have anyway.
    fn prefault(&self, off: u64, len: u64) {
        let Ok(at) = self.check(off, len) else {
            return;
        };
        if !self.writable {
            return;
        }
        if let Err(e) = self
            .raw
            .advise_range(memmap2::Advice::PopulateWrite, at, len as usize)
        {
            tracing::debug!(error = %e, off, len, "MADV_POPULATE_WRITE failed; pages fault in on first store");
        }
    }

    /// msync(MS_SYNC) of `[off, off + len)`: every msync of the crate goes through here.
    fn flush(&self, off: u64, len: u64) -> io::Result<()> {
        fault_point!(BeforeMsync);
        let at = self.check(off, len)?;
        self.raw.flush_range(at, len as usize)
    }
}

/// Where a segment stands when opened.
pub(crate) enum Opened {
    /// A valid header: the segment, mapped over its reservation.
    Ready(Segment),
    /// The file is empty or its header was never completed (a crash while creating it, or a
    /// writer that is creating it right now).
    Blank,
}

/// What a durability checkpoint needs of one segment, taken under the writer's lock and used
/// without it: msync of `[from, end)` (bytes below `end` are published frames, never written
/// again; bytes below `from` were made durable by an earlier checkpoint), then the synced
/// mark, and, when `flush_mark` says so, msync of the header page that holds the mark. Appends
/// past `end` may go on meanwhile.
pub(crate) struct SegmentSync {
    pub(crate) path: PathBuf,
    map: Mapping,
    header: SegmentHeader,
    from: u64,
    pub(crate) end: u64,
    /// Whether [`mark_synced`](Self::mark_synced) also makes the mark durable.
    pub(crate) flush_mark: bool,
}

impl SegmentSync {
    /// msync(MS_SYNC) of `[from, end)` (whole pages).
    pub(crate) fn flush(&self) -> io::Result<()> {
        let end = self.end.min(self.map.limit());
        let from = self.from.min(end) / page_size() * page_size();
        if end > from {
            self.map.flush(from, end - from)?;
        }
        Ok(())
    }

    /// Stores the synced mark `end`, then msyncs the header page when `flush_mark` is set.
    /// Only after [`flush`](Self::flush) returned Ok; only one checkpoint runs at a time, so
    /// nothing else writes the mark meanwhile. An unflushed mark reaches the disk with the
    /// next write-back of the header page: it never claims more than was durable.
    pub(crate) fn mark_synced(&self) -> Result<()> {
        fault_point!(BeforeSyncedMark);
        let word = self.header.encode_synced_mark(self.end);
        self.map
            .store(SYNCED_MARK_OFFSET, word, Ordering::Release)
            .map_err(|e| Error::io("could not write synced mark of", &self.path, e))?;
        if self.flush_mark {
            self.map
                .flush(0, HEADER_LEN)
                .map_err(|e| Error::io("could not sync synced mark of", &self.path, e))?;
        }
        Ok(())
    }
}

/// One segment file, mapped.
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    file: File,
    pub(crate) map: Mapping,
    pub(crate) header: SegmentHeader,
    pub(crate) seed: u32,
    /// Bytes of the file reserved with fallocate (writer only).
    allocated: u64,
    /// Extra bytes each growth step adds beyond what the write needs (writer only).
    grow_extra: u64,
    /// Whether `fallocate` can extend this file (cleared at its first "not supported").
    fallocate_extends: bool,
    /// Reader only: a writable mapping of the header page, for the wake word. `None` until a
    /// reader first waits; `Some(None)` when the file could not be opened for writing.
    wake_view: Option<Option<Mapping>>,
}

impl Segment {
    /// Opens an existing segment file, read-only (reader) or read-write (writer, under the
    /// lock). Never modifies the file.
    pub(crate) fn open(path: &Path, writable: bool) -> Result<Opened> {
        let (file, size) = open_file(path, writable)?;
        if size == 0 {
            return Ok(Opened::Blank);
        }
        // Read the header through a one-page mapping: the writer stores the magic last, with
        // Release, so an Acquire load of it that sees the magic also sees the other fields.
        let mut probe = Mapping::map(&file, page_size(), false)
            .map_err(|e| Error::io("could not map segment", path, e))?;
        probe.set_size(size);
        let mut bytes = [0u8; HEADER_LEN as usize];
        let magic_word = probe.load(0);
        if let Some(b) = probe.bytes(0, HEADER_LEN.min(size)) {
            bytes[..b.len()].copy_from_slice(b);
        }
        drop(probe);
        let header = match (
            magic_word,
            SegmentHeader::decode(&bytes[..HEADER_LEN.min(size) as usize]),
        ) {
            (_, Ok(h)) => h,
            // The magic is stored last. Read-only openers (readers, verify) may race the live
            // writer while it fills in the other fields: to them, no magic means "not ready
            // yet". A writer (alone under the lock, and about to re-initialise blank segments)
            // takes it as blank only if the rest is our header, so that it never rewrites a
            // foreign file that happens to start with zeros.
            (Some(0), Err(HeaderError::NotApplog))
                if !writable || is_header_without_magic(&bytes) =>
            {
                return Ok(Opened::Blank);
            }
            (_, Err(HeaderError::NotApplog)) => {
                return Err(Error::NotALog {
                    path: path.to_owned(),
                    reason: "the file does not start with the applog segment magic".into(),
                })
            }
            (_, Err(HeaderError::Blank)) => return Ok(Opened::Blank),
            (_, Err(e)) => {
                return Err(Error::Corrupt {
                    segment: path.to_owned(),
                    offset: 0,
                    reason: e.to_string(),
                })
            }
        };
        let mut map = Mapping::map(&file, header.reservation(), writable)
            .map_err(|e| Error::io("could not map segment", path, e))?;
        map.set_size(size);
        Ok(Opened::Ready(Segment {
            path: path.to_owned(),
            file,
            map,
            seed: header.crc_seed(),
            header,
            allocated: size,
            grow_extra: 0,
            fallocate_extends: true,
            wake_view: None,
        }))
    }

    /// Creates a new, empty segment file (it must not exist), grows it to one page and writes
    /// its header. The caller fsyncs the directory before the next durability point. If
    /// anything fails after the file was created (a full disk, say), the file is removed
    /// again so that a later attempt starts clean; a file that already existed is never
    /// touched.
    pub(crate) fn create(path: &Path, base_seq: u64, segment_pages: u32) -> Result<Segment> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| Error::io("could not create segment", path, e))?;
        // From here on the file is ours: remove it again if it cannot be made a segment.
        Self::init_created(file, path, base_seq, segment_pages).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
    }

    fn init_created(file: File, path: &Path, base_seq: u64, segment_pages: u32) -> Result<Segment> {
        let mut seg = Self::fresh(file, 0, path, base_seq, segment_pages)?;
        seg.write_header()?;
        Ok(seg)
    }

    /// A new header (with a new salt) for `file`, mapped read-write; nothing written yet.
    fn fresh(
        file: File,
        size: u64,
        path: &Path,
        base_seq: u64,
        segment_pages: u32,
    ) -> Result<Segment> {
        let header = SegmentHeader {
            page_size: page_size() as u32,
            segment_pages,
            base_seq,
            salt: random_salt(),
        };
        let mut map = Mapping::map(&file, header.reservation(), true)
            .map_err(|e| Error::io("could not map segment", path, e))?;
        map.set_size(size);
        Ok(Segment {
            path: path.to_owned(),
            file,
            map,
            seed: header.crc_seed(),
            header,
            allocated: size,
            grow_extra: 0,
            fallocate_extends: true,
            wake_view: None,
        })
    }

    /// Writes the header of a segment whose file is empty or blank: fields first, the magic
    /// last with `Release`, so readers never see a half-written header.
    pub(crate) fn write_header(&mut self) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.grow_to(HEADER_LEN)?;
        let bytes = self.header.encode();
        let io = |e| Error::io("could not write segment header", &self.path, e);
        // One pwrite, not a copy through the mapping: a process killed during a syscall dies
        // before or after it, never halfway, so a crash leaves bytes 8..64 all zero or all
        // written, and recovery recognises either (a killed memcpy could leave them half
        // written, which would look like a foreign file). Then the magic, with Release.
        self.file.write_all_at(&bytes[8..], 8).map_err(io)?;
        self.map
            .store(0, u64::from_le_bytes(format::MAGIC), Ordering::Release)
            .map_err(io)
    }

    /// Re-initialises a blank segment found at recovery (its header was never completed).
    pub(crate) fn init_blank(path: &Path, base_seq: u64, segment_pages: u32) -> Result<Segment> {
        let (file, size) = open_file(path, true)?;
        let mut seg = Self::fresh(file, size, path, base_seq, segment_pages)?;
        let limit = seg.map.limit();
        seg.map
            .zero(0, limit)
            .map_err(|e| Error::io("could not clear blank segment", path, e))?;
        seg.write_header()?;
        Ok(seg)
    }

    /// The file size this handle knows (set by growth, or observed).
    pub(crate) fn size(&self) -> u64 {
        self.map.size
    }

    /// The reservation in bytes.
    pub(crate) fn reservation(&self) -> u64 {
        self.map.reservation()
    }

    /// Re-reads the file size (readers, to see growth by the writer). Returns the new size.
    pub(crate) fn refresh_size(&mut self) -> Result<u64> {
        let size = rustix::fs::fstat(&self.file)
            .map_err(|e| Error::io("could not stat segment", &self.path, e.into()))?
            .st_size as u64;
        // The log never shrinks a file; never forget bytes we already know exist.
        if size > self.map.size {
            self.map.set_size(size);
        }
        Ok(self.map.size)
    }

    /// Sets how many pages each growth step adds (see `Options::grow_pages`).
    pub(crate) fn set_grow_pages(&mut self, pages: u32) {
        self.grow_extra = u64::from(pages.saturating_sub(1)) * page_size();
    }

    /// Grows the file so that bytes `[0, end)` exist: to the smallest page multiple that holds
    /// them (plus the configured extra pages; capped at the reservation). Blocks are reserved
    /// first with fallocate, so a full file system is an error here rather than a SIGBUS at the
    /// first store.
    pub(crate) fn grow_to(&mut self, end: u64) -> Result<()> {
        if end <= self.map.size {
            return Ok(());
        }
        let old_size = self.map.size;
        let reservation = self.reservation();
        let page = page_size();
        let new_size = (format::round_up(end, page) + self.grow_extra).min(reservation);
        if new_size > self.allocated {
            let chunk_end = (self.allocated + ALLOCATE_CHUNK)
                .max(new_size)
                .min(reservation);
            self.reserve_blocks(chunk_end, new_size)?;
        }
        if new_size > self.map.size {
            self.extend(new_size)?;
        }
        // A record that needs several new pages: fault them in with one call rather than one
        // fault each (64 KiB records: 25-35% faster here). Only the pages the record needs,
        // not the extra ones of `grow_pages`, and never for one page (a call instead of a
        // fault saves nothing).
        let needed = format::round_up(end, page).min(new_size);
        if needed.saturating_sub(old_size) > page {
            self.map.prefault(old_size, needed - old_size);
        }
        fault_point!(AfterGrowth);
        Ok(())
    }

    /// Sets the file size to `new_size` (larger than the current one).
    ///
    /// With `fallocate` (mode 0: the blocks, already reserved, and the new size in one call)
    /// where the file system has it; else with `ftruncate`. Both leave the same file. The
    /// difference is cost: ext4's `ftruncate` runs `truncate_pagecache` even when it extends,
    /// which walks the page tables of every mapping over the rest of the reservation and the
    /// page cache past the end, on every page grown. `fallocate` skips that: 128 B appends
    /// were ~25% faster with it (`cargo bench --bench append`).
    fn extend(&mut self, new_size: u64) -> Result<()> {
        let old_size = self.map.size;
        // Only from a page boundary (always so for files this crate grew): extending from
        // inside a page is what `ftruncate`'s page cache handling is for.
        if self.fallocate_extends && old_size % page_size() == 0 {
            match rustix::fs::fallocate(
                &self.file,
                rustix::fs::FallocateFlags::empty(),
                old_size,
                new_size - old_size,
            ) {
                Ok(()) => {
                    self.map.set_size(new_size);
                    return Ok(());
                }
                Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
                    self.fallocate_extends = false;
                }
                Err(e) => return Err(self.grow_error(e.into())),
            }
        }
        self.file
            .set_len(new_size)
            .map_err(|e| self.grow_error(e))?;
        self.map.set_size(new_size);
        Ok(())
    }

    fn reserve_blocks(&mut self, to: u64, new_size: u64) -> Result<()> {
        let from = self.allocated;
        match rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::KEEP_SIZE,
            from,
            to - from,
        ) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {
                // No fallocate on this file system: make the blocks of the new pages exist by
                // writing zeros through write(), which reports a full disk as an error. Only
                // up to the new size: the file must never be longer than its growth rule.
                self.zero_fill(self.map.size, new_size)?;
                self.allocated = new_size;
                return Ok(());
            }
            Err(e) => return Err(self.grow_error(e.into())),
        }
        self.allocated = to;
        Ok(())
    }

    fn zero_fill(&mut self, from: u64, to: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let zeros = vec![0u8; (to - from) as usize];
        self.file
            .write_all_at(&zeros, from)
            .map_err(|e| self.grow_error(e))?;
        self.map.set_size(to.max(self.map.size));
        Ok(())
    }

    fn grow_error(&self, e: io::Error) -> Error {
        if is_enospc(&e) {
            Error::NoSpace {
                path: self.path.clone(),
                source: e,
            }
        } else {
            Error::io("could not grow segment", &self.path, e)
        }
    }

    /// Checks the frame at `off` as the frame of `seq`; returns the verdict and, for a valid
    /// record, its payload.
    #[inline]
    pub(crate) fn frame_at(&self, off: u64, seq: u64) -> (Frame, &[u8]) {
        let Some(word) = self.map.load(off) else {
            // No whole header word inside the file: nothing there (yet).
            return (Frame::Empty, &[]);
        };
        let start = off + format::FRAME_HEADER_LEN;
        let avail = self.map.limit().saturating_sub(start);
        let mut payload: &[u8] = &[];
        let frame = format::check_frame(self.seed, seq, word, avail, |len| {
            payload = self.map.bytes(start, u64::from(len)).unwrap_or(&[]);
            payload
        });
        match frame {
            Frame::Record { .. } => (frame, payload),
            // The writer never seals a segment without records (it could not create the next
            // one: it would have this segment's name). Taken as a valid end, it would send
            // readers back into this same segment forever.
            Frame::Seal if seq == self.header.base_seq => (Frame::Bad(BadFrame::EmptySeal), &[]),
            _ => (frame, &[]),
        }
    }

    /// Writes a record frame's payload at `off` without publishing it; returns its header word.
    pub(crate) fn write_payload(&self, off: u64, seq: u64, payload: &[u8]) -> Result<u64> {
        self.map
            .write(off + format::FRAME_HEADER_LEN, payload)
            .map_err(|e| Error::io("could not write record", &self.path, e))?;
        Ok(format::record_word(self.seed, seq, payload))
    }

    /// Stores a frame header word. With `Release`, this publishes the frame (and every frame
    /// written after it whose header was stored before).
    pub(crate) fn store_head(&self, off: u64, word: u64, order: Ordering) -> Result<()> {
        fault_point!(BeforePublish);
        self.map
            .store(off, word, order)
            .map_err(|e| Error::io("could not publish record", &self.path, e))
    }

    /// Zeroes `[from, size)`: cuts a torn tail in place (never shrinking the file).
    pub(crate) fn zero_from(&self, from: u64) -> Result<()> {
        let limit = self.map.limit();
        if from >= limit {
            return Ok(());
        }
        self.map
            .zero(from, limit - from)
            .map_err(|e| Error::io("could not cut torn tail of", &self.path, e))
    }

    /// msync(MS_SYNC) of bytes `[0, end)`: header page and data. On Linux this persists the
    /// pages and the file size, like a ranged fdatasync.
    pub(crate) fn flush(&self, end: u64) -> io::Result<()> {
        self.map.flush(0, end.min(self.map.limit()))
    }

    /// The wake word (see `notify`): through the writer's own mapping, or through the reader's
    /// header view once [`open_wake_view`](Self::open_wake_view) made one. `None` otherwise.
    pub(crate) fn wake_word(&self) -> Option<&AtomicU32> {
        if self.map.writable {
            return self.map.word32(format::WAKE_WORD_OFFSET);
        }
        self.wake_view
            .as_ref()?
            .as_ref()?
            .word32(format::WAKE_WORD_OFFSET)
    }

    /// Reader side: maps the header page writable, so that this reader can announce that it
    /// waits (it sets a bit in the wake word; its data mapping stays read-only). The file is
    /// opened again through `/proc/self/fd`, which works even after retention unlinked it. When
    /// that is not permitted (a reader without write access), waiting falls back to polling.
    /// Tried once per segment.
    pub(crate) fn open_wake_view(&mut self) {
        if self.map.writable || self.wake_view.is_some() {
            return;
        }
        let view = self.map_wake_view();
        if let Err(e) = &view {
            tracing::debug!(segment = %self.path.display(), error = %e, "cannot map the wake word writable; waiting by polling");
        }
        self.wake_view = Some(view.ok());
    }

    fn map_wake_view(&self) -> io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        let again = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&again)
            .or_else(|_| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path)
            })?;
        let page = page_size();
        let mut view = Mapping::map(&file, page, true)?;
        view.set_size(self.map.size.min(page));
        Ok(view)
    }

    /// A handle that flushes `[from, end)` and stores the synced mark `end` (making it durable
    /// when `flush_mark` is set) without borrowing the segment (see [`SegmentSync`]).
    pub(crate) fn sync_handle(&self, from: u64, end: u64, flush_mark: bool) -> SegmentSync {
        SegmentSync {
            path: self.path.clone(),
            map: self.map.clone(),
            header: self.header,
            from,
            end,
            flush_mark,
        }
    }

    /// The synced mark: offset below which every frame had been made durable. 0 when none, or
    /// when the mark fails its check.
    pub(crate) fn synced_mark(&self) -> u64 {
        self.map
            .load(SYNCED_MARK_OFFSET)
            .and_then(|w| self.header.decode_synced_mark(w))
            .unwrap_or(0)
    }
}

/// Opens a segment file and returns it with its size.
fn open_file(path: &Path, writable: bool) -> Result<(File, u64)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .open(path)
        .map_err(|e| Error::io("could not open segment", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| Error::io("could not stat segment", path, e))?
        .len();
    Ok((file, size))
}

/// True when `bytes` are an applog header whose magic alone is missing (the magic is stored
/// last). Anything else without the magic is a foreign file, which must never be rewritten.
fn is_header_without_magic(bytes: &[u8; HEADER_LEN as usize]) -> bool {
    let mut with_magic = *bytes;
    with_magic[..8].copy_from_slice(&format::MAGIC);
    SegmentHeader::decode(&with_magic).is_ok()
}

/// A random salt for a new segment (falls back to time and pid if getrandom fails).
fn random_salt() -> u64 {
    let mut buf = [0u8; 8];
    match rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty()) {
        Ok(8) => u64::from_le_bytes(buf),
        _ => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
        }
    }
}
