#!/usr/bin/env bash
# `llmwatch lint` of a 1 MB Grafana dashboard: examples/lint_dashboard writes it (the
# exported dashboards' panels repeated) and times lint in-process; then the CLI, process start
# included, is timed REPEAT times on one core.
#
#   SIZE=1048576 REPEAT=20 benches/lint_dashboard.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
SIZE=${SIZE:-1048576} REPEAT=${REPEAT:-20}
cargo build --release --example lint_dashboard -q
cargo build --release -q
file=$(mktemp --suffix=.json)
trap 'rm -f "$file"' EXIT
taskset -c 1 "$TARGET/release/examples/lint_dashboard" "$file" "$SIZE" "$REPEAT"
times=()
for _ in $(seq "$REPEAT"); do
  start=$(date +%s%N)
  taskset -c 1 "$TARGET/release/llmwatch" lint "$file" > /dev/null
  times+=($(( ($(date +%s%N) - start) / 1000 )))
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "llmwatch lint (CLI): median %.1f ms, worst %.1f ms\n", a[int((NR+1)/2)]/1000, a[NR]/1000}'
