#!/usr/bin/env bash
# Open-loop ceiling of `llmwatch bench` against the simulator's `instant` profile on this
# machine: one run per rate, the simulator and the bench sharing the machine's cores.
# Prints per rate: achieved rate, errors, send lag p50/p99/max, TTFT p50/p99, the bench's CPU
# per request and the simulator's CPU per request.
# Usage: benches/bench_ceiling.sh [RATE ...]   (defaults: 2000 5000 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
bin=${LLMWATCH_BIN:-$TARGET/release/llmwatch}
port=${PORT:-18705}
duration=${DURATION:-10s}
output=${OUTPUT_TOKENS:-4}
ulimit -n 20000 || true
"$bin" sim --engine "vllm:$port" --profile instant ${SIM_FLAGS:-} >/tmp/bench-ceiling-sim.log 2>&1 &
sim=$!
trap 'kill $sim 2>/dev/null || true' EXIT
sleep 1
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
printf '%8s %10s %7s %8s %8s %8s %8s %8s %10s %10s\n' rate achieved errors lag_p50 lag_p99 lag_max ttft_p50 ttft_p99 bench_us sim_us
for rate in "${@:-2000 5000 10000}"; do
  before=$(cpu $sim)
  "$bin" bench "http://127.0.0.1:$port" --rate "$rate" --arrival constant --duration "$duration" \
    --input-tokens 32 --output-tokens "$output" --json /tmp/bench-ceiling.json ${BENCH_FLAGS:-} >/dev/null
  after=$(cpu $sim)
  python3 - "$rate" "$before" "$after" <<'PY'
import json, sys
rate, before, after = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
r = json.load(open('/tmp/bench-ceiling.json'))
lat = r['latency_seconds']
ms = lambda k, q: lat[k][q] * 1e3
sent = r['requests']['sent']
print(f"{rate:>8} {r['rate']['achieved_per_second']:>10.1f} {sum(r['requests']['errors'].values()):>7} "
      f"{ms('send_lag','p50'):>8.2f} {ms('send_lag','p99'):>8.2f} {ms('send_lag','max'):>8.2f} "
      f"{ms('ttft','p50'):>8.2f} {ms('ttft','p99'):>8.2f} "
      f"{r['client_cpu']['per_request_microseconds']:>10.0f} {(after - before) / 100 / sent * 1e6:>10.0f}")
PY
done
