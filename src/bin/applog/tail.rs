//! `applog tail`: the last records, every record from a seq on, or following new ones.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::records::{Format, Printer, Template};
use crate::tail_bounds::{Count, Stop};
use crate::{note, Failure, Out};

/// Print the last records of a log, or every record from a seq on, or the records a named
/// consumer has not committed; with -f, keep printing new records as they are appended.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    pub(crate) log: PathBuf,
    /// How many of the last records to print (N), or +K: every record from the K-th on
    /// (1-based: +1 is the first record of the log), as `tail -n +K`.
    #[arg(
        short = 'n',
        long = "count",
        value_name = "N|+K",
        default_value = "10",
        value_parser = Count::parse
    )]
    count: Count,
    /// Print every record from this seq on, instead of the last N (a seq before the first
    /// record starts at the first record; one past the end prints nothing, or with -f waits
    /// for it).
    #[arg(long, value_name = "SEQ", conflicts_with = "count")]
    from: Option<u64>,
    /// Keep printing records as they are appended, across segment rollovers and writer
    /// restarts, until interrupted (SIGINT or SIGTERM end it with exit 0) or until --max or
    /// --until-seq is reached (exit 0). A log that does not exist yet (or an empty
    /// directory) is waited for, saying so on stderr. A log directory replaced meanwhile
    /// (removed and made again, restored from a copy) is followed anew from its first
    /// record, saying so on stderr. Output is flushed after each record.
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
    /// Read as the named consumer NAME (created at the log's first record if it does not
    /// exist): print the records after its committed position, and commit them once they
    /// were written to standard output, so that the next run with the same name resumes
    /// after them (at least once: a run killed between printing and committing prints its
    /// last records again). Records are committed in batches, after each flush of the
    /// output; the position is made durable when the tool ends and about every second
    /// while following. With -f it follows the log it opened (not a directory replaced
    /// later). Exit 1 when another process holds NAME (see `applog consumers`), or when
    /// retention parked it (reset it with `applog consumers LOG --reset NAME --to SEQ`).
    /// NAME is 1 to 64 of A-Z a-z 0-9 . _ -, not starting with '.'.
    #[arg(
        long,
        value_name = "NAME",
        value_parser = crate::consumers::parse_name,
        conflicts_with_all = ["from", "count"]
    )]
    pub(crate) name: Option<String>,
    /// Start at the first record appended at or after TIME, instead of the last N: RFC 3339
    /// (2026-11-29T18:00:00.250Z) or how long ago (10m, 2h, 1d, 1h30m). With --from, the later
    /// of the two. Records without a time (written by applog 0.1) count as older than any
    /// time.
    #[arg(
        long,
        value_name = "TIME",
        value_parser = crate::times::parse_time,
        conflicts_with_all = ["count", "name"]
    )]
    pub(crate) since: Option<u64>,
    /// Stop before the first record appended after TIME (same forms as --since). With -f,
    /// exit 0 at the first record after it, or once the clock has passed TIME while no record
    /// is waiting.
    #[arg(long, value_name = "TIME", value_parser = crate::times::parse_time)]
    pub(crate) until: Option<u64>,
    /// Stop after printing N records (with -f too). 0 prints nothing.
    #[arg(long, value_name = "N")]
    pub(crate) max: Option<u64>,
    /// Stop before the record SEQ: print only records below it (with -f, exit 0 once the
    /// record before it was printed). A named consumer commits up to it, not past it.
    #[arg(long, value_name = "SEQ")]
    pub(crate) until_seq: Option<u64>,
    /// How to print each record.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Records separated by NUL bytes, not newlines (--format raw0), as `append --nul` reads
    /// them.
    #[arg(short = '0', conflicts_with_all = ["format", "template"])]
    pub(crate) nul: bool,
    /// Print each record by TEMPLATE instead of --format: %s the seq, %T the append time
    /// (RFC 3339 UTC, `-` when the log keeps none), %t the time in nanoseconds since the
    /// epoch (or `-`), %l the length, %p the payload bytes, %% a %; escapes \n \t \0 \\.
    /// Nothing is added after a record: end the template with \n for lines.
    #[arg(long, value_name = "TEMPLATE", value_parser = Template::parse, conflicts_with = "format")]
    pub(crate) template: Option<Template>,
}

impl Args {
    /// The stop conditions the arguments give.
    pub(crate) fn stop(&self) -> Stop {
        Stop::new(self.until_seq, self.max).until_time(self.until)
    }

    /// The arguments that do not go together although each parses.
    fn check(&self) -> Result<(), Failure> {
        match (self.since, self.until) {
            (Some(since), Some(until)) if since > until => Err(Failure::Usage(format!(
                "--since ({}) is after --until ({}): no record can be in between",
                crate::times::rfc3339_nanos(since),
                crate::times::rfc3339_nanos(until)
            ))),
            _ => Ok(()),
        }
    }
}

pub fn run(args: Args) -> Result<(), Failure> {
    args.check()?;
    let printer = Printer::new(args.format, args.nul, args.template.as_ref());
    if let Some(name) = &args.name {
        return crate::tail_named::run(&args, name, &printer);
    }
    if args.follow {
        return follow(&args, &printer);
    }
    let mut stop = args.stop();
    let start = match (args.from, args.count) {
        (Some(from), _) => from,
        // --since alone: from the first record at or after it (found below).
        (None, _) if args.since.is_some() => 0,
        (None, Count::FromNth(_)) => {
            let first = applog::Reader::open(&args.log)?.position();
            args.count.start(first, first)
        }
        (None, Count::Last(_)) => {
            let report = applog::verify(&args.log)?;
            // The last N records of a damaged log are not the last N of the log: say so.
            if !report.is_clean() {
                return Err(crate::problems::corrupt_failure(&args.log, &report));
            }
            // The end as of now, so that exactly N records are printed even while a writer
            // appends.
            stop.until(report.next_seq);
            args.count.start(report.first_seq, report.next_seq)
        }
    };
    let mut reader = applog::Reader::open(&args.log)?;
    if start > reader.position() {
        reader.seek(start)?;
    }
    if let Some(since) = args.since {
        // The later of --from and --since.
        if reader.seek_time_ns(since)? < start {
            reader.seek(start)?;
        }
    }
    let mut out = Out::new();
    while !stop.reached(reader.position()) {
        let Some(record) = reader.next()? else { break };
        if stop.excludes(&record) {
            break;
        }
        printer.print(&mut out, &record)?;
        if stop.printed(record.seq()) {
            break;
        }
    }
    out.finish()
}

/// How long one wait for a record lasts before the tool looks at the stop flag again.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// How long `tail -f` lets its loop end by itself after SIGINT or SIGTERM before it ends the
/// process: the loop may be stuck in a system call that a signal does not end (a write to a
/// full pipe whose reader does not read, an open that waits).
const GRACE: Duration = Duration::from_millis(500);

/// While records keep coming, how often `tail -f` still checks whether its log directory was
/// replaced (it checks each time it is idle, too).
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Where `tail -f` starts in a log it opens.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// As the arguments say (the last N, or --from), in the log there when the tool started.
    AsAsked,
    /// From the first record: a log that appeared, or replaced the one followed so far.
    First,
}

/// How following one log ended.
enum Ended {
    /// SIGINT or SIGTERM.
    Stopped,
    /// The directory now is another one than the one followed.
    Replaced,
    /// The directory is gone.
    Removed,
    /// A bound (--max, --until-seq) was reached.
    Done,
}

/// `tail -f`: prints from the start seq on, waiting for new records, until SIGINT or SIGTERM.
/// Like `tail -F`, it follows the log directory by name: when the directory is replaced (or
/// removed and made again), it says so and follows the new log from its first record.
fn follow(args: &Args, printer: &Printer) -> Result<(), Failure> {
    let signalled = stop_on_signals()?;
    let mut out = Out::new();
    let mut start = Start::AsAsked;
    let mut said_polling = false;
    let mut stop = args.stop();
    loop {
        if stop.reached(0) {
            return out.finish(); // --max 0
        }
        let Some((mut tailer, id)) = open_tailer(args, start, &signalled)? else {
            return out.finish(); // interrupted while waiting for the log
        };
        if stop.reached(tailer.position()) {
            return out.finish(); // it starts at or past --until-seq
        }
        let mut following = Following {
            args,
            printer,
            signalled: &signalled,
            out: &mut out,
            said_polling: &mut said_polling,
            stop: &mut stop,
        };
        let ended = following.log(&mut tailer, id)?;
        let log = args.log.display();
        match ended {
            Ended::Stopped | Ended::Done => return out.finish(),
            Ended::Replaced => note(format_args!(
                "{log} was replaced; following the new log from its first record"
            )),
            Ended::Removed => note(format_args!(
                "{log} was removed; waiting for a new log there, to follow it from its first record"
            )),
        }
        start = Start::First;
    }
}

/// What following carries from one log to the next.
struct Following<'a> {
    args: &'a Args,
    printer: &'a Printer,
    /// Set on SIGINT or SIGTERM.
    signalled: &'a AtomicBool,
    out: &'a mut Out,
    said_polling: &'a mut bool,
    stop: &'a mut Stop,
}

impl Following<'_> {
    /// Prints the records of one log until a signal, until a bound is reached, or until its
    /// directory is replaced or removed.
    fn log(&mut self, tailer: &mut applog::Tailer, id: DirId) -> Result<Ended, Failure> {
        let mut checked = Instant::now();
        while !self.signalled.load(Ordering::Relaxed) {
            match tailer.next_timeout(POLL) {
                Ok(Some(record)) => {
                    if self.stop.excludes(&record) {
                        return Ok(Ended::Done);
                    }
                    self.printer.print(self.out, &record)?;
                    // Someone is waiting for it: no record stays in the buffer.
                    self.out.flush()?;
                    if self.stop.printed(record.seq()) {
                        return Ok(Ended::Done);
                    }
                    if checked.elapsed() < CHECK_EVERY {
                        continue;
                    }
                }
                Ok(None) => {
                    // Idle: notice a reader that went away without waiting for the next record.
                    if stdout_closed() {
                        return Err(Failure::Closed);
                    }
                    if self.stop.passed(crate::times::now_ns()) {
                        return Ok(Ended::Done);
                    }
                    if !*self.said_polling {
                        if let Some(file) = tailer.polling_fallback() {
                            note(format_args!(
                                "no write access to {}: waiting by polling (up to 2 ms latency)",
                                file.display()
                            ));
                            *self.said_polling = true;
                        }
                    }
                }
                // A directory removed or replaced under the tailer can fail it (the next
                // segment cannot be listed): that is no error of the log.
                Err(e) => return changed(&self.args.log, id).ok_or(Failure::Log(e)),
            }
            checked = Instant::now();
            if let Some(ended) = changed(&self.args.log, id) {
                return Ok(ended);
            }
        }
        Ok(Ended::Stopped)
    }
}

/// Device and inode of a directory.
type DirId = (u64, u64);

/// The identity of the directory at `log`: `Ok(None)` when nothing (or no directory) is there.
fn dir_id(log: &Path) -> std::io::Result<Option<DirId>> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(log) {
        Ok(m) if m.is_dir() => Ok(Some((m.dev(), m.ino()))),
        Ok(_) => Ok(None),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether the directory at `log` is no longer the one followed (`id`). A directory that
/// cannot be looked at (no permission on a parent) counts as unchanged.
fn changed(log: &Path, id: DirId) -> Option<Ended> {
    match dir_id(log) {
        Ok(Some(now)) if now != id => Some(Ended::Replaced),
        Ok(Some(_)) | Err(_) => None,
        Ok(None) => Some(Ended::Removed),
    }
}

/// Sets the returned flag on SIGINT or SIGTERM, for the loop to end with exit 0. If the loop
/// has not ended `GRACE` after the signal, the process ends there, with exit 0 too: every
/// record printed was flushed, so nothing is lost but a record whose write was stuck.
pub(crate) fn stop_on_signals() -> Result<Arc<AtomicBool>, Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let signal_error = |source| Failure::Io {
        what: "could not install a signal handler",
        source,
    };
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(signal_error)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                flag.store(true, Ordering::Relaxed);
                std::thread::sleep(GRACE);
                std::process::exit(0);
            }
        })
        .map_err(signal_error)?;
    Ok(stop)
}

/// Whether standard output is a pipe whose reader has gone (poll reports an error on it).
pub(crate) fn stdout_closed() -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    let fd = stdout.as_fd();
    let mut fds = [PollFd::new(&fd, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

/// Opens a tailer at the seq `tail -f` starts from, waiting for the log to appear, with the
/// identity of its directory. `None` when a signal came first. The first time it has to wait
/// for a log (`Start::AsAsked`), it says so on stderr.
fn open_tailer(
    args: &Args,
    start: Start,
    stop: &AtomicBool,
) -> Result<Option<(applog::Tailer, DirId)>, Failure> {
    let mut waited = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        // The directory's identity before and after the open: the same directory both times
        // is the one the tailer opened.
        let before = dir_id(&args.log);
        match try_open(args, start, waited) {
            Ok(tailer) => match (before, dir_id(&args.log)) {
                (Ok(Some(a)), Ok(Some(b))) if a == b => return Ok(Some((tailer, a))),
                // Replaced meanwhile: open the new one.
                _ => continue,
            },
            Err(e) if not_there_yet(&args.log, &e) => {}
            Err(e) => return Err(e.into()),
        }
        if !waited {
            if start == Start::AsAsked {
                note(format_args!(
                    "there is no log in {} yet; waiting for one to be created",
                    args.log.display()
                ));
            }
            waited = true;
        }
        std::thread::sleep(POLL);
    }
}

/// The tailer for `args`. The last N records are counted when the log is first found; a log
/// that did not exist when the tool started (`appeared`), or one that replaced the log
/// followed so far, is printed from its first record (or from --from, in the former).
fn try_open(args: &Args, start: Start, appeared: bool) -> applog::Result<applog::Tailer> {
    let start = match (start, args.from, args.count, appeared) {
        (Start::First, _, _, _) => 0,
        (Start::AsAsked, Some(from), _, _) => from,
        (Start::AsAsked, None, _, _) if args.since.is_some() => 0,
        (Start::AsAsked, None, Count::FromNth(_), _) => {
            let first = applog::Reader::open(&args.log)?.position();
            args.count.start(first, first)
        }
        (Start::AsAsked, None, Count::Last(_), true) => 0,
        (Start::AsAsked, None, Count::Last(_), false) => {
            let report = applog::verify(&args.log)?;
            if let Some(c) = report.corruptions.into_iter().next() {
                return Err(applog::Error::Corrupt {
                    segment: c.segment,
                    offset: c.offset,
                    reason: c.reason,
                });
            }
            args.count.start(report.first_seq, report.next_seq)
        }
    };
    let mut tailer = match applog::Tailer::open(&args.log, start) {
        // Before the first record: start at the first record, as without -f.
        Err(applog::Error::SeqBeforeStart { first_seq, .. }) => {
            applog::Tailer::open(&args.log, first_seq)
        }
        other => other,
    }?;
    if let Some(since) = args.since {
        // The later of the start and --since (a replaced log is followed from --since too).
        let at = applog::Reader::open(&args.log)?.seek_time_ns(since)?;
        if at >= tailer.position() {
            tailer.seek_time(std::time::UNIX_EPOCH + Duration::from_nanos(since))?;
        }
    }
    Ok(tailer)
}

/// Whether `e` only means that the log has not been created yet: the directory is missing,
/// or it exists but holds nothing yet (or only what a writer creating the log has made so far).
pub(crate) fn not_there_yet(log: &Path, e: &applog::Error) -> bool {
    match e {
        applog::Error::Io { source, path, .. } if path == log => {
            source.kind() == std::io::ErrorKind::NotFound
        }
        // Listed again now: a writer may have created its lock file since (then the next try
        // opens the log), but a directory holding anything else is not a log.
        applog::Error::NotALog { path, .. } if path == log => {
            std::fs::read_dir(log).is_ok_and(|mut entries| {
                entries.all(|e| {
                    e.is_ok_and(|e| {
                        let name = e.file_name();
                        name == applog::LOCK_FILE
                            || std::path::Path::new(&name).extension() == Some("seg".as_ref())
                    })
                })
            })
        }
        _ => false,
    }
}
