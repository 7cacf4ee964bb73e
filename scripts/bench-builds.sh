#!/usr/bin/env bash
# Two builds of carbonwatch side by side: the same forwarding config, each
# relay with its own sink, and `carbonwatch bench-compare` sending them
# alternating segments over kept connections. Reports each build's median
# lines/s and relay CPU per line, and the per-round ratio NEW/BASE.
#   scripts/bench-builds.sh BASE_BINARY [NEW_BINARY] [CONNECTIONS] [ROUNDS]
# NAMES (default 10000) is the distinct names per connection and PASSES
# (default 1) how many passes over them each take a new order; with
# CHURN_EVERY=N one name in N is new each pass instead (60: 10% a minute
# at a 10 s interval). With
# CHECKS=N both relays run alerting with N live checks
# (scripts/gen-checks.py); unset, alerting is off. BASE_CHECKS overrides
# CHECKS for the base alone: `BASE_CHECKS=0 CHECKS=100000` runs one build
# against itself with and without checks. SEGMENT_LINES (default
# 2000000) sizes each segment: longer ones measure CPU per line finer.
# EXTRA_NEW (and EXTRA_BASE) name a TOML file appended to that side's
# config (an [[aggregate]], say), and TIMESTAMP=-1 stamps every line with
# the relay's arrival time, as aggregation needs.
# Build the base with, for example:
#   git worktree add /tmp/base <commit> && (cd /tmp/base && cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
BASE=${1:?usage: $0 BASE_BINARY [NEW_BINARY] [CONNECTIONS] [ROUNDS]}
NEW=${2:-target/release/carbonwatch}
CONNS=${3:-4}
ROUNDS=${4:-40}
W=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
config() { # port, sink port
    cat <<EOT
[listen]
plaintext_tcp = "127.0.0.1:$1"
plaintext_udp = ""
pickle_tcp = ""
max_connections_per_peer = 4096
[admin]
listen = ""
[stats]
enabled = false
[alerting]
store = "$3"
[[cluster]]
name = "one"
type = "forward"
destinations = ["127.0.0.1:$2"]
[[route]]
match = "*"
to = ["one"]
EOT
}
for side in base:35001:35101 new:35002:35102; do
    IFS=: read -r name port sink <<<"$side"
    n=${CHECKS:-}
    [ "$name" = base ] && n=${BASE_CHECKS:-$n}
    if [ -n "$n" ] && [ "$n" != 0 ]; then
        config "$port" "$sink" "$W/$name.db" > "$W/$name-plain.toml"
        python3 scripts/gen-checks.py "$W/$name-plain.toml" "$n" > "$W/$name.toml"
    else
        config "$port" "$sink" "" > "$W/$name.toml"
    fi
    extra=$([ "$name" = base ] && echo "${EXTRA_BASE:-}" || echo "${EXTRA_NEW:-}")
    if [ -n "$extra" ]; then cat "$extra" >> "$W/$name.toml"; fi
done
# The base may predate keys the new build has: drop what it refuses.
if ! "$BASE" check-config --config "$W/base.toml" >/dev/null 2>&1; then
    sed -i '/max_connections_per_peer/d' "$W/base.toml"
fi
"$BASE" run --config "$W/base.toml" >"$W/base.log" 2>&1 &
BASE_PID=$!
"$NEW" run --config "$W/new.toml" >"$W/new.log" 2>&1 &
NEW_PID=$!
for p in 35001 35002; do
    for _ in $(seq 600); do (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
done
"$NEW" bench-compare --side "base=127.0.0.1:35001,127.0.0.1:35101,$BASE_PID" \
    --side "new=127.0.0.1:35002,127.0.0.1:35102,$NEW_PID" \
    --connections "$CONNS" --rounds "$ROUNDS" --names "${NAMES:-10000}" --passes "${PASSES:-1}" \
    --churn-every "${CHURN_EVERY:-0}" \
    --lines "${SEGMENT_LINES:-2000000}" --timestamp="${TIMESTAMP:-1700000000}"
