//! The pretoucher: a thread per writer (named `applog-pretouch`) that keeps the active
//! segment's file grown, and its new pages faulted in, a few pages ahead of the data, so that
//! the writer's own growth step (a `fallocate` and a page fault per page, the largest cost of
//! a small unsynced append) is usually a no-op. See `Options::pretouch`.
//!
//! # The growth contract, kept
//!
//! - Each extension is one page (`Growth::grow_to` of the next page, blocks reserved with
//!   `fallocate` first, exactly as the writer grows), through the I/O seam like every growth.
//! - The file never runs more than `pages` pages past the writer's data end: the pretoucher
//!   grows up to the page holding the data end the writer last told it (`Growth::want`,
//!   never ahead of the true end) plus `pages` pages, capped at the reservation.
//! - The writer still grows inline before any write the pretoucher has not covered: it only
//!   ever finds its growth step already done (`WriteSegment::grow_for`).
//!
//! # Synchronisation
//!
//! The writer's append path compares the end of each write with a plain `u64`
//! (`WriteSegment::needs_growth`), as without a pretoucher. Past that mark (about once per
//! half the lead), it loads the size grown to (`Growth::grown`, an atomic stored with
//! `Release` after each growth), stores its data end in `Growth::want`, and unparks the
//! thread (an atomic swap; a futex wake only when the thread sleeps). The two sides never grow
//! a file at the same time: `Growth` serialises them with a mutex.
//!
//! # No access past the end of the file
//!
//! The pretoucher stores nothing into the mapping: `MADV_POPULATE_WRITE` faults pages in
//! without changing a byte, and only pages below the size the pretoucher itself just grew to
//! (the log never shrinks a segment file; recovery cuts by zeroing or by replacing the file).
//! On a page past the end it would fail with `EFAULT`, never SIGBUS. On a kernel without it
//! (before 5.14: `EINVAL`), the pretoucher only grows the file. It holds its own clone of
//! the mapping and of the file, so neither goes while it works; and every segment detaches
//! itself (waiting for a step in progress) when the writer lets go of it: at a rollover, at a
//! cut of the log's end (`truncate_back`) or a reset, when the writer is dropped. A failed
//! growth (a full disk: `fallocate` reserves the blocks before the size is set, so a full disk
//! is an error, not a SIGBUS at a later store) stops pretouching ahead until the writer has
//! grown the file itself again; the writer meets the error inline and reports it as without a
//! pretoucher.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};

use crate::format;
use crate::mapping::WriteMap;
use crate::segment::{page_size, Growth};

/// Pages of lead on tmpfs unless the options say otherwise: on tmpfs a new page costs a
/// `fallocate` and a fault of a fresh page, which a second core can take off the writer; on
/// disk file systems (ext4) the kernel's per-page work is the floor and a pretoucher only
/// moves it to another core (see the performance notes in the guide). 32 rather than 8: the
/// writer wakes the thread once per half the lead, and waking a sleeping thread on another
/// core costs microseconds (an inter-processor interrupt, dearer still in a virtual machine);
/// in two interleaved rounds of 128 B appends on tmpfs, 125 and 140 ns with 32 pages against
/// 207 and 205 ns with 8 (217 and 185 ns without a pretoucher); 64 or 128 pages bought nothing
/// more.
pub(crate) const TMPFS_PAGES: u32 = 32;

/// `TMPFS_MAGIC`, the `f_type` of a tmpfs in `statfs`.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// The environment variable that overrides the automatic choice (see
/// `Options::pretouch_auto`).
pub(crate) const ENV: &str = "APPLOG_PRETOUCH";

/// The automatic lead for a segment file: `APPLOG_PRETOUCH` when set to a number (a value
/// that is not one is ignored with a warning); else 0
/// under a file system substituted for tests (`custom_fs`); else [`TMPFS_PAGES`] on tmpfs and
/// 0 elsewhere.
pub(crate) fn auto_pages(file: &std::fs::File, custom_fs: bool) -> u32 {
    // Empty counts as unset.
    if let Some(v) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        if let Some(pages) = v.to_str().and_then(|s| s.trim().parse::<u32>().ok()) {
            return pages;
        }
        tracing::warn!(value = ?v, "{ENV} is not a number of pages: ignored");
    }
    if custom_fs {
        return 0;
    }
    match rustix::fs::fstatfs(file) {
        // f_type is a signed word on some targets: compare its low 32 bits.
        #[allow(clippy::unnecessary_cast)]
        Ok(st) if st.f_type as i64 & 0xFFFF_FFFF == TMPFS_MAGIC => TMPFS_PAGES,
        _ => 0,
    }
}

/// What the thread works on: one segment's growth state and a clone of its mapping.
struct Job {
    growth: Arc<Growth>,
    map: WriteMap,
    /// Cleared when `MADV_POPULATE_WRITE` is not supported: then the pages are only grown.
    populate: bool,
}

struct Control {
    job: Mutex<Option<Job>>,
    stop: AtomicBool,
    /// The lead, in bytes.
    lead: u64,
}

impl Control {
    fn job(&self) -> MutexGuard<'_, Option<Job>> {
        // Nothing in a step can leave the job half changed; a poisoned lock is still usable.
        self.job
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The thread, owned by the writer: stopped and joined when dropped.
pub(crate) struct Pretoucher {
    link: Link,
    thread: Option<JoinHandle<()>>,
}

/// What a segment holds of the pretoucher: to attach itself, ask for pages and detach.
#[derive(Clone)]
pub(crate) struct Link {
    control: Arc<Control>,
    thread: Thread,
}

impl std::fmt::Debug for Pretoucher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pretoucher")
            .field("lead", &self.link.control.lead)
            .finish_non_exhaustive()
    }
}

impl Pretoucher {
    /// Starts a pretoucher that stays up to `pages` pages ahead; `None` when `pages` is 0, or
    /// when the thread cannot be started (logged: the writer then grows inline, as without).
    pub(crate) fn start(pages: u32) -> Option<Pretoucher> {
        if pages == 0 {
            return None;
        }
        let control = Arc::new(Control {
            job: Mutex::new(None),
            stop: AtomicBool::new(false),
            lead: u64::from(pages) * page_size(),
        });
        let theirs = Arc::clone(&control);
        let spawned = std::thread::Builder::new()
            .name("applog-pretouch".into())
            .spawn(move || run(&theirs));
        match spawned {
            Ok(handle) => Some(Pretoucher {
                link: Link {
                    control,
                    thread: handle.thread().clone(),
                },
                thread: Some(handle),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "could not start the pretouch thread; segments grow inline");
                None
            }
        }
    }

    /// The handle segments attach with.
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }
}

impl Drop for Pretoucher {
    fn drop(&mut self) {
        self.link.control.stop.store(true, Ordering::Release);
        // No step runs after this: the thread checks `stop` under the job lock.
        *self.link.control.job() = None;
        self.link.thread.unpark();
        if let Some(handle) = self.thread.take() {
            let _ = handle.join();
        }
    }
}

impl Link {
    /// Makes `growth` (with `map`, a clone of the segment's mapping) the segment the thread
    /// works on, in place of any other.
    pub(crate) fn attach(&self, growth: Arc<Growth>, map: WriteMap) {
        *self.control.job() = Some(Job {
            growth,
            map,
            populate: true,
        });
        self.thread.unpark();
    }

    /// Stops work on `growth`'s segment: when this returns, the thread is not in a step on it
    /// and starts none.
    pub(crate) fn detach(&self, growth: &Arc<Growth>) {
        let mut job = self.control.job();
        if job.as_ref().is_some_and(|j| Arc::ptr_eq(&j.growth, growth)) {
            *job = None;
        }
    }

    /// Wakes the thread to look at `Growth::want` again.
    #[inline]
    pub(crate) fn poke(&self) {
        self.thread.unpark();
    }

    /// Half the lead, rounded to whole pages (at least one): how far past the page of its
    /// last request the writer goes before it asks again.
    pub(crate) fn half_lead(&self) -> u64 {
        let page = page_size();
        (self.control.lead / page).div_ceil(2).max(1) * page
    }
}

fn run(control: &Control) {
    loop {
        let worked = {
            let mut job = control.job();
            if control.stop.load(Ordering::Acquire) {
                return;
            }
            match job.as_mut() {
                Some(j) => step(j, control.lead),
                None => false,
            }
        };
        if !worked {
            std::thread::park();
        }
    }
}

/// Grows the job's file by one page and faults it in, when it is less than `lead` bytes past
/// the page of the writer's data end. Returns whether it did.
fn step(job: &mut Job, lead: u64) -> bool {
    let growth = &job.growth;
    if growth.stalled.load(Ordering::Relaxed) {
        return false;
    }
    let page = page_size();
    let want = growth.want.load(Ordering::Relaxed);
    let target = (format::round_up(want, page) + lead).min(job.map.reservation());
    let old = growth.grown();
    if old >= target {
        return false;
    }
    // The next page boundary past `old`: never beyond `target`, a page multiple (or the
    // reservation) above it.
    let size = match growth.grow_to(old + 1, 0) {
        Ok(size) => size,
        Err(e) => {
            growth.stalled.store(true, Ordering::Relaxed);
            tracing::debug!(error = %e, "pretouch stopped: the writer grows the segment itself");
            return false;
        }
    };
    job.map.set_size(size);
    // A kill here (tests) is a crash with the file grown ahead of the data.
    fault_point!(AfterGrowth);
    if job.populate && size > old {
        if let Err(e) = job.map.populate(old, size - old) {
            if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) {
                job.populate = false;
                tracing::debug!(
                    "no MADV_POPULATE_WRITE (Linux before 5.14): pretouch only grows files"
                );
            } else {
                tracing::debug!(error = %e, "MADV_POPULATE_WRITE failed; the writer faults the page in");
            }
        }
    }
    true
}
