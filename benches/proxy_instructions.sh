#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: far steadier than CPU
# time on a shared machine, and blind to the kernel (which `strace -c` covers). The proxy
# runs under valgrind twice, for 200 and for 1,200 streamed requests (`instant` profile,
# 16 tokens, 20 streams, or STREAMS); the difference over 1,000 cancels start-up and
# shutdown. With STREAMS=2 nearly every event is a relay step of its own (an upstream read,
# its events, a write), as at 100 streams outside valgrind; at 20 the events of a request
# come in three to six steps.
# With OTLP=1 the proxy also sends a span for every request and its metrics every 5 s to a
# local sink that answers 200 (`benches/otlp_sink.py`): the difference between the two counts
# is what tracing adds per request.
# With NGINX=1 the middle counted is nginx instead (`benches/nginx_reference.conf`, one
# process, `master_process off`), for scale.
# BENCH_ARGS adds options to the bench: `BENCH_ARGS=--no-stream` asks for whole answers, one
# relay step each, so the count is the request's own path without the stream's steps.
# Usage: [OTLP=1] [STREAMS=N] [BENCH_ARGS=...] benches/proxy_instructions.sh [LLMWATCH_BINARY]   (needs valgrind; the binary built
# with CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_STRIP=false gives
# callgrind_annotate's per-line view of the output files it names)
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
bin=${1:-$TARGET/release/llmwatch}
work=$(mktemp -d)
"$bin" sim --engine vllm:18750 --profile instant >"$work/sim.log" 2>&1 &
sim=$!
otlp=()
sink=
if [ "${OTLP:-0}" = 1 ]; then
  python3 benches/otlp_sink.py 18752 >"$work/sink.log" 2>&1 &
  sink=$!
  otlp=(--otlp-endpoint http://127.0.0.1:18752 --otlp-interval 5s --otlp-trace-ratio 1)
fi
trap 'kill $sim $sink 2>/dev/null || true' EXIT
declare -A total
if [ "${NGINX:-0}" = 1 ]; then
  sed -e s/UPSTREAM_PORT/18750/ -e s/LISTEN_PORT/18751/ benches/nginx_reference.conf >"$work/nginx.conf"
fi
for n in 200 1200; do
  if [ "${NGINX:-0}" = 1 ]; then
    valgrind --tool=callgrind --callgrind-out-file="$work/proxy.$n.out" nginx -c "$work/nginx.conf" \
      -p "$work" -g "daemon off; master_process off; pid $work/nginx.pid; error_log $work/error.log;" \
      >"$work/proxy.$n.log" 2>&1 &
  else
    valgrind --tool=callgrind --callgrind-out-file="$work/proxy.$n.out" "$bin" proxy \
      --upstream http://127.0.0.1:18750 --listen 127.0.0.1:18751 "${otlp[@]}" >"$work/proxy.$n.log" 2>&1 &
  fi
  proxy=$!
  for _ in $(seq 1 150); do curl -sf http://127.0.0.1:18751/metrics >/dev/null && break; sleep 0.2; done
  "$bin" bench http://127.0.0.1:18751 --concurrency "${STREAMS:-20}" --requests "$n" --input-tokens 32 \
    --output-tokens 16 --timeout 60s ${BENCH_ARGS:-} >/dev/null
  # nginx stops gracefully on QUIT, the proxy on INT; both write their profile then.
  if [ "${NGINX:-0}" = 1 ]; then kill -QUIT "$proxy"; else kill -INT "$proxy"; fi
  wait "$proxy" || true
  total[$n]=$(awk '/^summary:/ {print $2}' "$work/proxy.$n.out")
done
echo "user-space instructions per request: $(((total[1200] - total[200]) / 1000)) (profiles in $work)"
