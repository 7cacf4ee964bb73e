#!/usr/bin/env bash
# Alerting benchmarks (issue #3), on loopback:
#  1. forwarding throughput with 0, 1,000 and 100,000 live checks
#     (scripts/gen-checks.py: mixed literal and wildcard patterns, ~1% of
#     the payload matching): three relays run at once and
#     `carbonwatch bench-compare` sends them ROUNDS rounds of segments of
#     SEGMENT_LINES lines each, taking turns, over kept connections; it
#     reports medians and each round's ratio to the no-check relay;
#  2. alert latency: breaching line written -> webhook received, while
#     forwarding a background load of RATE lines/s, RUNS runs;
#  3. memory per tracked series: 1,000,000 series through one check.
#   scripts/bench-alerts.sh [RUNS] [RATE]
# PARTS picks the parts (default: "throughput latency memory"); ROUNDS
# (default 150) and SEGMENT_LINES (default 2000000) size part 1.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}; RATE=${2:-1000000}
ROUNDS=${ROUNDS:-150}; SEGMENT_LINES=${SEGMENT_LINES:-2000000}
PARTS=${PARTS:-throughput latency memory}
part() { [[ " $PARTS " == *" $1 "* ]]; }
W=/tmp/carbonwatch-bench; rm -rf "$W"; mkdir -p "$W"
cargo build --release --quiet
BIN=$PWD/target/release/carbonwatch

# The latency and memory parts' config: one check, an HTTP subscription.
sed "s|/tmp/carbonwatch-bench|$W|" config/bench/latency.toml > "$W/latency.toml"

# $1: config; $2: its plaintext port. Sets PID.
start() { $BIN run --config "$1" 2>"$W/log-$2" & PID=$!
          for _ in $(seq 600); do (echo > /dev/tcp/127.0.0.1/$2) 2>/dev/null && return; sleep 0.1; done; echo "no start"; exit 1; }
stop() { kill "$@"; wait "$@" 2>/dev/null || true; }

if part throughput; then
echo "## throughput: $ROUNDS rounds of $SEGMENT_LINES lines to each relay, 4 connections, 1 destination"
sides=(); pids=()
for i in 0 1 2; do
  n=$(echo "0 1000 100000" | cut -d' ' -f$((i + 1)))
  sed "s|127.0.0.1:32003|127.0.0.1:3300$i|; s|127.0.0.1:32103|127.0.0.1:3310$i|; s|^store = \"\"|store = \"$W/cw-$n.db\"|" \
    config/bench/one.toml > "$W/base-$n.toml"
  if [ "$n" = 0 ]; then cp "$W/base-$n.toml" "$W/checks-$n.toml"
  else python3 scripts/gen-checks.py "$W/base-$n.toml" "$n" > "$W/checks-$n.toml"; fi
  start "$W/checks-$n.toml" "3300$i"
  pids+=("$PID"); sides+=(--side "$n=127.0.0.1:3300$i,127.0.0.1:3310$i,$PID")
done
$BIN bench-compare "${sides[@]}" --rounds "$ROUNDS" --lines "$SEGMENT_LINES" | tee "$W/throughput.txt" | tail -4
stop "${pids[@]}"
fi

if part latency; then
echo "## alert latency (background $RATE lines/s, 1000 probes)"
for r in $(seq "$RUNS"); do
    rm -f "$W"/*.db*; start "$W/latency.toml" 32003
    $BIN bench-latency --target 127.0.0.1:32003 --sink 127.0.0.1:32103 --hook 127.0.0.1:32500 --rate "$RATE" --probes 1000
    stop "$PID"
done
fi

if part memory; then
echo "## memory per series (1,000,000 series, one check on bench.*.*.*)"
sed 's|^target = "probe.\*.value"|target = "bench.*.*.*"|; s|^warn = 5|warn = 1000000000|; s|^error = 10|error = 2000000000|' "$W/latency.toml" > "$W/mem.toml"
rm -f "$W"/*.db*; start "$W/mem.toml" 32003; sleep 1
before=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
$BIN bench --target 127.0.0.1:32003 --sink 127.0.0.1:32103 --connections 4 --names 250000 --lines 1000000 >/dev/null
sleep 2
after=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
series=$(curl -s 127.0.0.1:32080/metrics | awk '/^carbonwatch_alert_series / {print $2}')
stop "$PID"
echo "series=$series rss_before=${before}KiB rss_after=${after}KiB bytes_per_series=$(( (after - before) * 1024 / series ))"
fi
