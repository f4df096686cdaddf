//! A tour of applog in a few seconds: `cargo run --release -p applog-demo`.
//!
//! 1. Appends records across several segments and syncs them.
//! 2. Reads them back from a second process (this program, started again as `read <dir>`).
//! 3. Crashes a writer: starts this program as `write-forever <dir>`, kills it with SIGKILL,
//!    then damages the tail the way a power cut can (garbage after the last record).
//! 4. Shows that `verify` calls it a torn tail, not corruption; reopens a writer, which cuts
//!    the tail; checks every record; appends again.
//!
//! Every record's bytes are a function of its seq ([`payload`]), so any process can check any
//! record without being told what was written.

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use applog::{Options, Reader, Writer};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Small segments, so that a few hundred records span several of them.
const SEGMENT_PAGES: u32 = 4;
/// Records appended in step 1.
const FIRST_RECORDS: u64 = 1_000;
/// How long the crashing writer runs before it is killed.
const WRITER_LIFETIME: Duration = Duration::from_millis(300);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => demo(),
        [cmd, dir] if cmd == "read" => read_all(Path::new(dir)),
        [cmd, dir] if cmd == "write-forever" => write_forever(Path::new(dir)),
        _ => Err("usage: demo [read DIR | write-forever DIR]".into()),
    }
}

/// The record with sequence number `seq`: text of a length that varies with the seq.
fn payload(seq: u64) -> Vec<u8> {
    let mut p = format!("record {seq:06} ").into_bytes();
    let filler = (seq * 37 % 200) as usize;
    p.extend((0..filler).map(|i| b'a' + ((seq as usize + i) % 26) as u8));
    p
}

/// FNV-1a over (seq, bytes) of every record, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checksum(u64);

impl Checksum {
    fn new() -> Self {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    fn add(&mut self, seq: u64, data: &[u8]) {
        for &b in seq.to_le_bytes().iter().chain(data) {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn demo() -> Result<()> {
    let started = Instant::now();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("log");
    println!("applog demo: a log in {}", dir.display());

    // 1. Append across several segments, then sync.
    println!("\n1. Append");
    let mut writer = Writer::open(&dir, Options::new().segment_pages(SEGMENT_PAGES))?;
    let mut expected = Checksum::new();
    let mut bytes = 0;
    for seq in 0..FIRST_RECORDS {
        let data = payload(seq);
        bytes += data.len();
        expected.add(seq, &data);
        let got = writer.append(&data)?;
        assert_eq!(got, seq);
    }
    writer.sync()?;
    println!(
        "   appended {FIRST_RECORDS} records ({bytes} bytes of payload) and synced: they survive a power cut now"
    );
    writer.close()?;
    let report = applog::verify(&dir)?;
    println!(
        "   the log has {} segments of {} bytes reservation each, {} bytes of files",
        report.segments.len(),
        report.segments.first().map_or(0, |s| s.reservation),
        report.bytes
    );

    // 2. Another process reads everything back.
    println!("\n2. Read from another process");
    let output = Command::new(std::env::current_exe()?)
        .arg("read")
        .arg(&dir)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "the reader process failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let line = String::from_utf8(output.stdout)?;
    let line = line.trim();
    println!("   reader process says: {line}");
    let want = format!("records={FIRST_RECORDS} checksum={:016x}", expected.0);
    if line != want {
        return Err(format!("the reader saw `{line}`, expected `{want}`").into());
    }
    println!("   matches what was written");

    // 3. A writer process is killed mid-append; then the tail is damaged as by a power cut.
    println!("\n3. Crash a writer");
    let mut child = Command::new(std::env::current_exe()?)
        .arg("write-forever")
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut ready = String::new();
    BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut ready)?;
    println!(
        "   writer process {} started appending at seq {}",
        child.id(),
        ready.trim().trim_start_matches("ready at seq ")
    );
    std::thread::sleep(WRITER_LIFETIME);
    child.kill()?; // SIGKILL: no destructor, no sync, nothing runs.
    let status = child.wait()?;
    println!(
        "   killed it after {} ms (signal {})",
        WRITER_LIFETIME.as_millis(),
        status.signal().map_or("none".into(), |s| s.to_string())
    );
    let report = applog::verify(&dir)?;
    println!(
        "   after the kill the log holds {} records in {} segments (a killed process loses nothing it appended: the page cache keeps it)",
        report.records,
        report.segments.len()
    );

    let last = damage_tail(&dir)?;
    println!(
        "   then wrote 16 bytes of garbage after the last record, at byte offset {} of {}",
        last.data_end,
        file_name(&last.path)
    );

    // 4. Verify, recover, check, append again.
    println!("\n4. Recover");
    let report = applog::verify(&dir)?;
    let tail = report
        .torn_tail
        .as_ref()
        .ok_or("verify found no torn tail")?;
    if !report.is_clean() {
        return Err(format!("verify found corruption: {:?}", report.corruptions).into());
    }
    println!(
        "   verify: clean, with a torn tail in {} at byte offset {} ({})",
        file_name(&tail.segment),
        tail.offset,
        tail.reason
    );
    let records_before = report.next_seq;
    let mut writer = Writer::open(&dir, Options::new().segment_pages(SEGMENT_PAGES))?;
    println!(
        "   reopened a writer: it cut the torn tail; next seq is {}",
        writer.next_seq()
    );
    if writer.next_seq() != records_before {
        return Err(format!(
            "the writer resumes at seq {}, verify said {records_before}",
            writer.next_seq()
        )
        .into());
    }
    let checked = check_every_record(&dir)?;
    println!("   read all {checked} records back: every one is intact");
    let more = 100;
    for _ in 0..more {
        let seq = writer.next_seq();
        writer.append(&payload(seq))?;
    }
    writer.close()?;
    let report = applog::verify(&dir)?;
    if !report.is_clean() || report.torn_tail.is_some() || report.records != checked + more {
        return Err(format!("unexpected report after appending: {report:?}").into());
    }
    println!(
        "   appended {more} more: verify says clean, {} records, seq {}..{}",
        report.records, report.first_seq, report.next_seq
    );
    check_every_record(&dir)?;

    println!("\ndone in {} ms", started.elapsed().as_millis());
    Ok(())
}

/// Writes 16 bytes of garbage right after the last record of the newest segment, inside the
/// file's current size, and returns that segment's report from before the damage.
fn damage_tail(dir: &Path) -> Result<applog::SegmentReport> {
    let mut last = applog::verify(dir)?
        .segments
        .pop()
        .ok_or("the log has no segments")?;
    if last.file_size < last.data_end + 16 {
        // The records end at the very end of the file: append one more (without a sync, as
        // the killed writer would have) so that the file grows and leaves room after it.
        let mut writer = Writer::open(dir, Options::new().segment_pages(SEGMENT_PAGES))?;
        let seq = writer.next_seq();
        writer.append(&payload(seq))?;
        drop(writer);
        last = applog::verify(dir)?
            .segments
            .pop()
            .ok_or("the log has no segments")?;
    }
    if last.file_size < last.data_end + 16 {
        return Err("no room after the last record".into());
    }
    let file = std::fs::OpenOptions::new().write(true).open(&last.path)?;
    file.write_at(&[0xA5; 16], last.data_end)?;
    Ok(last)
}

/// Reads the whole log and checks every record against [`payload`]; returns the count.
fn check_every_record(dir: &Path) -> Result<u64> {
    let mut reader = Reader::open(dir)?;
    let mut count = 0;
    while let Some(record) = reader.next()? {
        if record.seq() != count || record.data() != payload(count).as_slice() {
            return Err(format!("record {} is not what was written", record.seq()).into());
        }
        count += 1;
    }
    Ok(count)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// `read DIR`: reads every record and prints `records=N checksum=X`.
fn read_all(dir: &Path) -> Result<()> {
    let mut reader = Reader::open(dir)?;
    let mut sum = Checksum::new();
    let mut count = 0u64;
    while let Some(record) = reader.next()? {
        sum.add(record.seq(), record.data());
        count += 1;
    }
    println!("records={count} checksum={:016x}", sum.0);
    Ok(())
}

/// `write-forever DIR`: appends until killed, syncing every 20 records and pausing a little
/// so that the demo's log stays small.
fn write_forever(dir: &Path) -> Result<()> {
    let mut writer = Writer::open(dir, Options::new().segment_pages(SEGMENT_PAGES))?;
    println!("ready at seq {}", writer.next_seq());
    loop {
        let seq = writer.next_seq();
        writer.append(&payload(seq))?;
        if seq % 20 == 19 {
            writer.sync()?;
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
