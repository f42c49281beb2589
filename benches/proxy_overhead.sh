#!/usr/bin/env bash
# What `llmwatch proxy` adds, beside nginx (proxy_buffering off) as the plain-proxy reference:
# llmwatch bench at fixed concurrencies against the simulator directly, through the proxy and
# through nginx, one run each. Prints TTFT and per-chunk ITL p50/p99, throughput, and the
# middle process's CPU per request and peak RSS.
# Usage: benches/proxy_overhead.sh [PROFILE]   (default instant; gpu-7b for a realistic one)
# Env: CONCURRENCY (default "1 100 1000"), DURATION (10s), OUTPUT_TOKENS (16), LITELLM (path
# of a `litellm` proxy binary, litellm[proxy] 1.108.7 + prometheus_client: adds a LiteLLM row),
# OTLP=1 (adds a `proxy-otlp` row: a second proxy exporting a span per request, every one
# sampled, and its metrics every 5 s to a local OTLP sink that answers 200), PATHS (the rows
# to run, default all).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
bin=${LLMWATCH_BIN:-$TARGET/release/llmwatch}
profile=${1:-instant}
duration=${DURATION:-10s}
output=${OUTPUT_TOKENS:-16}
ulimit -n 20000 || true
work=$(mktemp -d)
"$bin" sim --engine vllm:18730 --profile "$profile" >"$work/sim.log" 2>&1 &
sim=$!
"$bin" proxy --upstream http://127.0.0.1:18730 --listen 127.0.0.1:18731 >"$work/proxy.log" 2>&1 &
proxy=$!
sed -e s/UPSTREAM_PORT/18730/ -e s/LISTEN_PORT/18732/ benches/nginx_reference.conf >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" -g "daemon off; pid $work/nginx.pid; error_log $work/error.log;" &
nginx_master=$!
paths="direct proxy nginx"
litellm=
otlp_proxy=
sink=
if [ "${OTLP:-}" = 1 ]; then
  python3 benches/otlp_sink.py 18735 >"$work/sink.log" 2>&1 &
  sink=$!
  "$bin" proxy --upstream http://127.0.0.1:18730 --listen 127.0.0.1:18734 \
    --otlp-endpoint http://127.0.0.1:18735 --otlp-interval 5s --otlp-trace-ratio 1 >"$work/proxy-otlp.log" 2>&1 &
  otlp_proxy=$!
  paths="$paths proxy-otlp"
fi
paths=${PATHS:-$paths}
if [ -n "${LITELLM:-}" ]; then
  cat >"$work/litellm.yaml" <<CONF
model_list:
  - model_name: sim-vllm
    litellm_params:
      model: openai/sim-vllm
      api_base: http://127.0.0.1:18730/v1
      api_key: none
litellm_settings:
  callbacks: ["prometheus"]
CONF
  LITELLM_MASTER_KEY=sk-bench LITELLM_LOCAL_MODEL_COST_MAP=True "$LITELLM" --config "$work/litellm.yaml" \
    --host 127.0.0.1 --port 18733 --num_workers 1 >"$work/litellm.log" 2>&1 &
  litellm=$!
  paths="$paths litellm"
  for _ in $(seq 1 120); do curl -sf -H 'Authorization: Bearer sk-bench' http://127.0.0.1:18733/v1/models >/dev/null && break; sleep 0.5; done
fi
trap 'kill $sim $proxy $nginx_master $litellm $otlp_proxy $sink 2>/dev/null || true; wait 2>/dev/null || true' EXIT
sleep 1
nginx_worker=$(pgrep -P "$nginx_master" | head -1 || true)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
printf '| profile | streams | path | TTFT p50 | TTFT p99 | ITL/chunk p50 | ITL/chunk p99 | req/s | middle CPU per request | middle peak RSS |\n|---|---|---|---|---|---|---|---|---|---|\n'
for c in ${CONCURRENCY:-1 100 1000}; do
  for path in $paths; do
    key=()
    case $path in
      direct) url=http://127.0.0.1:18730; pid= ;;
      proxy) url=http://127.0.0.1:18731; pid=$proxy ;;
      proxy-otlp) url=http://127.0.0.1:18734; pid=$otlp_proxy ;;
      nginx) url=http://127.0.0.1:18732; pid=$nginx_worker ;;
      litellm) url=http://127.0.0.1:18733; pid=$litellm; key=(--api-key sk-bench --model sim-vllm) ;;
    esac
    before=$([ -n "$pid" ] && cpu "$pid" || echo 0)
    "$bin" bench "$url" --concurrency "$c" --duration "$duration" --input-tokens 32 \
      --output-tokens "$output" --timeout 30s "${key[@]}" --json "$work/r.json" >/dev/null || true
    after=$([ -n "$pid" ] && cpu "$pid" || echo 0)
    rss=$([ -n "$pid" ] && awk '/VmHWM/ {print $2 / 1024 " MB"}' "/proc/$pid/status" || echo "–")
    python3 - "$profile" "$c" "$path" "$before" "$after" "$rss" "$work/r.json" <<'PY'
import json, sys
profile, c, path, before, after, rss, f = sys.argv[1:]
r = json.load(open(f))
lat = r["latency_seconds"]
ms = lambda k, q: f"{lat[k][q] * 1e3:.3f} ms"
sent = r["requests"]["sent"]
cpu = (float(after) - float(before)) / 100 / max(sent, 1) * 1e6
cpu_text = f"{cpu:.0f} µs" if path != "direct" else "–"
errors = sum(r["requests"]["errors"].values())
print(f"| {profile} | {c} | {path} | {ms('ttft','p50')} | {ms('ttft','p99')} | {ms('itl_chunk','p50')} | "
      f"{ms('itl_chunk','p99')} | {r['throughput']['requests_per_second']:.0f}{'' if errors == 0 else f' ({errors} errors)'} | {cpu_text} | {rss} |")
PY
  done
done
