#!/usr/bin/env bash
# Hashing at forward speed (issue #15, point 4): a relay sending to one
# `forward` destination (the baseline) side by side with one sending to a
# cluster of three destinations, through `carbonwatch bench-compare`
# (alternating segments over kept connections, each relay with its own
# sinks). One row per cluster type and traffic shape: the median
# throughput ratio (cluster / forward) and the median relay CPU per line.
#   scripts/bench-clusters.sh [ROUNDS]
# TYPES (default: every type that sends a line to one member: the rings,
# any_of and failover; `forward` sends three copies, which the sinks count
# three times) and SHAPES
# ("label:connections:names:passes:churn_every", as in bench-shapes.sh)
# narrow the table; SEGMENT_LINES (default 2000000) sizes each segment;
# REPLICATION (default 1) is the clusters' replication; ROUTE_CACHE sets
# the cluster relay's [relay] route_cache_max_names (0: no remembered
# routes, to see what remembering them buys).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-8}
TYPES=${TYPES:-"carbon_ch carbon_ch_crelay fnv1a_ch fnv1a_ch_crelay jump_fnv1a_ch any_of failover"}
SHAPES=${SHAPES:-"same order:4:10000:1:0|same order:4:100000:1:0|new order each pass:4:10000:8:0|new order each pass:4:100000:8:0|200 connections, interleaved:200:1000:1:0|churn, 10% new names a minute:4:100000:1:60"}
cargo build --release --quiet
BIN=$PWD/target/release/carbonwatch
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
config() { # port, cluster type, destinations...
    local port=$1 type=$2; shift 2
    local dests; dests=$(printf '"%s", ' "$@"); dests=${dests%, }
    cat <<EOT
[listen]
plaintext_tcp = "127.0.0.1:$port"
plaintext_udp = ""
pickle_tcp = ""
max_connections_per_peer = 4096
[admin]
listen = ""
[stats]
enabled = false
[alerting]
store = ""
${ROUTE_CACHE:+[relay]
route_cache_max_names = $ROUTE_CACHE}
[[cluster]]
name = "c"
type = "$type"
replication = ${REPLICATION:-1}
destinations = [$dests]
[[route]]
match = "*"
to = ["c"]
EOT
}
free_port() { while (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null; do sleep 0.1; done; }
wait_port() { for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/$1) 2>/dev/null && return; sleep 0.1; done; echo "relay on $1 did not start" >&2; exit 1; }
echo "| cluster, 3 destinations | shape | connections | names per connection | throughput / forward to 1 (median) | relay CPU per line, forward to 1 | cluster | CPU increase |"
echo "|---|---|---|---|---|---|---|---|"
for type in $TYPES; do
    config 36001 forward 127.0.0.1:36101 > "$W/base.toml"
    config 36002 "$type" 127.0.0.1:36201:a 127.0.0.1:36202:b 127.0.0.1:36203:c > "$W/new.toml"
    IFS='|' read -ra shapes <<<"$SHAPES"
    for shape in "${shapes[@]}"; do
        # Fresh relays for every row: nothing remembered from the last.
        "$BIN" run --config "$W/base.toml" >"$W/base.log" 2>&1 & BASE_PID=$!
        "$BIN" run --config "$W/new.toml" >"$W/new.log" 2>&1 & NEW_PID=$!
        wait_port 36001; wait_port 36002
        IFS=: read -r label conns names passes churn <<<"$shape"
        out=$("$BIN" bench-compare --side "base=127.0.0.1:36001,127.0.0.1:36101,$BASE_PID" \
            --side "new=127.0.0.1:36002,127.0.0.1:36201+127.0.0.1:36202+127.0.0.1:36203,$NEW_PID" \
            --connections "$conns" --rounds "$ROUNDS" --names "$names" --passes "$passes" \
            --churn-every "$churn" --lines "${SEGMENT_LINES:-2000000}" | tail -2)
        base=$(sed -n 's/^side=base .*median_relay_ns_per_line=\([0-9]*\).*/\1/p' <<<"$out")
        new=$(sed -n 's/^side=new .*median_relay_ns_per_line=\([0-9]*\) .*/\1/p' <<<"$out")
        ratio=$(sed -n 's/^side=new .*median=\([0-9.]*\) quartiles.*/\1/p' <<<"$out")
        echo "| \`$type\` | $label | $conns | $names | $ratio | $base ns | $new ns | $(( (new - base) * 100 / base ))% |"
        kill "$BASE_PID" "$NEW_PID"; wait "$BASE_PID" "$NEW_PID" 2>/dev/null || true
        free_port 36001; free_port 36002
    done
done
