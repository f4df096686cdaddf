//! Turns one benchmark run into `results.md` and SVG plots: what `scripts/bench-report.sh`
//! runs after the benches.
//!
//! ```text
//! cargo run --release -p applog-bench --bin bench_report -- RESULTS_DIR OUT_DIR
//! ```
//!
//! RESULTS_DIR holds `criterion/` (criterion's output, `CRITERION_HOME`), `extra.tsv` (the
//! percentiles and memory figures the benches record, see `bench/benches/support/mod.rs`) and
//! `run.tsv` (machine, command, load, dates, written by the script). OUT_DIR gets
//! `results.md`, `append_throughput.svg` and `latency_percentiles.svg`. Only what the run
//! measured is shown; every figure is criterion's median (or a percentile of individually
//! timed calls, where the table says so).

//!
//! `sections` writes the tables of `results.md`, `plots` draws the SVG plots; this file reads
//! the run.

mod plots;
mod sections;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

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
    ("applog", "applog, default options"),
    ("applog_grow16", "applog, `grow_pages(16)`"),
    ("bufwriter", "`BufWriter<File>` log, same framing"),
    ("okaywal", "okaywal `write_chunk` (no commit)"),
    ("commitlog", "commitlog `append_msg` (no flush)"),
    ("mmap_presized", "naive mmap log, pre-sized file"),
    ("mmap_presized_populate", "the same, `MAP_POPULATE`"),
    ("mmap_presized_hugepage", "the same, `MADV_HUGEPAGE`"),
    ("memcpy", "memcpy into faulted memory (limit)"),
];
const APPEND_SIZES: [(&str, f64); 5] = [
    ("16B", 16.0),
    ("128B", 128.0),
    ("1KiB", 1024.0),
    ("4KiB", 4096.0),
    ("64KiB", 65536.0),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: bench_report RESULTS_DIR OUT_DIR");
        std::process::exit(2);
    }
    let results = PathBuf::from(&args[1]);
    let out = PathBuf::from(&args[2]);
    let mut benches = Vec::new();
    load_benches(&results.join("criterion"), &mut benches);
    benches.sort_by(|a, b| (natural(&a.group), &a.function).cmp(&(natural(&b.group), &b.function)));
    let extra = load_tsv(&results.join("extra.tsv"));
    let run = load_run(&results.join("run.tsv"));
    std::fs::create_dir_all(&out).expect("create the output directory");

    let md = sections::results_md(&benches, &extra, &run);
    std::fs::write(out.join("results.md"), md).expect("write results.md");
    std::fs::write(
        out.join("append_throughput.svg"),
        plots::append_svg(&benches),
    )
    .expect("write append_throughput.svg");
    std::fs::write(
        out.join("latency_percentiles.svg"),
        plots::latency_svg(&extra),
    )
    .expect("write latency_percentiles.svg");
    eprintln!(
        "bench_report: {} benchmarks -> {}",
        benches.len(),
        out.join("results.md").display()
    );
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

fn load_benches(dir: &Path, out: &mut Vec<Bench>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        if p.file_name().is_some_and(|n| n == "new") {
            if let Some(b) = load_bench(&p) {
                out.push(b);
            }
        } else if p.file_name().is_none_or(|n| n != "report") {
            load_benches(&p, out);
        }
    }
}

fn load_bench(dir: &Path) -> Option<Bench> {
    let read = |f: &str| -> Option<Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(f)).ok()?).ok()
    };
    let meta = read("benchmark.json")?;
    let est = read("estimates.json")?;
    let group = meta["group_id"].as_str()?.to_owned();
    let mut function = meta["function_id"].as_str().unwrap_or("").to_owned();
    if let Some(v) = meta["value_str"].as_str() {
        function = format!("{function}/{v}");
    }
    Some(Bench {
        group,
        function,
        median: est["median"]["point_estimate"].as_f64()?,
        bytes: meta["throughput"]["Bytes"].as_f64(),
    })
}

/// `name <TAB> key <TAB> value` lines; a later line replaces an earlier one.
fn load_tsv(path: &Path) -> BTreeMap<(String, String), f64> {
    let mut m = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if let [name, key, value] = f[..] {
            if let Ok(v) = value.parse() {
                m.insert((name.to_owned(), key.to_owned()), v);
            }
        }
    }
    m
}

/// `key <TAB> value` lines of the run description.
fn load_run(path: &Path) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        if let Some((k, v)) = line.split_once('\t') {
            m.insert(k.to_owned(), v.to_owned());
        }
    }
    m
}

fn find<'a>(benches: &'a [Bench], group: &str, function: &str) -> Option<(usize, &'a Bench)> {
    benches
        .iter()
        .enumerate()
        .find(|(_, b)| b.group == group && b.function == function)
}
