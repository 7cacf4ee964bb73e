#!/usr/bin/env bash
# Aggregation's cost, carbonwatch and carbon-c-relay side by side on one
# carbon-c-relay file: every line is aggregated (sum and count into 100
# series per rule) and forwarded, timestamps are the start time of the run
# (within the buckets' 600 s), and `carbonwatch bench-compare` sends both
# relays alternating segments. Reports each one's lines/s and relay CPU
# per line.
#   scripts/bench-aggregate.sh [BINARY] [CONNECTIONS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/carbonwatch}
CONNS=${2:-4}
ROUNDS=${3:-8}
command -v carbon-c-relay >/dev/null || { echo "needs carbon-c-relay (apt-get install carbon-c-relay)"; exit 1; }
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
conf() { # port, sink port
    cat <<EOT
listen type linemode 127.0.0.1:$1 proto tcp;
cluster one forward 127.0.0.1:$2;
aggregate ^bench\.c[0-9]+\.(host[0-9]+)\..*$ every 10 seconds expire after 600 seconds
    compute sum write to agg.\1.sum compute count write to agg.\1.count;
match * send to one;
EOT
}
conf 35011 35111 > "$W/crelay.conf"
conf 35012 35112 > "$W/carbonwatch.conf"
carbon-c-relay -w 2 -q 2000000 -L 15 -f "$W/crelay.conf" >"$W/crelay.log" 2>&1 &
CR=$!
"$BIN" run --config "$W/carbonwatch.conf" >"$W/carbonwatch.log" 2>&1 &
CW=$!
for p in 35011 35012; do
    for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
"$BIN" bench-compare --side "carbon-c-relay=127.0.0.1:35011,127.0.0.1:35111,$CR" \
    --side "carbonwatch=127.0.0.1:35012,127.0.0.1:35112,$CW" \
    --connections "$CONNS" --rounds "$ROUNDS" --timestamp="$(date +%s)"
