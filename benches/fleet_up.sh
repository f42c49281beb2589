# Sourced by the dashboard benchmarks: starts the collector_fleet farm (N fixture targets,
# core 1) and `up` scraping it every INTERVAL on 127.0.0.1:$1 (core 0), then waits WARMUP
# seconds. Sets DIR (a scratch folder, removed on exit), UP (up's pid) and PIDS.
start_fleet_up() {
  local port=$1
  ulimit -n 20000
  DIR=$(mktemp -d)
  PIDS=()
  trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DIR"' EXIT
  taskset -c 1 target/release/examples/fixture_farm "$N" 20000 "$DIR/targets.json" >/dev/null &
  PIDS+=($!)
  sleep 2
  cat >"$DIR/llmwatch.toml" <<CONF
listen = "127.0.0.1:$port"
file_sd = ["$DIR/targets.json"]
[scrape]
interval = "$INTERVAL"
CONF
  taskset -c 0 target/release/llmwatch up --config "$DIR/llmwatch.toml" >/dev/null 2>"$DIR/up.log" &
  UP=$!
  PIDS+=("$UP")
  sleep "$WARMUP"
}
