//! Logs with more segments than the open-file limit.
//!
//! Fault model: a log of many small segments (here 1,200 segments of one page, one record
//! each) read, checked, recovered, copied and described by a process whose open-file limit
//! (`RLIMIT_NOFILE`, 256 here) is below the number of segments. Nothing may need one file
//! descriptor (or one mapping) per segment: scans hold one segment open at a time, and a
//! writer that rolls over without syncing keeps no mapping of its sealed segments.
//!
//! The library side runs in a child process (this test binary, re-run with `--ignored
//! many_segments_child`) that lowers its own limit; the tool runs under `ulimit -n`.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use applog::{Options, Reader, RecoveryMode, Writer};
use common::cli::{append_in_one_page_segments, log_arg, new_log, Run};
use common::{page, payload};

/// Segments in the logs: well above [`LIMIT`].
const SEGMENTS: u64 = 1200;
/// The open-file limit the commands and the child run under.
const LIMIT: u64 = 256;

/// A record that fills a one-page segment alone: with its frame and the seal after it, one
/// fits after the header, two do not.
fn record_len() -> usize {
    page() as usize - 128
}

/// The text record `seq` of the tool's logs: its seq, then filler, `record_len()` bytes.
fn line(seq: u64) -> String {
    let mut s = format!("{seq:08}:");
    while s.len() < record_len() {
        s.push((b'a' + (seq % 26) as u8) as char);
    }
    s
}

/// A log of [`SEGMENTS`] one-page segments of one record each, appended by the tool.
fn tool_log() -> (tempfile::TempDir, PathBuf) {
    let (tmp, log) = new_log();
    let input: String = (0..SEGMENTS).map(|i| line(i) + "\n").collect();
    append_in_one_page_segments(&log, &input);
    assert_eq!(segment_files(&log), SEGMENTS as usize);
    (tmp, log)
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count()
}

/// Runs a shell command line under `ulimit -n LIMIT`, with `args` as its positional
/// parameters (`exec "$@"` runs them).
fn limited_command(args: &[&OsStr]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n {LIMIT} && exec \"$@\""))
        .arg("sh")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

/// Runs the tool under the open-file limit.
fn applog_limited(args: &[&OsStr]) -> Run {
    let mut all = vec![OsStr::new(env!("CARGO_BIN_EXE_applog"))];
    all.extend_from_slice(args);
    limited_command(&all).output().expect("run applog").into()
}

#[test]
fn the_open_file_limit_really_applies_to_the_tool() {
    // The tests below mean something only if the limit takes: read it back.
    let out = limited_command(&[OsStr::new("cat"), OsStr::new("/proc/self/limits")])
        .output()
        .unwrap();
    let limits = String::from_utf8_lossy(&out.stdout);
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-file limit in {limits}"));
    let soft: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(soft, LIMIT, "{line}");
}

/// Every command of the tool on a log of more segments than it may open files: each must
/// succeed with the right output. The failures are collected, so that one run names every
/// command that needs a descriptor per segment.
#[test]
fn tool_commands_work_on_more_segments_than_the_open_file_limit() {
    let (tmp, log) = tool_log();
    let log = log_arg(&log);
    let mut failures = Vec::new();
    let mut check = |what: &str, run: Run, ok: &dyn Fn(&str) -> bool| {
        if run.code != 0 || run.stderr.contains("applog: error") || !ok(&run.stdout) {
            let mut stdout = run.stdout.clone();
            stdout.truncate(400);
            failures.push(format!(
                "{what}: exit {}, stderr {:?}, stdout {stdout:?}",
                run.code, run.stderr
            ));
        }
    };

    check(
        "verify",
        applog_limited(&[OsStr::new("verify"), log]),
        &|_| true,
    );
    let n = SEGMENTS.to_string();
    check("info", applog_limited(&[OsStr::new("info"), log]), &|out| {
        let has = |line: &[&str]| {
            out.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == line)
        };
        has(&["segments", &n]) && has(&["records", &n]) && has(&["next", "seq", &n])
    });
    let last5: String = (SEGMENTS - 5..SEGMENTS).map(|i| line(i) + "\n").collect();
    check(
        "tail -n 5",
        applog_limited(&[OsStr::new("tail"), OsStr::new("-n"), OsStr::new("5"), log]),
        &|out| out == last5,
    );
    let all: String = (0..SEGMENTS).map(|i| line(i) + "\n").collect();
    check(
        "tail --from 0",
        applog_limited(&[
            OsStr::new("tail"),
            OsStr::new("--from"),
            OsStr::new("0"),
            log,
        ]),
        &|out| out == all,
    );
    let dest = tmp.path().join("copy");
    check(
        "copy",
        applog_limited(&[OsStr::new("copy"), log, dest.as_os_str()]),
        &|_| {
            dest.exists()
                && Reader::open(&dest).is_ok_and(|mut r| {
                    let mut n = 0;
                    while let Ok(Some(rec)) = r.next() {
                        if rec.seq() != n || rec.data() != line(n).as_bytes() {
                            return false;
                        }
                        n += 1;
                    }
                    n == SEGMENTS
                })
        },
    );
    check(
        "recover",
        applog_limited(&[OsStr::new("recover"), log]),
        &|out| out.contains("torn tail  none"),
    );
    assert!(
        failures.is_empty(),
        "under ulimit -n {LIMIT}, on {SEGMENTS} segments:\n{}",
        failures.join("\n")
    );
}

/// A log of [`SEGMENTS`] one-record segments written by the library; synced at the end when
/// `sync`, otherwise dropped with every segment unsynced (each one left for recovery to scan).
fn library_log(dir: &Path, sync: bool) {
    let mut w = Writer::open(dir, Options::new().segment_pages(1)).unwrap();
    for seq in 0..SEGMENTS {
        assert_eq!(w.append(&payload(seq, record_len())).unwrap(), seq);
    }
    if sync {
        w.close().unwrap();
    }
    assert_eq!(segment_files(dir), SEGMENTS as usize);
}

/// Reader, seek, verify, recover and a writer's recovery, in a child process whose open-file
/// limit is below the number of segments, on a synced log and on one whose every segment
/// was left unsynced.
#[test]
fn library_reads_verifies_and_recovers_more_segments_than_the_open_file_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let (synced, unsynced) = (tmp.path().join("synced"), tmp.path().join("unsynced"));
    library_log(&synced, true);
    library_log(&unsynced, false);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "many_segments_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "APPLOG_MANY_DIRS",
            format!("{}\n{}", synced.display(), unsynced.display()),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("many_segments_child: all checks passed"),
        "child {}:\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}

/// The child of the test above: lowers its open-file limit, then works on the logs named in
/// `APPLOG_MANY_DIRS`.
#[test]
#[ignore = "run as a child process by library_reads_verifies_and_recovers_more_segments_than_the_open_file_limit"]
fn many_segments_child() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let Ok(dirs) = std::env::var("APPLOG_MANY_DIRS") else {
        return; // run by hand: nothing to do
    };
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(LIMIT),
            maximum: hard,
        },
    )
    .unwrap();
    // The limit takes: opening more files than it allows fails.
    let held: Vec<_> = (0..LIMIT)
        .map_while(|_| std::fs::File::open("/proc/self/limits").ok())
        .collect();
    assert!(
        (held.len() as u64) < LIMIT,
        "the open-file limit did not take"
    );
    drop(held);

    for dir in dirs.lines().map(Path::new) {
        let what = dir.display();
        // A reader reads every record, across every segment.
        let mut r = Reader::open(dir).unwrap_or_else(|e| panic!("{what}: Reader::open: {e}"));
        let mut n = 0;
        while let Some(rec) = r
            .next()
            .unwrap_or_else(|e| panic!("{what}: next at {n}: {e}"))
        {
            assert_eq!(rec.seq(), n);
            assert_eq!(rec.data(), payload(n, record_len()).as_slice());
            n += 1;
        }
        assert_eq!(n, SEGMENTS, "{what}: records read");
        let mut r = Reader::open(dir).unwrap();
        r.seek(SEGMENTS - 3).unwrap();
        assert_eq!(r.next().unwrap().map(|r| r.seq()), Some(SEGMENTS - 3));

        let report = applog::verify(dir).unwrap_or_else(|e| panic!("{what}: verify: {e}"));
        assert!(report.is_clean(), "{what}: {:?}", report.corruptions);
        assert_eq!(report.segments.len(), SEGMENTS as usize, "{what}");
        assert_eq!((report.records, report.next_seq), (SEGMENTS, SEGMENTS));

        let rec = applog::recover(dir, RecoveryMode::CutTornTail)
            .unwrap_or_else(|e| panic!("{what}: recover: {e}"));
        assert_eq!(rec.next_seq, SEGMENTS, "{what}");
        let rec = applog::recover(dir, RecoveryMode::TruncateAtCorruption)
            .unwrap_or_else(|e| panic!("{what}: recover --truncate-at-corruption: {e}"));
        assert!(rec.truncation.is_none(), "{what}: {rec:?}");

        // A writer's own recovery, then more rollovers, and a sync of them all.
        let mut w = Writer::open(dir, Options::new().segment_pages(1))
            .unwrap_or_else(|e| panic!("{what}: Writer::open: {e}"));
        assert_eq!(w.next_seq(), SEGMENTS);
        for seq in SEGMENTS..SEGMENTS + 300 {
            w.append(&payload(seq, record_len()))
                .unwrap_or_else(|e| panic!("{what}: append {seq}: {e}"));
        }
        w.close().unwrap_or_else(|e| panic!("{what}: close: {e}"));
        let report = applog::verify(dir).unwrap();
        assert!(report.is_clean() && report.torn_tail.is_none(), "{what}");
        assert_eq!(report.next_seq, SEGMENTS + 300, "{what}");
    }
    println!("many_segments_child: all checks passed");
}

/// Lines of `/proc/self/maps` (mappings) and entries of `/proc/self/fd` (descriptors) of
/// files in `dir`.
fn held_in(dir: &Path) -> (usize, usize) {
    let dir = std::fs::canonicalize(dir).unwrap();
    let prefix = format!("{}/", dir.display());
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mappings = maps.lines().filter(|l| l.contains(&prefix)).count();
    let fds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(&dir))
        .count();
    (mappings, fds)
}

/// A writer that rolls over 3,000 times and never syncs must not keep a mapping (or a file)
/// per sealed segment: its sync handles for them are detached, and map the file again only
/// when a sync comes.
#[test]
fn unsynced_rollovers_keep_a_bounded_number_of_mappings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = Writer::open(&dir, Options::new().segment_pages(1)).unwrap();
    let mut worst = (0, 0);
    for seq in 0..3000u64 {
        w.append(&payload(seq, record_len())).unwrap();
        if seq % 250 == 249 {
            let (maps, fds) = held_in(&dir);
            worst = (worst.0.max(maps), worst.1.max(fds));
        }
    }
    assert!(segment_files(&dir) >= 3000, "the writer did not roll over");
    assert!(
        worst.0 <= 4 && worst.1 <= 4,
        "after up to 3,000 unsynced rollovers the writer held {} mappings and {} descriptors of files in the log",
        worst.0,
        worst.1
    );
    w.sync().unwrap();
    let (maps, fds) = held_in(&dir);
    assert!(
        maps <= 4 && fds <= 4,
        "after the sync: {maps} mappings, {fds} descriptors"
    );
    drop(w);
    let report = applog::verify(&dir).unwrap();
    assert!(report.is_clean() && report.torn_tail.is_none());
    assert_eq!(report.next_seq, 3000);
}
