#!/usr/bin/env bash
# Overload (issue #5): a client sending as fast as it can into a proxy whose
# one backend reads ~150,000 lines/s, for SECS seconds (3 minutes by
# default), with a 64 MiB spool that fills and then holds the client back.
# Prints the peak RSS, and checks that every line arrived exactly once.
#   scripts/bench-overload.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
CARBONWATCH_OVERLOAD_SECS=${1:-180} cargo test --release --test faults overload \
  -- --include-ignored --nocapture 2>&1 | grep -E "overload|test result"
