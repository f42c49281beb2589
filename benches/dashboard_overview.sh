#!/usr/bin/env bash
# The dashboard's overview route over a fleet of N fixture targets (the collector_fleet farm):
# after WARMUP seconds of scraping at INTERVAL, fetches /api/v1/overview REPEAT times as the
# page asks for it (a page of 50 rows; by target, then sorted on TTFT p99, then the 1 h
# window) and prints the median and worst time and the body size; then the CPU `up` spends
# over MEASURE seconds with and without a client refreshing the overview every 5 s, as the
# page does.
#
#   N=1000 INTERVAL=5s WARMUP=60 REPEAT=20 MEASURE=60 benches/dashboard_overview.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000} INTERVAL=${INTERVAL:-5s} WARMUP=${WARMUP:-60} REPEAT=${REPEAT:-20} MEASURE=${MEASURE:-60}
cargo build --release --example fixture_farm -q
cargo build --release -q
source benches/fleet_up.sh
start_fleet_up 19464
BASE="http://127.0.0.1:19464/api/v1/overview?points=30"
URL="$BASE&window=5m&limit=50"
for query in "window=5m&limit=50" "window=5m&limit=50&sort=ttft.2" "window=1h&limit=50" "window=5m&limit=1000"; do
  for _ in $(seq "$REPEAT"); do
    curl -s -o "$DIR/body.json" -w '%{time_total}\n' "$BASE&$query"
  done | sort -n >"$DIR/times"
  rows=$(python3 -c "import json; d=json.load(open('$DIR/body.json')); print(len(d['rows']), 'of', d['rows_total'])")
  awk -v size="$(stat -c %s "$DIR/body.json")" -v q="$query" -v rows="$rows" \
    '{t[NR]=$1} END { printf "overview %s: median %.1f ms, worst %.1f ms, %d KB, rows %s\n", q, t[int((NR+1)/2)]*1000, t[NR]*1000, size/1024, rows }' "$DIR/times"
done
# The browser's first screen: navigation start to the first overview drawn, in Chromium
# driven by puppeteer-core (npm install --prefix "$PUPPETEER/.." puppeteer-core@23).
PUPPETEER=${PUPPETEER:-$HOME/.cache/llmwatch/puppeteer/node_modules}
if [ -d "$PUPPETEER/puppeteer-core" ]; then
  NODE_PATH=$PUPPETEER taskset -c 1 node benches/browser_first_screen.js "http://127.0.0.1:19464/" "${BROWSER_REPEAT:-5}"
else
  echo "browser first screen: skipped, no puppeteer-core under $PUPPETEER"
fi
cpu() { awk '{print $14+$15}' "/proc/$UP/stat"; }
hz=$(getconf CLK_TCK)
t0=$(cpu); sleep "$MEASURE"; t1=$(cpu)
echo "up idle: $(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$MEASURE" 'BEGIN{printf "%.1f", (b-a)/hz/s*100}') % of a core"
bash -c "while :; do curl -s -o /dev/null '$URL'; sleep 5; done" &
POLL=$!
PIDS+=("$POLL")
t0=$(cpu); sleep "$MEASURE"; t1=$(cpu)
echo "up with one dashboard refreshing every 5 s: $(awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$MEASURE" 'BEGIN{printf "%.1f", (b-a)/hz/s*100}') % of a core"
grep VmRSS "/proc/$UP/status" | awk '{printf "up RSS: %d MB\n", $2/1024}'
