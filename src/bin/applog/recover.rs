//! `applog recover`: cut a torn tail (or truncate at a corruption) under the writer lock.

use std::path::PathBuf;

use applog::RecoveryMode;

use crate::{Failure, Out};

/// Recover a log after a crash, without appending: take the writer lock, cut a torn tail
/// (zeroing it in place), make every record durable, and say what was cut.
///
/// Damage inside data that had been synced is corruption: it is refused (exit 1, nothing
/// changed) unless --truncate-at-corruption is given. A log that a writer holds is refused
/// too (exit 1).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// At a corruption, keep every record before the first damaged frame and remove the rest
    /// (zeroed in place; later segment files deleted). The report says how many records were
    /// dropped. Copy the log first if the rest may matter.
    #[arg(long)]
    truncate_at_corruption: bool,
}

pub fn run(args: Args) -> Result<(), Failure> {
    let mode = if args.truncate_at_corruption {
        RecoveryMode::TruncateAtCorruption
    } else {
        RecoveryMode::CutTornTail
    };
    let report = match applog::recover(&args.log, mode) {
        Ok(report) => report,
        Err(e @ applog::Error::Corrupt { .. }) => {
            return Err(Failure::Msg(format!(
                "{e}; nothing was changed (--truncate-at-corruption keeps the records before the first damaged record and removes the rest; a damaged synced mark alone costs no record)"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = Out::new();
    writeln!(out, "log        {}", args.log.display())?;
    match &report.torn_tail {
        Some(t) => writeln!(
            out,
            "torn tail  cut {} bytes at byte offset {} of {} ({})",
            report.torn_bytes,
            t.offset,
            t.segment.display(),
            t.reason
        )?,
        None => writeln!(out, "torn tail  none")?,
    }
    for later in report.torn_tail.iter().flat_map(|t| &t.later_segments) {
        writeln!(
            out,
            "removed    {} (it lay wholly in the torn tail)",
            later.display()
        )?;
    }
    for path in &report.repaired_marks {
        writeln!(
            out,
            "remarked   {} (its damaged synced mark was rewritten; no record was dropped)",
            path.display()
        )?;
    }
    for path in &report.resealed {
        writeln!(
            out,
            "resealed   {} (its seal was lost in a crash)",
            path.display()
        )?;
    }
    if let Some(t) = &report.truncation {
        writeln!(
            out,
            "corrupt    {} at byte offset {}: {}",
            t.corruption.segment.display(),
            t.corruption.offset,
            t.corruption.reason
        )?;
        let dropped = match (t.exact, t.records_dropped) {
            (true, n) => format!("{n} record{}", if n == 1 { "" } else { "s" }),
            (false, 0) => "an unknown number of records".to_string(),
            (false, n) => format!("at least {n} records"),
        };
        writeln!(
            out,
            "truncated  at byte offset {} of {}: dropped {dropped} from seq {}",
            t.offset,
            t.segment.display(),
            t.seq
        )?;
        for path in &t.removed_segments {
            writeln!(out, "removed    {}", path.display())?;
        }
    }
    writeln!(out, "first seq  {}", report.first_seq)?;
    writeln!(out, "next seq   {}", report.next_seq)?;
    writeln!(out, "status     recovered (every record is durable)")?;
    out.finish()
}
