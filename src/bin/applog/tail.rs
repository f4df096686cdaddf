//! `applog tail`: the last records, every record from a seq on, or following new ones.

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
