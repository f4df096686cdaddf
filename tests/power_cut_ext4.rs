//! A real power cut on a real file system: ext4 on a loop device.
//!
//! Fault model: the machine loses power while a writer appends and syncs. The test makes a
//! 64 MiB ext4 file system (with its journal) in an image file and mounts it on a loop device;
//! a child writer process appends records of mixed sizes into small segments (rollovers,
//! directory fsyncs) and syncs every few records, reporting each sync that returned Ok. At a
//! random moment the test freezes the writer (SIGSTOP: it issues no further system call) and
//! copies the image file: what the loop device received, without the page cache of the
//! mounted file system, which a power cut loses. The copy is checked with `e2fsck -fy` (as a
//! boot would), mounted, and recovered.
//!
//! Pass criterion: `e2fsck` can repair the copy; `verify` finds no corruption, and every
//! segment sealed before the last sync carries its final synced mark; the writer
//! opens it (P4); what it holds is an exact prefix of the records appended (P1), byte for
//! byte (P3), including every record appended before the last sync the child reported (P2);
//! after recovery the log verifies clean and takes appends.
//!
//! Needs root (mount, loop devices); where mounting is not permitted the test prints a
//! SKIPPED line and passes without checking, except in CI, where it fails (`common::skip`).
//! Five cuts by default; `APPLOG_SOAK` multiplies them; the moments come from a printed seed
//! (`APPLOG_SEED`).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use applog::{Options, Writer};
use common::*;

fn record(seq: u64) -> Vec<u8> {
    let mut r = Rng(seq.wrapping_mul(0xD1B5_4A32_D192_ED03));
    let len = match r.below(10) {
        0..=6 => r.below(200),
        7..=8 => 200 + r.below(3000),
        _ => 5000 + r.below(8000),
    };
    payload(seq, len as usize)
}

/// This test binary, started to run `power_cut_child` on the log in `log`.
fn cut_child(log: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "power_cut_child", "--ignored", "--nocapture"])
        .env("APPLOG_CUT_DIR", log);
    c
}

#[test]
fn power_cut_of_an_ext4_loop_device() {
    let seed = seed("power_cut_ext4");
    let mut rng = Rng(seed);
    let cuts = 5 * soak();
    for cut in 0..cuts {
        let m = match mount::ext4(64 << 20) {
            Ok(m) => m,
            Err(why) => {
                skip(format_args!("cannot mount an ext4 loop image here: {why}"));
                return;
            }
        };
        let log = m.dir.join("log");
        let mut child = cut_child(&log)
            .env("APPLOG_CUT_SEED", rng.next().to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (synced_once, lines) = last_reported(child.stdout.take().unwrap(), "s ");
        // Once the log exists and has synced once, let it run, then freeze it and copy the
        // device's bytes.
        synced_once
            .recv_timeout(Duration::from_secs(60))
            .expect("the child never synced");
        std::thread::sleep(Duration::from_millis(100 + rng.below(900)));
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
        let t = Instant::now();
        let copy = m.tmp.path().join("cut.img");
        let tries = copy_at_one_instant(m.image.as_ref().unwrap(), &copy);
        let copy_ms = t.elapsed().as_millis();
        child.kill().unwrap();
        child.wait().unwrap();
        let synced = lines.join().unwrap();
        // Boot: check and repair the file system, mount it, recover the log.
        let fsck = Command::new("e2fsck")
            .args(["-fy"])
            .arg(&copy)
            .output()
            .unwrap();
        let code = fsck.status.code().unwrap_or(-1);
        let fsck_out = String::from_utf8_lossy(&fsck.stdout).into_owned();
        assert!(
            code == 0 || code == 1,
            "e2fsck could not repair the copy ({code}): {fsck_out}"
        );
        let at = m.tmp.path().join("after");
        mount::mount_image(&copy, &at).unwrap();
        let _unmount = Unmount(at.clone());
        let log = at.join("log");
        let what = format!(
            "cut {cut} (seed {seed}): {synced} records synced (e2fsck said: {})",
            fsck_out.trim()
        );
        let report = applog::verify(&log).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(report.is_clean(), "{what}: {report:#?}");
        // A segment sealed before the last sync has its final synced mark on disk (the mark
        // of the active segment may lag): damage in it must never pass for a torn tail. The
        // seal is written when record `pair[1].base_seq` is appended, so only a sync that
        // covered that record covered the seal.
        for pair in report.segments.windows(2) {
            if pair[1].base_seq < synced {
                assert!(
                    pair[0].sealed && pair[0].synced_mark >= pair[0].data_end,
                    "{what}: the synced seal of {} has no durable mark: {:#?}",
                    pair[0].path.display(),
                    pair[0]
                );
            }
        }
        let mut w = Writer::open(&log, Options::new().segment_pages(4))
            .unwrap_or_else(|e| panic!("{what}: P4: {e}"));
        let n = w.next_seq();
        assert!(n >= synced, "{what}: P2: only {n} recovered");
        w.append(&record(n)).unwrap();
        w.sync().unwrap();
        drop(w);
        let got = read_all(&log);
        assert_eq!(got.len() as u64, n + 1, "{what}");
        for (seq, data) in &got {
            assert!(*data == record(*seq), "{what}: P3: record {seq}");
        }
        let after = applog::verify(&log).unwrap();
        assert!(after.is_clean() && after.torn_tail.is_none(), "{what}");
        eprintln!(
            "power_cut_ext4: cut {cut}: {synced} records synced, {n} recovered, e2fsck exit \
             {code}, copied in {copy_ms} ms ({tries} tries)"
        );
    }
}

/// `close` makes the active segment's synced mark durable (a checkpoint alone writes it out
/// only about once a second): the device holds the exact mark right after a close.
#[test]
fn close_writes_the_synced_mark_to_the_device() {
    let m = match mount::ext4(16 << 20) {
        Ok(m) => m,
        Err(why) => {
            skip(format_args!("cannot mount an ext4 loop image here: {why}"));
            return;
        }
    };
    let log = m.dir.join("log");
    let status = cut_child(&log)
        .env("APPLOG_CUT_CLOSE", "1")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let copy = m.tmp.path().join("closed.img");
    copy_at_one_instant(m.image.as_ref().unwrap(), &copy);
    let at = m.tmp.path().join("after");
    mount::mount_image(&copy, &at).unwrap();
    let _unmount = Unmount(at.clone());
    let report = applog::verify(at.join("log")).unwrap();
    assert!(
        report.is_clean() && report.torn_tail.is_none(),
        "{report:#?}"
    );
    let last = report.segments.last().unwrap();
    assert!(last.records > 0, "{report:#?}");
    assert_eq!(last.synced_mark, last.data_end, "{report:#?}");
}

/// A consumer's durable commit (`Consumer::sync`) survives a power cut: the consumer file on
/// the cut image passes its checks and holds a position no older than the last durable
/// commit the child reported, and no newer than what the log holds.
#[test]
fn a_durable_consumer_commit_survives_a_power_cut() {
    let seed = seed("power_cut_consumer");
    let mut rng = Rng(seed);
    for cut in 0..3 {
        let m = match mount::ext4(64 << 20) {
            Ok(m) => m,
            Err(why) => {
                skip(format_args!("cannot mount an ext4 loop image here: {why}"));
                return;
            }
        };
        let log = m.dir.join("log");
        let mut child = cut_child(&log)
            .env("APPLOG_CUT_CONSUMER", "1")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (once, lines) = last_reported(child.stdout.take().unwrap(), "c ");
        once.recv_timeout(Duration::from_secs(60))
            .expect("the child never committed");
        std::thread::sleep(Duration::from_millis(50 + rng.below(500)));
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
        let copy = m.tmp.path().join("cut.img");
        copy_at_one_instant(m.image.as_ref().unwrap(), &copy);
        child.kill().unwrap();
        child.wait().unwrap();
        let durable = lines.join().unwrap();
        let fsck = Command::new("e2fsck")
            .args(["-fy"])
            .arg(&copy)
            .output()
            .unwrap();
        assert!(matches!(fsck.status.code(), Some(0 | 1)), "e2fsck failed");
        let at = m.tmp.path().join("after");
        mount::mount_image(&copy, &at).unwrap();
        let _unmount = Unmount(at.clone());
        let log = at.join("log");
        let what = format!("cut {cut} (seed {seed}): last durable commit {durable}");
        let info = applog::consumers(&log)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .into_iter()
            .find(|c| c.name == "cut")
            .unwrap_or_else(|| panic!("{what}: the consumer is gone"));
        assert!(
            info.next_seq >= durable,
            "{what}: resumes at {}",
            info.next_seq
        );
        let c = applog::Consumer::open(&log, "cut").unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(c.position(), info.next_seq, "{what}");
        eprintln!("{what}: resumes at {}", info.next_seq);
    }
}

/// Reads the child's output lines `<prefix>N` on a thread: a receiver that hears of the first
/// one, and the thread, which returns the last N once the output ends.
fn last_reported(
    out: std::process::ChildStdout,
    prefix: &'static str,
) -> (std::sync::mpsc::Receiver<()>, std::thread::JoinHandle<u64>) {
    let (first, once) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        let mut last = 0u64;
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            // The test harness may print "test ... " before a child's first line.
            let line = line.rsplit_once("... ").map_or(&line[..], |(_, l)| l);
            if let Some(n) = line.strip_prefix(prefix) {
                last = n.parse().unwrap();
                let _ = first.send(());
            }
        }
        last
    });
    (once, lines)
}

/// Copies the image of a mounted loop device as it is at one instant: while the copy runs,
/// the kernel may still write to the device (journal commits, write-back of other dirty
/// pages), and a copy that straddles a write is a state no power cut leaves (its early
/// blocks older than its late ones). So: copy, and keep the copy only if the device's write
/// counters did not move and nothing was in flight. Returns the number of tries.
fn copy_at_one_instant(img: &Path, to: &Path) -> u32 {
    let dev = mount::loop_device(img).unwrap();
    // The write fields, in flight, then discards and flushes (see `mount::block_stat`).
    let writes = || -> Vec<u64> {
        let f = mount::block_stat(&dev);
        let mut w = f[4..9].to_vec();
        w.extend(f.iter().skip(11));
        w
    };
    for tries in 1..=200 {
        let before = writes();
        std::fs::copy(img, to).unwrap();
        let after = writes();
        if before == after && after[4] == 0 {
            return tries;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("the loop device never stayed idle for the length of a copy");
}

/// Unmounts a directory on drop.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "run as a child process by power_cut_of_an_ext4_loop_device"]
fn power_cut_child() {
    let dir = PathBuf::from(std::env::var("APPLOG_CUT_DIR").unwrap());
    let mut w = Writer::open(&dir, Options::new().segment_pages(4)).unwrap();
    let mut seq = 0;
    if std::env::var_os("APPLOG_CUT_CLOSE").is_some() {
        // A few records, synced twice in quick succession, then closed.
        for _ in 0..2 {
            for _ in 0..3 {
                w.append(&record(seq)).unwrap();
                seq += 1;
            }
            w.sync().unwrap();
        }
        w.close().unwrap();
        return;
    }
    if std::env::var_os("APPLOG_CUT_CONSUMER").is_some() {
        // A synced log, then a consumer that commits durably every few records.
        for _ in 0..20_000 {
            w.append(&record(seq)).unwrap();
            seq += 1;
        }
        w.sync().unwrap();
        let mut c = applog::Consumer::open(&dir, "cut").unwrap();
        let mut n = 0u64;
        while let Some(rec) = c.try_next().unwrap() {
            n = rec.seq() + 1;
            if n % 7 == 0 {
                c.commit_durable().unwrap();
                println!("c {n}");
            }
        }
        // Read everything: wait to be cut.
        c.commit_durable().unwrap();
        println!("c {n}");
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let mut rng = Rng(std::env::var("APPLOG_CUT_SEED").unwrap().parse().unwrap());
    loop {
        for _ in 0..1 + rng.below(20) {
            assert_eq!(w.append(&record(seq)).unwrap(), seq);
            seq += 1;
        }
        w.sync().unwrap();
        println!("s {seq}");
    }
}
