#!/usr/bin/env bash
# Alerting's cost on the data path, traffic shape by traffic shape: one
# build, run twice side by side (no checks, and CHECKS live checks from
# scripts/gen-checks.py, about 1% of lines matching), through
# scripts/bench-builds.sh. Prints one row per shape: the median throughput
# ratio (checks / none) and the median relay CPU per line of each.
#   scripts/bench-shapes.sh [BINARY] [ROUNDS]
# CHECKS (default 100000) and SEGMENT_LINES (default 4000000) as in
# bench-builds.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/carbonwatch}
ROUNDS=${2:-8}
export CHECKS=${CHECKS:-100000} BASE_CHECKS=0 SEGMENT_LINES=${SEGMENT_LINES:-4000000}
echo "| shape | connections | names per connection | throughput with checks / without (median) | relay CPU per line without | with | CPU increase |"
echo "|---|---|---|---|---|---|---|"
# label:connections:names:passes:churn_every
for shape in "same order:4:10000:1:0" "same order:4:100000:1:0" \
             "new order each pass:4:10000:8:0" "new order each pass:4:100000:8:0" \
             "200 connections, interleaved:200:1000:1:0" \
             "churn, 10% new names a minute:4:100000:1:60"; do
    IFS=: read -r label conns names passes churn <<<"$shape"
    out=$(NAMES=$names PASSES=$passes CHURN_EVERY=$churn scripts/bench-builds.sh "$BIN" "$BIN" "$conns" "$ROUNDS" | tail -2)
    base=$(sed -n 's/^side=base .*median_relay_ns_per_line=\([0-9]*\).*/\1/p' <<<"$out")
    new=$(sed -n 's/^side=new .*median_relay_ns_per_line=\([0-9]*\) .*/\1/p' <<<"$out")
    ratio=$(sed -n 's/^side=new .*median=\([0-9.]*\) quartiles.*/\1/p' <<<"$out")
    echo "| $label | $conns | $names | $ratio | $base ns | $new ns | $(( (new - base) * 100 / base ))% |"
done
