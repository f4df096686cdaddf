//! The report program from the outside: a small made-up run in criterion's layout, then
//! `bench_report RESULTS_DIR OUT_DIR` (or two runs and `bench_report --ipc`), then what it
//! wrote; and that a missing or broken run is a clear error and exit status 1, not a panic.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

/// One benchmark as criterion leaves it: `criterion/<group>/<function>[/<value>]/new/` with
/// `benchmark.json` (ids, throughput) and `estimates.json` (the median, ns), next to the
/// `report/` directories the report must skip.
fn bench(
    results: &Path,
    group: &str,
    function: &str,
    value: Option<&str>,
    median: f64,
    bytes: Option<u64>,
) {
    let mut dir = results.join("criterion").join(group).join(function);
    if let Some(v) = value {
        dir = dir.join(v);
    }
    fs::create_dir_all(dir.join("report")).unwrap();
    let new = dir.join("new");
    fs::create_dir_all(&new).unwrap();
    let throughput = match bytes {
        Some(b) => format!(r#"{{"Bytes":{b}}}"#),
        None => r#"{"Elements":1}"#.to_owned(),
    };
    let value_json = value.map_or("null".to_owned(), |v| format!("\"{v}\""));
    fs::write(
        new.join("benchmark.json"),
        format!(
            r#"{{"group_id":"{group}","function_id":"{function}","value_str":{value_json},"throughput":{throughput},"full_id":"{group}/{function}"}}"#
        ),
    )
    .unwrap();
    fs::write(
        new.join("estimates.json"),
        format!(
            r#"{{"mean":{{"point_estimate":{}}},"median":{{"point_estimate":{median},"standard_error":1.0}}}}"#,
            median * 1.2
        ),
    )
    .unwrap();
}

/// A run with appends (two variants, two sizes), durable latencies with percentiles, a tail
/// round trip with its one-way percentiles, and one benchmark no section claims.
fn sample_run() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    bench(r, "append/16B", "applog", None, 100.0, Some(16));
    bench(r, "append/16B", "bufwriter", None, 150.0, Some(16));
    bench(r, "append/4KiB", "applog", None, 400.0, Some(4096));
    bench(r, "append/4KiB", "bufwriter", None, 800.0, Some(4096));
    bench(r, "durable_latency/128B", "applog", None, 48_000.0, None);
    bench(
        r,
        "durable_latency/128B",
        "pwrite_fdatasync",
        None,
        42_000.0,
        None,
    );
    bench(r, "tail_latency", "pipe", None, 9_000.0, None);
    bench(r, "misc", "thing", Some("64"), 2.0e9, None);
    fs::write(
        r.join("extra.tsv"),
        "durable_latency/128B/applog\tp50_ns\t40000\n\
         durable_latency/128B/applog\tp99_ns\t120000\n\
         durable_latency/128B/pwrite_fdatasync\tp50_ns\t35000\n\
         durable_latency/128B/pwrite_fdatasync\tp99_ns\t105000\n\
         tail_oneway/pipe\tp50_ns\t4500\n\
         tail_oneway/pipe\tp99_ns\t12000\n\
         tail_stamped/busy/pipe\tp50_ns\t3000\n\
         tail_stamped/idle/applog_spin\tp50_ns\t800\n\
         tail_stamped/idle/applog_spin\tp99_ns\t2500\n\
         tail_stamped/idle/applog_spin\tp999_ns\t40000\n\
         tail_stamped/idle/applog_spin\tmax_ns\t1500000\n\
         not a figure\n",
    )
    .unwrap();
    fs::write(
        r.join("run.tsv"),
        "command\tscripts/bench-report.sh\ncpu\tTest CPU\ncpus\t2\n",
    )
    .unwrap();
    dir
}

fn report(results: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench_report"))
        .arg(results)
        .arg(out)
        .output()
        .unwrap()
}

/// The text of every `<text>` element, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        rest = &rest[start..];
        let Some(open_end) = rest.find('>') else {
            break;
        };
        let Some(close) = rest.find("</text>") else {
            break;
        };
        texts.push(rest[open_end + 1..close].trim().to_owned());
        rest = &rest[close..];
    }
    texts
}

fn read_svg(path: &Path) -> String {
    let svg = fs::read_to_string(path).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}: not an SVG: {:.100}",
        path.display(),
        svg
    );
    assert!(svg.trim_end().ends_with("</svg>"), "{}", path.display());
    svg
}

/// The failure is the report's own: exit status 1 and a message naming `what`, not a panic.
fn assert_clean_failure(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("bench_report: "), "stderr: {stderr}");
    assert!(stderr.contains(what), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

#[test]
fn writes_the_tables_and_both_plots() {
    let run = sample_run();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("docs");
    let o = report(run.path(), &dest);
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let md = fs::read_to_string(dest.join("results.md")).unwrap();
    for row in [
        "| CPU | Test CPU |",
        "| memory | ? |",
        "| variant | 16B | 128B | 1KiB | 4KiB | 64KiB |",
        "| `applog`: applog, default options, pretouch off | 100 ns (10.00 M/s) | – | – | 400 ns (2.50 M/s) | – |",
        "| `bufwriter`: `BufWriter<File>` log, same framing | 150 ns (6.67 M/s) | – | – | 800 ns (1.25 M/s) | – |",
        "| 16B | 1.50 | – | – | – | – | 1.50 (`applog`) |",
        "| 4KiB | 2.00 | – | – | – | – | 2.00 (`applog`) |",
        "| `durable_latency/128B/applog` | 48 µs | 40 µs | 120 µs | – | **1.14x** |",
        "| `durable_latency/128B/pwrite_fdatasync` | 42 µs | 35 µs | 105 µs | – | 1.00x |",
        "| `tail_latency/pipe` | 9.00 µs | 111.1 k/s |",
        "| `tail_oneway/pipe` | 4.50 µs | 12 µs |",
        "| schedule | transport | p50 | p99 | p99.9 | max |",
        "| idle | `applog_spin` | 800 ns | 2.50 µs | 40 µs | 1.50 ms |",
        "| busy | `pipe` | 3.00 µs | – | – | – |",
        "| `misc/thing/64` | 2.00 s |",
    ] {
        assert!(md.contains(row), "no row {row:?} in results.md:\n{md}");
    }
    assert!(md.contains("from the intended send time"), "{md}");
    // The idle schedule before the busy one.
    assert!(md.find("| idle |") < md.find("| busy |"), "{md}");
    // Only the sections the run measured.
    assert!(!md.contains("## Group commit"), "{md}");
    assert!(!md.contains("## Reading a whole log"), "{md}");

    let append = svg_texts(&read_svg(&dest.join("append_throughput.svg")));
    for text in [
        "applog",
        "bufwriter",
        "16B",
        "64KiB",
        "record size",
        "payload throughput (bytes/s)",
        "1 GB/s",
    ] {
        assert!(
            append.iter().any(|t| t == text),
            "no text {text:?} in append_throughput.svg: {append:?}"
        );
    }
    // Variants the run did not measure are not in the legend.
    assert!(!append.iter().any(|t| t == "okaywal"), "{append:?}");

    let latency = svg_texts(&read_svg(&dest.join("latency_percentiles.svg")));
    for text in [
        "durable_latency/128B/applog",
        "durable_latency/128B/pwrite_fdatasync",
        "tail_oneway/pipe",
        "applog, p50",
        "applog, p99",
        "peers, p50",
        "peers, p99",
        "10 µs",
    ] {
        assert!(
            latency.iter().any(|t| t == text),
            "no text {text:?} in latency_percentiles.svg: {latency:?}"
        );
    }
}

#[test]
fn a_run_without_percentiles_still_gets_both_plots() {
    let run = sample_run();
    fs::remove_file(run.path().join("extra.tsv")).unwrap();
    fs::remove_file(run.path().join("run.tsv")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = report(run.path(), out.path());
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let md = fs::read_to_string(out.path().join("results.md")).unwrap();
    assert!(
        md.contains("| `durable_latency/128B/applog` | 48 µs | – | – | – | – |"),
        "{md}"
    );
    let latency = svg_texts(&read_svg(&out.path().join("latency_percentiles.svg")));
    assert!(
        latency.iter().any(|t| t == "no data in this run"),
        "{latency:?}"
    );
    read_svg(&out.path().join("append_throughput.svg"));
}

#[test]
fn a_missing_results_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-run");
    let out = dir.path().join("out");
    let o = report(&missing, &out);
    assert_clean_failure(&o, &missing.display().to_string());
    assert!(!out.exists());
}

#[test]
fn a_results_dir_without_criterion_output_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert_clean_failure(&report(dir.path(), &out), "no criterion output");
    fs::create_dir(dir.path().join("criterion")).unwrap();
    assert_clean_failure(&report(dir.path(), &out), "no benchmark results");
    assert!(!out.exists());
}

#[test]
fn bad_json_is_an_error_that_names_the_file() {
    let run = sample_run();
    let estimates = run
        .path()
        .join("criterion/append/16B/applog/new/estimates.json");
    fs::write(&estimates, r#"{"median": {"point_estimate": "#).unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = report(run.path(), out.path());
    assert_clean_failure(&o, &format!("{}: not valid JSON", estimates.display()));
    assert!(!out.path().join("results.md").exists());

    // Valid JSON without the median.
    fs::write(&estimates, r#"{"mean": {"point_estimate": 1.0}}"#).unwrap();
    let o = report(run.path(), out.path());
    assert_clean_failure(&o, "point_estimate");
}

#[test]
fn wrong_arguments_print_the_usage() {
    let o = Command::new(env!("CARGO_BIN_EXE_bench_report"))
        .arg("only-one")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let usage = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        usage.contains("usage: bench_report RESULTS_DIR OUT_DIR"),
        "{usage}"
    );
    assert!(
        usage.contains("bench_report --ipc EXT4_RESULTS TMPFS_RESULTS OUT_DIR"),
        "{usage}"
    );
}

/// One run for `--ipc` on file system `fs`: appends of 128 B, tail throughput and latency;
/// times in ns.
fn ipc_run(fs: &str, appends: &[(&str, f64)], streams: &[(&str, Option<&str>, f64)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    for (variant, ns) in appends {
        bench(r, "append/128B", variant, None, *ns, None);
    }
    for (function, value, ns) in streams {
        bench(r, "tail_throughput", function, *value, *ns, None);
    }
    let scale = if fs == "ext4" { 1.0 } else { 0.5 };
    let mut extra = String::new();
    for (name, key, ns) in [
        ("tail_oneway/pipe", "p50_ns", 1400.0),
        ("tail_oneway/applog_spin", "p50_ns", 500.0),
        ("tail_stamped/busy/pipe", "p50_ns", 3000.0),
        ("tail_stamped/idle/applog_spin", "p50_ns", 800.0),
        ("tail_stamped/idle/applog_spin", "p99_ns", 2500.0),
        ("tail_stamped/idle/applog_spin", "p999_ns", 40_000.0),
        ("tail_stamped/idle/applog_spin", "max_ns", 1_500_000.0),
    ] {
        extra += &format!("{name}\t{key}\t{}\n", ns * scale);
    }
    fs::write(r.join("extra.tsv"), extra).unwrap();
    fs::write(
        r.join("run.tsv"),
        format!("command\tscripts/ipc-report.sh\nfilesystem\t{fs}\ncpu\tTest CPU\n"),
    )
    .unwrap();
    dir
}

fn ipc_report(ext4: &Path, tmpfs: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bench_report"))
        .arg("--ipc")
        .args([ext4, tmpfs, out])
        .output()
        .unwrap()
}

#[test]
fn ipc_report_sets_ext4_and_tmpfs_side_by_side() {
    let ext4 = ipc_run(
        "ext4",
        &[
            ("bufwriter", 250.0),
            ("applog_pretouch", 180.0),
            ("applog", 200.0),
            ("memcpy", 10.0),
        ],
        &[
            ("applog", Some("spin"), 100.0),
            ("pipe", None, 700.0),
            ("unix_socket", None, 1000.0),
        ],
    );
    let tmpfs = ipc_run(
        "tmpfs",
        &[("applog", 120.0), ("bufwriter", 240.0), ("memcpy", 10.0)],
        &[("applog", Some("spin"), 80.0), ("pipe", None, 700.0)],
    );
    let out = tempfile::tempdir().unwrap();
    let o = ipc_report(ext4.path(), tmpfs.path(), out.path());
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let md = fs::read_to_string(out.path().join("ipc.md")).unwrap();
    let rows = [
        "| variant | ext4 | tmpfs | ext4 vs `bufwriter` | tmpfs vs `bufwriter` |",
        "| `applog`: applog, default options, pretouch off | 200.0 | 120.0 | 1.25 | 2.00 |",
        "| `applog_pretouch`: applog, `pretouch(8)` | 180.0 | – | 1.39 | – |",
        "| `bufwriter`: `BufWriter<File>` log, same framing | 250.0 | 240.0 | 1.00 | 1.00 |",
        "| `memcpy`: memcpy into faulted memory (limit) | 10.0 | 10.0 | 25.00 | 24.00 |",
        "| transport | ext4 | tmpfs | ext4 vs `pipe` | tmpfs vs `pipe` |",
        "| `applog/spin` | 10.00 | 12.50 | 7.00 | 8.75 |",
        "| `pipe` | 1.43 | 1.43 | 1.00 | 1.00 |",
        "| `unix_socket` | 1.00 | – | 0.70 | – |",
        "| `applog_spin` | 500 ns | 250 ns | – | – |",
        "| `pipe` | 1.40 µs | 700 ns | – | – |",
        "| idle | `applog_spin` | 800 ns | 400 ns | 2.50 µs | 1.25 µs | 40 µs | 20 µs | 1.50 ms | 750 µs |",
        "| busy | `pipe` | 3.00 µs | 1.50 µs | – | – | – | – | – | – |",
        "| | ext4 | tmpfs |",
        "| file system of the bench files | ext4 | tmpfs |",
        "| CPU | Test CPU | Test CPU |",
    ];
    let mut last = 0;
    for row in rows {
        let at = md
            .find(row)
            .unwrap_or_else(|| panic!("no row {row:?} in ipc.md:\n{md}"));
        assert!(at > last, "row {row:?} out of order in ipc.md:\n{md}");
        last = at;
    }

    let append = svg_texts(&read_svg(&out.path().join("ipc_append.svg")));
    for text in [
        "applog",
        "applog_pretouch",
        "bufwriter",
        "ext4",
        "tmpfs",
        "200 ns",
        "120 ns",
    ] {
        assert!(
            append.iter().any(|t| t == text),
            "no text {text:?} in ipc_append.svg: {append:?}"
        );
    }
    let throughput = svg_texts(&read_svg(&out.path().join("ipc_throughput.svg")));
    for text in [
        "applog/spin",
        "pipe",
        "unix_socket",
        "ext4",
        "tmpfs",
        "12.50 M/s",
    ] {
        assert!(
            throughput.iter().any(|t| t == text),
            "no text {text:?} in ipc_throughput.svg: {throughput:?}"
        );
    }
}

#[test]
fn ipc_report_refuses_runs_it_cannot_use() {
    let ext4 = ipc_run("ext4", &[("applog", 200.0)], &[]);
    let tmpfs = ipc_run("tmpfs", &[("applog", 120.0)], &[]);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("docs");

    // The runs the wrong way round.
    let o = ipc_report(tmpfs.path(), ext4.path(), &dest);
    let run_tsv = tmpfs.path().join("run.tsv");
    assert_clean_failure(
        &o,
        &format!(
            "{}: the bench files were on tmpfs, not ext4",
            run_tsv.display()
        ),
    );

    // A missing run.
    let missing = out.path().join("no-such-run");
    let o = ipc_report(ext4.path(), &missing, &dest);
    assert_clean_failure(&o, &format!("TMPFS results {}", missing.display()));

    // A run of other benches.
    let other = sample_run();
    fs::remove_dir_all(other.path().join("criterion/tail_latency")).unwrap();
    let o = ipc_report(other.path(), tmpfs.path(), &dest);
    assert_clean_failure(&o, "no append/128B or tail_* benchmarks");
    assert!(!dest.exists());
}
