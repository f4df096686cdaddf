//! `applog stats`: the live figures of a log (its end, durability, append rate, the writer's
//! counters, consumers' lag, free space), once or refreshed like `top`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use applog::{ConsumerState, Stats, WriterFigures, WriterState};
use serde::Serialize;

use crate::tail::{stdout_closed, stop_on_signals};
use crate::times::rfc3339_secs as rfc3339;
use crate::{Failure, Out, ReportFormat};

/// Show a log's live figures: records, bytes and segments; first, next and durable seq; the
/// append rate and the durable lag (records appended but not yet durable); the writer's
/// counters (syncs, slow syncs, the last sync's duration), its pid and start, and whether it
/// runs; each consumer's lag; the free space on the log's file system.
///
/// It takes no lock and changes nothing, so it runs beside the writer, or on a log no writer
/// has open (the figures then come from the segments). With -f it refreshes every --interval
/// seconds until interrupted (SIGINT or SIGTERM end it with exit 0): on a terminal it redraws
/// the screen; otherwise it prints one block (or one JSON line) per interval.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// Refresh until interrupted.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Seconds between refreshes with -f (more than 0; fractions allowed).
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = interval, requires = "follow")]
    interval: Duration,
    /// How to print the figures.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
}

/// A number of seconds above 0 and at most a day (fractions allowed).
fn interval(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0 && *s <= 86_400.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a number of seconds above 0 (and at most 86400)"))
}

/// What one refresh prints, as JSON (and, formatted, as text).
#[derive(Serialize)]
struct Report {
    log: String,
    /// When the figures were read.
    time: String,
    records: u64,
    bytes: u64,
    segments: usize,
    first_seq: u64,
    next_seq: u64,
    durable_seq: u64,
    /// Records appended but not yet durable.
    durable_lag: u64,
    /// Records per second: over the last interval with -f, else the writer's average since
    /// it opened the log (`null` when unknown).
    append_rate: Option<f64>,
    locked: bool,
    writer: Writer,
    free_bytes: Option<u64>,
    consumers: Vec<Consumer>,
}

#[derive(Serialize)]
struct Writer {
    /// Whether a writer runs now.
    live: bool,
    /// `open`, `closed`, `released`, `missing` (no stats file) or `unreadable`.
    state: &'static str,
    /// Why the stats file is not used, when it is unreadable.
    error: Option<String>,
    pid: Option<u32>,
    started: Option<String>,
    /// Since it opened the log.
    records: Option<u64>,
    bytes: Option<u64>,
    syncs: Option<u64>,
    slow_syncs: Option<u64>,
    last_sync_ns: Option<u64>,
    updated: Option<String>,
}

#[derive(Serialize)]
struct Consumer {
    name: String,
    next_seq: u64,
    lag: u64,
    lag_bytes: u64,
    state: &'static str,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mut out = Out::new();
    if !args.follow {
        let report = report(&args.log, None)?;
        print(&mut out, args.format, &report, false)?;
        return out.finish();
    }
    let stop = stop_on_signals()?;
    let redraw = std::io::stdout().is_terminal() && args.format == ReportFormat::Text;
    let mut prev: Option<(Instant, u64)> = None;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let report = report(&args.log, prev)?;
        prev = Some((now, report.next_seq));
        print(&mut out, args.format, &report, redraw)?;
        out.flush()?;
        let until = now + args.interval;
        while !stop.load(Ordering::Relaxed) {
            if stdout_closed() {
                return Err(Failure::Closed);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(crate::tail::POLL));
        }
    }
    out.finish()
}

/// Reads the figures; `prev` is when the previous refresh read them and the next seq then.
fn report(log: &Path, prev: Option<(Instant, u64)>) -> Result<Report, Failure> {
    let s = applog::stats(log)?;
    let consumers = applog::consumers(log)?
        .into_iter()
        .map(|c| Consumer {
            state: match c.state {
                ConsumerState::Active { .. } => "active",
                ConsumerState::Parked { .. } => "parked",
                _ => "idle",
            },
            name: c.name,
            next_seq: c.next_seq,
            lag: c.lag,
            lag_bytes: c.lag_bytes,
        })
        .collect();
    #[allow(clippy::cast_precision_loss)]
    let append_rate = match prev {
        Some((at, seq)) => {
            let secs = at.elapsed().as_secs_f64();
            (secs > 0.0).then(|| s.next_seq.saturating_sub(seq) as f64 / secs)
        }
        None => s.writer_stats().filter(|_| s.writer_live()).and_then(|w| {
            let secs = w.updated.duration_since(w.started).ok()?.as_secs_f64();
            (secs > 0.0).then(|| w.records as f64 / secs)
        }),
    };
    Ok(Report {
        log: log.display().to_string(),
        time: rfc3339(SystemTime::now()),
        records: s.records(),
        bytes: s.bytes,
        segments: s.segments,
        first_seq: s.first_seq,
        next_seq: s.next_seq,
        durable_seq: s.durable_seq,
        durable_lag: s.durable_lag(),
        append_rate,
        locked: s.locked,
        writer: writer(&s),
        free_bytes: s.free_bytes,
        consumers,
    })
}

fn writer(s: &Stats) -> Writer {
    let mut w = Writer {
        live: s.writer_live(),
        state: "missing",
        error: None,
        pid: None,
        started: None,
        records: None,
        bytes: None,
        syncs: None,
        slow_syncs: None,
        last_sync_ns: None,
        updated: None,
    };
    match &s.writer {
        WriterFigures::Valid(f) => {
            w.state = f.state.as_str();
            w.pid = Some(f.pid);
            w.started = Some(rfc3339(f.started));
            w.records = Some(f.records);
            w.bytes = Some(f.bytes);
            w.syncs = Some(f.syncs);
            w.slow_syncs = Some(f.slow_syncs);
            w.last_sync_ns = Some(u64::try_from(f.last_sync.as_nanos()).unwrap_or(u64::MAX));
            w.updated = Some(rfc3339(f.updated));
            // Open in the file, but no lock: it died without letting go.
            if f.state == WriterState::Open && !s.locked {
                w.state = "died";
            }
        }
        WriterFigures::Unreadable(e) => {
            w.state = "unreadable";
            w.error = Some(e.to_string());
        }
        _ => {}
    }
    w
}

fn print(out: &mut Out, format: ReportFormat, r: &Report, redraw: bool) -> Result<(), Failure> {
    match format {
        ReportFormat::Json => {
            let line = serde_json::to_string(r).map_err(|e| Failure::Msg(e.to_string()))?;
            writeln!(out, "{line}")
        }
        ReportFormat::Text => {
            if redraw {
                // Home, clear the screen.
                write!(out, "\x1b[H\x1b[2J")?;
            }
            print_text(out, r)
        }
    }
}

fn print_text(out: &mut Out, r: &Report) -> Result<(), Failure> {
    writeln!(out, "log          {}  ({})", r.log, r.time)?;
    writeln!(out, "writer       {}", writer_text(&r.writer))?;
    writeln!(
        out,
        "records      {} in {} segment{}, {}",
        r.records,
        r.segments,
        if r.segments == 1 { "" } else { "s" },
        size(r.bytes)
    )?;
    writeln!(out, "first seq    {}", r.first_seq)?;
    writeln!(out, "next seq     {}", r.next_seq)?;
    writeln!(
        out,
        "durable seq  {} ({} records not durable yet)",
        r.durable_seq, r.durable_lag
    )?;
    match r.append_rate {
        Some(rate) => writeln!(out, "append rate  {rate:.1} records/s")?,
        None => writeln!(out, "append rate  -")?,
    }
    if let (Some(records), Some(bytes), Some(syncs), Some(slow), Some(last)) = (
        r.writer.records,
        r.writer.bytes,
        r.writer.syncs,
        r.writer.slow_syncs,
        r.writer.last_sync_ns,
    ) {
        writeln!(
            out,
            "since open   {records} records, {} appended; {syncs} syncs ({slow} slow), the last took {}",
            size(bytes),
            millis(last)
        )?;
    }
    match r.free_bytes {
        Some(free) => writeln!(out, "disk free    {}", size(free))?,
        None => writeln!(out, "disk free    unknown")?,
    }
    if r.consumers.is_empty() {
        writeln!(out, "consumers    none")?;
    } else {
        let w = r
            .consumers
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(8);
        writeln!(
            out,
            "consumers    {:<w$}  {:>12} {:>12} {:>14}  state",
            "name", "next seq", "lag", "lag bytes"
        )?;
        for c in &r.consumers {
            writeln!(
                out,
                "             {:<w$}  {:>12} {:>12} {:>14}  {}",
                c.name, c.next_seq, c.lag, c.lag_bytes, c.state
            )?;
        }
    }
    writeln!(out)
}

fn writer_text(w: &Writer) -> String {
    let who = match (w.pid, &w.started) {
        (Some(pid), Some(started)) => format!("pid {pid}, opened the log at {started}"),
        _ => String::new(),
    };
    match w.state {
        _ if w.live => format!("running ({who})"),
        "closed" => format!("no writer running; the last one closed cleanly ({who})"),
        "released" => {
            format!("no writer running; the last one let go with records not durable ({who})")
        }
        "died" => format!("no writer running; the last one did not close ({who})"),
        "unreadable" => format!(
            "unknown: {}",
            w.error.as_deref().unwrap_or("unreadable stats file")
        ),
        // Open in the file and locked, but that process is gone: another holds the lock.
        "open" => format!("the log is locked, but not by the writer of its stats file ({who})"),
        _ => "no writer running (none has left figures)".into(),
    }
}

/// Bytes for people: `12.3 MiB (12897484 bytes)`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {} ({bytes} bytes)", UNITS[unit])
}

#[allow(clippy::cast_precision_loss)]
fn millis(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}
