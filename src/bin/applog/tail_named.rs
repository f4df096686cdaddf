//! `applog tail --name`: the records a named consumer has not committed, committed once they
//! are printed.
//!
//! At least once: records are written to the buffered standard output in batches (what is
//! there now, up to `BATCH` records or `BATCH_BYTES` of output), the output is flushed, and
//! only then is the batch committed. A run that dies in between prints the batch again next
//! time; a run whose output is closed commits nothing it could not flush.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::tail::{not_there_yet, print_record, stdout_closed, stop_on_signals, Args, POLL};
use crate::{note, Failure, Out};

/// The most records one commit covers.
const BATCH: u64 = 1024;

/// A batch ends once this much output is buffered (the buffer holds 64 KiB).
const BATCH_BYTES: usize = 48 * 1024;

/// While following, how often the position is made durable (msync of one page).
const SYNC_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: &Args, name: &str) -> Result<(), Failure> {
    let stop = if args.follow {
        Some(stop_on_signals()?)
    } else {
        None
    };
    let Some(mut consumer) = open(args, name, stop.as_deref())? else {
        return Ok(()); // interrupted while waiting for the log
    };
    let mut out = Out::new();
    // On an error, dropping the consumer makes what was committed durable (best effort).
    print(&mut consumer, args, stop.as_deref(), &mut out)?;
    out.finish()?;
    consumer.sync()?;
    Ok(())
}

/// Opens the consumer. With -f, a log that does not exist yet is waited for (saying so once,
/// as `tail -f` does); `None` when a signal came first.
fn open(
    args: &Args,
    name: &str,
    stop: Option<&AtomicBool>,
) -> Result<Option<applog::Consumer>, Failure> {
    let mut waited = false;
    loop {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return Ok(None);
        }
        // A reader first: opening a consumer makes the `consumers` directory, which a
        // directory that is no log should not get.
        match applog::Reader::open(&args.log) {
            Ok(_) => return Ok(Some(applog::Consumer::open(&args.log, name)?)),
            Err(e) if stop.is_some() && not_there_yet(&args.log, &e) => {}
            Err(e) => return Err(e.into()),
        }
        if !waited {
            note(format_args!(
                "there is no log in {} yet; waiting for one to be created",
                args.log.display()
            ));
            waited = true;
        }
        std::thread::sleep(POLL);
    }
}

/// Prints and commits batches until the log ends (without -f), --max records were printed,
/// or a signal (with -f).
fn print(
    consumer: &mut applog::Consumer,
    args: &Args,
    stop: Option<&AtomicBool>,
    out: &mut Out,
) -> Result<(), Failure> {
    let follow = stop.is_some();
    let mut left = args.max.unwrap_or(u64::MAX);
    let mut synced = Instant::now();
    while left > 0 {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        // The first record of a batch, waited for when following.
        let wait = follow.then_some(POLL);
        if deliver(consumer, args, out, wait)? {
            let mut n = 1;
            while n < left.min(BATCH)
                && out.buffered() < BATCH_BYTES
                && deliver(consumer, args, out, None)?
            {
                n += 1;
            }
            // Commit only what reached standard output.
            out.flush()?;
            consumer.commit()?;
            left -= n;
        } else if !follow {
            break;
        } else if stdout_closed() {
            // Idle: notice a reader that went away without waiting for the next record.
            return Err(Failure::Closed);
        }
        if follow && synced.elapsed() >= SYNC_EVERY {
            // Also notices a consumer file removed under it (then exit 1).
            consumer.sync()?;
            synced = Instant::now();
        }
    }
    Ok(())
}

/// Prints the consumer's next record, waiting up to `wait` for one; whether there was one.
fn deliver(
    consumer: &mut applog::Consumer,
    args: &Args,
    out: &mut Out,
    wait: Option<Duration>,
) -> Result<bool, Failure> {
    let record = match wait {
        Some(timeout) => consumer.next_timeout(timeout)?,
        None => consumer.try_next()?,
    };
    match record {
        Some(r) => {
            print_record(out, args.format, r.seq(), r.data())?;
            Ok(true)
        }
        None => Ok(false),
    }
}
