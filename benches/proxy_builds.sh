#!/usr/bin/env bash
# Two builds of the proxy (or one) and nginx (one worker, `proxy_buffering off`) in
# alternating rows before one simulator, so that drift in the machine's speed falls on all
# of them: each round runs `llmwatch bench` through the old build, the new build and nginx
# at each concurrency (in that order in odd rounds and the reverse in even ones, so that a
# steady drift does not always favour the same middle), and prints the middle's CPU per
# request (from /proc; user and system time apart), req/s, TTFT p50 and peak RSS. With one
# binary only that build and nginx alternate. At the end, per concurrency and build: the
# geometric mean of the rounds' ratios to nginx (CPU per request, and req/s) with a 95 %
# confidence interval (Student's t over the rounds' log ratios), and in how many rounds the
# build was at or under nginx.
#
#   ROUNDS=3 DURATION=10s CONCURRENCY="100 1000" benches/proxy_builds.sh [OLD_BINARY] NEW_BINARY
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -ge 2 ]; then old_bin=$1 new_bin=$2 middles="old new nginx"; else old_bin= new_bin=$1 middles="new nginx"; fi
rounds=${ROUNDS:-3} duration=${DURATION:-10s}
ulimit -n 20000 || true
work=$(mktemp -d)
"$new_bin" sim --engine vllm:18760 --profile instant >"$work/sim.log" 2>&1 &
sim=$!
old=
if [ -n "$old_bin" ]; then
  "$old_bin" proxy --upstream http://127.0.0.1:18760 --listen 127.0.0.1:18761 >"$work/old.log" 2>&1 &
  old=$!
fi
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
    order=$middles
    [ $((round % 2)) = 0 ] && order=$(echo "$middles" | awk '{for (i = NF; i > 0; i--) printf "%s ", $i}')
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
      python3 - "$round" "$c" "$middle" "$before" "$after" "$rss" "$work/r.json" "$work/rows.jsonl" <<'PY'
import json, sys
round_, c, middle, before, after, rss, f, rows = sys.argv[1:]
r = json.load(open(f))
sent = max(r["requests"]["sent"], 1)
bu, bs = map(float, before.split()); au, as_ = map(float, after.split())
user = (au - bu) / 100 / sent * 1e6; sys_ = (as_ - bs) / 100 / sent * 1e6; cpu = user + sys_
ttft = r["latency_seconds"]["ttft"]["p50"] * 1e3
errors = sum(r["requests"]["errors"].values())
rate = f"{r['throughput']['requests_per_second']:.0f}" + ("" if errors == 0 else f" ({errors} errors)")
print(f"| {round_} | {c} | {middle} | {cpu:.1f} µs (user {user:.1f}, sys {sys_:.1f}) | {rate} | {ttft:.1f} ms | {rss} |")
with open(rows, "a") as out:
    row = {"round": round_, "streams": c, "middle": middle, "cpu": cpu, "errors": errors,
           "rate": r["throughput"]["requests_per_second"], "rss": rss}
    out.write(json.dumps(row) + "\n")
PY
    done
  done
done
python3 - "$work/rows.jsonl" <<'PY'
import collections, json, math, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
by = {(r["round"], r["streams"], r["middle"]): r for r in rows}
# Two-sided 95 % points of Student's t by degrees of freedom; 1.96 beyond the table.
T95 = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.20, 2.18, 2.16, 2.14,
       2.13, 2.12, 2.11, 2.10, 2.09, 2.09, 2.08, 2.07, 2.07, 2.06, 2.06, 2.06, 2.05, 2.05, 2.05]
def interval(ratios):
    logs = [math.log(x) for x in ratios]
    n = len(logs)
    mean = sum(logs) / n
    if n < 2:
        return math.exp(mean), float("nan"), float("nan")
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    half = (T95[n - 2] if n - 2 < len(T95) else 1.96) * sd / math.sqrt(n)
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)
pairs = collections.defaultdict(list)
for (round_, c, middle), r in by.items():
    base = by.get((round_, c, "nginx"))
    if middle != "nginx" and base and r["errors"] == 0 and base["errors"] == 0:
        pairs[(c, middle)].append((r["cpu"] / base["cpu"], r["rate"] / base["rate"]))
print()
print("| streams | middle | rounds | CPU ÷ nginx (95 % interval) | at or under | req/s ÷ nginx (95 % interval) | at or above |")
print("|---|---|---|---|---|---|---|")
for (c, middle), ratios in sorted(pairs.items(), key=lambda kv: (int(kv[0][0]), kv[0][1])):
    cpu = interval([x for x, _ in ratios]); rate = interval([y for _, y in ratios])
    under = sum(x <= 1 for x, _ in ratios); above = sum(y >= 1 for _, y in ratios)
    print(f"| {c} | {middle} | {len(ratios)} | {cpu[0]:.3f} ({cpu[1]:.3f} – {cpu[2]:.3f}) | {under} of {len(ratios)} "
          f"| {rate[0]:.3f} ({rate[1]:.3f} – {rate[2]:.3f}) | {above} of {len(ratios)} |")
PY
