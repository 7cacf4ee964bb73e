#!/usr/bin/env bash
# Loading and holding checks (issue #13, point 4), on loopback:
#  1. time from exec to the plaintext port accepting, and resident memory
#     3 s later, with no checks and with N checks (scripts/gen-checks.py),
#     on a fresh store and on a restart with the same file, RUNS times each;
#  2. SIGHUP with nothing changed and with one check changed;
#  3. creating a check over the API with the N checks loaded.
#   scripts/bench-load.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}; RUNS=${2:-3}
W=/tmp/carbonwatch-load; rm -rf "$W"; mkdir -p "$W"
cargo build --release --quiet
BIN=$PWD/target/release/carbonwatch
sed "s|127.0.0.1:32003|127.0.0.1:34003|; s|127.0.0.1:32103|127.0.0.1:34103|; s|^store = \"\"|store = \"$W/cw.db\"|; s|^listen = \"\"|listen = \"127.0.0.1:34080\"|" \
  config/bench/one.toml > "$W/none.toml"
python3 scripts/gen-checks.py "$W/none.toml" "$N" > "$W/checks.toml"

free() { while (echo > /dev/tcp/127.0.0.1/34003) 2>/dev/null; do sleep 0.1; done; }
# $1: config. Starts the relay; sets PID, and T to the time until the
# port accepts.
start() {
  free; local s e; s=$(date +%s%N)
  $BIN run --config "$1" >/dev/null 2>>"$W/log" & PID=$!
  until (echo > /dev/tcp/127.0.0.1/34003) 2>/dev/null; do sleep 0.005; done
  e=$(date +%s%N); T="$(( (e - s) / 1000000 )) ms"
}
rss() { awk '/VmRSS/ {print $2 " KiB"}' /proc/$PID/status; }
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

echo "## loading ($N checks; port open after exec, resident 3 s later)"
for r in $(seq "$RUNS"); do
  rm -f "$W"/cw.db*; start "$W/none.toml"; sleep 3; echo "none    run $r: $T, $(rss)"; stop
  rm -f "$W"/cw.db*; start "$W/checks.toml"; sleep 3; echo "fresh   run $r: $T, $(rss)"; stop
  start "$W/checks.toml"; sleep 3; echo "restart run $r: $T, $(rss)"; stop
done

echo "## reload (SIGHUP) and an API change with $N checks"
cp "$W/checks.toml" "$W/r.toml"; start "$W/r.toml"; sleep 3
reload() {
  local n0 s e; n0=$(grep -c "Config reloaded" "$W/log" || true); s=$(date +%s%N); kill -HUP "$PID"
  until [ "$(grep -c "Config reloaded" "$W/log" || true)" -gt "$n0" ]; do sleep 0.005; done
  e=$(date +%s%N); echo "SIGHUP, $1: $(( (e - s) / 1000000 )) ms, then $(rss)"
}
reload "nothing changed"
sed -i '0,/warn = 1000000000/s//warn = 1000000001/' "$W/r.toml"
reload "one check changed"
reload "nothing changed"
for i in 1 2 3 4 5; do
  curl -s -o /dev/null -w "POST /api/checks: %{http_code} in %{time_total} s\n" -H 'content-type: application/json' \
    -d "{\"name\":\"api $i\",\"target\":\"api.$i.*\",\"warn\":\"1\",\"error\":\"2\",\"enabled\":true,\"live\":true}" \
    http://127.0.0.1:34080/api/checks
done
stop
