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

use crate::problems::corrupt_failure;
use crate::{Failure, Out};

/// Copy a log, even while a writer appends to it: every record up to the moment the copy
/// starts, with the same seqs, verified and made durable, into a new log DEST.
///
/// DEST must not exist (its parent must). Nothing is written to DEST until the copy is
/// complete and verified: it is built in a hidden directory beside DEST and renamed into
/// place. The copy's segments have the largest reservation of the source's segments.
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
    std::fs::create_dir(&staging).map_err(|source| Failure::Io {
        what: "could not create the copy's directory",
        source: with_path(source, &staging),
    })?;
    let copied = copy_into(&args.log, &staging, first, end, pages).and_then(|()| {
        sync_dir(&staging)?;
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
    staged.push(format!(".applog-copy-{}", std::process::id()));
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
fn copy_into(log: &Path, dir: &Path, first: u64, end: u64, pages: u32) -> Result<(), Failure> {
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
