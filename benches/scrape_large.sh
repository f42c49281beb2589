#!/usr/bin/env bash
# `llmwatch scrape FILE` end to end, whole process, on a vLLM body serving MODELS models
# (examples/many_models: the vLLM 0.33 capture's series once per model; 400 models is 15 MB):
# the median wall time of RUNS runs per output format, and the throughput it makes.
#
#   MODELS=400 RUNS=25 benches/scrape_large.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-400} RUNS=${RUNS:-25}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --example many_models --example scrape_phases -q
cargo build --release -q
body=$(mktemp --suffix=.txt)
trap 'rm -f "$body"' EXIT
"$TARGET/release/examples/many_models" "$MODELS" > "$body"
bytes=$(stat -c %s "$body")
echo "body: $bytes bytes, $MODELS models"
for format in json prom table; do
  times=()
  for _ in $(seq "$RUNS"); do
    start=$(date +%s%N)
    "$TARGET/release/llmwatch" scrape "$body" --format "$format" > /dev/null
    times+=($(( $(date +%s%N) - start )))
  done
  median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
  echo "$format: median $(( median / 1000 )) µs, $(( bytes * 1000 / median )) MB/s"
done
echo "phases in one process (median of 15):"
"$TARGET/release/examples/scrape_phases" "$body" 15
