//! `applog cut` and `applog reset`: an operator's way to remove a log's end or start it again
//! at a seq (what a replicated log's own code does through the library).

use std::path::PathBuf;

use crate::{Failure, Out};

/// Remove every record at and after SEQ, durably; the next append gets SEQ.
///
/// The writer's lock is taken (a log in use by a writer is refused). Everything appended is
/// synced first, then the cut is made durable, the later segment files are removed, and
/// named consumers that had committed records past the cut are moved back to it. Readers
/// past the cut, in other processes, get an error saying the log was rewound. A crash at any
/// point leaves the log before or after the cut. Without --yes, only says what it would
/// remove.
#[derive(Debug, clap::Args)]
pub struct CutArgs {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// The first seq to remove.
    #[arg(long, value_name = "SEQ")]
    from: u64,
    /// Do it (without it, nothing changes).
    #[arg(long)]
    yes: bool,
}

/// Start a log again at SEQ: remove every record before it.
///
/// Past the log's end the log becomes empty and the next append gets SEQ (after installing a
/// snapshot that covers everything before SEQ, say); inside the log the segments whose
/// records all lie before SEQ are removed. The writer's lock is taken (a log in use by a
/// writer is refused). Named consumers behind SEQ move to it. Without --yes, only says what
/// it would remove.
#[derive(Debug, clap::Args)]
pub struct ResetArgs {
    /// The log directory.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// Where the log starts again.
    #[arg(long, value_name = "SEQ")]
    at: u64,
    /// Do it (without it, nothing changes).
    #[arg(long)]
    yes: bool,
}

/// Opens the log's writer: an existing log only (a mistyped path is not created).
fn open(log: &PathBuf) -> Result<applog::Writer, Failure> {
    drop(applog::Reader::open(log)?);
    Ok(applog::Writer::open(log, applog::Options::new())?)
}

pub fn cut(args: CutArgs) -> Result<(), Failure> {
    let mut w = open(&args.log)?;
    let (first, next) = (w.first_seq(), w.next_seq());
    let mut out = Out::new();
    if args.from > next || args.from < first {
        // The library's error says which bound, naming nothing changed.
        w.truncate_back(args.from)?;
    }
    let n = next - args.from;
    if !args.yes {
        writeln!(
            out,
            "would remove {n} records ({}..{next}) from {}; nothing changed (give --yes to cut)",
            args.from,
            args.log.display()
        )?;
        return out.finish();
    }
    w.truncate_back(args.from)?;
    w.close()?;
    writeln!(
        out,
        "removed {n} records ({}..{next}); the next record gets seq {}",
        args.from, args.from
    )?;
    out.finish()
}

pub fn reset(args: ResetArgs) -> Result<(), Failure> {
    let mut w = open(&args.log)?;
    let (first, next) = (w.first_seq(), w.next_seq());
    let mut out = Out::new();
    let what = if args.at > next {
        format!(
            "every record ({first}..{next}); the log continues at seq {}",
            args.at
        )
    } else if args.at <= first {
        "nothing: the log starts at or after it".to_string()
    } else {
        format!("the segments whose records all lie before seq {}", args.at)
    };
    if !args.yes {
        writeln!(
            out,
            "would remove {what}; nothing changed (give --yes to reset)"
        )?;
        return out.finish();
    }
    w.reset(args.at)?;
    let (first, next) = (w.first_seq(), w.next_seq());
    w.close()?;
    writeln!(
        out,
        "removed {what}; the log now holds seqs {first}..{next}"
    )?;
    out.finish()
}
