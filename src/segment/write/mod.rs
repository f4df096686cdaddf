//! The write side of a segment: creating it, publishing frames and seals, zeroing a torn tail;
//! growing the file ahead of each write is in `growth` (the system calls in `segment::grow`),
//! its checkpoint in `segment::sync`.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use super::grow::Growth;
use super::sync::{msync, SegmentSync};
use super::{judge, judge_frame, open_file, page_size, probe, Opened, Segment};
use crate::error::{is_enospc, Error, Result};
use crate::format::{self, Frame, SegmentHeader, FRAME_HEADER_LEN, HEADER_LEN};
use crate::io::FileSystem;
use crate::mapping::{View, WriteMap};
use crate::pretouch::Link;

/// Bytes of zeros written per `pwrite` when a segment that is written with `pwrite` cuts a
/// torn tail.
const ZERO_CHUNK: u64 = 64 * 1024;

mod growth;

/// One segment file, mapped read-write, under the writer's lock.
pub(crate) struct WriteSegment {
    path: PathBuf,
    file: Arc<File>,
    map: WriteMap,
    /// Whether bytes are written with `pwrite` instead of stores through the mapping: on a
    /// copy-on-write file system (see `cow`), where a store into a page written out before
    /// faults into the file system's space reservation, which can hang when it is full.
    by_pwrite: bool,
    header: SegmentHeader,
    seed: u32,
    fs: Arc<dyn FileSystem>,
    /// The file's growth state, shared with the pretoucher (see `pretouch`).
    growth: Arc<Growth>,
    /// Extra bytes each growth step adds beyond what the write needs.
    grow_extra: u64,
    /// A write that ends past this offset takes [`grow_for`](Self::grow_for) first: the file
    /// size this mapping knows, or, with a pretoucher, the point at which the writer asks it
    /// for more pages (never past the size).
    soft_end: u64,
    /// The writer's pretoucher, once this segment is attached to it.
    ahead: Option<Link>,
}

impl WriteSegment {
    /// Opens an existing segment file read-write (under the lock). Never modifies it.
    ///
    /// # Errors
    /// As `ReadSegment::open`.
    pub(crate) fn open(path: &Path, fs: &Arc<dyn FileSystem>) -> Result<Opened<WriteSegment>> {
        let (file, size) = open_file(path, true)?;
        if size > 0 && !crate::cow::stores_are_safe(&file) {
            return Err(crate::cow::refuse_stores(path));
        }
        let header = match probe(&file, path, size)? {
            Opened::Ready(h) => h,
            Opened::Blank => return Ok(Opened::Blank),
            Opened::Headless => return Ok(Opened::Headless),
        };
        let seg = Self::mapped(file, size, path, header, fs)?;
        seg.map.freeze_header(HEADER_LEN);
        Ok(Opened::Ready(seg))
    }

    fn mapped(
        file: File,
        size: u64,
        path: &Path,
        header: SegmentHeader,
        fs: &Arc<dyn FileSystem>,
    ) -> Result<WriteSegment> {
        let mut map = WriteMap::new(&file, header.reservation())
            .map_err(|e| Error::io("could not map segment", path, e))?;
        map.set_size(size);
        let by_pwrite = crate::cow::writes_by_pwrite(&file);
        let file = Arc::new(file);
        let growth = Growth::new(
            Arc::clone(&file),
            path.to_owned(),
            Arc::clone(fs),
            size,
            header.reservation(),
        );
        Ok(WriteSegment {
            path: path.to_owned(),
            by_pwrite,
            file,
            map,
            seed: header.crc_seed(),
            header,
            fs: Arc::clone(fs),
            growth,
            grow_extra: 0,
            soft_end: size,
            ahead: None,
        })
    }

    /// Creates a new, empty segment file (it must not exist), grows it to one page and writes
    /// its header, made durable at once when `durable_header` is set (see
    /// [`write_header`](Self::write_header)). The caller fsyncs the directory before the next durability point. If
    /// anything fails after the file was created (a full disk, say), the file is removed again
    /// so that a later attempt starts clean; a file that already existed is never touched.
    ///
    /// # Errors
    /// `NoSpace` when the file system is full (of blocks or inodes); `Io`.
    pub(crate) fn create(
        path: &Path,
        base_seq: u64,
        segment_pages: u32,
        fs: &Arc<dyn FileSystem>,
        durable_header: bool,
    ) -> Result<WriteSegment> {
        Self::create_with(path, base_seq, segment_pages, fs, durable_header, false)
    }

    /// Creates a segment that starts the log anew at `base_seq` (`Writer::reset`): its
    /// header carries the flag that makes every segment with a lower base dead, and is
    /// durable when this returns (the caller fsyncs the directory: that is the reset's commit
    /// point).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub(crate) fn create_start(
        path: &Path,
        base_seq: u64,
        segment_pages: u32,
        fs: &Arc<dyn FileSystem>,
    ) -> Result<WriteSegment> {
        Self::create_with(path, base_seq, segment_pages, fs, true, true)
    }

    fn create_with(
        path: &Path,
        base_seq: u64,
        segment_pages: u32,
        fs: &Arc<dyn FileSystem>,
        durable_header: bool,
        starts_log: bool,
    ) -> Result<WriteSegment> {
        let file = fs
            .create_new(path)
            .map_err(|e| Error::create("could not create segment", path, e))?;
        // From here on the file is ours: remove it again if it cannot be made a segment.
        // No copy-on-write (btrfs) first: the attribute takes only while the file is empty.
        crate::cow::prepare_new_file(&file, path)
            .and_then(|()| {
                let init = (durable_header, starts_log);
                Self::init(file, 0, path, base_seq, segment_pages, fs, init)
            })
            .inspect_err(|_| {
                let _ = fs.remove_file(path);
            })
    }

    /// Re-initialises a segment file found blank at recovery (a crashed creation: see
    /// `segment::probe`).
    ///
    /// # Errors
    /// As [`create`](Self::create).
    pub(crate) fn init_blank(
        path: &Path,
        base_seq: u64,
        segment_pages: u32,
        fs: &Arc<dyn FileSystem>,
    ) -> Result<WriteSegment> {
        let (file, size) = open_file(path, true)?;
        if size == 0 {
            crate::cow::prepare_new_file(&file, path)?;
        } else if !crate::cow::stores_are_safe(&file) {
            return Err(crate::cow::refuse_stores(path));
        }
        // Judge it again under the lock: only a blank file is re-initialised.
        if let Opened::Ready(_) = probe(&file, path, size)? {
            return Err(Error::Corrupt {
                segment: path.to_owned(),
                offset: 0,
                reason: "internal error: a segment with a valid header was to be re-initialised"
                    .into(),
            });
        }
        Self::init(file, size, path, base_seq, segment_pages, fs, (true, false))
    }

    /// Maps a new or blank segment file and writes its header; `(durable_header, starts_log)`.
    fn init(
        file: File,
        size: u64,
        path: &Path,
        base_seq: u64,
        segment_pages: u32,
        fs: &Arc<dyn FileSystem>,
        (durable_header, starts_log): (bool, bool),
    ) -> Result<WriteSegment> {
        let header = SegmentHeader {
            layout: format::Layout::CURRENT,
            page_size: u32::try_from(page_size()).unwrap_or(u32::MAX),
            segment_pages,
            base_seq,
            salt: random_salt(),
            starts_log,
        };
        let mut seg = Self::mapped(file, size, path, header, fs)?;
        seg.zero_from(0)?;
        seg.write_header(durable_header)?;
        Ok(seg)
    }

    /// Writes the header: fields first, the magic last with `Release`, so readers never see a
    /// half-written header. With `durable`, msyncs it before anything else is written, so
    /// that a crash leaves either no header and nothing after it, or the header: needed for
    /// a segment nothing else vouches for (the first one of a log, one after a segment full
    /// to its last byte, one that recovery starts again). A segment a rollover creates
    /// before it seals the one before does without: the checkpoint that makes that seal
    /// durable flushes this header first, so a lost header before it is a crash, after it
    /// damage (see `recovery::analyze`).
    fn write_header(&mut self, durable: bool) -> Result<()> {
        self.grow_to(HEADER_LEN)?;
        let bytes = self.header.encode();
        let io = |e| Error::io("could not write segment header", &self.path, e);
        // One pwrite, not a copy through the mapping: a process killed during a syscall dies
        // before or after it, never halfway, so a crash leaves bytes 8..64 all zero or all
        // written, and recovery recognises either (a killed memcpy could leave them half
        // written, which would look like a damaged header). Then the magic, with Release.
        self.fs
            .write_at(&self.file, &self.path, &bytes[8..], 8)
            .map_err(io)?;
        if self.by_pwrite {
            fence(Ordering::SeqCst);
            self.fs
                .write_at(&self.file, &self.path, &format::MAGIC, 0)
                .map_err(io)?;
        } else {
            self.map
                .store(0, u64::from_le_bytes(format::MAGIC), Ordering::Release)
                .map_err(io)?;
        }
        self.map.freeze_header(HEADER_LEN);
        if durable {
            self.flush(HEADER_LEN)?;
        }
        Ok(())
    }

    /// Writes a record frame's body at `off` without publishing it: its `time` (version 2)
    /// and its payload. Returns the frame's header word, with the batch bit when `more` says
    /// the next frame belongs to the same batch (version 2).
    ///
    /// # Errors
    /// `Io` (an internal error) when `off` is not past every published frame or outside the
    /// file.
    #[inline]
    pub(crate) fn write_body(
        &self,
        off: u64,
        seq: u64,
        time: u64,
        more: bool,
        payload: &[u8],
    ) -> Result<u64> {
        let layout = self.header.layout;
        let at = off + layout.record_header_len();
        let io = |e| Error::io("could not write record", &self.path, e);
        if self.by_pwrite {
            self.map
                .check_unpublished(
                    off + FRAME_HEADER_LEN,
                    at - off - FRAME_HEADER_LEN + payload.len() as u64,
                )
                .map_err(io)?;
            if layout.has_time() {
                self.pwrite(&time.to_le_bytes(), off + FRAME_HEADER_LEN)
                    .map_err(|e| self.pwrite_error("could not write record", e))?;
            }
            self.pwrite(payload, at)
                .map_err(|e| self.pwrite_error("could not write record", e))?;
        } else {
            if layout.has_time() {
                // An aligned word, read atomically by readers like a header word.
                self.map.stage(off + FRAME_HEADER_LEN, time).map_err(io)?;
            }
            self.map.write_payload(at, payload).map_err(io)?;
        }
        Ok(format::frame_word(
            layout, self.seed, seq, time, more, payload,
        ))
    }

    /// `pwrite` through the seam, for a segment written without stores through the mapping.
    #[cold]
    fn pwrite(&self, bytes: &[u8], off: u64) -> io::Result<()> {
        self.fs.write_at(&self.file, &self.path, bytes, off)
    }

    /// A failed `pwrite` of record bytes: `NoSpace` when the file system is full (of data or
    /// metadata space), else `Io`.
    #[cold]
    fn pwrite_error(&self, op: &'static str, e: io::Error) -> Error {
        if is_enospc(&e) {
            Error::NoSpace {
                op: "write record",
                path: self.path.clone(),
                source: e,
            }
        } else {
            Error::io(op, &self.path, e)
        }
    }

    /// Takes back the unpublished bytes `[from, to)` after a write into them failed midway,
    /// so that no header word written for a frame that was never published (a batch's
    /// later frames) is left for a reader to find once a different frame is published before
    /// it. Only a segment written with `pwrite` can fail there; through the mapping this does
    /// nothing.
    ///
    /// # Errors
    /// As [`write_payload`](Self::write_payload): the writer must then not write again.
    pub(crate) fn discard_unpublished(&self, from: u64, to: u64) -> Result<()> {
        if !self.by_pwrite {
            return Ok(());
        }
        let to = to.min(self.map.limit());
        if from >= to {
            return Ok(());
        }
        let io = |e| Error::io("could not take back unpublished bytes of", &self.path, e);
        self.map.check_unpublished(from, to - from).map_err(io)?;
        let zeros = vec![0u8; format::to_usize(to - from)];
        self.pwrite(&zeros, from)
            .map_err(|e| self.pwrite_error("could not take back unpublished bytes of", e))
    }

    /// Writes a frame header word with `pwrite` (see `by_pwrite`), after every byte written
    /// before it (a `SeqCst` fence orders the earlier `pwrite`s' stores before its own, which
    /// the kernel makes with plain stores). A reader may see the word half written: it then
    /// fails its check, and readers take a bad frame past the synced mark for one not yet
    /// written and wait (see `mapping`).
    #[cold]
    fn pwrite_word(&self, off: u64, word: u64, end: u64) -> io::Result<()> {
        self.map.check_unpublished(off, end.max(off + 8) - off)?;
        fence(Ordering::SeqCst);
        self.pwrite(&word.to_le_bytes(), off)
    }

    /// Publishes the frame at `off` whose bytes end at `end` by storing its header word.
    /// With `Release`, this publishes the frame (and every frame written after it whose header
    /// was stored before).
    ///
    /// # Errors
    /// `Io` (an internal error) when `off` lies below a published frame or outside the file.
    #[inline]
    pub(crate) fn publish(&self, off: u64, word: u64, end: u64, order: Ordering) -> Result<()> {
        fault_point!(BeforePublish);
        let io = |e| Error::io("could not publish record", &self.path, e);
        if self.by_pwrite {
            self.pwrite_word(off, word, end)
                .map_err(|e| self.pwrite_error("could not publish record", e))?;
            self.map.freeze_published(end);
            return Ok(());
        }
        self.map.publish(off, word, end, order).map_err(io)
    }

    /// Stores the header word of a batch frame after the first, unpublished until the first
    /// frame's header is published.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    #[inline]
    pub(crate) fn stage(&self, off: u64, word: u64) -> Result<()> {
        fault_point!(BeforePublish);
        let io = |e| Error::io("could not publish record", &self.path, e);
        if self.by_pwrite {
            return self
                .pwrite_word(off, word, off + 8)
                .map_err(|e| self.pwrite_error("could not publish record", e));
        }
        self.map.stage(off, word).map_err(io)
    }

    /// Publishes a seal at `off` naming `next_seq` as the next segment's first seq.
    ///
    /// # Errors
    /// As [`publish`](Self::publish).
    pub(crate) fn seal(&self, off: u64, next_seq: u64) -> Result<()> {
        let word = format::seal_word(self.seed, next_seq);
        self.publish(off, word, off + FRAME_HEADER_LEN, Ordering::Release)
    }

    /// Zeroes `[from, size)`: cuts a torn tail in place (never shrinking the file).
    ///
    /// # Errors
    /// `Io` (an internal error) when `from` lies below a frame this process validated.
    pub(crate) fn zero_from(&self, from: u64) -> Result<()> {
        let io = |e| Error::io("could not cut torn tail of", &self.path, e);
        if !self.by_pwrite {
            return self.map.zero_from(from).map_err(io);
        }
        // From the front, so the first header word goes first (a reader looking there sees
        // "nothing yet" or a bad frame past the synced mark, and waits).
        let limit = self.map.limit();
        if from >= limit {
            return Ok(());
        }
        self.map.check_unpublished(from, limit - from).map_err(io)?;
        let zeros = vec![0u8; format::to_usize((limit - from).min(ZERO_CHUNK))];
        let mut at = from;
        while at < limit {
            let n = format::to_usize((limit - at).min(ZERO_CHUNK));
            self.pwrite(zeros.get(..n).unwrap_or(&zeros), at)
                .map_err(io)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Dirties again every page of `[from, to)` by rewriting one byte of each with the value it
    /// holds (`pwrite`, through the seam). After a failed write-back the kernel may have marked
    /// those pages clean without writing them: bytes past the last synced mark are of unknown
    /// durability when a writer opens the log, and this makes its first sync write them.
    ///
    /// # Errors
    /// `Io` when a write fails.
    pub(crate) fn redirty(&self, from: u64, to: u64) -> Result<()> {
        let page = page_size();
        let to = to.min(self.map.limit());
        let mut at = from / page * page;
        while at < to {
            let mut b = [0u8; 1];
            if self.map.read_atomic(at, &mut b) {
                self.fs
                    .write_at(&self.file, &self.path, &b, at)
                    .map_err(|e| Error::io("could not rewrite unsynced page of", &self.path, e))?;
            }
            at += page;
        }
        Ok(())
    }

    /// `msync(MS_SYNC)` of bytes `[0, end)`: header page and data. On Linux this persists the
    /// pages and the file size, like a ranged fdatasync.
    ///
    /// # Errors
    /// `Io` with the operating system's error.
    pub(crate) fn flush(&self, end: u64) -> Result<()> {
        msync(&*self.fs, &self.path, &self.map, 0, end)
    }

    /// Wakes readers that wait on the wake word (see `notify`): one atomic read-modify-write
    /// through the writer's own mapping when nobody waits; a fence and a load for a segment
    /// written with `pwrite`, which then writes the word with `pwrite` too.
    #[inline]
    pub(crate) fn wake_readers(&self) {
        let Some(word) = self.map.word32(format::WAKE_WORD_OFFSET) else {
            return;
        };
        if self.by_pwrite {
            crate::notify::published_by_pwrite(word, |v| {
                // A failed write leaves the word as it was: waiters time out and look again.
                let _ = self.pwrite(&v.to_ne_bytes(), format::WAKE_WORD_OFFSET);
            });
        } else {
            crate::notify::published(word);
        }
    }

    /// Cuts the log's end at `offset` in this segment: stores the cut word (one aligned
    /// atomic store, or a `pwrite` on a segment written with `pwrite`), wakes the readers that
    /// wait on it, and when `durable` is set msyncs the header page. No frame byte is touched.
    ///
    /// # Errors
    /// `Io` with the operating system's error.
    pub(crate) fn store_cut(&self, offset: u64, durable: bool) -> Result<()> {
        // The log's end moves: no more pages ahead of the old one (recovery then zeroes the
        // cut bytes through a mapping of its own).
        if let Some(link) = &self.ahead {
            link.detach(&self.growth);
        }
        let word = self.header.encode_cut(offset);
        let io = |e| Error::io("could not write the cut word of", &self.path, e);
        if self.by_pwrite {
            fence(Ordering::SeqCst);
            self.pwrite(&word.to_le_bytes(), format::CUT_WORD_OFFSET)
                .map_err(io)?;
        } else {
            self.map
                .word32(format::CUT_WORD_OFFSET)
                .ok_or_else(|| io(io::Error::other("the header is not mapped")))?
                .store(word.to_le(), Ordering::Release);
        }
        self.wake_readers();
        if durable {
            msync(&*self.fs, &self.path, &self.map, 0, HEADER_LEN)?;
        }
        Ok(())
    }

    /// A handle that flushes `[from, end)` and stores the synced mark `end` (making it durable
    /// when `flush_mark` is set) without borrowing the segment (see [`SegmentSync`]).
    pub(crate) fn sync_handle(&self, from: u64, end: u64, flush_mark: bool) -> SegmentSync {
        SegmentSync {
            path: self.path.clone(),
            map: Some((self.map.clone(), Arc::clone(&self.file))),
            by_pwrite: self.by_pwrite,
            header: self.header,
            fs: Arc::clone(&self.fs),
            from,
            end,
            flush_mark,
        }
    }
}

impl Drop for WriteSegment {
    /// The pretoucher lets go of the segment before its mapping and file do.
    fn drop(&mut self) {
        self.detach();
    }
}

impl Segment for WriteSegment {
    fn path(&self) -> &Path {
        &self.path
    }

    fn header(&self) -> &SegmentHeader {
        &self.header
    }

    fn view(&self) -> &View {
        &self.map
    }

    #[inline]
    fn frame_at(&self, off: u64, seq: u64) -> (Frame, &[u8]) {
        judge(
            &self.header,
            seq,
            self.map.frame(off, seq, self.seed, self.header.layout),
        )
    }

    #[inline]
    fn check_at(&self, off: u64, seq: u64) -> Frame {
        judge_frame(
            &self.header,
            seq,
            self.map
                .check_frame(off, seq, self.seed, self.header.layout),
        )
    }

    fn keep(&self, end: u64) {
        self.map.freeze_kept(end);
    }

    fn refresh_size(&mut self) -> Result<u64> {
        Ok(self.map.size())
    }
}

/// A random salt for a new segment (falls back to time and pid if getrandom fails).
fn random_salt() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(8) = rustix::rand::getrandom(&mut buf, rustix::rand::GetRandomFlags::empty()) {
        return u64::from_le_bytes(buf);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()) ^ d.as_secs());
    t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
}
