#!/usr/bin/env bash
# `top`'s frame time over a fleet of N fixture targets (the collector_fleet farm): after
# WARMUP seconds of scraping at 5 s, examples/top_frame fetches what a WIDTH×HEIGHT `top`
# asks for and draws it REPEAT times.
#
#   N=1000 WARMUP=40 WIDTH=200 HEIGHT=60 REPEAT=20 benches/top_frame.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
N=${N:-1000} INTERVAL=${INTERVAL:-5s} WARMUP=${WARMUP:-40} WIDTH=${WIDTH:-200} HEIGHT=${HEIGHT:-60} REPEAT=${REPEAT:-20}
cargo build --release --example fixture_farm --example top_frame -q
cargo build --release -q
source benches/fleet_up.sh
start_fleet_up 19465
taskset -c 1 "$TARGET/release/examples/top_frame" http://127.0.0.1:19465 "$WIDTH" "$HEIGHT" "$REPEAT"
