#!/usr/bin/env bash
# Overload (issue #5): a client sending as fast as it can into a proxy whose
# one backend reads ~37,000 lines/s, for SECS seconds (3 minutes by
# default), with the default 64 MiB memory queue and a 64 MiB spool that
# fill and then hold the client back. Prints the peak RSS and RSS under
# backpressure, and checks that every line arrived exactly once.
#   scripts/bench-overload.sh [SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
CARBONWATCH_OVERLOAD_SECS=${1:-180} CARBONWATCH_OVERLOAD_QUEUE_MIB=64 \
  CARBONWATCH_OVERLOAD_SPOOL_MIB=64 cargo test --release --test faults overload \
  -- --include-ignored --nocapture 2>&1 | grep -E "overload|test result"
