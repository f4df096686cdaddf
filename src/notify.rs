//! The wake-up protocol between the writer and readers that wait for new records.
//!
//! Every segment header holds a 32-bit **wake word** (offset 56). Its low bit, `WAITING`, says
//! that a reader may be asleep on the word (or about to be); the other 31 bits are an epoch
//! that the writer advances each time it wakes readers. Readers sleep with a futex on the word
//! (Linux futexes work across processes on a shared file mapping: the kernel keys them by inode
//! and offset), so a reader that waits costs nothing while it waits, and a writer that nobody
//! waits for makes no system call.
//!
//! ```text
//! writer, after publishing frame F            reader, finding no frame at F
//!   store F's header word (Release)             w = word.fetch_or(WAITING)      (AcqRel)
//!   w = word.fetch_add(0)          (AcqRel)     load F's header word            (Acquire)
//!   if w has WAITING:                           if it is there: read it, done
//!     word.fetch_add(1)  (clears WAITING,       futex_wait(word, w | WAITING, timeout)
//!                         next epoch)           (returns at once if the word changed)
//!     futex_wake(word, all)                     go back to loading F's header word
//! ```
//!
//! **No lost wake-up.** Both sides do a read-modify-write on the word, so the two RMWs are
//! ordered in the word's modification order. If the writer's RMW comes second, it reads
//! `WAITING` and wakes: the reader is either asleep (woken) or not yet asleep (its
//! `futex_wait` sees a changed word, because the writer's `fetch_add(1)` came first, and returns
//! at once). If the reader's RMW comes second, it reads from the writer's release RMW, which
//! follows the header store in the writer's program order, so the reader's next load of the
//! header sees the frame. The epoch stops ABA: a reader that armed the word before the writer
//! cleared it never sleeps on a word another reader set again, because the epoch moved.
//!
//! **No record before its bytes.** The payload is written before the header word is stored
//! with Release; a reader loads the header with Acquire before it reads the payload.
//!
//! The protocol is model-checked with `loom` (`tests/loom_notify.rs`) through the generic
//! functions below, which the crate instantiates with the real atomics in the mapping and a
//! real futex. A reader killed while waiting leaves `WAITING` set; the writer's next publish
//! then makes one useless `futex_wake` and clears it.
//!
//! Waits are always bounded (the caller passes a timeout), so a waiter also notices what the
//! word does not announce: a writer that died, a new segment after a crash.

use std::sync::atomic::Ordering;
use std::time::Duration;

/// Set in the wake word while a reader may be asleep on it.
pub const WAITING: u32 = 1;

/// A 32-bit atomic word that readers can sleep on. Implemented for the wake word in a segment
/// mapping (with a cross-process futex) and, in the loom model, for a modelled futex.
pub trait WakeWord {
    /// `fetch_add` on the word.
    fn fetch_add(&self, v: u32, order: Ordering) -> u32;
    /// `fetch_or` on the word.
    fn fetch_or(&self, v: u32, order: Ordering) -> u32;
    /// Sleeps while the word equals `expected`, for at most `timeout`. Returns early (and
    /// spuriously) whenever it likes; callers re-check their condition.
    fn wait(&self, expected: u32, timeout: Duration);
    /// Wakes every waiter.
    fn wake_all(&self);
}

/// Writer side: call after the Release store that published one or more frames.
#[inline]
pub fn published<W: WakeWord + ?Sized>(word: &W) {
    let w = word.fetch_add(0, Ordering::AcqRel);
    if w & WAITING != 0 {
        wake(word);
    }
}

/// Writer side, for a writer that never stores into the mapping (a segment on a
/// copy-on-write file system, see `cow`): call after the `pwrite` that published one or more
/// frames. `replace` writes a new value over the word with `pwrite`.
///
/// Without a read-modify-write, a `SeqCst` fence between the published header and the load of
/// the word does the ordering (store-buffering with fences: the reader's
/// [`prepare`] is a read-modify-write followed by a `SeqCst` fence before it looks for the
/// frame again), so either this load sees `WAITING` or the reader sees the frame. The word is
/// then replaced with the next epoch (`WAITING` cleared) before the futex wake, so a reader
/// whose `futex_wait` comes after it returns at once. A reader's `fetch_or` that lands while
/// the kernel copies the new value may be overwritten: that reader announced its wait after
/// the frame was published, so its next look finds the frame. Waits are bounded in any case.
pub fn published_by_pwrite(word: &std::sync::atomic::AtomicU32, replace: impl FnOnce(u32)) {
    std::sync::atomic::fence(Ordering::SeqCst);
    let w = word.load(Ordering::Relaxed);
    if w & WAITING != 0 {
        replace(w.wrapping_add(1));
        std::sync::atomic::fence(Ordering::SeqCst);
        WakeWord::wake_all(word);
    }
}

#[cold]
fn wake<W: WakeWord + ?Sized>(word: &W) {
    // Only the writer clears WAITING, so it is still set: adding 1 clears it and moves the
    // epoch on, which also makes every futex_wait armed with the old value return at once.
    word.fetch_add(1, Ordering::AcqRel);
    word.wake_all();
}

/// Reader side, step 1: announce a wait. Returns the value to pass to [`wait`]. The caller
/// must then check again for the frame it wants (with an Acquire load) before it waits.
#[inline]
pub fn prepare<W: WakeWord + ?Sized>(word: &W) -> u32 {
    let token = word.fetch_or(WAITING, Ordering::AcqRel) | WAITING;
    // Orders the announcement before the caller's next look for the frame, for a writer that
    // checks the word with a load rather than a read-modify-write ([`published_by_pwrite`]).
    std::sync::atomic::fence(Ordering::SeqCst);
    token
}

/// Reader side, step 2: sleep until the writer publishes, or `timeout` passes.
pub fn wait<W: WakeWord + ?Sized>(word: &W, token: u32, timeout: Duration) {
    word.wait(token, timeout);
}

/// The wake word inside a segment mapping, with a process-shared futex.
impl WakeWord for std::sync::atomic::AtomicU32 {
    fn fetch_add(&self, v: u32, order: Ordering) -> u32 {
        std::sync::atomic::AtomicU32::fetch_add(self, v, order)
    }

    fn fetch_or(&self, v: u32, order: Ordering) -> u32 {
        std::sync::atomic::AtomicU32::fetch_or(self, v, order)
    }

    #[cfg(target_os = "linux")]
    fn wait(&self, expected: u32, timeout: Duration) {
        use rustix::thread::futex;
        let ts = futex::Timespec {
            tv_sec: futex::Secs::try_from(timeout.as_secs()).unwrap_or(futex::Secs::MAX),
            tv_nsec: futex::Nsecs::from(timeout.subsec_nanos()),
        };
        // Not FUTEX_PRIVATE: the word is shared with other processes. Every outcome (woken,
        // the word changed, timed out, interrupted by a signal) sends the caller back to
        // re-check, so the result carries no information we need.
        let _ = futex::wait(self, futex::Flags::empty(), expected, Some(&ts));
    }

    #[cfg(not(target_os = "linux"))]
    fn wait(&self, expected: u32, timeout: Duration) {
        // No cross-process futex: poll the word with short sleeps.
        let deadline = std::time::Instant::now() + timeout;
        let mut nap = Duration::from_micros(50);
        while self.load(Ordering::Acquire) == expected && std::time::Instant::now() < deadline {
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(2));
        }
    }

    #[cfg(target_os = "linux")]
    fn wake_all(&self) {
        use rustix::thread::futex;
        // A failed wake cannot be acted on; waiters time out and re-check.
        let _ = futex::wake(self, futex::Flags::empty(), i32::MAX as u32);
    }

    #[cfg(not(target_os = "linux"))]
    fn wake_all(&self) {}
}
