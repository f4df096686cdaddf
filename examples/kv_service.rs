//! A small key-value service that uses applog as its write-ahead log.
//!
//! ```text
//! cargo run --example kv_service                      # a demo: load, restart, check (a few seconds)
//! cargo run --example kv_service -- serve DIR [THREADS] [OPS_PER_THREAD]
//! cargo run --example kv_service -- dump DIR          # recover and print every key
//! ```
//!
//! - Many client threads call [`Service::put`]. Each put is appended to the log, applied to the
//!   in-memory map, and **acknowledged only once durable** ([`SharedWriter::wait_durable`]):
//!   concurrent puts share msync calls (group commit).
//! - A background thread takes a **snapshot** now and then: it copies the map with the seq it
//!   covers, waits until that seq is durable (a snapshot must never hold a write that a crash
//!   could take back), writes the snapshot file atomically (temporary file, fsync, rename,
//!   directory fsync), and only then **truncates the log front** behind it.
//! - On start, the service **loads the snapshot and replays** the log from the seq it covers.
//!
//! `serve` prints `ack KEY VALUE` for every acknowledged put and `snapshot SEQ` for every
//! snapshot, and runs until every thread did its puts (forever when OPS_PER_THREAD is 0).
//! `tests/kv_service_crash.rs` kills it with SIGKILL mid-run, restarts it, and checks that every
//! acknowledged write survived.
//!
//! Layout of DIR: `wal/` is the applog log, `snapshot` the latest snapshot (text: a first
//! line `kv-snapshot SEQ`, then `KEY VALUE` lines; keys and values hold no spaces here).

use std::collections::BTreeMap;
use std::error::Error;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use applog::{Options, Reader, SharedWriter};

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Small segments, so that snapshots have whole segments to remove.
const SEGMENT_PAGES: u32 = 2;
/// How often the background thread snapshots.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);

/// The map and the seq of the next record to apply: the map is the log's records below it.
struct Applied {
    map: BTreeMap<String, String>,
    next_seq: u64,
}

/// A key-value store whose every acknowledged write is in its write-ahead log.
struct Service {
    dir: PathBuf,
    log: SharedWriter,
    state: Mutex<Applied>,
}

fn encode(key: &str, value: &str) -> Vec<u8> {
    format!("set {key} {value}").into_bytes()
}

fn apply(map: &mut BTreeMap<String, String>, seq: u64, record: &[u8]) -> Result<()> {
    let text = std::str::from_utf8(record)?;
    match text.split(' ').collect::<Vec<_>>().as_slice() {
        ["set", key, value] => {
            map.insert((*key).to_owned(), (*value).to_owned());
            Ok(())
        }
        _ => Err(format!("record {seq} is not a put: {text:?}").into()),
    }
}

impl Service {
    /// Loads the snapshot (if any), opens the log (which recovers it), and replays the
    /// records after the snapshot.
    fn start(dir: &Path) -> Result<Service> {
        std::fs::create_dir_all(dir)?;
        let (mut map, from) = load_snapshot(&dir.join("snapshot"))?;
        let wal = dir.join("wal");
        let log = SharedWriter::open(&wal, Options::new().segment_pages(SEGMENT_PAGES))?;
        if log.next_seq() < from {
            return Err(format!(
                "the log ends at seq {} but the snapshot covers up to {from}",
                log.next_seq()
            )
            .into());
        }
        let mut reader = Reader::open(&wal)?;
        reader.seek(from)?;
        let mut replayed = 0;
        while let Some(rec) = reader.next()? {
            apply(&mut map, rec.seq(), rec.data())?;
            replayed += 1;
        }
        let next_seq = from + replayed;
        if next_seq != log.next_seq() {
            return Err(format!(
                "replayed up to {next_seq}, the log ends at {}",
                log.next_seq()
            )
            .into());
        }
        eprintln!(
            "kv: started: snapshot up to seq {from}, replayed {replayed} records, {} keys",
            map.len()
        );
        Ok(Service {
            dir: dir.to_owned(),
            log,
            state: Mutex::new(Applied { map, next_seq }),
        })
    }

    /// Stores `key = value`; returns once the write is durable (then it may be acknowledged).
    fn put(&self, key: &str, value: &str) -> Result<u64> {
        let seq = {
            // Append and apply under one lock, so that the map follows the log's order.
            let mut st = self.state.lock().map_err(|_| "state lock poisoned")?;
            let record = encode(key, value);
            let seq = self.log.append(&record)?;
            apply(&mut st.map, seq, &record)?;
            st.next_seq = seq + 1;
            seq
        };
        self.log.wait_durable(seq)?;
        Ok(seq)
    }

    fn get(&self, key: &str) -> Option<String> {
        self.state.lock().ok()?.map.get(key).cloned()
    }

    /// Writes a snapshot of the map, then removes the log segments it makes unnecessary.
    /// Returns the seq the snapshot covers up to.
    fn snapshot(&self) -> Result<u64> {
        let (map, upto) = {
            let st = self.state.lock().map_err(|_| "state lock poisoned")?;
            (st.map.clone(), st.next_seq)
        };
        if upto > 0 {
            // Never snapshot a write a crash could still take back.
            self.log.wait_durable(upto - 1)?;
        }
        let tmp = self.dir.join("snapshot.tmp");
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        writeln!(out, "kv-snapshot {upto}")?;
        for (k, v) in &map {
            writeln!(out, "{k} {v}")?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("snapshot"))?;
        File::open(&self.dir)?.sync_all()?;
        self.log.truncate_front(upto)?;
        Ok(upto)
    }
}

fn load_snapshot(path: &Path) -> Result<(BTreeMap<String, String>, u64)> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((BTreeMap::new(), 0)),
        Err(e) => return Err(e.into()),
    };
    let mut lines = BufReader::new(file).lines();
    let first = lines.next().ok_or("empty snapshot")??;
    let upto = first
        .strip_prefix("kv-snapshot ")
        .ok_or("not a snapshot")?
        .parse()?;
    let mut map = BTreeMap::new();
    for line in lines {
        let line = line?;
        let (k, v) = line.split_once(' ').ok_or("bad snapshot line")?;
        map.insert(k.to_owned(), v.to_owned());
    }
    Ok((map, upto))
}

/// Runs `threads` clients of `ops` puts each (forever when 0) and the snapshot thread;
/// prints every acknowledgement.
fn serve(dir: &Path, threads: u64, ops: u64) -> Result<()> {
    let svc = Arc::new(Service::start(dir)?);
    let done = Arc::new(AtomicBool::new(false));
    let snapshots = {
        let (svc, done) = (svc.clone(), done.clone());
        std::thread::spawn(move || -> Result<()> {
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(SNAPSHOT_EVERY);
                let seq = svc.snapshot()?;
                say(format_args!("snapshot {seq} first {}", svc.log.first_seq()))?;
            }
            Ok(())
        })
    };
    // A restarted service goes on where the last one stopped: values carry a run number.
    let run = svc.log.next_seq();
    let clients: Vec<_> = (0..threads)
        .map(|t| {
            let svc = svc.clone();
            std::thread::spawn(move || -> Result<()> {
                let mut i = 0u64;
                while ops == 0 || i < ops {
                    // 64 keys per thread, each written by this thread only, over and over.
                    let key = format!("t{t}-k{}", i % 64);
                    let value = format!("r{run}-i{i}");
                    svc.put(&key, &value)?;
                    say(format_args!("ack {key} {value}"))?;
                    i += 1;
                }
                Ok(())
            })
        })
        .collect();
    for c in clients {
        c.join().map_err(|_| "client panicked")??;
    }
    done.store(true, Ordering::Release);
    snapshots.join().map_err(|_| "snapshot thread panicked")??;
    eprintln!(
        "kv: {} durable puts took {} flushes; the log now starts at seq {}",
        svc.log.next_seq() - run,
        svc.log.sync_count(),
        svc.log.first_seq()
    );
    Ok(())
}

/// Prints one line to stdout (an error, not a panic, when stdout is closed).
fn say(line: std::fmt::Arguments<'_>) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    Ok(())
}

fn dump(dir: &Path) -> Result<()> {
    let svc = Service::start(dir)?;
    let st = svc.state.lock().map_err(|_| "state lock poisoned")?;
    let mut out = std::io::stdout().lock();
    for (k, v) in &st.map {
        writeln!(out, "{k} {v}")?;
    }
    Ok(())
}

/// Load, "crash" (drop everything without a clean shutdown), restart, check.
fn demo() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("applog-kv-demo-{}", std::process::id()));
    let started = Instant::now();
    let written: Vec<(String, String)> = {
        let svc = Arc::new(Service::start(&dir)?);
        let clients: Vec<_> = (0..8)
            .map(|t| {
                let svc = svc.clone();
                std::thread::spawn(move || -> Result<Vec<(String, String)>> {
                    let mut acked = Vec::new();
                    for i in 0..250 {
                        let (k, v) = (format!("user{t}-{}", i % 20), format!("v{i}"));
                        svc.put(&k, &v)?;
                        acked.push((k, v));
                        if t == 0 && i % 100 == 99 {
                            println!("snapshot up to seq {}", svc.snapshot()?);
                        }
                    }
                    Ok(acked)
                })
            })
            .collect();
        let mut all = Vec::new();
        for c in clients {
            all.extend(c.join().map_err(|_| "client panicked")??);
        }
        println!(
            "2000 durable puts from 8 threads: {} flushes, {:?}; log starts at seq {}",
            svc.log.sync_count(),
            started.elapsed(),
            svc.log.first_seq()
        );
        all
    };
    let svc = Service::start(&dir)?;
    let mut latest = BTreeMap::new();
    for (k, v) in written {
        latest.insert(k, v);
    }
    for (k, v) in &latest {
        if svc.get(k).as_ref() != Some(v) {
            return Err(format!("lost the write {k} = {v}").into());
        }
    }
    println!(
        "after a restart: all {} keys hold their last acknowledged value",
        latest.len()
    );
    drop(svc);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> Result<u64> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    match args.first().map(String::as_str) {
        None => demo(),
        Some("serve") if args.len() >= 2 => serve(Path::new(&args[1]), num(2, 8)?, num(3, 0)?),
        Some("dump") if args.len() == 2 => dump(Path::new(&args[1])),
        _ => Err("usage: kv_service [serve DIR [THREADS] [OPS_PER_THREAD] | dump DIR]".into()),
    }
}
