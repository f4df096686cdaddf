//! `applog copy`: a consistent, verified, durable copy of a log, even while a writer appends.
//!
//! The copy is made record by record, not by copying files: the source's segment files change
//! under a live writer (frames appended, files grown, a segment sealed and the next created,
//! a synced mark raised after data we have already copied), and a byte copy would have to
//! patch each of those up to be a consistent log. Instead the end of the source is fixed
//! first (`verify`, which also checks every frame), every record below it is read with a
//! `Reader` (which checks each CRC and follows rollovers) and appended by a `Writer` into a
//! hidden directory beside DEST, with the same seqs. The copy is synced, checked with
//! `verify`, read back and compared with what was read from the source (a CRC of every seq
//! and payload), its directory fsynced, and only then renamed to DEST (refusing to replace
//! anything that appeared there meanwhile) and the parent directory fsynced.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::problems::corrupt_failure;
use crate::{note, Failure, Out};

/// Copy a log, even while a writer appends to it: every record up to the moment the copy
/// starts, with the same seqs, verified and made durable, into a new log DEST.
///
/// DEST must not exist (its parent must). Nothing is written to DEST until the copy is
/// complete and verified: it is built in a hidden directory beside DEST
/// (`.<name>.applog-copy-<pid>`) and renamed into place. On an error, SIGINT or SIGTERM the
/// hidden directory is removed (exit 1); one left by a copy that was killed is removed by the
/// next copy into the same parent directory. The copy's segments have the largest
/// reservation of the source's segments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log directory to copy.
    #[arg(value_name = "LOG")]
    log: PathBuf,
    /// The new log directory.
    #[arg(value_name = "DEST")]
    dest: PathBuf,
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
    // The end of the copy: every record published now. verify also checks every frame.
    let report = applog::verify(&args.log)?;
    if !report.is_clean() {
        return Err(corrupt_failure(&args.log, &report));
    }
    let (first, end) = (report.first_seq, report.next_seq);
    let page = rustix::param::page_size() as u64;
    let pages = report
        .segments
        .iter()
        .map(|s| s.reservation.div_ceil(page))
        .max()
        .filter(|&p| p > 0)
        .unwrap_or(1000);
    let pages = u32::try_from(pages).unwrap_or(u32::MAX);

    let staging = staging_dir(&args.dest)?;
    remove_stale_copies(&args.dest);
    interrupted(&stop)?;
    std::fs::create_dir(&staging).map_err(|source| Failure::Io {
        what: "could not create the copy's directory",
        source: with_path(source, &staging),
    })?;
    // While the copy writes, its writer's lock on the staging directory tells a later copy
    // that this one is alive (see `remove_stale_copies`); before and after, its pid does.
    let copied = copy_into(&args.log, &staging, first, end, pages, &stop).and_then(|()| {
        sync_dir(&staging)?;
        interrupted(&stop)?;
        publish(&staging, &args.dest)
    });
    if let Err(e) = copied {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
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

/// An error when SIGINT or SIGTERM came: the copy stops, and what it made is removed.
fn interrupted(stop: &AtomicBool) -> Result<(), Failure> {
    if stop.load(Ordering::Relaxed) {
        return Err(Failure::Msg(
            "interrupted by a signal: no copy was made, and nothing of it is left".into(),
        ));
    }
    Ok(())
}

/// The part of a staging directory's name after `.<name>`, before the pid.
const STAGING_MARK: &str = ".applog-copy-";

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
    let (dest, pid) = rest.rsplit_once(STAGING_MARK)?;
    if dest.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// `.<name>.applog-copy-<pid>` beside `dest`.
fn staging_dir(dest: &Path) -> Result<PathBuf, Failure> {
    let Some(name) = dest.file_name() else {
        return Err(Failure::Msg(format!(
            "{} does not name a new directory",
            dest.display()
        )));
    };
    let mut staged = std::ffi::OsString::from(".");
    staged.push(name);
    staged.push(format!("{STAGING_MARK}{}", std::process::id()));
    Ok(dest.with_file_name(staged))
}

fn with_path(e: std::io::Error, path: &Path) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// CRC-32 of every seq, length and payload, in order.
#[derive(Default)]
struct Digest(crc32fast::Hasher);

impl Digest {
    fn add(&mut self, seq: u64, data: &[u8]) {
        self.0.update(&seq.to_le_bytes());
        self.0.update(&(data.len() as u64).to_le_bytes());
        self.0.update(data);
    }
}

/// Copies records `first..end` of `log` into a new log in `dir` and checks the result.
fn copy_into(
    log: &Path,
    dir: &Path,
    first: u64,
    end: u64,
    pages: u32,
    stop: &AtomicBool,
) -> Result<(), Failure> {
    if first > 0 {
        // An empty segment file named by the first seq: the writer starts the log there (it
        // takes the file for a segment whose creation a crash cut short).
        let path = dir.join(applog::segment_name(first));
        std::fs::File::create(&path).map_err(|source| Failure::Io {
            what: "could not create the copy's first segment",
            source: with_path(source, &path),
        })?;
    }
    let mut writer = applog::Writer::open(dir, applog::Options::new().segment_pages(pages))?;
    if writer.next_seq() != first {
        return Err(Failure::Msg(format!(
            "the copy starts at seq {} instead of {first}",
            writer.next_seq()
        )));
    }
    let mut reader = applog::Reader::open(log)?;
    if first > reader.position() {
        reader.seek(first)?;
    }
    let mut digest = Digest::default();
    for seq in first..end {
        interrupted(stop)?;
        let Some(record) = reader.next()? else {
            return Err(Failure::Msg(format!(
                "the log {} ended at seq {seq} while copying up to seq {end} (was it truncated meanwhile?)",
                log.display()
            )));
        };
        if record.seq() != seq {
            return Err(Failure::Msg(format!(
                "the log {} gave seq {} where seq {seq} was expected",
                log.display(),
                record.seq()
            )));
        }
        digest.add(seq, record.data());
        writer.append(record.data())?;
    }
    writer.close()?;
    interrupted(stop)?;

    // Check the copy: every frame, the seq range, and the content read back.
    let check = applog::verify(dir)?;
    if !check.is_clean()
        || check.torn_tail.is_some()
        || (check.first_seq, check.next_seq, check.records) != (first, end, end - first)
    {
        return Err(Failure::Msg(format!(
            "the copy does not verify: seqs {}..{} ({} records, {} corruptions, torn tail: {}), expected {first}..{end}",
            check.first_seq,
            check.next_seq,
            check.records,
            check.corruptions.len(),
            check.torn_tail.is_some()
        )));
    }
    let mut again = Digest::default();
    let mut reader = applog::Reader::open(dir)?;
    while let Some(record) = reader.next()? {
        interrupted(stop)?;
        again.add(record.seq(), record.data());
    }
    if again.0.finalize() != digest.0.finalize() {
        return Err(Failure::Msg(
            "the copy read back differs from the records read from the log".into(),
        ));
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Failure::Io {
            what: "could not sync directory",
            source: with_path(source, dir),
        })
}

/// Renames the finished copy to `dest`, refusing to replace anything there, and makes the
/// new name durable.
fn publish(staging: &Path, dest: &Path) -> Result<(), Failure> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, staging, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::EXIST => {
            return Err(Failure::Msg(format!(
                "{} appeared while copying; the copy was not put there",
                dest.display()
            )))
        }
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {
            // No RENAME_NOREPLACE on this file system: check, then rename.
            if dest.symlink_metadata().is_ok() {
                return Err(Failure::Msg(format!(
                    "{} appeared while copying; the copy was not put there",
                    dest.display()
                )));
            }
            std::fs::rename(staging, dest).map_err(|source| Failure::Io {
                what: "could not rename the copy",
                source: with_path(source, dest),
            })?;
        }
        Err(e) => {
            return Err(Failure::Io {
                what: "could not rename the copy",
                source: with_path(e.into(), dest),
            })
        }
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir(parent)
}
