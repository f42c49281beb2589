#!/usr/bin/env bash
# The proxy with OTLP off and on, in alternating pairs so that drift in the machine's speed
# falls on both sides: for each pair, a fresh simulator and proxy (plain, then with a span
# per request and metrics every 5 s to a local OTLP sink that answers 200), `llmwatch bench`
# through it, and the proxy's CPU per request from /proc. Prints one row per pair.
#
#   PAIRS=5 CONCURRENCY=1000 DURATION=8s benches/otlp_pairs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
bin=${LLMWATCH_BIN:-$TARGET/release/llmwatch}
pairs=${PAIRS:-5} c=${CONCURRENCY:-1000} duration=${DURATION:-8s}
ulimit -n 20000 || true
work=$(mktemp -d)
python3 benches/otlp_sink.py 18745 >"$work/sink.log" 2>&1 &
sink=$!
trap 'kill $sink 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

# run OTLP_FLAGS...: req/s and the proxy's CPU per request, for one fresh simulator and proxy.
run() {
  "$bin" sim --engine vllm:18740 --profile instant >"$work/sim.log" 2>&1 &
  local sim=$!
  "$bin" proxy --upstream http://127.0.0.1:18740 --listen 127.0.0.1:18741 "$@" >"$work/proxy.log" 2>&1 &
  local proxy=$!
  sleep 1
  local before after
  before=$(awk '{print $14 + $15}' "/proc/$proxy/stat")
  "$bin" bench http://127.0.0.1:18741 --concurrency "$c" --duration "$duration" --input-tokens 32 \
    --output-tokens 16 --timeout 30s --json "$work/r.json" >/dev/null 2>&1 || true
  after=$(awk '{print $14 + $15}' "/proc/$proxy/stat")
  kill "$sim" "$proxy"; wait "$sim" "$proxy" 2>/dev/null || true
  python3 - "$before" "$after" "$work/r.json" <<'PY'
import json, sys
before, after, f = sys.argv[1:]
r = json.load(open(f))
sent = max(r["requests"]["sent"], 1)
print(f"{r['throughput']['requests_per_second']:.0f} {(float(after) - float(before)) / 100 / sent * 1e6:.1f}")
PY
}

printf '| pair | off req/s | on req/s | ratio | CPU per request (off → on) |\n|---|---|---|---|---|\n'
for pair in $(seq "$pairs"); do
  read -r off_rate off_cpu < <(run)
  read -r on_rate on_cpu < <(run --otlp-endpoint http://127.0.0.1:18745 --otlp-interval 5s --otlp-trace-ratio 1)
  awk -v p="$pair" -v a="$off_rate" -v b="$on_rate" -v x="$off_cpu" -v y="$on_cpu" \
    'BEGIN { printf "| %d | %d | %d | %.3f | %.1f → %.1f µs |\n", p, a, b, b / a, x, y }'
done
