//! Turns one benchmark run into `results.md` and SVG plots: what `scripts/bench-report.sh`
//! runs after the benches. With `--ipc`, turns two runs of the append (128 B) and tail
//! benches, one on ext4 and one on tmpfs, into `ipc.md` and its plots: what
//! `scripts/ipc-report.sh` runs.
//!
//! ```text
//! cargo run --release -p applog-bench --bin bench_report -- RESULTS_DIR OUT_DIR
//! cargo run --release -p applog-bench --bin bench_report -- --ipc EXT4_RESULTS TMPFS_RESULTS OUT_DIR
//! ```
//!
//! RESULTS_DIR holds `criterion/` (criterion's output, `CRITERION_HOME`), `extra.tsv` (the
//! percentiles and memory figures the benches record, see `bench/benches/support/mod.rs`) and
//! `run.tsv` (machine, command, load, dates, written by the script). OUT_DIR gets
//! `results.md`, `append_throughput.svg` and `latency_percentiles.svg`. Only what the run
//! measured is shown; every figure is criterion's median (or a percentile of individually
//! timed calls, where the table says so).
//!
//! EXT4_RESULTS and TMPFS_RESULTS are results directories like RESULTS_DIR; OUT_DIR gets
//! `ipc.md`, `ipc_append.svg` and `ipc_throughput.svg`.
//!
//! `sections` writes the tables of `results.md`, `plots` draws its SVG plots; `ipc` and
//! `ipc_plots` do the same for `ipc.md`; this file reads the runs. A missing or unreadable
//! results directory, no criterion results in it, criterion output that is not JSON or lacks
//! the fields read here, or an output that cannot be written is an error that names the file,
//! and exit status 1; `extra.tsv` and `run.tsv` may be absent. For `--ipc`, a run without any
//! append 128 B or tail benchmark, or whose `run.tsv` names another file system than its
//! column's, is an error too.

mod ipc;
mod ipc_plots;
mod plots;
mod sections;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

/// Percentiles and other figures criterion does not keep, from `extra.tsv`: (name, key) to
/// value.
type Extra = BTreeMap<(String, String), f64>;

/// One run of benches: what a results directory holds.
struct Run {
    /// Criterion's benchmarks, sorted by group (numbers as numbers) and function.
    benches: Vec<Bench>,
    extra: Extra,
    /// The run's description from `run.tsv`: machine, command, load, dates.
    meta: BTreeMap<String, String>,
    /// The results directory, for error messages.
    dir: PathBuf,
}

/// One criterion benchmark.
#[derive(Clone, Debug)]
struct Bench {
    group: String,
    function: String,
    /// Median time per iteration, ns.
    median: f64,
    /// Bytes per iteration, when the bench declared a byte throughput.
    bytes: Option<f64>,
}

/// The append variants, in the order tables and plots show them, with their descriptions.
const APPEND_VARIANTS: [(&str, &str); 9] = [
    ("applog", "applog, default options, pretouch off"),
    ("applog_grow16", "applog, `grow_pages(16)`"),
    ("bufwriter", "`BufWriter<File>` log, same framing"),
    ("okaywal", "okaywal `write_chunk` (no commit)"),
    ("commitlog", "commitlog `append_msg` (no flush)"),
    ("mmap_presized", "naive mmap log, pre-sized file"),
    ("mmap_presized_populate", "the same, `MAP_POPULATE`"),
    ("mmap_presized_hugepage", "the same, `MADV_HUGEPAGE`"),
    ("memcpy", "memcpy into faulted memory (limit)"),
];
/// The append variants measured at 128 B only, with their descriptions.
const APPEND_128B_VARIANTS: [(&str, &str); 6] = [
    ("applog_pretouch", "applog, `pretouch(8)`"),
    (
        "applog_pretouch32",
        "applog, `pretouch(32)` (the tmpfs default)",
    ),
    (
        "applog_batch16",
        "applog, `append_batch` of 16, pretouch off",
    ),
    (
        "applog_batch64",
        "applog, `append_batch` of 64, pretouch off",
    ),
    ("applog_coarse_time", "applog, `RecordTime::Coarse`"),
    ("applog_no_time", "applog, `RecordTime::Off`"),
];
/// The lines of `run.tsv` the reports show, in order, with their labels (`benches` only where
/// the run names them).
const RUN_FIELDS: [(&str, &str); 13] = [
    ("filesystem", "file system of the bench files"),
    ("started", "started (UTC)"),
    ("finished", "finished (UTC)"),
    ("cpu", "CPU"),
    ("cpus", "CPUs"),
    ("memory", "memory"),
    ("kernel", "kernel"),
    ("rustc", "rustc"),
    ("criterion", "criterion options"),
    ("benches", "benches run"),
    ("load_before", "load average before (1, 5, 15 min)"),
    ("load_after", "load average after"),
    ("commit", "applog commit"),
];
/// The schedules of the `tail_stamped/<schedule>/<transport>` figures, in the order the
/// tables show them.
const STAMPED_SCHEDULES: [&str; 2] = ["idle", "busy"];
/// The transports of the tail bench, in the order the tables show them.
const TAIL_TRANSPORTS: [&str; 4] = ["applog_spin", "applog_block", "pipe", "unix_socket"];
/// What the `tail_stamped` figures are, for the tables' titles.
const STAMPED_TITLE: &str = "One-way latency timed by the receiver, from the intended send \
     time: each message carries the time its slot in a fixed schedule was due (`idle`: one \
     message per 50 µs; `busy`: one message per 2 µs, 500,000 a second); the writer sends it \
     then, or at once when behind, so a stall of the writer counts against every message due \
     meanwhile (no coordinated omission)";
const APPEND_SIZES: [(&str, f64); 5] = [
    ("16B", 16.0),
    ("128B", 128.0),
    ("1KiB", 1024.0),
    ("4KiB", 4096.0),
    ("64KiB", 65536.0),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [results, out] if !results.starts_with("--") => report(Path::new(results), Path::new(out)),
        [flag, ext4, tmpfs, out] if flag == "--ipc" => {
            ipc_report(Path::new(ext4), Path::new(tmpfs), Path::new(out))
        }
        _ => {
            eprintln!(
                "usage: bench_report RESULTS_DIR OUT_DIR\n       \
                 bench_report --ipc EXT4_RESULTS TMPFS_RESULTS OUT_DIR"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the run in `results` and writes `results.md` and its plots into `out`. The errors
/// name the file.
fn report(results: &Path, out: &Path) -> Result<(), String> {
    let run = load_run(results, "RESULTS_DIR")?;
    let write = writer(out)?;
    write(
        "results.md",
        sections::results_md(&run.benches, &run.extra, &run.meta),
    )?;
    let plot = |name: &str, svg: Result<String, Box<dyn std::error::Error>>| {
        write(name, svg.map_err(|e| format!("drawing {name}: {e}"))?)
    };
    plot("append_throughput.svg", plots::append_svg(&run.benches))?;
    plot("latency_percentiles.svg", plots::latency_svg(&run.extra))?;
    eprintln!(
        "bench_report: {} benchmarks -> {}",
        run.benches.len(),
        out.join("results.md").display()
    );
    Ok(())
}

/// Reads the ext4 and the tmpfs run and writes `ipc.md` and its plots into `out`.
fn ipc_report(ext4: &Path, tmpfs: &Path, out: &Path) -> Result<(), String> {
    let mut runs = Vec::new();
    for (dir, fs) in [ext4, tmpfs].into_iter().zip(ipc::FILE_SYSTEMS) {
        let run = load_run(dir, &format!("{} results", fs.to_uppercase()))?;
        ipc::check(&run, fs)?;
        runs.push(run);
    }
    let runs = [&runs[0], &runs[1]];
    let write = writer(out)?;
    write("ipc.md", ipc::ipc_md(runs))?;
    let plot = |name: &str, svg: Result<String, Box<dyn std::error::Error>>| {
        write(name, svg.map_err(|e| format!("drawing {name}: {e}"))?)
    };
    plot("ipc_append.svg", ipc_plots::append_svg(runs))?;
    plot("ipc_throughput.svg", ipc_plots::throughput_svg(runs))?;
    eprintln!("bench_report: -> {}", out.join("ipc.md").display());
    Ok(())
}

/// Creates `out` and returns a function that writes a file into it; its errors name the file.
fn writer(out: &Path) -> Result<impl Fn(&str, String) -> Result<(), String> + '_, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(move |name: &str, text: String| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    })
}

/// Reads a results directory (`what` names it in errors: `RESULTS_DIR`, ...).
fn load_run(results: &Path, what: &str) -> Result<Run, String> {
    let meta =
        std::fs::metadata(results).map_err(|e| format!("{what} {}: {e}", results.display()))?;
    if !meta.is_dir() {
        return Err(format!("{what} {}: not a directory", results.display()));
    }
    let criterion = results.join("criterion");
    if !criterion.is_dir() {
        return Err(format!(
            "{}: no criterion output (CRITERION_HOME) in {what}",
            criterion.display()
        ));
    }
    let mut benches = Vec::new();
    load_benches(&criterion, &mut benches)?;
    if benches.is_empty() {
        return Err(format!(
            "{}: no benchmark results (no */new/benchmark.json)",
            criterion.display()
        ));
    }
    benches.sort_by(|a, b| (natural(&a.group), &a.function).cmp(&(natural(&b.group), &b.function)));
    Ok(Run {
        benches,
        extra: load_tsv(&results.join("extra.tsv"))?,
        meta: load_meta(&results.join("run.tsv"))?,
        dir: results.to_owned(),
    })
}

/// A sort key that puts `durable/4` before `durable/16`: numbers compare as numbers.
fn natural(s: &str) -> Vec<(u64, String)> {
    s.split('/')
        .map(|part| match part.parse::<u64>() {
            Ok(n) => (n, String::new()),
            Err(_) => (u64::MAX, part.to_owned()),
        })
        .collect()
}

/// Every `new/` directory under `dir` (criterion's latest result of one benchmark), skipping
/// criterion's `report/` directories.
fn load_benches(dir: &Path, out: &mut Vec<Bench>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let p = e.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            out.push(load_bench(&p)?);
        } else if p.file_name().is_none_or(|n| n != "report") {
            load_benches(&p, out)?;
        }
    }
    Ok(())
}

/// One benchmark from criterion's `benchmark.json` (its id and throughput) and
/// `estimates.json` (the median).
fn load_bench(dir: &Path) -> Result<Bench, String> {
    let read = |f: &str| -> Result<(PathBuf, Value), String> {
        let path = dir.join(f);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let json = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not valid JSON: {e}", path.display()))?;
        Ok((path, json))
    };
    let (meta_path, meta) = read("benchmark.json")?;
    let (est_path, est) = read("estimates.json")?;
    let group = meta["group_id"]
        .as_str()
        .ok_or_else(|| format!("{}: no \"group_id\" string", meta_path.display()))?
        .to_owned();
    let mut function = meta["function_id"].as_str().unwrap_or("").to_owned();
    if let Some(v) = meta["value_str"].as_str() {
        function = format!("{function}/{v}");
    }
    let median = est["median"]["point_estimate"].as_f64().ok_or_else(|| {
        format!(
            "{}: no \"median\".\"point_estimate\" number",
            est_path.display()
        )
    })?;
    Ok(Bench {
        group,
        function,
        median,
        bytes: meta["throughput"]["Bytes"].as_f64(),
    })
}

/// A file the benches or the script may not have written: absent is empty, any other error
/// is one.
fn read_optional(path: &Path) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// `name <TAB> key <TAB> value` lines; a later line replaces an earlier one.
fn load_tsv(path: &Path) -> Result<BTreeMap<(String, String), f64>, String> {
    let mut m = BTreeMap::new();
    for line in read_optional(path)?.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let [name, key, value] = f[..] {
            if let Ok(v) = value.parse() {
                m.insert((name.to_owned(), key.to_owned()), v);
            }
        }
    }
    Ok(m)
}

/// `key <TAB> value` lines of the run description.
fn load_meta(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let mut m = BTreeMap::new();
    for line in read_optional(path)?.lines() {
        if let Some((k, v)) = line.split_once('\t') {
            m.insert(k.to_owned(), v.to_owned());
        }
    }
    Ok(m)
}

fn find<'a>(benches: &'a [Bench], group: &str, function: &str) -> Option<(usize, &'a Bench)> {
    benches
        .iter()
        .enumerate()
        .find(|(_, b)| b.group == group && b.function == function)
}

/// One `tail_stamped/<schedule>/<transport>` figure set.
struct StampedRow {
    /// The name in `extra.tsv`.
    name: String,
    schedule: String,
    transport: String,
}

/// The `tail_stamped/` names in `extra` (any of `runs`), schedules and transports in the order
/// of [`STAMPED_SCHEDULES`] and [`TAIL_TRANSPORTS`], others after them by name.
fn stamped_rows<'a>(runs: impl IntoIterator<Item = &'a Extra>) -> Vec<StampedRow> {
    let mut names: Vec<&String> = runs
        .into_iter()
        .flat_map(|e| e.keys())
        .filter(|(n, k)| n.starts_with("tail_stamped/") && k == "p50_ns")
        .map(|(n, _)| n)
        .collect();
    names.sort();
    names.dedup();
    let rank = |list: &[&str], x: &str| list.iter().position(|y| *y == x).unwrap_or(list.len());
    let mut rows: Vec<StampedRow> = names
        .into_iter()
        .map(|n| {
            let rest = &n["tail_stamped/".len()..];
            let (schedule, transport) = rest.split_once('/').unwrap_or(("–", rest));
            StampedRow {
                name: n.clone(),
                schedule: schedule.to_owned(),
                transport: transport.to_owned(),
            }
        })
        .collect();
    rows.sort_by_key(|r| {
        (
            rank(&STAMPED_SCHEDULES, &r.schedule),
            rank(&TAIL_TRANSPORTS, &r.transport),
            r.name.clone(),
        )
    });
    rows
}
