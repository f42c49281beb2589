# Sourced by the collector and dashboard benchmarks. Binaries come from $CARGO_TARGET_DIR
# (or target/).
TARGET=${TARGET:-${CARGO_TARGET_DIR:-target}}

# start_farm: starts the fixture farm (N fixture targets, core 1) writing its file_sd list to
# $DIR/targets.json. Sets DIR (a scratch folder, removed on exit) and PIDS (killed on exit).
start_farm() {
  ulimit -n 20000
  DIR=$(mktemp -d)
  PIDS=()
  trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$DIR"' EXIT
  taskset -c 1 "$TARGET/release/examples/fixture_farm" "$N" 20000 "$DIR/targets.json" >/dev/null &
  PIDS+=($!)
  sleep 2
}

# start_fleet_up PORT: start_farm, then `up` scraping it every INTERVAL on 127.0.0.1:PORT
# (core 0), then waits WARMUP seconds. Sets UP (up's pid) too.
start_fleet_up() {
  local port=$1
  start_farm
  cat >"$DIR/llmwatch.toml" <<CONF
listen = "127.0.0.1:$port"
file_sd = ["$DIR/targets.json"]
[scrape]
interval = "$INTERVAL"
CONF
  taskset -c 0 "$TARGET/release/llmwatch" up --config "$DIR/llmwatch.toml" >/dev/null 2>"$DIR/up.log" &
  UP=$!
  PIDS+=("$UP")
  sleep "$WARMUP"
}
