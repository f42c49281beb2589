#!/usr/bin/env bash
# llmwatch up and Prometheus, each scraping the same fleet of N fixture targets (vLLM, TGI,
# SGLang and llama.cpp payloads in turn) at INTERVAL, pinned to core 0 while the fleet runs on
# core 1. After WARMUP seconds, CPU is measured over MEASURE seconds from /proc; RSS is read at
# the end. Prints one Markdown table row per collector.
#
#   N=1000 INTERVAL=5s WARMUP=20 MEASURE=60 RETENTION=1h KEEP_ALIVE=true benches/collector_fleet.sh
#
# To measure a full history quickly, shorten INTERVAL and RETENTION together: the history holds
# RETENTION/INTERVAL points per target whatever the interval (e.g. INTERVAL=250ms RETENTION=3m
# holds the 720 points that 1 h at 5 s holds).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
N=${N:-1000} INTERVAL=${INTERVAL:-5s} WARMUP=${WARMUP:-20} MEASURE=${MEASURE:-60}
RETENTION=${RETENTION:-1h} SKIP_PROMETHEUS=${SKIP_PROMETHEUS:-0} KEEP_ALIVE=${KEEP_ALIVE:-true}
cargo build --release --example fixture_farm -q
cargo build --release -q
source benches/fleet_up.sh
start_farm

# measure PID NAME: CPU % of one core over MEASURE s after WARMUP s, then RSS and peak RSS.
measure() {
  local pid=$1 name=$2 hz t0 t1 s0 s1
  hz=$(getconf CLK_TCK)
  sleep "$WARMUP"
  t0=$(awk '{print $14+$15}' "/proc/$pid/stat"); s0=$(date +%s.%N)
  sleep "$MEASURE"
  t1=$(awk '{print $14+$15}' "/proc/$pid/stat"); s1=$(date +%s.%N)
  awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$hz" -v name="$name" \
      -v rss="$(awk '/VmRSS/{print $2}' "/proc/$pid/status")" \
      -v hwm="$(awk '/VmHWM/{print $2}' "/proc/$pid/status")" \
      'BEGIN { printf "| %s | %.1f %% | %.0f MB | %.0f MB |", name, (t1-t0)/hz/(s1-s0)*100, rss/1024, hwm/1024 }'
}

cat >"$DIR/llmwatch.toml" <<EOF
listen = "127.0.0.1:19464"
file_sd = ["$DIR/targets.json"]
[scrape]
interval = "$INTERVAL"
keep_alive = $KEEP_ALIVE
[history]
retention = "$RETENTION"
EOF
taskset -c 0 "$TARGET/release/llmwatch" up --config "$DIR/llmwatch.toml" >/dev/null 2>"$DIR/up.log" &
UP=$!
PIDS+=($UP)
row=$(measure "$UP" "llmwatch up")
metrics=$(curl -s 127.0.0.1:19464/metrics)
up=$(grep -c '^llmwatch_target_up{.*} 1$' <<<"$metrics" || true)
points=$(awk '/^llmwatch_history_points /{print $2}' <<<"$metrics")
bytes=$(awk '/^llmwatch_history_bytes /{print $2}' <<<"$metrics")
echo "$row $up of $N up; history: $points points, $((bytes / 1048576)) MB |"
kill "$UP"

[ "$SKIP_PROMETHEUS" = 1 ] && exit 0
cat >"$DIR/prometheus.yml" <<EOF
global:
  scrape_interval: $INTERVAL
  scrape_timeout: 3s
scrape_configs:
  - job_name: fleet
    file_sd_configs:
      - files: ["$DIR/targets.json"]
EOF
taskset -c 0 prometheus --config.file="$DIR/prometheus.yml" --web.listen-address=127.0.0.1:19090 \
  --storage.tsdb.path="$DIR/tsdb" --log.level=warn >/dev/null 2>&1 &
PROM=$!
PIDS+=($PROM)
row=$(measure "$PROM" "Prometheus $(prometheus --version 2>&1 | awk 'NR==1{print $3}')")
up=$(curl -s '127.0.0.1:19090/api/v1/query?query=count(up==1)' | grep -o '"[0-9]*"]' | tr -d '"]' || true)
echo "$row ${up:-0} of $N up; TSDB head |"
