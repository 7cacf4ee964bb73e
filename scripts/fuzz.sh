#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600), one after
# another, with memory and time limits so that a decoder bomb or a hang is
# a finding, not a slow run. Needs `cargo install cargo-fuzz`; on a stable
# toolchain RUSTC_BOOTSTRAP=1 lets it use the sanitizer flags.
#   scripts/fuzz.sh [SECONDS] [TARGET ...]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(pickle_decode parse_line tags glob api_json crelay_config aggrules_config)
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    # Pickle frames up to 1 MiB, as the listener allows; the rest are
    # lines and patterns, whose limits are 16 KiB.
    case $t in
        pickle_decode) max_len=1048576 ;;
        *) max_len=20000 ;;
    esac
    mkdir -p "corpus/$t"
    echo "== $t: ${secs}s"
    log=$(mktemp)
    status=0
    cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=1024 \
        -timeout=10 -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|==[0-9]+== ERROR)|crash-|timeout-|oom-" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log"
        echo "$t: FOUND A PROBLEM (full log: $log)"
        exit 1
    fi
    rm -f "$log"
done
