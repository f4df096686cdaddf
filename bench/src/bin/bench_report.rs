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

use std::collections::BTreeMap;
use std::fmt::Write as _;
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

    let mut md = String::new();
    header(&mut md, &run);
    let mut shown = vec![false; benches.len()];
    append_section(&mut md, &benches, &mut shown);
    durable_latency_section(&mut md, &benches, &extra, &mut shown);
    group_commit_section(&mut md, &benches, &extra, &mut shown);
    tail_section(&mut md, &benches, &extra, &mut shown);
    scan_section(&mut md, &benches, &extra, &mut shown);
    rest_section(&mut md, &benches, &shown);
    std::fs::write(out.join("results.md"), md).expect("write results.md");
    std::fs::write(out.join("append_throughput.svg"), append_svg(&benches))
        .expect("write append_throughput.svg");
    std::fs::write(out.join("latency_percentiles.svg"), latency_svg(&extra))
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

/// A time in ns, in a readable unit.
fn time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.0} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{:.2} M/s", per_s / 1e6)
    } else if per_s >= 1e3 {
        format!("{:.1} k/s", per_s / 1e3)
    } else {
        format!("{per_s:.0}/s")
    }
}

fn header(md: &mut String, run: &BTreeMap<String, String>) {
    let get = |k: &str| run.get(k).map_or("?", String::as_str);
    let _ = writeln!(md, "# applog benchmark results\n");
    let _ = writeln!(
        md,
        "Generated by `{}` (a shell script that runs each bench with shortened criterion \
         times, then `bench/src/bin/bench_report.rs`, which writes this file and the plots). \
         Every figure below comes from this one run; criterion medians unless a column says \
         otherwise. Run-to-run noise on the machine this was made on is 15-30%: compare \
         figures within a table, not across runs.\n",
        get("command")
    );
    let _ = writeln!(md, "| | |\n|---|---|");
    for (k, label) in [
        ("started", "started (UTC)"),
        ("finished", "finished (UTC)"),
        ("cpu", "CPU"),
        ("cpus", "CPUs"),
        ("memory", "memory"),
        ("kernel", "kernel"),
        ("filesystem", "file system of the bench files"),
        ("rustc", "rustc"),
        ("criterion", "criterion options"),
        ("load_before", "load average before (1, 5, 15 min)"),
        ("load_after", "load average after"),
        ("commit", "applog commit"),
    ] {
        let _ = writeln!(md, "| {label} | {} |", get(k));
    }
    md.push('\n');
}

fn append_section(md: &mut String, benches: &[Bench], shown: &mut [bool]) {
    if !benches.iter().any(|b| b.group.starts_with("append/")) {
        return;
    }
    let _ = writeln!(
        md,
        "## Append without sync (`bench/benches/append.rs`)\n\n\
         Time per record (criterion median) and records per second, one thread, no sync. \
         Plot: [append_throughput.svg](append_throughput.svg).\n"
    );
    let variants: Vec<(&str, &str)> = APPEND_VARIANTS
        .iter()
        .copied()
        .filter(|(v, _)| {
            benches
                .iter()
                .any(|b| b.group.starts_with("append/") && b.function == *v)
        })
        .collect();
    let _ = write!(md, "| variant |");
    for (s, _) in APPEND_SIZES {
        let _ = write!(md, " {s} |");
    }
    let _ = write!(md, "\n|---|");
    for _ in APPEND_SIZES {
        let _ = write!(md, "---|");
    }
    md.push('\n');
    for (v, desc) in &variants {
        let _ = write!(md, "| `{v}`: {desc} |");
        for (s, _) in APPEND_SIZES {
            match find(benches, &format!("append/{s}"), v) {
                Some((i, b)) => {
                    shown[i] = true;
                    let _ = write!(md, " {} ({}) |", time(b.median), rate(1e9 / b.median));
                }
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    // Ratios: applog's throughput over each peer's (above 1: applog is faster).
    let _ = writeln!(
        md,
        "\nThroughput of applog (default options) divided by each peer's, same run \
         (above 1.00: applog is faster; **bold**: applog loses):\n"
    );
    let peers = [
        "bufwriter",
        "okaywal",
        "commitlog",
        "mmap_presized",
        "memcpy",
    ];
    let _ = write!(md, "| record |");
    for p in peers {
        let _ = write!(md, " vs `{p}` |");
    }
    let _ = writeln!(md, " best applog variant vs `bufwriter` |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for (s, _) in APPEND_SIZES {
        let g = format!("append/{s}");
        let Some((_, a)) = find(benches, &g, "applog") else {
            continue;
        };
        let _ = write!(md, "| {s} |");
        for p in peers {
            match find(benches, &g, p) {
                Some((_, b)) => {
                    let r = b.median / a.median;
                    if r < 1.0 {
                        let _ = write!(md, " **{r:.2}** |");
                    } else {
                        let _ = write!(md, " {r:.2} |");
                    }
                }
                None => md.push_str(" – |"),
            }
        }
        let best = benches
            .iter()
            .filter(|b| b.group == g && b.function.starts_with("applog"))
            .min_by(|x, y| x.median.total_cmp(&y.median));
        match (best, find(benches, &g, "bufwriter")) {
            (Some(best), Some((_, bw))) => {
                let _ = writeln!(
                    md,
                    " {:.2} (`{}`) |",
                    bw.median / best.median,
                    best.function
                );
            }
            _ => md.push_str(" – |\n"),
        }
    }
    md.push('\n');

    let costs: Vec<(usize, &Bench)> = benches
        .iter()
        .enumerate()
        .filter(|(_, b)| b.group == "costs")
        .collect();
    if !costs.is_empty() {
        let _ = writeln!(
            md,
            "### The pieces of the append path (`costs/`, per page unless named)\n\n\
             | cost | time |\n|---|---|"
        );
        for (i, b) in costs {
            shown[i] = true;
            let _ = writeln!(md, "| `{}` | {} |", b.function, time(b.median));
        }
        md.push('\n');
    }
}

fn durable_latency_section(
    md: &mut String,
    benches: &[Bench],
    extra: &BTreeMap<(String, String), f64>,
    shown: &mut [bool],
) {
    let rows: Vec<(usize, &Bench)> = benches
        .iter()
        .enumerate()
        .filter(|(_, b)| b.group.starts_with("durable_latency/"))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Durable append latency, one thread (`bench/benches/durable_latency.rs`)\n\n\
         One record made durable per call. Mean: criterion's median of batch means; \
         p50/p99/p99.9: every call timed on its own. \
         Plot: [latency_percentiles.svg](latency_percentiles.svg).\n\n\
         | benchmark | mean | p50 | p99 | p99.9 | p50 vs `pwrite_fdatasync` |\n|---|---|---|---|---|---|"
    );
    for (i, b) in rows {
        shown[i] = true;
        let name = format!("{}/{}", b.group, b.function);
        let q = |k: &str| extra.get(&(name.clone(), k.to_owned())).copied();
        let base = extra
            .get(&(format!("{}/pwrite_fdatasync", b.group), "p50_ns".to_owned()))
            .copied();
        let ratio = match (q("p50_ns"), base) {
            (Some(p), Some(base)) => {
                let r = p / base;
                if r > 1.0 {
                    format!("**{r:.2}x**")
                } else {
                    format!("{r:.2}x")
                }
            }
            _ => "–".into(),
        };
        let t = |v: Option<f64>| v.map_or("–".into(), time);
        let _ = writeln!(
            md,
            "| `{name}` | {} | {} | {} | {} | {ratio} |",
            time(b.median),
            t(q("p50_ns")),
            t(q("p99_ns")),
            t(q("p999_ns"))
        );
    }
    md.push('\n');
}

fn group_commit_section(
    md: &mut String,
    benches: &[Bench],
    extra: &BTreeMap<(String, String), f64>,
    shown: &mut [bool],
) {
    let rows: Vec<(usize, &Bench)> = benches
        .iter()
        .enumerate()
        .filter(|(_, b)| b.group.starts_with("durable/"))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Group commit: durable appends by thread count (`bench/benches/durable.rs`)\n\n\
         Durable appends per second over all threads (criterion's median), and the latency \
         of single calls (p50/p99 over every call the bench made).\n\n\
         | benchmark | durable appends/s | p50 | p99 |\n|---|---|---|---|"
    );
    for (i, b) in rows {
        shown[i] = true;
        let name = format!("{}/{}", b.group, b.function);
        let q = |k: &str| {
            extra
                .get(&(name.clone(), k.to_owned()))
                .copied()
                .map_or("–".into(), time)
        };
        let _ = writeln!(
            md,
            "| `{name}` | {} | {} | {} |",
            rate(1e9 / b.median),
            q("p50_ns"),
            q("p99_ns")
        );
    }
    md.push('\n');
}

fn tail_section(
    md: &mut String,
    benches: &[Bench],
    extra: &BTreeMap<(String, String), f64>,
    shown: &mut [bool],
) {
    let rows: Vec<(usize, &Bench)> = benches
        .iter()
        .enumerate()
        .filter(|(_, b)| b.group.starts_with("tail_"))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Cross-process tailing, 128 B (`bench/benches/tail.rs`)\n\n\
         `tail_latency`: one round trip (one-way latency is half); `tail_throughput`: \
         messages per second from one process to another.\n\n\
         | benchmark | time per iteration | rate |\n|---|---|---|"
    );
    for (i, b) in rows {
        shown[i] = true;
        let _ = writeln!(
            md,
            "| `{}/{}` | {} | {} |",
            b.group,
            b.function,
            time(b.median),
            rate(1e9 / b.median)
        );
    }
    for (prefix, title) in [
        (
            "tail_oneway/",
            "One-way latency from individually timed round trips (half of each)",
        ),
        (
            "tail_stamped/",
            "One-way latency measured one way (stamped messages every 50 µs from a busy writer, \
             timed by the receiver)",
        ),
    ] {
        let names: Vec<&String> = extra
            .keys()
            .filter(|(n, k)| n.starts_with(prefix) && k == "p50_ns")
            .map(|(n, _)| n)
            .collect();
        if names.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\n{title}:\n\n| transport | p50 | p99 |\n|---|---|---|");
        for n in names {
            let q = |k: &str| {
                extra
                    .get(&(n.clone(), k.to_owned()))
                    .copied()
                    .map_or("–".into(), time)
            };
            let _ = writeln!(md, "| `{n}` | {} | {} |", q("p50_ns"), q("p99_ns"));
        }
    }
    md.push('\n');
}

fn scan_section(
    md: &mut String,
    benches: &[Bench],
    extra: &BTreeMap<(String, String), f64>,
    shown: &mut [bool],
) {
    let groups: Vec<String> = {
        let mut g: Vec<String> = benches
            .iter()
            .filter(|b| b.group.starts_with("scan/"))
            .map(|b| b.group.clone())
            .collect();
        g.dedup();
        g
    };
    if !groups.is_empty() {
        let _ = writeln!(
            md,
            "## Reading a whole log (`bench/benches/scan.rs`)\n\n\
             Hot page cache; GB/s of segment-file bytes (10^9 bytes per second).\n\n\
             | log | log size | `verify` | `Reader` | `crc32fast` via mappings | `crc32fast` in memory | verify / crc32fast in memory | `Writer::open` (recovery) |\n\
             |---|---|---|---|---|---|---|---|"
        );
        for g in groups {
            let gbps =
                |f: &str| find(benches, &g, f).and_then(|(_, b)| b.bytes.map(|by| by / b.median));
            for (i, b) in benches.iter().enumerate() {
                if b.group == g {
                    shown[i] = true;
                }
            }
            let size = find(benches, &g, "verify")
                .and_then(|(_, b)| b.bytes)
                .map_or("–".into(), |b| {
                    format!("{:.2} GiB", b / (1u64 << 30) as f64)
                });
            let f = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
            let ratio = match (gbps("verify"), gbps("crc32fast_in_memory")) {
                (Some(v), Some(c)) => format!("{:.0}%", 100.0 * v / c),
                _ => "–".into(),
            };
            let open =
                find(benches, &g, "writer_open").map_or("–".into(), |(_, b)| time(b.median));
            let _ = writeln!(
                md,
                "| `{g}` | {size} | {} | {} | {} | {} | {ratio} | {open} |",
                f(gbps("verify")),
                f(gbps("reader")),
                f(gbps("crc32fast")),
                f(gbps("crc32fast_in_memory"))
            );
        }
        md.push('\n');
    }
    let rss: Vec<&String> = extra
        .keys()
        .filter(|(n, k)| n.starts_with("tail_rss/") && k == "rss_peak")
        .map(|(n, _)| n)
        .collect();
    if !rss.is_empty() {
        let _ = writeln!(
            md,
            "### Reader memory while tailing a large log\n\n\
             A `Tailer` reads the whole log from seq 0; the process's resident set is sampled \
             every 4096 records.\n\n\
             | log | records | log size | VmRSS before → peak | RssFile (mapped file pages) before → peak |\n\
             |---|---|---|---|---|"
        );
        for n in rss {
            let q = |k: &str| {
                extra
                    .get(&(n.clone(), k.to_owned()))
                    .copied()
                    .unwrap_or(0.0)
            };
            let mib = |b: f64| format!("{:.1} MiB", b / (1u64 << 20) as f64);
            let _ = writeln!(
                md,
                "| `{n}` | {:.0} | {} | {} → {} | {} → {} |",
                q("records"),
                mib(q("log_bytes")),
                mib(q("rss_before")),
                mib(q("rss_peak")),
                mib(q("rss_file_before")),
                mib(q("rss_file_peak"))
            );
        }
        md.push('\n');
    }
}

fn rest_section(md: &mut String, benches: &[Bench], shown: &[bool]) {
    let rest: Vec<&Bench> = benches
        .iter()
        .zip(shown)
        .filter(|(_, s)| !**s)
        .map(|(b, _)| b)
        .collect();
    if rest.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Other benchmarks\n\n| benchmark | median |\n|---|---|"
    );
    for b in rest {
        let _ = writeln!(md, "| `{}/{}` | {} |", b.group, b.function, time(b.median));
    }
    md.push('\n');
}

// ------------------------------------------------------------------------------------ SVG

const COLORS: [&str; 9] = [
    "#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#8c564b", "#17becf", "#9467bd", "#7f7f7f",
    "#000000",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Payload throughput (bytes/s, log scale) by record size, one line per variant.
fn append_svg(benches: &[Bench]) -> String {
    let (w, h) = (900.0, 520.0);
    let (left, right, top, bottom) = (80.0, 300.0, 40.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let mut series = Vec::new();
    for (v, _) in APPEND_VARIANTS {
        let pts: Vec<(usize, f64)> = APPEND_SIZES
            .iter()
            .enumerate()
            .filter_map(|(i, (s, bytes))| {
                find(benches, &format!("append/{s}"), v).map(|(_, b)| (i, bytes * 1e9 / b.median))
            })
            .collect();
        if !pts.is_empty() {
            series.push((v, pts));
        }
    }
    let all: Vec<f64> = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = all.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (lo_e, hi_e) = (lo.log10().floor(), hi.log10().ceil());
    let y = |v: f64| top + ph * (1.0 - (v.log10() - lo_e) / (hi_e - lo_e));
    let x = |i: usize| left + pw * (i as f64 + 0.5) / APPEND_SIZES.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="22" font-size="15">Append without sync: payload throughput by record size (log scale)</text>"#
    );
    let mut e = lo_e;
    while e <= hi_e {
        let yy = y(10f64.powf(e));
        let label = match e as i32 {
            6 => "1 MB/s".to_owned(),
            7 => "10 MB/s".to_owned(),
            8 => "100 MB/s".to_owned(),
            9 => "1 GB/s".to_owned(),
            10 => "10 GB/s".to_owned(),
            11 => "100 GB/s".to_owned(),
            n => format!("1e{n} B/s"),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            left + pw,
            left - 6.0,
            yy + 4.0
        );
        e += 1.0;
    }
    for (i, (name, _)) in APPEND_SIZES.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{name}</text>"#,
            x(i),
            top + ph + 20.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">record size</text>"#,
        left + pw / 2.0,
        top + ph + 42.0
    );
    for (k, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let dash = if name.starts_with("applog") {
            ""
        } else {
            r#" stroke-dasharray="5,3""#
        };
        let path: Vec<String> = pts
            .iter()
            .map(|(i, v)| format!("{:.1},{:.1}", x(*i), y(*v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            path.join(" ")
        );
        for (i, v) in pts {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                x(*i),
                y(*v)
            );
        }
        let ly = top + 10.0 + 20.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            w - right + 15.0,
            w - right + 45.0,
            w - right + 52.0,
            ly + 4.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// p50 and p99 of every latency the run recorded (durable appends, one-way tail), as
/// horizontal bars on a log scale.
fn latency_svg(extra: &BTreeMap<(String, String), f64>) -> String {
    let names: Vec<&String> = {
        let mut v: Vec<&String> = extra
            .keys()
            .filter(|(n, k)| {
                k == "p50_ns"
                    && (n.starts_with("durable_latency/128B/")
                        || n.starts_with("tail_oneway/")
                        || n.starts_with("tail_stamped/")
                        || n.starts_with("durable/"))
            })
            .map(|(n, _)| n)
            .collect();
        v.dedup();
        v.sort_by_key(|n| natural(n));
        v
    };
    let get = |n: &String, k: &str| extra.get(&(n.clone(), k.to_owned())).copied();
    let (w, left, right, top, row) = (900.0, 330.0, 30.0, 50.0, 30.0);
    let h = top + row * names.len().max(1) as f64 + 50.0;
    let pw = w - left - right;
    let vals: Vec<f64> = names
        .iter()
        .flat_map(|n| [get(n, "p50_ns"), get(n, "p99_ns")])
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min).max(1.0);
    let hi = vals.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let (lo_e, hi_e) = (lo.log10().floor(), hi.log10().ceil());
    let x = |v: f64| left + pw * (v.max(1.0).log10() - lo_e) / (hi_e - lo_e);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r##"<text x="20" y="22" font-size="15">Latency percentiles (log scale): p50 dark, p99 light</text>"##
    );
    let mut e = lo_e;
    while e <= hi_e {
        let xx = x(10f64.powf(e));
        let label = match e as i32 {
            2 => "100 ns",
            3 => "1 µs",
            4 => "10 µs",
            5 => "100 µs",
            6 => "1 ms",
            7 => "10 ms",
            8 => "100 ms",
            _ => "",
        };
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{top}" y2="{}" stroke="#ddd"/><text x="{xx:.1}" y="{}" text-anchor="middle">{label}</text>"##,
            h - 40.0,
            h - 22.0
        );
        e += 1.0;
    }
    for (i, n) in names.iter().enumerate() {
        let y0 = top + row * i as f64;
        let color = if n.contains("applog") {
            "#d62728"
        } else {
            "#1f77b4"
        };
        if let Some(p99) = get(n, "p99_ns") {
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{:.1}" width="{:.1}" height="{}" fill="{color}" fill-opacity="0.3"/>"#,
                y0 + 4.0,
                (x(p99) - left).max(1.0),
                row - 8.0
            );
        }
        if let Some(p50) = get(n, "p50_ns") {
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{:.1}" width="{:.1}" height="{}" fill="{color}"/>"#,
                y0 + 9.0,
                (x(p50) - left).max(1.0),
                row - 18.0
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y0 + row / 2.0 + 4.0,
            esc(n)
        );
    }
    s.push_str("</svg>\n");
    s
}
