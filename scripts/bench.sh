#!/usr/bin/env bash
# End-to-end relay benchmark: carbonwatch and carbon-c-relay side by side,
# same load generator, same sinks, same machine.
#   scripts/bench.sh [LINES_CARBONWATCH] [LINES_CRELAY]
# The load generator and sinks are `carbonwatch bench`; each relay listens
# on 127.0.0.1:32003 and forwards to sinks on 32103/32203/32303.
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-20000000}
CR_LINES=${2:-4000000}
command -v carbon-c-relay >/dev/null || { echo "needs carbon-c-relay (apt-get install carbon-c-relay)"; exit 1; }
cargo build --release --quiet
BIN=target/release/carbonwatch
SINK1="--sink 127.0.0.1:32103"
SINK3="--sink 127.0.0.1:32103 --sink 127.0.0.1:32203 --sink 127.0.0.1:32303"

wait_port() { for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/32003) 2>/dev/null && return; sleep 0.1; done; echo "relay did not start"; exit 1; }

run() { # label, lines, sinks, command...
    local label=$1 lines=$2 sinks=$3; shift 3
    "$@" >/dev/null 2>&1 &
    local pid=$!
    wait_port
    local out
    out=$($BIN bench --target 127.0.0.1:32003 $sinks --connections 4 --lines "$lines" --watch-pid "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    printf '| %-40s | %s |\n' "$label" "$out"
}

echo "| relay / setup | result |"
echo "|---|---|"
run "carbonwatch, forward, 1 destination" "$LINES" "$SINK1" $BIN run --config config/bench/one.toml
run "carbonwatch, carbon_ch, 3 destinations" "$LINES" "$SINK3" $BIN run --config config/bench/three.toml
run "carbon-c-relay $(carbon-c-relay -v 2>&1 | head -1 | awk '{print $2}'), forward, 1 destination" "$CR_LINES" "$SINK1" \
    carbon-c-relay -f config/bench/crelay-one.conf -p 32003 -w 2 -q 2000000 -L 15
run "carbon-c-relay, carbon_ch, 3 destinations" "$CR_LINES" "$SINK3" \
    carbon-c-relay -f config/bench/crelay-three.conf -p 32003 -w 2 -q 2000000 -L 15
