//! The read side of a segment: a read-only mapping, the file size as observed, and the wake
//! word a waiting reader announces itself on.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use super::{judge, judge_frame, open_file, page_size, probe, Opened, Segment};
use crate::error::{Error, Result};
use crate::format::{self, Frame, SegmentHeader};
use crate::mapping::{ReadMap, View, WakeView};

/// A segment opened for reading: never writes a byte of its data.
pub(crate) struct ReadSegment {
    path: PathBuf,
    file: File,
    map: ReadMap,
    header: SegmentHeader,
    seed: u32,
    /// A writable mapping of the header page, for the wake word only.
    wake: Wake,
}

/// Whether a reader can announce its waits in a segment.
enum Wake {
    /// Not tried yet: the reader has not waited in this segment.
    Untried,
    /// The file could not be opened for writing (or stores into it could need new space: see `cow`): poll.
    Unavailable,
    /// The header page, mapped writable (shared with a process's async waiter, which keeps it
    /// mapped while it sleeps on the word), and the file's identity (device, inode).
    Mapped(Arc<WakeView>, (u64, u64)),
}

impl ReadSegment {
    /// Opens an existing segment file read-only. Never modifies it.
    ///
    /// # Errors
    /// `Io`, `NotALog` (not a regular file, or not applog's), `Corrupt` (a damaged header).
    pub(crate) fn open(path: &Path) -> Result<Opened<ReadSegment>> {
        let (file, size) = open_file(path, false)?;
        let header = match probe(&file, path, size)? {
            Opened::Ready(h) => h,
            Opened::Blank => return Ok(Opened::Blank),
            Opened::Headless => return Ok(Opened::Headless),
        };
        let mut map = ReadMap::new(&file, header.reservation())
            .map_err(|e| Error::io("could not map segment", path, e))?;
        map.set_size(size);
        Ok(Opened::Ready(ReadSegment {
            path: path.to_owned(),
            file,
            map,
            seed: header.crc_seed(),
            header,
            wake: Wake::Untried,
        }))
    }

    /// The wake word (see `notify`), once [`open_wake_view`](Self::open_wake_view) made one.
    pub(crate) fn wake_word(&self) -> Option<&AtomicU32> {
        match &self.wake {
            Wake::Mapped(view, _) => view.word32(format::WAKE_WORD_OFFSET),
            Wake::Untried | Wake::Unavailable => None,
        }
    }

    /// The mapping that holds the wake word and the file's identity (device, inode), once
    /// [`open_wake_view`](Self::open_wake_view) made one: what a process-wide waiter needs to
    /// sleep on the word for many readers of the same segment at once.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn wake_handle(&self) -> Option<(Arc<WakeView>, (u64, u64))> {
        match &self.wake {
            Wake::Mapped(view, key) => Some((Arc::clone(view), *key)),
            Wake::Untried | Wake::Unavailable => None,
        }
    }

    /// Whether the file at `path` is still this segment's file (a segment cut at its first
    /// record is replaced by a new file of the same name). False when it cannot be examined.
    pub(crate) fn is_file_at(&self, path: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Ok(now), Ok(ours)) = (std::fs::metadata(path), rustix::fs::fstat(&self.file)) else {
            return false;
        };
        #[allow(clippy::useless_conversion)] // `st_dev` and `st_ino` differ in width by target
        let same = now.dev() == u64::from(ours.st_dev) && now.ino() == u64::from(ours.st_ino);
        same
    }

    /// Maps the header page writable, so that this reader can announce that it waits (it sets
    /// a bit in the wake word; its data mapping stays read-only). The file is opened again
    /// through `/proc/self/fd`, which works even after retention unlinked it. When that is not
    /// permitted (a reader without write access), waiting falls back to polling. Tried once
    /// per segment.
    pub(crate) fn open_wake_view(&mut self) {
        if !matches!(self.wake, Wake::Untried) {
            return;
        }
        self.wake = match self.map_wake_view() {
            Ok((view, key)) => Wake::Mapped(Arc::new(view), key),
            Err(e) => {
                tracing::debug!(segment = %self.path.display(), error = %e, "cannot map the wake word writable; waiting by polling");
                Wake::Unavailable
            }
        };
    }

    fn map_wake_view(&self) -> std::io::Result<(WakeView, (u64, u64))> {
        use std::os::fd::AsRawFd;
        let again = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        let open = |p: &Path| std::fs::OpenOptions::new().read(true).write(true).open(p);
        let file = open(Path::new(&again)).or_else(|_| open(&self.path))?;
        if !crate::cow::stores_are_safe(&file) {
            // A store into the wake word could need new space (see `cow`): poll instead.
            return Err(std::io::Error::other(
                "the segment is copy-on-write (btrfs without the no-copy-on-write attribute)",
            ));
        }
        let st = rustix::fs::fstat(&self.file)?;
        #[allow(clippy::useless_conversion)] // `st_dev` and `st_ino` differ in width by target
        let key = (u64::from(st.st_dev), u64::from(st.st_ino));
        Ok((WakeView::new(&file, page_size(), self.map.size())?, key))
    }
}

impl Segment for ReadSegment {
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

    fn refresh_size(&mut self) -> Result<u64> {
        let size = rustix::fs::fstat(&self.file)
            .map_err(|e| Error::io("could not stat segment", &self.path, e.into()))?
            .st_size;
        self.map.set_size(u64::try_from(size).unwrap_or(0));
        Ok(self.map.size())
    }
}
