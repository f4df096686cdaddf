#!/usr/bin/env bash
# Runs the append bench's 128 B group and the whole tail bench twice, once with the bench files
# on ext4 and once on tmpfs, and writes docs/benchmarks/ipc.md plus two SVG plots that show the
# two runs side by side (a few minutes on 2 cores).
#
#   scripts/ipc-report.sh                  # both runs, then the report
#   BENCH_TIME=3 scripts/ipc-report.sh     # longer criterion measurements (seconds)
#
# The ext4 run's files go to $APPLOG_BENCH_EXT4_DIR (default: target/tmp), which must be on
# ext4; the tmpfs run's to $APPLOG_BENCH_TMPFS_DIR (default: /dev/shm/applog-bench), which
# must be on tmpfs. Criterion's output and the raw figures of each run stay in
# target/ipc-report/ext4/ and target/ipc-report/tmpfs/.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=docs/benchmarks
RES="$PWD/target/ipc-report"
TIME="${BENCH_TIME:-2}"
SHORT=(--warm-up-time 1 --measurement-time "$TIME")
EXT4_DIR="${APPLOG_BENCH_EXT4_DIR:-$PWD/target/tmp}"
TMPFS_DIR="${APPLOG_BENCH_TMPFS_DIR:-/dev/shm/applog-bench}"

# The file system type of a directory, as df names it (ext4, tmpfs, ...).
fstype() { df --output=fstype "$1" | tail -1 | tr -d ' '; }

# Refuses a directory that is not on the file system its run is named after.
check_dir() { # DIR TYPE VARIABLE
  mkdir -p "$1"
  local found
  found="$(fstype "$1")"
  if [ "$found" != "$2" ]; then
    echo "ipc-report: $1 is on $found, not $2: set $3 to a directory on $2" >&2
    exit 1
  fi
}
check_dir "$EXT4_DIR" ext4 APPLOG_BENCH_EXT4_DIR
check_dir "$TMPFS_DIR" tmpfs APPLOG_BENCH_TMPFS_DIR

rm -rf "$RES"
mkdir -p "$RES" "$OUT"

cargo bench -p applog-bench --bench append --bench tail --no-run
cargo build --release -p applog-bench --bin bench_report

# One run: the benches with their files in DIR, results in target/ipc-report/FS/.
run_on() { # FS DIR
  local res="$RES/$1"
  mkdir -p "$res"
  run() { printf '%s\t%s\n' "$1" "$2" >>"$res/run.tsv"; }
  run command "scripts/ipc-report.sh"
  run criterion "${SHORT[*]}"
  run benches "append (append/128B/), tail"
  run started "$(date -u '+%Y-%m-%d %H:%M')"
  run cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  run cpus "$(nproc)"
  run memory "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
  run kernel "$(uname -sr)"
  run rustc "$(rustc --version)"
  run commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  run filesystem "$(fstype "$2")"
  run load_before "$(cut -d' ' -f1-3 /proc/loadavg)"

  APPLOG_BENCH_DIR="$2" APPLOG_BENCH_RESULTS="$res" CRITERION_HOME="$res/criterion" \
    cargo bench -p applog-bench --bench append -- "${SHORT[@]}" 'append/128B/'
  APPLOG_BENCH_DIR="$2" APPLOG_BENCH_RESULTS="$res" CRITERION_HOME="$res/criterion" \
    cargo bench -p applog-bench --bench tail -- "${SHORT[@]}"

  run load_after "$(cut -d' ' -f1-3 /proc/loadavg)"
  run finished "$(date -u '+%Y-%m-%d %H:%M')"
}
run_on ext4 "$EXT4_DIR"
run_on tmpfs "$TMPFS_DIR"
# The benches delete their files; the directory itself goes too when this script made it empty.
rmdir "$TMPFS_DIR" 2>/dev/null || true

cargo run --quiet --release -p applog-bench --bin bench_report -- \
  --ipc "$RES/ext4" "$RES/tmpfs" "$OUT"
echo "wrote $OUT/ipc.md, $OUT/ipc_append.svg, $OUT/ipc_throughput.svg"
