//! Growing a write segment's file ahead of each write, inline or with the pretoucher's help
//! (see `segment::grow` for the system calls and `crate::pretouch` for the thread).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::WriteSegment;
use crate::error::Result;
use crate::format;
use crate::pretouch::Link;
use crate::segment::page_size;

impl WriteSegment {
    /// Sets how many pages each growth step adds (see `Options::grow_pages`).
    pub(crate) fn set_grow_pages(&mut self, pages: u32) {
        self.grow_extra = u64::from(pages.saturating_sub(1)) * page_size();
    }

    /// Whether a write that ends at `end` must take [`grow_for`](Self::grow_for) first.
    #[inline]
    pub(crate) fn needs_growth(&self, end: u64) -> bool {
        end > self.soft_end
    }

    /// Attaches this segment to the writer's pretoucher, which from then on keeps its file
    /// grown and faulted in ahead of the data (see `pretouch`). Not for a segment written
    /// with `pwrite` (see `by_pwrite`): no page of it is faulted in for writing, and growing
    /// it ahead would only save the writer a `fallocate` per page.
    /// `pos` is the writer's data end in it.
    pub(crate) fn attach(&mut self, link: &Link, pos: u64) {
        if self.ahead.is_some() || self.by_pwrite {
            return;
        }
        self.growth.want.store(pos, Ordering::Relaxed);
        link.attach(Arc::clone(&self.growth), self.map.clone());
        self.ahead = Some(link.clone());
    }

    /// Whether bytes are written with `pwrite` rather than through the mapping (see the
    /// field).
    pub(crate) fn by_pwrite(&self) -> bool {
        self.by_pwrite
    }

    /// Whether this segment has a pretoucher (or can have none: written with `pwrite`).
    pub(crate) fn attached(&self) -> bool {
        self.ahead.is_some() || self.by_pwrite
    }

    /// The automatic pretouch lead for this segment's file system (see `pretouch`).
    pub(crate) fn auto_pretouch(&self, custom_fs: bool) -> u32 {
        crate::pretouch::auto_pages(&self.file, custom_fs)
    }

    /// Stops the pretoucher's work on this segment: when this returns, it touches the file
    /// and the mapping no more.
    pub(crate) fn detach(&mut self) {
        if let Some(link) = self.ahead.take() {
            link.detach(&self.growth);
        }
    }

    /// Before a write `[pos, end)` past [`needs_growth`](Self::needs_growth)'s mark: takes
    /// up what the pretoucher grew, asks it for more pages ahead of `pos` (an atomic store
    /// and a wake-up, about once per half its lead), and grows the file itself when it still
    /// does not hold `end`.
    ///
    /// # Errors
    /// As [`grow_to`](Self::grow_to).
    #[cold]
    pub(crate) fn grow_for(&mut self, pos: u64, end: u64) -> Result<()> {
        self.map.set_size(self.growth.grown());
        if let Some(link) = &self.ahead {
            self.growth.want.store(pos, Ordering::Relaxed);
            link.poke();
        }
        self.grow_to(end)?;
        let size = self.map.size();
        self.soft_end = match &self.ahead {
            Some(link) => size.min(format::round_up(end, page_size()) + link.half_lead()),
            None => size,
        };
        Ok(())
    }

    /// Grows the file so that bytes `[0, end)` exist: to the smallest page multiple that holds
    /// them (plus the configured extra pages; capped at the reservation). Blocks are reserved
    /// first with fallocate, so a full file system is an error here rather than a SIGBUS at
    /// the first store.
    ///
    /// # Errors
    /// `NoSpace` when the file system is full; `Io`.
    pub(crate) fn grow_to(&mut self, end: u64) -> Result<()> {
        if end <= self.map.size() {
            return Ok(());
        }
        let old_size = self.map.size();
        let page = page_size();
        let new_size = self.growth.grow_to(end, self.grow_extra).inspect_err(|_| {
            // A fallback write may have grown the file before it failed.
            self.map.set_size(self.growth.grown());
            self.soft_end = self.soft_end.min(self.map.size());
        })?;
        self.map.set_size(new_size);
        self.soft_end = self.soft_end.min(self.map.size());
        // The file grew inline: a pretoucher stopped by a failure may go on.
        self.growth.stalled.store(false, Ordering::Relaxed);
        // A record that needs several new pages: fault them in with one call rather than one
        // fault each. Only the pages the record needs, and never for one page.
        // Not when writing with pwrite: a write fault is what must not happen there.
        let needed = format::round_up(end, page).min(self.map.size());
        if !self.by_pwrite && needed.saturating_sub(old_size) > page {
            self.map.prefault(old_size, needed - old_size);
        }
        fault_point!(AfterGrowth);
        Ok(())
    }
}
