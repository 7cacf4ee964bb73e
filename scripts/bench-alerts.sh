#!/usr/bin/env bash
# Alerting benchmarks (issue #3), on loopback:
#  1. forwarding throughput and relay CPU per line with 0, 1,000 and
#     100,000 live checks (scripts/gen-checks.py: mixed literal and
#     wildcard patterns, ~1% of the payload matching), RUNS rounds,
#     interleaved, with medians and per-round ratios at the end;
#  2. alert latency: breaching line written -> webhook received, while
#     forwarding a background load of RATE lines/s;
#  3. memory per tracked series: 1,000,000 series through one check.
#   scripts/bench-alerts.sh [RUNS] [LINES] [RATE]
# PARTS picks the parts (default: "throughput latency memory"); e.g. many
# short throughput rounds: PARTS=throughput scripts/bench-alerts.sh 30 10000000
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}; LINES=${2:-40000000}; RATE=${3:-1000000}
PARTS=${PARTS:-throughput latency memory}
part() { [[ " $PARTS " == *" $1 "* ]]; }
W=/tmp/carbonwatch-bench; rm -rf "$W"; mkdir -p "$W"
cargo build --release --quiet
BIN=$PWD/target/release/carbonwatch

sed "s|^store = \"\"|store = \"$W/cw.db\"|" config/bench/one.toml > "$W/checks-0.toml"
for n in 1000 100000; do python3 scripts/gen-checks.py "$W/checks-0.toml" $n > "$W/checks-$n.toml"; done

start() { rm -f "$W"/*.db*; $BIN run --config "$1" 2>"$W/log" & PID=$!
          for _ in $(seq 600); do (echo > /dev/tcp/127.0.0.1/32003) 2>/dev/null && return; sleep 0.1; done; echo "no start"; exit 1; }
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }

if part throughput; then
echo "## throughput (lines=$LINES, 4 connections, 1 destination)"
# Odd rounds run 0, 1,000, 100,000 checks; even rounds the reverse, so a
# drift of the machine during a round does not favour one configuration.
for r in $(seq "$RUNS"); do
  order="0 1000 100000"; [ $((r % 2)) -eq 0 ] && order="100000 1000 0"
  for n in $order; do
    start "$W/checks-$n.toml"
    echo "checks=$n $($BIN bench --target 127.0.0.1:32003 --sink 127.0.0.1:32103 --connections 4 --lines "$LINES" --watch-pid $PID)"
    stop
done; done | tee "$W/throughput.txt"
# Medians per configuration, and each round's ratio to the no-check run
# of the same round (the runs are interleaved, so a round shares the
# machine's mood).
python3 - "$W/throughput.txt" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"checks=(\d+) .*rate=(\d+) .*relay_ns_per_line=(\d+)", line)
    if m:
        runs.setdefault(int(m[1]), []).append((int(m[2]), int(m[3])))
base = runs[0]
def q(xs, k):
    return statistics.quantiles(xs, n=4)[k - 1] if len(xs) > 1 else xs[0]
for n, rs in sorted(runs.items()):
    ratios = [r / b for (r, _), (b, _) in zip(rs, base)]
    print(f"checks={n}: median {statistics.median(r for r, _ in rs) / 1e6:.2f} M lines/s, "
          f"median relay CPU {statistics.median(c for _, c in rs)} ns/line, "
          f"per-round ratio to no checks: median {statistics.median(ratios):.2f} "
          f"(quartiles {q(ratios, 1):.2f}-{q(ratios, 3):.2f}, min {min(ratios):.2f}, max {max(ratios):.2f}, "
          f"{sum(r >= 0.9 for r in ratios)} of {len(ratios)} rounds >= 0.90)")
PY
fi

if part latency; then
echo "## alert latency (background $RATE lines/s, 1000 probes)"
sed "s|/tmp/carbonwatch-bench|$W|" config/bench/latency.toml > "$W/latency.toml"
for r in $(seq "$RUNS"); do
    start "$W/latency.toml"
    $BIN bench-latency --target 127.0.0.1:32003 --sink 127.0.0.1:32103 --hook 127.0.0.1:32500 --rate "$RATE" --probes 1000
    stop
done
fi

if part memory; then
echo "## memory per series (1,000,000 series, one check on bench.*.*.*)"
sed 's|^target = "probe.\*.value"|target = "bench.*.*.*"|; s|^warn = 5|warn = 1000000000|; s|^error = 10|error = 2000000000|' "$W/latency.toml" > "$W/mem.toml"
start "$W/mem.toml"; sleep 1
before=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
$BIN bench --target 127.0.0.1:32003 --sink 127.0.0.1:32103 --connections 4 --names 250000 --lines 1000000 >/dev/null
sleep 2
after=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
series=$(curl -s 127.0.0.1:32080/metrics | awk '/^carbonwatch_alert_series / {print $2}')
stop
echo "series=$series rss_before=${before}KiB rss_after=${after}KiB bytes_per_series=$(( (after - before) * 1024 / series ))"
fi
