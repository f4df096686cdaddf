//! `applog tail`: the last records, every record from a seq on, or following new ones.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::encode::{base64, hex_dump, json_str};
use crate::{Failure, Out};

/// Print the last records of a log, or every record from a seq on; with -f, keep printing
/// new records as they are appended.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// How many of the last records to print.
    #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 10)]
    count: u64,
    /// Print every record from this seq on, instead of the last N (a seq before the first
    /// record starts at the first record; one past the end prints nothing, or with -f waits
    /// for it).
    #[arg(long, value_name = "SEQ", conflicts_with = "count")]
    from: Option<u64>,
    /// Keep printing records as they are appended, across segment rollovers and writer
    /// restarts, until interrupted (SIGINT or SIGTERM end it with exit 0). A log that does
    /// not exist yet (or an empty directory) is waited for. Output is flushed after each
    /// record.
    #[arg(short = 'f', long)]
    follow: bool,
    /// How to print each record.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// How `tail` prints a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The record's bytes, then a newline.
    Text,
    /// One object per line: {"seq":N,"len":L,"data":"..."}, or "data_b64" in place of
    /// "data" when the record is not UTF-8.
    Json,
    /// A line `seq N len L`, then a `hexdump -C` dump of the bytes.
    Hex,
}

pub fn run(args: Args) -> Result<(), Failure> {
    if args.follow {
        return follow(&args);
    }
    check_headers(&args.log)?;
    // Where to start, and (for the last N) where to stop: the end as of now, so that
    // exactly N records are printed even while a writer appends.
    let (start, end) = match args.from {
        Some(from) => (from, None),
        None => {
            let report = applog::verify(&args.log)?;
            (
                report.next_seq.saturating_sub(args.count),
                Some(report.next_seq),
            )
        }
    };
    let mut reader = applog::Reader::open(&args.log)?;
    if start > reader.position() {
        reader.seek(start)?;
    }
    let mut out = Out::new();
    while let Some(record) = reader.next()? {
        if end.is_some_and(|end| record.seq() >= end) {
            break;
        }
        print_record(&mut out, args.format, record.seq(), record.data())?;
    }
    out.finish()
}

/// How long one wait for a record lasts before the tool looks at the stop flag again.
const POLL: Duration = Duration::from_millis(100);

/// `tail -f`: prints from the start seq on, waiting for new records, until SIGINT or SIGTERM.
fn follow(args: &Args) -> Result<(), Failure> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|source| Failure::Io {
            what: "could not install a signal handler",
            source,
        })?;
    }
    let Some(mut tailer) = open_tailer(args, &stop)? else {
        return Ok(()); // interrupted while waiting for the log
    };
    let mut out = Out::new();
    while !stop.load(Ordering::Relaxed) {
        match tailer.next_timeout(POLL)? {
            Some(record) => {
                print_record(&mut out, args.format, record.seq(), record.data())?;
                // Someone is waiting for it: no record stays in the buffer.
                out.flush()?;
            }
            // Idle: notice a reader that went away without waiting for the next record.
            None if stdout_closed() => return Err(Failure::Closed),
            None => {}
        }
    }
    out.finish()
}

/// Whether standard output is a pipe whose reader has gone (poll reports an error on it).
fn stdout_closed() -> bool {
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

/// Opens a tailer at the seq `tail -f` starts from, waiting for the log to appear. `None`
/// when a signal came first.
fn open_tailer(args: &Args, stop: &AtomicBool) -> Result<Option<applog::Tailer>, Failure> {
    let mut waited = false;
    loop {
        match try_open(args, waited) {
            Ok(tailer) => return Ok(Some(tailer)),
            Err(e) if not_there_yet(&args.log, &e) => {}
            Err(e) => return Err(e.into()),
        }
        if !waited {
            tracing::info!(log = %args.log.display(), "waiting for the log to be created");
            waited = true;
        }
        std::thread::sleep(POLL);
        if stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
    }
}

/// The tailer for `args`. The last N records are counted when the log is first found; a log
/// that did not exist when the tool started is printed from its first record.
fn try_open(args: &Args, appeared: bool) -> applog::Result<applog::Tailer> {
    let start = match (args.from, appeared) {
        (Some(from), _) => from,
        (None, true) => 0,
        (None, false) => applog::verify(&args.log)?
            .next_seq
            .saturating_sub(args.count),
    };
    check_headers(&args.log)?;
    match applog::Tailer::open(&args.log, start) {
        // Before the first record: start at the first record, as without -f.
        Err(applog::Error::SeqBeforeStart { first_seq, .. }) => {
            applog::Tailer::open(&args.log, first_seq)
        }
        other => other,
    }
}

/// Checks the header of every segment file of the log, so that a foreign or damaged segment
/// is an error even where the records read would not reach it. A header still being written
/// (zeros where the magic goes, which the writer stores last) is not judged.
fn check_headers(log: &Path) -> applog::Result<()> {
    use applog::format::{HeaderError, SegmentHeader, HEADER_LEN};
    let Ok(entries) = std::fs::read_dir(log) else {
        return Ok(()); // opening the log reports it
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "seg") || !path.is_file() {
            continue;
        }
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        let read = std::fs::File::open(&path).and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, HEADER_LEN), &mut header)
        });
        match read {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(applog::Error::Io {
                    op: "could not open segment",
                    path,
                    source,
                })
            }
        }
        if header.iter().take(8).all(|&b| b == 0) {
            continue;
        }
        match SegmentHeader::decode(&header) {
            Ok(_) | Err(HeaderError::Blank) => {}
            Err(HeaderError::NotApplog) => {
                return Err(applog::Error::NotALog {
                    path,
                    reason: "the file does not start with the applog segment magic".into(),
                })
            }
            Err(e) => {
                return Err(applog::Error::Corrupt {
                    segment: path,
                    offset: 0,
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// Whether `e` only means that the log has not been created yet: the directory is missing,
/// or it exists but holds nothing yet (or only what a writer creating the log has made so far).
fn not_there_yet(log: &Path, e: &applog::Error) -> bool {
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

fn print_record(out: &mut Out, format: Format, seq: u64, data: &[u8]) -> Result<(), Failure> {
    match format {
        Format::Text => {
            out.bytes(data)?;
            out.bytes(b"\n")
        }
        Format::Json => {
            let len = data.len();
            match std::str::from_utf8(data) {
                Ok(s) => writeln!(out, r#"{{"seq":{seq},"len":{len},"data":{}}}"#, json_str(s)),
                Err(_) => writeln!(
                    out,
                    r#"{{"seq":{seq},"len":{len},"data_b64":"{}"}}"#,
                    base64(data)
                ),
            }
        }
        Format::Hex => {
            writeln!(out, "seq {seq} len {}", data.len())?;
            out.bytes(hex_dump(data).as_bytes())
        }
    }
}
