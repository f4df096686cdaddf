#!/usr/bin/env bash
# Runs a shortened version of every benchmark (a few minutes on 2 cores) and writes
# docs/benchmarks/results.md plus SVG plots there, from this one run.
#
#   scripts/bench-report.sh            # everything
#   BENCH_TIME=3 scripts/bench-report.sh   # longer criterion measurements (seconds)
#
# Criterion's output and the raw figures stay in target/bench-report/. Benchmark files go to
# $APPLOG_BENCH_DIR (default: target/tmp), which must not be tmpfs. The scan bench writes two
# logs of $APPLOG_BENCH_SCAN_MIB MiB (default 1024).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=docs/benchmarks
RES="$PWD/target/bench-report"
TIME="${BENCH_TIME:-2}"
SHORT=(--warm-up-time 1 --measurement-time "$TIME")

rm -rf "$RES"
mkdir -p "$RES" "$OUT"
export APPLOG_BENCH_RESULTS="$RES"
export CRITERION_HOME="$RES/criterion"

run() { printf '%s\t%s\n' "$1" "$2" >>"$RES/run.tsv"; }
run command "scripts/bench-report.sh"
run criterion "${SHORT[*]}"
run started "$(date -u '+%Y-%m-%d %H:%M')"
run cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
run cpus "$(nproc)"
run memory "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
run kernel "$(uname -sr)"
run rustc "$(rustc --version)"
run commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
BENCH_DIR="${APPLOG_BENCH_DIR:-$PWD/target/tmp}"
mkdir -p "$BENCH_DIR"
run filesystem "$(df --output=fstype "$BENCH_DIR" | tail -1)"
run load_before "$(cut -d' ' -f1-3 /proc/loadavg)"

cargo bench -p applog-bench --no-run
cargo build --release -p applog-bench --bin bench_report

cargo bench -p applog-bench --bench append -- "${SHORT[@]}"
cargo bench -p applog-bench --bench durable_latency -- "${SHORT[@]}"
# Group commit by thread count, where the tree has it.
if [ -f bench/benches/durable.rs ]; then
  cargo bench -p applog-bench --bench durable -- "${SHORT[@]}"
fi
cargo bench -p applog-bench --bench tail -- "${SHORT[@]}"
cargo bench -p applog-bench --bench scan -- "${SHORT[@]}"

run load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
run finished "$(date -u '+%Y-%m-%d %H:%M')"
cargo run --quiet --release -p applog-bench --bin bench_report -- "$RES" "$OUT"
echo "wrote $OUT/results.md, $OUT/append_throughput.svg, $OUT/latency_percentiles.svg"
