//! `applog`: the command-line tool for applog logs.
//!
//! A thin layer over the library: `main` parses the command line and dispatches to one small
//! module per command (`append`, `tail`, `verify`, `info`), each with a `run` function. Shared
//! pieces live beside them: `Failure` (what a command can end with), `Out` (standard output,
//! where a closed pipe is a quiet stop), and `encode` (JSON strings, base64, hex dumps).
//!
//! Streams and exit status: data goes to stdout, diagnostics to stderr as
//! `applog: error: <message>`; exit 0 on success, 1 when the log is corrupt or locked or an
//! operation failed, 2 for bad usage (clap's own errors).

use std::error::Error as _;
use std::fmt;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Append to, read, check and describe applog logs.
///
/// A log is a directory of segment files (`<20-digit first seq>.seg`) and a lock file.
/// Data goes to standard output and diagnostics to standard error. Exit status: 0 success;
/// 1 the log is corrupt or locked, or the operation failed; 2 bad usage. Set RUST_LOG (for
/// example RUST_LOG=debug) to see the library's events; the default is `warn`.
#[derive(Debug, Parser)]
#[command(name = "applog", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Append(append::Args),
    Tail(tail::Args),
    Verify(verify::Args),
    Info(info::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Append(args) => append::run(args),
        Command::Tail(args) => tail::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Info(args) => info::run(args),
    };
    match result {
        Ok(()) | Err(Failure::Closed) => ExitCode::SUCCESS,
        Err(failure) => {
            report_error(&failure);
            ExitCode::FAILURE
        }
    }
}

/// Library events (`tracing`) go to stderr, filtered by `RUST_LOG` (default `warn`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();
}

/// Prints `applog: error: <message>: <source>: <source>...` to stderr.
fn report_error(failure: &Failure) {
    let mut line = format!("applog: error: {failure}");
    let mut source = failure.source();
    while let Some(cause) = source {
        line.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    // Nothing sensible is left to do if stderr is gone too.
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Prints `applog: note: <message>` to stderr.
fn note(message: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "applog: note: {message}");
}

/// How a command can end other than with success. Each variant but `Closed` means exit 1.
#[derive(Debug)]
enum Failure {
    /// The library failed; its message names the file (and offset) concerned.
    Log(applog::Error),
    /// An I/O error outside the library (standard input or output).
    Io {
        /// What was being done.
        what: &'static str,
        source: io::Error,
    },
    /// A condition that is no I/O error, such as a corrupt log found by `verify`.
    Msg(String),
    /// Standard output was closed by its reader (`applog tail LOG | head -1`): stop quietly.
    Closed,
}

impl Failure {
    /// A failed write to standard output: a broken pipe is a quiet stop, the rest an error.
    fn output(e: io::Error) -> Failure {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Failure::Closed
        } else {
            Failure::Io {
                what: "could not write to standard output",
                source: e,
            }
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Log(e) => e.fmt(f),
            Failure::Io { what, .. } => f.write_str(what),
            Failure::Msg(m) => f.write_str(m),
            Failure::Closed => f.write_str("standard output was closed"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Log(e) => e.source(),
            Failure::Io { source, .. } => Some(source),
            Failure::Msg(_) | Failure::Closed => None,
        }
    }
}

impl From<applog::Error> for Failure {
    fn from(e: applog::Error) -> Self {
        Failure::Log(e)
    }
}

/// Buffered standard output. Every write error becomes a [`Failure`] ([`Failure::Closed`] for
/// a broken pipe), so `write!(out, ...)?` works inside a command.
struct Out {
    w: BufWriter<io::StdoutLock<'static>>,
}

impl Out {
    fn new() -> Out {
        Out {
            w: BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        }
    }

    /// For `write!` and `writeln!`.
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<(), Failure> {
        self.w.write_fmt(args).map_err(Failure::output)
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), Failure> {
        self.w.write_all(b).map_err(Failure::output)
    }

    /// Flushes; call it before a command returns so that a failed write is reported.
    fn finish(mut self) -> Result<(), Failure> {
        self.w.flush().map_err(Failure::output)
    }
}

/// Output format of the reports (`verify`, `info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// Aligned text for people.
    Text,
    /// One JSON object on one line.
    Json,
}

/// Tiny encoders, so that the tool needs no serialization crates.
mod encode {
    use std::fmt::Write as _;

    /// `s` as a JSON string, quotes included: `"`, `\` and control characters are escaped
    /// (control characters as `\u00XX`).
    pub fn json_str(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    /// A path as a JSON string (lossy when it is not UTF-8).
    pub fn json_path(p: &std::path::Path) -> String {
        json_str(&p.to_string_lossy())
    }

    /// Standard base64 (RFC 4648 alphabet, `=` padding).
    pub fn base64(data: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let sextet = |n: u32, shift: u32| char::from(ALPHABET[((n >> shift) & 63) as usize]);
        let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
        for chunk in data.chunks(3) {
            let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
            let n = (b(0) << 16) | (b(1) << 8) | b(2);
            out.push(sextet(n, 18));
            out.push(sextet(n, 12));
            out.push(if chunk.len() > 1 { sextet(n, 6) } else { '=' });
            out.push(if chunk.len() > 2 { sextet(n, 0) } else { '=' });
        }
        out
    }

    /// `hexdump -C` lines: offset, 16 bytes in hex, the printable ASCII.
    pub fn hex_dump(data: &[u8]) -> String {
        let mut out = String::with_capacity(data.len().div_ceil(16) * 79);
        for (i, chunk) in data.chunks(16).enumerate() {
            let _ = write!(out, "{:08x} ", i * 16);
            for j in 0..16 {
                if j == 8 {
                    out.push(' ');
                }
                match chunk.get(j) {
                    Some(b) => {
                        let _ = write!(out, " {b:02x}");
                    }
                    None => out.push_str("   "),
                }
            }
            out.push_str("  |");
            out.extend(chunk.iter().map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    char::from(b)
                } else {
                    '.'
                }
            }));
            out.push_str("|\n");
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn base64_matches_rfc4648_vectors() {
            let cases: [(&str, &str); 7] = [
                ("", ""),
                ("f", "Zg=="),
                ("fo", "Zm8="),
                ("foo", "Zm9v"),
                ("foob", "Zm9vYg=="),
                ("fooba", "Zm9vYmE="),
                ("foobar", "Zm9vYmFy"),
            ];
            for (plain, encoded) in cases {
                assert_eq!(base64(plain.as_bytes()), encoded);
            }
            assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x41]), "//4AQQ==");
        }

        #[test]
        fn json_escapes_quotes_backslashes_and_controls() {
            assert_eq!(
                json_str("a\"b\\c\n\t\u{1}é"),
                r#""a\"b\\c\u000a\u0009\u0001é""#
            );
        }

        #[test]
        fn hex_dump_is_hexdump_c() {
            assert_eq!(
                hex_dump(b"hello world\n"),
                "00000000  68 65 6c 6c 6f 20 77 6f  72 6c 64 0a              |hello world.|\n"
            );
            assert_eq!(hex_dump(b""), "");
        }
    }
}

/// Lines for a torn tail and for corruptions, shared by `verify` and `info`.
mod problems {
    use crate::encode::{json_path, json_str};

    pub fn torn_tail_text(t: &applog::TornTail) -> String {
        let mut s = format!(
            "{} at byte offset {}: {} (not corruption: the next writer cuts it)",
            t.segment.display(),
            t.offset,
            t.reason
        );
        for later in &t.later_segments {
            s.push_str(&format!("; it also removes {}", later.display()));
        }
        s
    }

    pub fn torn_tail_json(t: Option<&applog::TornTail>) -> String {
        let Some(t) = t else {
            return "null".into();
        };
        let later: Vec<String> = t.later_segments.iter().map(|p| json_path(p)).collect();
        format!(
            r#"{{"segment":{},"offset":{},"reason":{},"later_segments":[{}]}}"#,
            json_path(&t.segment),
            t.offset,
            json_str(&t.reason),
            later.join(",")
        )
    }

    pub fn corruption_text(c: &applog::Corruption) -> String {
        format!(
            "{} at byte offset {}: {}",
            c.segment.display(),
            c.offset,
            c.reason
        )
    }

    pub fn corruptions_json(cs: &[applog::Corruption]) -> String {
        let items: Vec<String> = cs
            .iter()
            .map(|c| {
                format!(
                    r#"{{"segment":{},"offset":{},"reason":{}}}"#,
                    json_path(&c.segment),
                    c.offset,
                    json_str(&c.reason)
                )
            })
            .collect();
        format!("[{}]", items.join(","))
    }

    /// The exit-1 failure for a corrupt log.
    pub fn corrupt_failure(log: &std::path::Path, report: &applog::VerifyReport) -> crate::Failure {
        let n = report.corruptions.len();
        let first = report
            .corruptions
            .first()
            .map(corruption_text)
            .unwrap_or_default();
        crate::Failure::Msg(format!(
            "the log {} is corrupt: {n} problem{}, the first in {first}",
            log.display(),
            if n == 1 { "" } else { "s" }
        ))
    }
}

mod append {
    use std::io::BufRead;
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;

    use crate::{note, Failure};

    /// Append records to a log (created when missing), then sync them.
    ///
    /// Each RECORD argument is one record. With none, standard input is read one record per
    /// line (the newline removed; other bytes, `\r` included, are kept), and each line is
    /// appended as it arrives, so readers see it at once. Exit 0 means every record is durable.
    #[derive(Debug, clap::Args)]
    pub struct Args {
        /// The log directory.
        #[arg(value_name = "LOG")]
        log: PathBuf,
        /// Records to append, one per argument (bytes as given).
        #[arg(value_name = "RECORD")]
        records: Vec<std::ffi::OsString>,
        /// Size of each new segment, in pages of the system's page size (existing segments keep
        /// theirs); a record must fit in one segment.
        #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
        segment_pages: u32,
    }

    pub fn run(args: Args) -> Result<(), Failure> {
        let opts = applog::Options::new().segment_pages(args.segment_pages);
        let mut writer = applog::Writer::open(&args.log, opts)?;
        let first = writer.next_seq();
        let appended = if args.records.is_empty() {
            append_lines(&mut writer, std::io::stdin().lock())
        } else {
            let records: Vec<&[u8]> = args.records.iter().map(|r| r.as_bytes()).collect();
            writer
                .append_batch(&records)
                .map(|_| ())
                .map_err(Failure::from)
        };
        let next = writer.next_seq();
        match appended {
            Ok(()) => {
                writer.close()?;
                tracing::debug!(first, next, "appended");
                Ok(())
            }
            Err(failure) => {
                // Keep what was appended before the failure, and say how far it got.
                if next > first {
                    match writer.close() {
                        Ok(()) => note(format_args!(
                            "appended and synced {} (seq {first}..{next}) before the error",
                            records(next - first)
                        )),
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

    /// Appends each line of `input` as it arrives. Memory stays bounded by one record: a line
    /// longer than a record can be is an error, found before it is read to its end.
    fn append_lines(writer: &mut applog::Writer, mut input: impl BufRead) -> Result<(), Failure> {
        let max = writer.max_record_len();
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            number += 1;
            let n = std::io::Read::take(&mut input, max.saturating_add(2))
                .read_until(b'\n', &mut line)
                .map_err(|source| Failure::Io {
                    what: "could not read standard input",
                    source,
                })?;
            if n == 0 {
                return Ok(());
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.len() as u64 > max {
                return Err(Failure::Msg(format!(
                    "line {number} of standard input is longer than the {max} bytes a record can hold (raise --segment-pages)"
                )));
            }
            writer.append(&line)?;
        }
    }
}

mod tail {
    use std::path::PathBuf;

    use crate::encode::{base64, hex_dump, json_str};
    use crate::{Failure, Out};

    /// Print the last records of a log, or every record from a seq on.
    ///
    /// Prints what the log holds now and stops (it does not wait for new records).
    #[derive(Debug, clap::Args)]
    pub struct Args {
        /// The log directory.
        #[arg(value_name = "LOG")]
        log: PathBuf,
        /// How many of the last records to print.
        #[arg(short = 'n', long = "count", value_name = "N", default_value_t = 10)]
        count: u64,
        /// Print every record from this seq on, instead of the last N (a seq before the first
        /// record starts at the first record; one past the end prints nothing).
        #[arg(long, value_name = "SEQ", conflicts_with = "count")]
        from: Option<u64>,
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
}

mod verify {
    use std::path::PathBuf;

    use crate::encode::json_path;
    use crate::problems::{
        corrupt_failure, corruption_text, corruptions_json, torn_tail_json, torn_tail_text,
    };
    use crate::{Failure, Out, ReportFormat};

    /// Check every record of a log, without changing anything.
    ///
    /// Prints a summary and every problem with its segment file and byte offset. A torn tail
    /// (bytes after the last record, left by a crash) is reported but is not corruption: the
    /// next writer cuts it. Exit 0 when the log is clean, 1 when it is corrupt.
    #[derive(Debug, clap::Args)]
    pub struct Args {
        /// The log directory.
        #[arg(value_name = "LOG")]
        log: PathBuf,
        /// How to print the report.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    }

    pub fn run(args: Args) -> Result<(), Failure> {
        let report = applog::verify(&args.log)?;
        let printed = print(&args, &report);
        if !report.is_clean() {
            // Even when stdout was closed early: a corrupt log is never exit 0.
            return Err(corrupt_failure(&args.log, &report));
        }
        printed
    }

    fn print(args: &Args, r: &applog::VerifyReport) -> Result<(), Failure> {
        let mut out = Out::new();
        match args.format {
            ReportFormat::Text => {
                writeln!(out, "log        {}", args.log.display())?;
                writeln!(out, "segments   {}", r.segments.len())?;
                writeln!(out, "records    {}", r.records)?;
                writeln!(out, "first seq  {}", r.first_seq)?;
                writeln!(out, "next seq   {}", r.next_seq)?;
                writeln!(out, "bytes      {}", r.bytes)?;
                if let Some(t) = &r.torn_tail {
                    writeln!(out, "torn tail  {}", torn_tail_text(t))?;
                }
                for c in &r.corruptions {
                    writeln!(out, "corrupt    {}", corruption_text(c))?;
                }
                let status = match (r.is_clean(), r.torn_tail.is_some()) {
                    (true, false) => "clean".to_string(),
                    (true, true) => "clean (with a torn tail)".to_string(),
                    (false, _) => format!(
                        "CORRUPT ({} problem{})",
                        r.corruptions.len(),
                        if r.corruptions.len() == 1 { "" } else { "s" }
                    ),
                };
                writeln!(out, "status     {status}")?;
            }
            ReportFormat::Json => writeln!(
                out,
                r#"{{"log":{},"clean":{},"segments":{},"records":{},"first_seq":{},"next_seq":{},"bytes":{},"torn_tail":{},"corruptions":{}}}"#,
                json_path(&args.log),
                r.is_clean(),
                r.segments.len(),
                r.records,
                r.first_seq,
                r.next_seq,
                r.bytes,
                torn_tail_json(r.torn_tail.as_ref()),
                corruptions_json(&r.corruptions),
            )?,
        }
        out.finish()
    }
}

mod info {
    use std::io::Read;
    use std::path::{Path, PathBuf};

    use crate::encode::{json_path, json_str};
    use crate::problems::{corrupt_failure, corruptions_json, torn_tail_json, torn_tail_text};
    use crate::{Failure, Out, ReportFormat};

    /// Describe a log: its segments with their seq ranges and sizes, and whether a writer has
    /// it open now.
    ///
    /// Exit 1 when the log is corrupt (see `applog verify` for the details).
    #[derive(Debug, clap::Args)]
    pub struct Args {
        /// The log directory.
        #[arg(value_name = "LOG")]
        log: PathBuf,
        /// How to print the description.
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    }

    /// A segment's report with what its header adds.
    struct Segment<'a> {
        report: &'a applog::SegmentReport,
        /// From the header; `None` when it cannot be read (blank, or damaged).
        header: Option<applog::format::SegmentHeader>,
    }

    impl Segment<'_> {
        fn name(&self) -> String {
            self.report.path.file_name().map_or_else(
                || self.report.path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        }

        fn next_seq(&self) -> u64 {
            self.report.base_seq + self.report.records
        }
    }

    fn read_header(path: &Path) -> Option<applog::format::SegmentHeader> {
        let mut buf = [0u8; applog::format::HEADER_LEN as usize];
        std::fs::File::open(path).ok()?.read_exact(&mut buf).ok()?;
        applog::format::SegmentHeader::decode(&buf).ok()
    }

    pub fn run(args: Args) -> Result<(), Failure> {
        // verify first: it tells "not a log" apart from other errors.
        let report = applog::verify(&args.log)?;
        let locked = applog::is_locked(&args.log)?;
        let segments: Vec<Segment<'_>> = report
            .segments
            .iter()
            .map(|report| Segment {
                report,
                header: read_header(&report.path),
            })
            .collect();
        let page_size = segments
            .iter()
            .rev()
            .find_map(|s| s.header.map(|h| h.page_size));
        let printed = match args.format {
            ReportFormat::Text => print_text(&args.log, &report, &segments, page_size, locked),
            ReportFormat::Json => print_json(&args.log, &report, &segments, page_size, locked),
        };
        if !report.is_clean() {
            return Err(corrupt_failure(&args.log, &report));
        }
        printed
    }

    fn print_text(
        log: &Path,
        r: &applog::VerifyReport,
        segments: &[Segment<'_>],
        page_size: Option<u32>,
        locked: bool,
    ) -> Result<(), Failure> {
        let mut out = Out::new();
        writeln!(out, "log        {}", log.display())?;
        let writer = if locked {
            "yes (a writer has the log open)"
        } else {
            "no"
        };
        writeln!(out, "locked     {writer}")?;
        match page_size {
            Some(p) => writeln!(out, "page size  {p} bytes")?,
            None => writeln!(out, "page size  unknown (no readable segment header)")?,
        }
        writeln!(out, "segments   {}", segments.len())?;
        writeln!(out, "records    {}", r.records)?;
        writeln!(out, "first seq  {}", r.first_seq)?;
        writeln!(out, "next seq   {}", r.next_seq)?;
        writeln!(out, "bytes      {}", r.bytes)?;
        let status = match (&r.torn_tail, r.is_clean()) {
            (_, false) => format!(
                "CORRUPT ({} problems; see applog verify)",
                r.corruptions.len()
            ),
            (Some(t), true) => format!("torn tail in {}", torn_tail_text(t)),
            (None, true) => "clean".into(),
        };
        writeln!(out, "status     {status}")?;
        writeln!(out)?;
        writeln!(
            out,
            "{:<24} {:>10} {:>10} {:>9} {:>11} {:>11} {:>7}  sealed",
            "segment", "first seq", "next seq", "records", "size", "reservation", "pages"
        )?;
        for s in segments {
            let pages = s
                .header
                .map_or("-".to_string(), |h| h.segment_pages.to_string());
            writeln!(
                out,
                "{:<24} {:>10} {:>10} {:>9} {:>11} {:>11} {:>7}  {}",
                s.name(),
                s.report.base_seq,
                s.next_seq(),
                s.report.records,
                s.report.file_size,
                s.report.reservation,
                pages,
                if s.report.sealed { "yes" } else { "no" }
            )?;
        }
        out.finish()
    }

    fn print_json(
        log: &Path,
        r: &applog::VerifyReport,
        segments: &[Segment<'_>],
        page_size: Option<u32>,
        locked: bool,
    ) -> Result<(), Failure> {
        let opt = |v: Option<u32>| v.map_or("null".to_string(), |v| v.to_string());
        let items: Vec<String> = segments
            .iter()
            .map(|s| {
                format!(
                    r#"{{"file":{},"first_seq":{},"next_seq":{},"records":{},"data_end":{},"file_size":{},"reservation":{},"pages":{},"page_size":{},"sealed":{},"synced_mark":{}}}"#,
                    json_str(&s.name()),
                    s.report.base_seq,
                    s.next_seq(),
                    s.report.records,
                    s.report.data_end,
                    s.report.file_size,
                    s.report.reservation,
                    opt(s.header.map(|h| h.segment_pages)),
                    opt(s.header.map(|h| h.page_size)),
                    s.report.sealed,
                    s.report.synced_mark,
                )
            })
            .collect();
        let mut out = Out::new();
        writeln!(
            out,
            r#"{{"log":{},"locked":{locked},"page_size":{},"first_seq":{},"next_seq":{},"records":{},"bytes":{},"clean":{},"torn_tail":{},"corruptions":{},"segments":[{}]}}"#,
            json_path(log),
            opt(page_size),
            r.first_seq,
            r.next_seq,
            r.records,
            r.bytes,
            r.is_clean(),
            torn_tail_json(r.torn_tail.as_ref()),
            corruptions_json(&r.corruptions),
            items.join(","),
        )?;
        out.finish()
    }
}
