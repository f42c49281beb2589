#!/usr/bin/env bash
# The dashboard's overview route over a fleet of N fixture targets (the collector_fleet farm):
# after WARMUP seconds of scraping at INTERVAL, fetches /api/v1/overview REPEAT times and
# prints the median and worst time and the body size; then the CPU `up` spends over MEASURE
# seconds with and without a client refreshing the overview every 5 s, as the page does.
#
#   N=1000 INTERVAL=5s WARMUP=60 REPEAT=20 MEASURE=60 benches/dashboard_overview.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000} INTERVAL=${INTERVAL:-5s} WARMUP=${WARMUP:-60} REPEAT=${REPEAT:-20} MEASURE=${MEASURE:-60}
cargo build --release --example fixture_farm -q
cargo build --release -q
ulimit -n 20000
DIR=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DIR"' EXIT
taskset -c 1 target/release/examples/fixture_farm "$N" 20000 "$DIR/targets.json" >/dev/null &
PIDS+=($!)
sleep 2
cat >"$DIR/llmwatch.toml" <<CONF
listen = "127.0.0.1:19464"
file_sd = ["$DIR/targets.json"]
[scrape]
interval = "$INTERVAL"
CONF
taskset -c 0 target/release/llmwatch up --config "$DIR/llmwatch.toml" >/dev/null 2>"$DIR/up.log" &
UP=$!
PIDS+=($UP)
sleep "$WARMUP"
URL="http://127.0.0.1:19464/api/v1/overview?window=5m&points=30"
for _ in $(seq "$REPEAT"); do
  curl -s -o "$DIR/body.json" -w '%{time_total}\n' "$URL"
done | sort -n >"$DIR/times"
awk -v size="$(stat -c %s "$DIR/body.json")" \
  '{t[NR]=$1} END { printf "overview: median %.1f ms, worst %.1f ms, %d KB\n", t[int((NR+1)/2)]*1000, t[NR]*1000, size/1024 }' "$DIR/times"
python3 -c "import json; print('rows', len(json.load(open('$DIR/body.json'))['rows']))"
cpu() { awk '{print $14+$15}' "/proc/$UP/stat"; }
hz=$(getconf CLK_TCK)
t0=$(cpu); sleep "$MEASURE"; t1=$(cpu)
echo "up idle: $(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$MEASURE" 'BEGIN{printf "%.1f", (b-a)/hz/s*100}') % of a core"
bash -c "while :; do curl -s -o /dev/null '$URL'; sleep 5; done" &
POLL=$!
PIDS+=("$POLL")
t0=$(cpu); sleep "$MEASURE"; t1=$(cpu)
echo "up with one dashboard refreshing every 5 s: $(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$MEASURE" 'BEGIN{printf "%.1f", (b-a)/hz/s*100}') % of a core"
