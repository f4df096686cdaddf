//! Cutting the log's end: [`Writer::truncate_back`].

use std::sync::Arc;

use super::Writer;
use crate::dir;
use crate::error::{Error, Result};
use crate::recovery;
use crate::segment::{Opened, Segment, WriteSegment};

impl Writer {
    /// Removes every record at and after `seq`, durably, and appends at `seq` from then on:
    /// what a Raft node needs when a new leader overwrites the end of its log.
    ///
    /// Everything appended so far is synced first. Then the cut is recorded in the header of
    /// the segment that holds `seq` and made durable: from that moment on, the records from
    /// `seq` on are gone, for readers in every process (they get [`Error::Rewound`]) and for
    /// recovery after a crash. No byte of a record is written or zeroed, so records that
    /// readers hold stay as they are. Later segment files are removed, and the records from
    /// `seq` on go to a new segment file. A crash at any point leaves the log either as it was
    /// or cut.
    ///
    /// Named consumers whose committed position is past `seq` are moved back to it (one in
    /// use at that moment is not: a warning names it).
    ///
    /// `seq == next_seq` changes nothing. `seq` may lie inside a batch (a new Raft leader's
    /// entries may conflict from any index on): the batch then ends at `seq`, and its records
    /// before `seq` stay, as they were made durable before the cut.
    ///
    /// # Errors
    /// [`Error::SeqNotAppended`] above [`next_seq`](Self::next_seq) and
    /// [`Error::SeqBeforeStart`] below [`first_seq`](Self::first_seq) (nothing changed);
    /// [`Error::Io`], [`Error::NoSpace`]: when the cut could not be made durable
    /// or the log not opened again after it, the writer is poisoned (reopen the log: recovery
    /// finishes or undoes the cut). [`Error::Poisoned`] after a failed sync.
    ///
    /// # Example
    /// ```
    /// use applog::{Options, Reader, Writer};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = Writer::open(dir.path(), Options::default())?;
    /// for record in [b"a", b"b", b"c"] {
    ///     log.append(record)?;
    /// }
    /// log.truncate_back(1)?; // "b" and "c" are gone
    /// assert_eq!(log.next_seq(), 1);
    /// assert_eq!(log.append(b"B")?, 1);
    ///
    /// let mut reader = Reader::open(dir.path())?;
    /// assert_eq!(reader.next()?.map(|r| r.data().to_vec()), Some(b"a".to_vec()));
    /// assert_eq!(reader.next()?.map(|r| r.data().to_vec()), Some(b"B".to_vec()));
    /// assert!(reader.next()?.is_none());
    /// # Ok(()) }
    /// ```
    pub fn truncate_back(&mut self, seq: u64) -> Result<()> {
        self.check_poisoned()?;
        if seq > self.next_seq {
            return Err(Error::SeqNotAppended {
                seq,
                next_seq: self.next_seq,
            });
        }
        if seq < self.first_seq {
            return Err(Error::SeqBeforeStart {
                seq,
                first_seq: self.first_seq,
            });
        }
        if seq == self.next_seq {
            return Ok(());
        }
        // The records before `seq` durable before anything of the cut can reach the disk.
        self.sync()?;
        let Some(entry) = dir::list(&self.dir)?
            .segments
            .into_iter()
            .rev()
            .find(|e| e.base <= seq)
        else {
            return Err(Error::SeqBeforeStart {
                seq,
                first_seq: self.first_seq,
            });
        };
        let other = if entry.path == self.seg.path() {
            None
        } else {
            match WriteSegment::open(&entry.path, &self.fs)? {
                Opened::Ready(seg) => Some(seg),
                Opened::Blank | Opened::Headless => {
                    return Err(Error::Corrupt {
                        segment: entry.path,
                        offset: 0,
                        reason: "the segment to cut has no header".into(),
                    })
                }
            }
        };
        let seg = other.as_ref().unwrap_or(&self.seg);
        let offset = recovery::offset_of(seg, seq)?;
        // The commit point: once this header page is durable, the log ends at `seq`.
        if let Err(e) = seg.store_cut(offset, true) {
            self.poison(&e);
            return Err(e);
        }
        tracing::info!(dir = %self.dir.display(), seq, segment = %entry.path.display(), offset, "cut the log's end");
        drop(other);
        // The rest (later segments removed, the new segment) is what an open does after a
        // crash in the middle of a cut: do it the same way.
        let reopened = self.reopen(&tracing::info_span!(
            "applog.truncate_back",
            dir = %self.dir.display(),
            seq,
            segments = tracing::field::Empty,
            first_seq = tracing::field::Empty,
            next_seq = tracing::field::Empty,
        ));
        reopened?;
        self.move_consumers(|at| (at > seq).then_some(seq));
        Ok(())
    }

    /// Starts the log again at `seq`, after a Raft snapshot was installed, say: removes every
    /// record before `seq`, durably.
    ///
    /// - `seq` inside the log (at most [`next_seq`](Self::next_seq)): the oldest segments
    ///   whose records all lie before `seq` are removed, as [`truncate_front`](Self::truncate_front)
    ///   does. Records before `seq` that share a segment with later ones stay readable until
    ///   that segment goes; [`first_seq`](Self::first_seq) says where the log starts.
    /// - `seq` past the end: the log becomes empty and the next append gets `seq`. Everything
    ///   appended is synced first; then a new segment that starts the log anew at `seq` is
    ///   created and made durable (the commit point: a crash before it leaves the log as it
    ///   was, after it the reset log), and the older segments are removed. Readers that still
    ///   read them get [`Error::Rewound`]. Named consumers not in use move to `seq`.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::NoSpace`]: when the new segment cannot be created, nothing
    /// changed; when the reset could not be made durable or the log not opened again after
    /// it, the writer is poisoned (reopen the log: recovery finishes
    /// or undoes the reset). [`Error::Poisoned`] after a failed sync.
    ///
    /// # Example
    /// ```
    /// use applog::{Options, Reader, Writer};
    /// # fn main() -> applog::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let mut log = Writer::open(dir.path(), Options::default())?;
    /// log.append(b"a")?;
    /// log.reset(1000)?; // a snapshot holds everything before 1000
    /// assert_eq!((log.first_seq(), log.next_seq()), (1000, 1000));
    /// assert_eq!(log.append(b"b")?, 1000);
    ///
    /// let mut reader = Reader::open(dir.path())?;
    /// assert_eq!(reader.next()?.map(|r| r.seq()), Some(1000));
    /// # Ok(()) }
    /// ```
    pub fn reset(&mut self, seq: u64) -> Result<()> {
        self.check_poisoned()?;
        if seq <= self.next_seq {
            return self.truncate_front(seq).map(drop);
        }
        self.sync()?;
        let path = self.dir.join(dir::segment_name(seq));
        // Nothing changed when this fails: the file is removed again.
        drop(WriteSegment::create_start(
            &path,
            seq,
            self.segment_pages(),
            &self.fs,
        )?);
        // The commit point: the new segment's name durable (its header already is).
        if let Err(e) = self.fs.sync_dir(&self.dir) {
            let e = Error::io("could not sync log directory", &self.dir, e);
            self.poison(&e);
            return Err(e);
        }
        tracing::info!(dir = %self.dir.display(), seq, "reset the log");
        self.reopen(&tracing::info_span!(
            "applog.reset",
            dir = %self.dir.display(),
            seq,
            segments = tracing::field::Empty,
            first_seq = tracing::field::Empty,
            next_seq = tracing::field::Empty,
        ))?;
        self.move_consumers(|at| (at < seq).then_some(seq));
        Ok(())
    }

    /// After a cut or a reset: moves each named consumer whose committed position `moved`
    /// maps to a new one (past a cut: back to the cut, so that it reads the records that
    /// take the removed ones' seqs; before a reset: to the new start). A consumer in use
    /// cannot be moved from here: its reader meets the change (`Error::Rewound`), and a
    /// warning names it. The log's change is done whatever happens here.
    fn move_consumers(&self, moved: impl Fn(u64) -> Option<u64>) {
        let Ok(all) = crate::consumer::consumers(&self.dir) else {
            return;
        };
        for c in all {
            let Some(to) = moved(c.next_seq) else {
                continue;
            };
            match crate::consumer::reset_consumer(&self.dir, &c.name, to) {
                Ok(()) => {
                    tracing::info!(dir = %self.dir.display(), consumer = %c.name, from = c.next_seq, to, "moved a consumer with the log's change");
                }
                Err(e) => {
                    tracing::warn!(dir = %self.dir.display(), consumer = %c.name, position = c.next_seq, to, "could not move a consumer with the log's change: {e}");
                }
            }
        }
    }

    /// Takes up the log again as an open does, without letting go of the lock: what finishes
    /// a cut or a reset (recovery does the same after a crash). Poisons on failure.
    fn reopen(&mut self, span: &tracing::Span) -> Result<()> {
        // The pretouch thread lets go of the old active segment before recovery may remove it.
        self.seg.detach();
        let Some(lock) = self.lock.take() else {
            return self.check_poisoned();
        };
        let opened = Writer::open_locked(
            self.dir.clone(),
            self.opts.clone(),
            Arc::clone(&self.fs),
            lock,
            span,
        );
        match opened {
            Ok(writer) => {
                *self = writer;
                Ok(())
            }
            Err(e) => {
                self.poison(&e);
                Err(e)
            }
        }
    }
}
