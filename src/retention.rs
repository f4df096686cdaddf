//! Retention: removing the oldest segments, never what a consumer still needs.
//!
//! One walk serves [`Writer::truncate_front`](crate::Writer::truncate_front), the writer's
//! [`Retention`] policy (applied at each rollover) and [`trim`] (any process, no writer lock).
//! Under the registry lock (see `consumer::registry`) it reads every consumer's position,
//! parks the consumers that fell further behind than the policy allows, and removes whole
//! segments whose records all lie below both the target and every other consumer's position.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::consumer::{self, ConsumerState};
use crate::dir;
use crate::error::{Error, Result};
use crate::io::FileSystem;

/// A retention policy: how much of the log to keep, and when to stop waiting for a consumer.
///
/// Set it on the writer with [`Options::retention`](crate::Options::retention) (applied each
/// time the log rolls to a new segment) or pass it to [`trim`]. Records are removed by whole
/// segments, oldest first, and never while a consumer that is not parked has not committed
/// them: a limit is a target the log shrinks to as its consumers move on.
///
/// # Example
/// ```
/// use applog::{Consumer, Options, Retention, Writer};
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// // Keep as little as possible: the newest segment (always kept) and what consumers need.
/// let policy = Retention::new().max_bytes(0);
/// let mut log = Writer::open(dir.path(), Options::new().segment_pages(1).retention(policy))?;
/// let record = vec![0u8; log.max_record_len() as usize / 2 + 8]; // one per segment
/// let mut slow = Consumer::open(dir.path(), "slow")?; // registered at seq 0
/// for _ in 0..4 {
///     log.append(&record)?; // from the second on, each rolls over and applies the policy
/// }
/// assert_eq!(log.first_seq(), 0); // "slow" has not committed record 0 yet
///
/// slow.next()?;
/// slow.next()?;
/// slow.commit()?; // done with records 0 and 1
/// log.append(&record)?;
/// assert_eq!(log.first_seq(), 2);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub(crate) max_bytes: Option<u64>,
    pub(crate) max_age: Option<Duration>,
    pub(crate) park_lag_bytes: Option<u64>,
    pub(crate) park_idle: Option<Duration>,
    pub(crate) min_free_bytes: Option<u64>,
}

impl Retention {
    /// Keeps everything (until limits are set).
    pub fn new() -> Retention {
        Retention::default()
    }

    /// Keep at most `bytes` of segment files (the newest segment is always kept).
    pub fn max_bytes(mut self, bytes: u64) -> Retention {
        self.max_bytes = Some(bytes);
        self
    }

    /// Remove segments whose records are all older than `age` (by the time their file was
    /// last written).
    pub fn max_age(mut self, age: Duration) -> Retention {
        self.max_age = Some(age);
        self
    }

    /// Park a consumer whose lag exceeds `bytes`: retention stops waiting for it.
    pub fn park_lag_bytes(mut self, bytes: u64) -> Retention {
        self.park_lag_bytes = Some(bytes);
        self
    }

    /// Park a consumer that lags and has not committed for `idle`.
    pub fn park_idle(mut self, idle: Duration) -> Retention {
        self.park_idle = Some(idle);
        self
    }

    /// The writer refuses to start a new segment while the file system has less than `bytes`
    /// free (after applying the policy once more): appends fail with
    /// [`Error::FreeSpaceFloor`] instead of filling the disk. Only with
    /// [`Options::retention`](crate::Options::retention).
    pub fn min_free_bytes(mut self, bytes: u64) -> Retention {
        self.min_free_bytes = Some(bytes);
        self
    }

    fn has_limits(&self) -> bool {
        self.max_bytes.is_some() || self.max_age.is_some()
    }
}

/// What a retention pass did (or, dry, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrimReport {
    /// The segment files removed, oldest first.
    pub removed: Vec<PathBuf>,
    /// Records in them.
    pub records: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The log's first seq after it.
    pub first_seq: u64,
    /// The consumer that held retention back (the slowest one not parked), when it did.
    pub held_back_by: Option<String>,
    /// Consumers parked by this pass.
    pub parked: Vec<String>,
    /// Whether nothing was changed (a dry run).
    pub dry_run: bool,
}

/// A retention pass to run with [`trim`].
#[derive(Clone, Debug, Default)]
pub struct Trim {
    before: Option<u64>,
    policy: Retention,
    dry_run: bool,
}

impl Trim {
    /// Up to the slowest consumer (nothing when the log has no consumer).
    pub fn new() -> Trim {
        Trim::default()
    }

    /// Remove only segments whose records are all below `seq`.
    pub fn before(mut self, seq: u64) -> Trim {
        self.before = Some(seq);
        self
    }

    /// Apply `policy`'s limits and parking (its `min_free_bytes` is the writer's only).
    pub fn policy(mut self, policy: Retention) -> Trim {
        self.policy = policy;
        self
    }

    /// Change nothing; say what would be removed.
    pub fn dry_run(mut self, dry: bool) -> Trim {
        self.dry_run = dry;
        self
    }
}

/// Removes the oldest segments of the log in `dir`: those whose records all lie below the
/// target (`before`, or the policy's limits; without either, the slowest consumer's position,
/// and nothing when the log has no consumer) **and** below every
/// consumer's committed position, except consumers the policy parks. Runs beside a live
/// writer (it needs no writer lock): it never removes the newest segment, nor one whose seal
/// is not yet durable.
///
/// # Errors
/// [`Error::Io`] when a file cannot be removed or the directory synced; as
/// [`consumers`](crate::consumers).
///
/// # Example
/// ```
/// use applog::{Consumer, Options, Trim, Writer};
/// # fn main() -> applog::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let mut log = Writer::open(dir.path(), Options::new().segment_pages(1))?;
/// let record = vec![0u8; log.max_record_len() as usize / 2 + 8]; // one per segment
/// for _ in 0..4 {
///     log.append(&record)?;
/// }
/// log.sync()?; // trim removes only segments whose seal is durable
///
/// // Another process (no writer lock needed): what would go below seq 2?
/// let plan = applog::trim(dir.path(), &Trim::new().before(2).dry_run(true))?;
/// assert_eq!((plan.removed.len(), plan.first_seq), (2, 2));
///
/// // Without a target, trim goes as far as the slowest consumer.
/// let mut archiver = Consumer::open(dir.path(), "archiver")?;
/// archiver.next()?;
/// archiver.commit()?; // record 0 is archived
/// assert_eq!(applog::trim(dir.path(), &Trim::new())?.first_seq, 1);
/// # Ok(()) }
/// ```
pub fn trim(dir: impl AsRef<Path>, trim: &Trim) -> Result<TrimReport> {
    let dir = dir.as_ref();
    let fs = crate::io::real();
    // Without a target or limits: as far as the consumers let it, and nothing without one.
    let (target, needs_consumer) = match trim.before {
        Some(b) => (Some(b), false),
        None if trim.policy.has_limits() => (None, false),
        None => (Some(u64::MAX), true),
    };
    let pass = Pass {
        target,
        needs_consumer,
        policy: &trim.policy,
        dry_run: trim.dry_run,
        writer: None,
    };
    let (report, err) = run(dir, &fs, &pass);
    if !report.removed.is_empty() && !report.dry_run {
        fs.sync_dir(dir)
            .map_err(|e| Error::io("could not sync log directory", dir, e))?;
    }
    match err {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// The writer's own end, when it runs the pass: (active segment base, next seq, end offset).
pub(crate) type WriterEnd = (u64, u64, u64);

/// One retention pass.
pub(crate) struct Pass<'a> {
    /// Remove below this seq (`None`: only what the policy's limits say).
    pub target: Option<u64>,
    /// Remove nothing when the log has no consumer.
    pub needs_consumer: bool,
    pub policy: &'a Retention,
    pub dry_run: bool,
    /// The writer's own end, when it runs the pass (then segments up to its active one may go
    /// without proof of a durable seal: it knows its own).
    pub writer: Option<WriterEnd>,
}

/// Runs a retention pass: what it removed, and the error that stopped it, if one did. The
/// caller fsyncs the directory when something was removed (also when an error stopped it).
pub(crate) fn run(
    dir: &Path,
    fs: &Arc<dyn FileSystem>,
    pass: &Pass<'_>,
) -> (TrimReport, Option<Error>) {
    let span = tracing::info_span!(
        "applog.retention",
        dir = %dir.display(),
        target = pass.target,
        dry_run = pass.dry_run,
        removed_segments = tracing::field::Empty,
        removed_records = tracing::field::Empty,
        first_seq = tracing::field::Empty,
    );
    let _entered = span.enter();
    let mut report = TrimReport {
        dry_run: pass.dry_run,
        ..TrimReport::default()
    };
    let err = run_into(dir, fs, pass, &mut report).err();
    span.record("removed_segments", report.removed.len() as u64);
    span.record("removed_records", report.records);
    span.record("first_seq", report.first_seq);
    if !pass.dry_run {
        crate::metrics::retention_ran(
            dir,
            report.removed.len() as u64,
            report.records,
            report.bytes,
        );
    }
    (report, err)
}

fn run_into(
    dir: &Path,
    fs: &Arc<dyn FileSystem>,
    pass: &Pass<'_>,
    report: &mut TrimReport,
) -> Result<()> {
    let Pass {
        target,
        needs_consumer,
        policy,
        dry_run,
        writer,
    } = *pass;
    let _registry = consumer::lock_registry(dir)?;
    let listing = dir::list_log(dir)?;
    let segs = &listing.segments;
    report.first_seq = segs.first().map_or(0, |e| e.base);
    if segs.len() < 2 {
        return Ok(());
    }
    let meta: Vec<(u64, SystemTime)> = segs
        .iter()
        .map(|e| {
            std::fs::metadata(&e.path).map_or((0, SystemTime::UNIX_EPOCH), |m| {
                (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH))
            })
        })
        .collect();
    // The policy's limits: the first seq to keep.
    let mut keep_from = target.unwrap_or(0);
    if let Some(max) = policy.max_bytes {
        let mut total = 0u64;
        for i in (0..segs.len()).rev() {
            total = total.saturating_add(meta[i].0);
            if total > max && i + 1 < segs.len() {
                keep_from = keep_from.max(segs[i + 1].base);
                break;
            }
        }
    }
    if let Some(age) = policy.max_age {
        let cutoff = SystemTime::now().checked_sub(age);
        for i in 0..segs.len() - 1 {
            if cutoff.is_none_or(|c| meta[i].1 >= c) {
                break;
            }
            keep_from = keep_from.max(segs[i + 1].base);
        }
    }
    // What may go at all, consumers aside: whole segments below the target, never the newest,
    // never the writer's active one, and without the writer's word only a durably sealed one
    // (its records are durable, and so is its successor's header).
    let mut removable = 0;
    for (i, e) in segs.iter().enumerate() {
        let Some(next) = segs.get(i + 1) else { break };
        if next.base > keep_from {
            break;
        }
        match writer {
            Some((active, _, _)) if e.base >= active || next.base > active => break,
            Some(_) => {}
            None => {
                if crate::recovery::link(e, next.base, false)? != crate::recovery::Link::Proven {
                    tracing::debug!(segment = %e.path.display(), "not removed: its seal is not durable yet");
                    break;
                }
            }
        }
        removable = i + 1;
    }
    let names = consumer::registry_names(dir)?;
    // Nothing can go, or "up to the slowest consumer" and there is none.
    if removable == 0 || (needs_consumer && names.is_empty()) {
        return Ok(());
    }
    // The first seq kept if every removable segment goes.
    let reach = segs[removable].base;
    // The consumers: those the policy gives up on, and the others.
    let mut kept: Vec<(u64, String)> = Vec::new();
    let mut over: Vec<(u64, u64, String)> = Vec::new();
    if !names.is_empty() {
        let end = consumer::end_for(dir, writer)?;
        let now = SystemTime::now();
        for name in names {
            let info = match consumer::info(dir, &name, &end) {
                Ok(i) => i,
                Err(Error::UnknownConsumer { .. }) => continue,
                Err(e) => return Err(e),
            };
            crate::metrics::consumer_lag(dir, &name, info.lag, Some(info.lag_bytes));
            if matches!(info.state, ConsumerState::Parked { .. }) {
                continue;
            }
            if !dry_run {
                // The position read may be a commit not yet made durable: make it so before
                // removing what it covers, or a power cut would bring back an older position
                // whose records are gone.
                consumer::sync_position(dir, &name)?;
            }
            let too_far = policy.park_lag_bytes.is_some_and(|b| info.lag_bytes > b);
            let too_idle = info.lag > 0
                && policy
                    .park_idle
                    .is_some_and(|d| now.duration_since(info.last_commit).unwrap_or_default() > d);
            if too_far || too_idle {
                over.push((info.next_seq, info.lag_bytes, name));
            } else {
                kept.push((info.next_seq, name));
            }
        }
    }
    // How far this pass goes if the consumers given up on are parked: up to the slowest of the
    // others (and, "up to the slowest consumer" with none of them left, nowhere).
    let slowest_kept = kept.iter().map(|(s, _)| *s).min();
    let target_seq = match (needs_consumer, slowest_kept) {
        (true, None) => return Ok(()),
        (true, Some(s)) => reach.min(s),
        (false, _) => reach,
    };
    // Park only a consumer that holds back what this pass would remove.
    for (seq, lag_bytes, name) in over {
        if seq >= target_seq {
            kept.push((seq, name));
            continue;
        }
        if !dry_run {
            consumer::park(dir, &name, seq, lag_bytes)?;
            tracing::warn!(
                consumer = %name,
                next_seq = seq,
                lag_bytes,
                "consumer parked: it fell too far behind; retention no longer waits for it"
            );
        }
        report.parked.push(name);
    }
    let bound = match kept.iter().min_by_key(|(s, _)| *s) {
        Some((s, name)) if *s < reach => {
            report.held_back_by = Some(name.clone());
            target_seq.min(*s)
        }
        _ => target_seq,
    };
    for (i, e) in segs.iter().enumerate().take(removable) {
        let Some(next) = segs.get(i + 1) else { break };
        if next.base > bound {
            break;
        }
        if !dry_run {
            match fs.remove_file(&e.path) {
                Ok(()) => {}
                // Removed by another pass meanwhile (a writer's, before it took the lock).
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(Error::io("could not remove segment", &e.path, err)),
            }
            tracing::debug!(segment = %e.path.display(), "removed by retention");
        }
        report.removed.push(e.path.clone());
        report.records += next.base - e.base;
        report.bytes += meta[i].0;
        report.first_seq = next.base;
    }
    Ok(())
}
