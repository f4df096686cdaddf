//! `applog append`: records from arguments or standard input.

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
