//! `applog`: the command-line tool for applog logs.
//!
//! A thin layer over the library: `main` parses the command line and dispatches to one small
//! module per command (`append`, `tail`, `verify`, `info`, `stats`, `recover`, `copy`,
//! `consumers`, `trim`, `ship`), each with a `run` function; `tail --name` lives in `tail_named`,
//! `completions` and `man` in `generate`. Shared pieces live beside them: `Failure` (what a
//! command can end with), `Out` (standard output, where a closed pipe is a quiet stop, and
//! JSON lines through serde), `records` (how `tail` prints a record), `tail_bounds` (where it
//! starts and stops), `times` (RFC 3339) and `progress` (the progress indicator of `verify`
//! and `copy`).
//!
//! Streams and exit status: data goes to stdout, diagnostics to stderr as
//! `applog: error: <message>`; exit 0 on success, 1 when the log is corrupt or locked or an
//! operation failed, 2 for bad usage (clap's own errors).

use std::error::Error as _;
use std::fmt;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod append;
mod consumers;
mod copy;
mod generate;
mod info;
mod problems;
mod progress;
mod records;
mod recover;
mod rewind;
mod ship;
mod stats;
mod tail;
mod tail_bounds;
mod tail_named;
mod times;
mod trim;
mod verify;

/// Append to, follow, check, recover, describe and copy applog logs.
///
/// Also: watch a log's live figures (`applog stats`), read it with named consumers that resume
/// where they stopped, list and reset those, trim old segments, cut a log's end or start it
/// again at a seq (`applog cut`, `applog reset`), ship logs into NATS JetStream
/// streams, and print shell completions
/// (`applog completions SHELL`) and the man page (`applog man`).
///
/// A log is a directory of segment files (`<20-digit first seq>.seg`), a lock file, and a
/// `consumers` directory once it has named consumers (`applog tail --name`).
/// Data goes to standard output and diagnostics to standard error. Exit status: 0 success;
/// 1 the log is corrupt or locked, or the operation failed; 2 bad usage. Set RUST_LOG (for
/// example RUST_LOG=debug) to see the library's events; the default is `warn` (for `recover`,
/// whose report lists each repair, `warn,applog::recovery=error`; for `trim`, whose report
/// names each consumer it parks, `warn,applog::retention=error`).
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
    Recover(recover::Args),
    Copy(copy::Args),
    Consumers(consumers::Args),
    Trim(trim::Args),
    Cut(rewind::CutArgs),
    Reset(rewind::ResetArgs),
    Ship(ship::Args),
    Completions(generate::CompletionsArgs),
    Man(generate::ManArgs),
    Stats(stats::Args),
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    // recover reports every repair it makes on stdout, and trim every consumer it parks:
    // the library's warning about each would say it twice.
    init_tracing(match cli.command {
        Command::Recover(_) => "warn,applog::recovery=error",
        Command::Trim(_) => "warn,applog::retention=error",
        _ => "warn",
    });
    let result = match cli.command {
        Command::Append(args) => append::run(args),
        Command::Tail(args) => tail::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Info(args) => info::run(args),
        Command::Recover(args) => recover::run(args),
        Command::Copy(args) => copy::run(args),
        Command::Consumers(args) => consumers::run(args),
        Command::Trim(args) => trim::run(args),
        Command::Cut(args) => rewind::cut(args),
        Command::Reset(args) => rewind::reset(args),
        Command::Ship(args) => ship::run(args),
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
        Command::Stats(args) => stats::run(args),
    };
    match result {
        Ok(()) | Err(Failure::Closed) => ExitCode::SUCCESS,
        Err(failure) => {
            report_error(&failure);
            match failure {
                // An option value the library refuses (a segment size over 2 GiB): bad usage.
                Failure::Log(applog::Error::InvalidOptions(_)) | Failure::Usage(_) => {
                    ExitCode::from(2)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// The command line, with clap's colours (help, errors) off when `NO_COLOR` asks for that.
fn parse() -> Result<Cli, clap::Error> {
    use clap::{CommandFactory, FromArgMatches};
    let mut cmd = Cli::command();
    if no_color() {
        cmd = cmd.color(clap::ColorChoice::Never);
    }
    let matches = cmd.try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

/// Whether `NO_COLOR` is set to something (<https://no-color.org>): then no ANSI colour
/// anywhere, whatever the terminal.
pub(crate) fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Help and version go to stdout with exit 0; a usage error goes to stderr as
/// `applog: error: ...` (with clap's usage hint) and exits 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    let message = match e.kind() {
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            format!("a command is required\n\n{rendered}")
        }
        _ => rendered
            .strip_prefix("error: ")
            .unwrap_or(&rendered)
            .to_string(),
    };
    let _ = write!(io::stderr().lock(), "applog: error: {message}");
    ExitCode::from(2)
}

/// Library events (`tracing`) go to stderr, filtered by `RUST_LOG` (default: `default`). A
/// `RUST_LOG` that does not parse is no reason to fail, nor to be ignored without a word: a
/// warning names the bad directive, and the default filter applies. Colours only on a
/// terminal, and not with `NO_COLOR`.
fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::builder().parse(&spec).unwrap_or_else(|e| {
                warn(format_args!(
                    "ignoring RUST_LOG: {}; using the default filter {default:?}",
                    bad_directives(&spec, &e)
                ));
                EnvFilter::new(default)
            })
        }
        Ok(_) | Err(std::env::VarError::NotPresent) => EnvFilter::new(default),
        Err(std::env::VarError::NotUnicode(_)) => {
            warn(format_args!(
                "ignoring RUST_LOG: it is not UTF-8; using the default filter {default:?}"
            ));
            EnvFilter::new(default)
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal() && !no_color())
        .init();
}

/// What is wrong with the filter `spec`: each directive that does not parse, with why.
fn bad_directives(spec: &str, whole: &dyn std::error::Error) -> String {
    use tracing_subscriber::filter::Directive;
    let bad: Vec<String> = spec
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| {
            d.parse::<Directive>()
                .err()
                .map(|e| format!("invalid directive {d:?} ({e})"))
        })
        .collect();
    if bad.is_empty() {
        format!("invalid filter {spec:?} ({whole})")
    } else {
        bad.join(", ")
    }
}

/// Prints `applog: warning: <message>` to stderr.
fn warn(message: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "applog: warning: {message}");
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
    /// Arguments that parse one by one but not together (`--since` after `--until`): exit 2.
    Usage(String),
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
            Failure::Msg(m) | Failure::Usage(m) => f.write_str(m),
            Failure::Closed => f.write_str("standard output was closed"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Log(e) => e.source(),
            Failure::Io { source, .. } => Some(source),
            Failure::Msg(_) | Failure::Usage(_) | Failure::Closed => None,
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

    /// `value` as one line of JSON.
    fn json(&mut self, value: &impl serde::Serialize) -> Result<(), Failure> {
        serde_json::to_writer(&mut self.w, value).map_err(|e| {
            if e.is_io() {
                Failure::output(e.into())
            } else {
                // Only a map with keys that are no strings fails otherwise: none is written.
                Failure::Msg(format!("could not write JSON: {e}"))
            }
        })?;
        self.bytes(b"\n")
    }

    fn bytes(&mut self, b: &[u8]) -> Result<(), Failure> {
        self.w.write_all(b).map_err(Failure::output)
    }

    /// How many bytes are buffered, not yet written.
    fn buffered(&self) -> usize {
        self.w.buffer().len()
    }

    /// Flushes what is buffered (per record, when someone waits for it).
    fn flush(&mut self) -> Result<(), Failure> {
        self.w.flush().map_err(Failure::output)
    }

    /// Flushes; call it before a command returns so that a failed write is reported.
    fn finish(mut self) -> Result<(), Failure> {
        self.flush()
    }
}

/// Output format of the reports (`verify`, `info`, `consumers`, `trim`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ReportFormat {
    /// Aligned text for people.
    Text,
    /// One JSON object on one line.
    Json,
}
