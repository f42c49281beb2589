#!/usr/bin/env bash
# Two builds of the proxy and nginx (one worker, `proxy_buffering off`) in alternating rows
# before one simulator, so that drift in the machine's speed falls on all three: each round
# runs `llmwatch bench` through the old build, the new build and nginx at each concurrency
# (in that order in odd rounds and the reverse in even ones, so that a steady drift does not
# always favour the same middle), and prints the middle's CPU per request (from /proc; user
# and system time apart), req/s, TTFT p50 and peak RSS.
#
#   ROUNDS=3 DURATION=10s CONCURRENCY="100 1000" benches/proxy_builds.sh OLD_BINARY NEW_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
old_bin=$1 new_bin=$2
rounds=${ROUNDS:-3} duration=${DURATION:-10s}
ulimit -n 20000 || true
work=$(mktemp -d)
"$new_bin" sim --engine vllm:18760 --profile instant >"$work/sim.log" 2>&1 &
sim=$!
"$old_bin" proxy --upstream http://127.0.0.1:18760 --listen 127.0.0.1:18761 >"$work/old.log" 2>&1 &
old=$!
"$new_bin" proxy --upstream http://127.0.0.1:18760 --listen 127.0.0.1:18762 >"$work/new.log" 2>&1 &
new=$!
sed -e s/UPSTREAM_PORT/18760/ -e s/LISTEN_PORT/18763/ benches/nginx_reference.conf >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" -g "daemon off; pid $work/nginx.pid; error_log $work/error.log;" &
nginx_master=$!
trap 'kill $sim $old $new $nginx_master 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 1
nginx_worker=$(pgrep -P "$nginx_master" | head -1)
# User and system time in clock ticks, apart: the two differ in where nginx and the proxy
# spend them.
cpu() { awk '{print $14 " " $15}' "/proc/$1/stat"; }
echo "| round | streams | middle | CPU per request | req/s | TTFT p50 | peak RSS |"
echo "|---|---|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
  for c in ${CONCURRENCY:-100 1000}; do
    order="old new nginx"
    [ $((round % 2)) = 0 ] && order="nginx new old"
    for middle in $order; do
      case $middle in
        old) port=18761 pid=$old ;;
        new) port=18762 pid=$new ;;
        nginx) port=18763 pid=$nginx_worker ;;
      esac
      before=$(cpu "$pid")
      "$new_bin" bench "http://127.0.0.1:$port" --concurrency "$c" --duration "$duration" \
        --input-tokens 32 --output-tokens 16 --timeout 30s --json "$work/r.json" >/dev/null 2>&1 || true
      after=$(cpu "$pid")
      rss=$(awk '/VmHWM/ {print int($2 / 1024) " MB"}' "/proc/$pid/status")
      python3 - "$round" "$c" "$middle" "$before" "$after" "$rss" "$work/r.json" <<'PY'
import json, sys
round_, c, middle, before, after, rss, f = sys.argv[1:]
r = json.load(open(f))
sent = max(r["requests"]["sent"], 1)
bu, bs = map(float, before.split()); au, as_ = map(float, after.split())
user = (au - bu) / 100 / sent * 1e6; sys_ = (as_ - bs) / 100 / sent * 1e6; cpu = user + sys_
ttft = r["latency_seconds"]["ttft"]["p50"] * 1e3
errors = sum(r["requests"]["errors"].values())
rate = f"{r['throughput']['requests_per_second']:.0f}" + ("" if errors == 0 else f" ({errors} errors)")
print(f"| {round_} | {c} | {middle} | {cpu:.1f} µs (user {user:.1f}, sys {sys_:.1f}) | {rate} | {ttft:.1f} ms | {rss} |")
PY
    done
  done
done
