//! `applog copy`: a consistent, verified, durable copy of a log, even while a writer appends.
//!
//! The copy itself is the library's (`applog::copy_cancellable`: record by record, verified,
//! staged beside DEST and renamed into place); this command adds the signals that cancel it,
//! the clean-up of staging directories left by copies that were killed, and the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::info::human;
use crate::problems::corrupt_failure;
use crate::progress::{segments_of, Progress, ProgressArgs};
use crate::{note, Failure, Out};

/// Copy a log, even while a writer appends to it: every record up to the moment the copy
/// starts, with the same seqs, verified and made durable, into a new log DEST.
///
/// DEST must not exist (its parent must). Nothing is written to DEST until the copy is
/// complete and verified: it is built in a hidden directory beside DEST
/// (`.<name>.applog-copy-<pid>`) and renamed into place. On an error, SIGINT or SIGTERM the
/// hidden directory is removed (exit 1); one left by a copy that was killed is removed by the
/// next copy into the same parent directory. The copy's segments have the largest
/// reservation of the source's segments. On a terminal, a copy that takes longer than a
/// second shows a progress bar on stderr.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory to copy.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// The new log directory.
    #[arg(value_name = "DEST")]
    dest: PathBuf,
    #[command(flatten)]
    progress: ProgressArgs,
}

pub fn run(args: Args) -> Result<(), Failure> {
    // SIGINT and SIGTERM stop the copy at the next record (or step), which removes what it
    // made so far.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|source| Failure::Io {
            what: "could not install a signal handler",
            source,
        })?;
    }
    if args.dest.symlink_metadata().is_ok() {
        return Err(Failure::Msg(format!(
            "{} already exists; copy makes a new log",
            args.dest.display()
        )));
    }
    let (segments, bytes) = segments_of(&args.log);
    let progress = Progress::start(
        format!(
            "checking {} ({segments} segment{}, {})",
            args.log.display(),
            if segments == 1 { "" } else { "s" },
            human(bytes)
        ),
        &args.progress,
    );
    // A damaged source is reported as `verify` reports it; the copy checks it again.
    let report = applog::verify(&args.log)?;
    if !report.is_clean() {
        return Err(corrupt_failure(&args.log, &report));
    }
    remove_stale_copies(&args.dest);
    // While the copy writes, its writer's lock on the staging directory tells a later copy
    // that this one is alive (see `remove_stale_copies`); before and after, its pid does.
    let copied = applog::copy_with_progress(&args.log, &args.dest, &stop, &|done, total| {
        if done == 0 {
            progress.message("copying".into());
        }
        progress.records(done, total);
        if done == total {
            progress.spinner("checking the copy".into());
        }
    });
    drop(progress);
    let made = match copied {
        Ok(made) => made,
        Err(applog::Error::Interrupted) => return interrupted(&stop),
        Err(e) => return Err(e.into()),
    };
    let (first, end) = (made.first_seq, made.next_seq);
    let mut out = Out::new();
    writeln!(
        out,
        "copied {} record{} (seq {first}..{end}) from {} to {}, verified and synced",
        end - first,
        if end - first == 1 { "" } else { "s" },
        args.log.display(),
        args.dest.display()
    )?;
    out.finish()
}

/// The error when SIGINT or SIGTERM came: the copy stopped, and what it made was removed.
fn interrupted(_stop: &AtomicBool) -> Result<(), Failure> {
    Err(Failure::Msg(
        "interrupted by a signal: no copy was made, and nothing of it is left".into(),
    ))
}

/// An exclusive `flock` on `dir` (the lock a writer of the log in `dir` holds), held while
/// the returned file lives. `None` when it cannot be taken.
fn lock_dir(dir: &Path) -> Option<std::fs::File> {
    use rustix::fs::{flock, FlockOperation};
    let file = std::fs::File::open(dir).ok()?;
    flock(&file, FlockOperation::NonBlockingLockExclusive).ok()?;
    Some(file)
}

/// Removes the staging directories beside `dest` (of any destination) left by copies that
/// died (SIGKILL, a power cut): those whose process is gone and whose lock nobody holds. A
/// directory that cannot be judged or removed is left alone; each one removed is noted on
/// stderr.
fn remove_stale_copies(dest: &Path) {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(staging_pid) else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue; // a live copy (or another process that took the pid over)
        }
        let path = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // A live copy in another pid namespace holds its directory's writer lock while it
        // writes.
        let Some(_lock) = lock_dir(&path) else {
            continue;
        };
        if std::fs::remove_dir_all(&path).is_ok() {
            note(format_args!(
                "removed {}, left by a copy that did not finish (process {pid} is gone)",
                path.display()
            ));
        }
    }
}

/// The pid in a staging directory's name `.<name>.applog-copy-<pid>`.
fn staging_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (dest, pid) = rest.rsplit_once(applog::STAGING_MARK)?;
    if dest.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}
