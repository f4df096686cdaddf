//! `applog append`: records from arguments or standard input.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::{note, Failure, Out};

/// Append records to a log (created when missing), then sync them.
///
/// Each RECORD argument is one record. With none, standard input is read one record per line
/// (the newline removed; other bytes, `\r` included, are kept), and each line is appended as
/// it arrives, so readers see it at once. While input streams in, the records so far are
/// synced whenever input pauses and at least once a second. Exit 0 means every record is
/// durable.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// Records to append, one per argument (bytes as given).
    #[arg(value_name = "RECORD")]
    records: Vec<std::ffi::OsString>,
    /// Split standard input on NUL bytes instead of newlines (as `find -print0` writes).
    #[arg(long, conflicts_with_all = ["records", "whole"])]
    nul: bool,
    /// Take all of standard input as one record.
    #[arg(long, conflicts_with = "records")]
    whole: bool,
    /// Sync after every record (one msync each: slower, but each record is durable at once).
    #[arg(long)]
    sync_each: bool,
    /// Print each record's seq on standard output, one per line, once it is durable: with
    /// --sync-each right after its sync, otherwise after the sync that made it durable. If
    /// standard output is closed (`| head -1`), printing stops and appending goes on.
    #[arg(long)]
    print_seq: bool,
    /// Size of each new segment, in pages of the system's page size; a record must fit in one
    /// segment. Default: the log's own segment size (1000 for a new log). A different value
    /// changes the log's segment size from its next segment on (existing segments keep theirs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    segment_pages: Option<u32>,
    /// Warn on standard error when one sync takes longer than this many seconds (a slow or
    /// overloaded device); also read from the APPLOG_SLOW_SYNC environment variable.
    #[arg(long, value_name = "SECS", env = "APPLOG_SLOW_SYNC", default_value = "1", value_parser = secs)]
    slow_sync: Duration,
}

/// A number of seconds, zero or more (fractions allowed).
pub(crate) fn secs(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("{text:?} is not a number of seconds"))
}

/// While streaming, sync when input pauses this long...
const IDLE: Duration = Duration::from_millis(50);
/// ...and at least this often.
const SYNC_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: Args) -> Result<(), Failure> {
    let mut opts = applog::Options::new().slow_sync(args.slow_sync);
    if let Some(pages) = args.segment_pages {
        opts = opts.segment_pages(pages);
    }
    let writer = applog::Writer::open(&args.log, opts)?;
    let first = writer.next_seq();
    let mut app = Appender {
        durable: first,
        writer,
        sync_each: args.sync_each,
        out: args.print_seq.then(Out::new),
        last_sync: Instant::now(),
    };
    let appended = if args.whole {
        append_whole(&mut app)
    } else if args.records.is_empty() {
        let delimiter = if args.nul { b'\0' } else { b'\n' };
        append_stream(&mut app, delimiter)
    } else {
        let records: Vec<&[u8]> = args.records.iter().map(|r| r.as_bytes()).collect();
        app.add_all(&records)
    };
    let next = app.writer.next_seq();
    match appended.and_then(|()| app.sync()) {
        Ok(()) => {
            app.writer.close()?;
            tracing::debug!(first, next, "appended");
            match app.out {
                // Every record is appended and synced: a reader of the seqs that left early
                // changes nothing about that.
                Some(out) => match out.finish() {
                    Err(Failure::Closed) => Ok(()),
                    other => other,
                },
                None => Ok(()),
            }
        }
        Err(failure) => {
            // Keep what was appended before the failure, and say how far it got.
            if next > first {
                match app.writer.sync() {
                    Ok(()) => {
                        note(format_args!(
                            "appended and synced {} (seq {first}..{next}) before the error",
                            records(next - first)
                        ));
                        let _ = app.print_durable().and_then(|()| match app.out.take() {
                            Some(out) => out.finish(),
                            None => Ok(()),
                        });
                    }
                    Err(e) => note(format_args!(
                        "appended {} (seq {first}..{next}) before the error, but syncing them failed: {e}",
                        records(next - first)
                    )),
                }
            }
            Err(failure)
        }
    }
}

/// "1 record", "2 records".
fn records(n: u64) -> String {
    format!("{n} record{}", if n == 1 { "" } else { "s" })
}

/// The writer, with the sync and seq-printing policy of the command.
struct Appender {
    writer: applog::Writer,
    sync_each: bool,
    /// Standard output, with `--print-seq`.
    out: Option<Out>,
    /// Seqs below this are durable and printed.
    durable: u64,
    last_sync: Instant,
}

impl Appender {
    fn add(&mut self, record: &[u8]) -> Result<(), Failure> {
        self.writer.append(record)?;
        if self.sync_each {
            self.sync()?;
        }
        Ok(())
    }

    fn add_all(&mut self, records: &[&[u8]]) -> Result<(), Failure> {
        if self.sync_each {
            records.iter().try_for_each(|r| self.add(r))
        } else {
            // One batch: readers see all the records at once.
            self.writer.append_batch(records)?;
            Ok(())
        }
    }

    /// Appends records read from a stream: one batch; when the batch fails (a full disk, the
    /// last seq), the records one by one, so that those before the one that cannot be
    /// appended still are, as when each line is appended on its own.
    fn add_stream(&mut self, records: &[&[u8]]) -> Result<(), Failure> {
        if self.sync_each {
            return self.add_all(records);
        }
        let before = self.writer.next_seq();
        match self.writer.append_batch(records) {
            Ok(_) => Ok(()),
            Err(_) => {
                // A batch larger than a segment may have been appended in part.
                let done = usize::try_from(self.writer.next_seq() - before).unwrap_or(0);
                records
                    .get(done..)
                    .unwrap_or_default()
                    .iter()
                    .try_for_each(|r| self.add(r))
            }
        }
    }

    /// Whether records were appended since the last sync.
    fn dirty(&self) -> bool {
        self.writer.next_seq() > self.durable
    }

    /// Syncs, then prints the seqs that became durable.
    fn sync(&mut self) -> Result<(), Failure> {
        self.writer.sync()?;
        self.last_sync = Instant::now();
        self.print_durable()
    }

    /// Prints the seqs that became durable. When their reader has gone (`append --print-seq
    /// | head -1`), printing stops and appending goes on: exit 0 still means that every
    /// record of the input was appended and synced.
    fn print_durable(&mut self) -> Result<(), Failure> {
        let next = self.writer.next_seq();
        if let Some(out) = self.out.as_mut() {
            let printed = (self.durable..next)
                .try_for_each(|seq| writeln!(out, "{seq}"))
                .and_then(|()| out.flush());
            match printed {
                Ok(()) => {}
                Err(Failure::Closed) => self.out = None,
                Err(e) => return Err(e),
            }
        }
        self.durable = next;
        Ok(())
    }
}

/// The input read failed.
fn input_error(source: std::io::Error) -> Failure {
    Failure::Io {
        what: "could not read standard input",
        source,
    }
}

/// Records of standard input already read and not yet appended: appended together with one
/// `append_batch` when the input has no whole record left buffered (so nothing waits for
/// more input), or at these bounds. Small bounds: a batch that does not fit in what is left
/// of the active segment starts a new one.
const BATCH_RECORDS: usize = 256;
const BATCH_BYTES: usize = 16 * 1024;

/// Records collected for one `append_batch`.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Pending {
    fn push(&mut self, record: &[u8]) {
        self.bytes.extend_from_slice(record);
        self.ends.push(self.bytes.len());
    }

    fn full(&self) -> bool {
        self.ends.len() >= BATCH_RECORDS || self.bytes.len() >= BATCH_BYTES
    }

    /// Appends the records (one batch, or one by one with `--sync-each`) and empties.
    fn flush(&mut self, app: &mut Appender) -> Result<(), Failure> {
        if self.ends.is_empty() {
            return Ok(());
        }
        let mut start = 0;
        let records: Vec<&[u8]> = self
            .ends
            .iter()
            .map(|&end| {
                let r = self.bytes.get(start..end).unwrap_or_default();
                start = end;
                r
            })
            .collect();
        let added = app.add_stream(&records);
        self.bytes.clear();
        self.ends.clear();
        if self.bytes.capacity() > 1 << 20 {
            self.bytes = Vec::new(); // do not keep a huge buffer for one long record
        }
        added
    }
}

/// Appends each record of standard input, split at `delimiter`, as it arrives: the records
/// that arrive together (whole in the input buffer) as one batch. Memory stays bounded by
/// one batch: a record longer than a record can be is an error, found before it is read to
/// its end (the records before it are appended). Syncs when input pauses for `IDLE`, and at
/// least every `SYNC_EVERY` while it streams.
fn append_stream(app: &mut Appender, delimiter: u8) -> Result<(), Failure> {
    let stdin = std::io::stdin();
    let mut input = BufReader::with_capacity(64 * 1024, stdin.lock());
    let max = app.writer.max_record_len();
    let mut record = Vec::new();
    let mut pending = Pending::default();
    let mut number = 0u64;
    let what = if delimiter == b'\n' { "line" } else { "record" };
    loop {
        if input.buffer().is_empty()
            && app.dirty()
            && (app.last_sync.elapsed() >= SYNC_EVERY || !ready(&stdin, IDLE))
        {
            app.sync()?;
        }
        record.clear();
        number += 1;
        let n = Read::take(&mut input, max.saturating_add(2))
            .read_until(delimiter, &mut record)
            .map_err(input_error);
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                pending.flush(app)?;
                return Err(e);
            }
        };
        if n == 0 {
            return pending.flush(app);
        }
        if record.last() == Some(&delimiter) {
            record.pop();
        }
        if record.len() as u64 > max {
            pending.flush(app)?;
            return Err(Failure::Msg(format!(
                "{what} {number} of standard input is longer than the {max} bytes a record can hold (raise --segment-pages)"
            )));
        }
        pending.push(&record);
        // The next read would wait for input: append what arrived first.
        if pending.full() || !input.buffer().contains(&delimiter) {
            pending.flush(app)?;
        }
        if record.capacity() > 1 << 20 && record.len() < 1 << 16 {
            record = Vec::new(); // do not keep a huge buffer for one long record
        }
    }
}

/// Whether standard input has data (or an end) within `timeout`. Errors count as ready: the
/// read that follows reports them.
fn ready(stdin: &std::io::Stdin, timeout: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use std::os::fd::AsFd;
    let fd = stdin.as_fd();
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: 0,
        tv_nsec: timeout.subsec_nanos().into(),
    };
    !matches!(poll(&mut fds, Some(&timeout)), Ok(0))
}

/// Appends all of standard input as one record.
fn append_whole(app: &mut Appender) -> Result<(), Failure> {
    let max = app.writer.max_record_len();
    let mut record = Vec::new();
    std::io::stdin()
        .lock()
        .take(max.saturating_add(1))
        .read_to_end(&mut record)
        .map_err(input_error)?;
    if record.len() as u64 > max {
        return Err(Failure::Msg(format!(
            "standard input is longer than the {max} bytes a record can hold (raise --segment-pages)"
        )));
    }
    app.add(&record)
}
