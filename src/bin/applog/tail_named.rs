//! `applog tail --name`: the records a named consumer has not committed, committed once they
//! are printed.
//!
//! At least once: records are written to the buffered standard output in batches (what is
//! there now, up to `BATCH` records or `BATCH_BYTES` of output), the output is flushed, and
//! only then is the batch committed. A run that dies in between prints the batch again next
//! time; a run whose output is closed commits nothing it could not flush.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::records::Printer;
use crate::tail::{not_there_yet, stdout_closed, stop_on_signals, Args, POLL};
use crate::tail_bounds::Stop;
use crate::{note, Failure, Out};

/// The most records one commit covers.
const BATCH: u64 = 1024;

/// A batch ends once this much output is buffered (the buffer holds 64 KiB).
const BATCH_BYTES: usize = 48 * 1024;

/// While following, how often the position is made durable (msync of one page).
const SYNC_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: &Args, name: &str, printer: &Printer) -> Result<(), Failure> {
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
    print(
        &mut consumer,
        printer,
        args.stop(),
        stop.as_deref(),
        &mut out,
    )?;
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

/// Prints and commits batches until the log ends (without -f), a bound (--max,
/// --until-seq) is reached, or a signal (with -f).
fn print(
    consumer: &mut applog::Consumer,
    printer: &Printer,
    mut bounds: Stop,
    stop: Option<&AtomicBool>,
    out: &mut Out,
) -> Result<(), Failure> {
    let follow = stop.is_some();
    let mut synced = Instant::now();
    loop {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) || bounds.reached(consumer.position()) {
            break;
        }
        // The first record of a batch, waited for when following.
        let wait = follow.then_some(POLL);
        let first = deliver(consumer, printer, &mut bounds, out, wait)?;
        let mut last = first;
        if first.printed() {
            let mut n = 1;
            while last == Delivered::Printed && n < BATCH && out.buffered() < BATCH_BYTES {
                last = deliver(consumer, printer, &mut bounds, out, None)?;
                n += 1;
            }
            // Commit only what reached standard output.
            out.flush()?;
        }
        match last {
            // Read but past a bound: not printed, so not committed.
            Delivered::Excluded(seq) => {
                consumer.commit_to(seq)?;
                break;
            }
            _ if first.printed() => consumer.commit()?,
            _ => {}
        }
        if last == Delivered::Done || (last == Delivered::Nothing && !follow) {
            break;
        }
        if last == Delivered::Nothing && bounds.passed(crate::times::now_ns()) {
            // --until is behind the clock: nothing appended from now on is to be printed.
            break;
        }
        if !first.printed() && stdout_closed() {
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

/// What [`deliver`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivered {
    /// It printed a record, and more may follow.
    Printed,
    /// It printed a record, and a bound is reached after it.
    Done,
    /// It read the record with this seq, past a bound: not printed.
    Excluded(u64),
    /// There was no record (within the wait).
    Nothing,
}

impl Delivered {
    fn printed(self) -> bool {
        matches!(self, Delivered::Printed | Delivered::Done)
    }
}

/// Prints the consumer's next record, waiting up to `wait` for one.
fn deliver(
    consumer: &mut applog::Consumer,
    printer: &Printer,
    bounds: &mut Stop,
    out: &mut Out,
    wait: Option<Duration>,
) -> Result<Delivered, Failure> {
    if bounds.reached(consumer.position()) {
        return Ok(Delivered::Done);
    }
    let record = match wait {
        Some(timeout) => consumer.next_timeout(timeout)?,
        None => consumer.try_next()?,
    };
    let Some(r) = record else {
        return Ok(Delivered::Nothing);
    };
    if bounds.excludes(&r) {
        return Ok(Delivered::Excluded(r.seq()));
    }
    printer.print(out, &r)?;
    Ok(if bounds.printed(r.seq()) {
        Delivered::Done
    } else {
        Delivered::Printed
    })
}
