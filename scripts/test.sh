#!/usr/bin/env bash
# Runs the formatting and lint checks and the whole test suite, including the tests that need real programs
# (Debian's graphite-carbon, carbon-c-relay, python3-whisper, python3-aiosmtpd,
# prometheus-alertmanager, graphite-web, chromium, snmptrapd, systemd,
# man-db; the package tests install cargo-deb). Installs
# those packages first when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v carbon-c-relay >/dev/null || need+=(carbon-c-relay)
/usr/bin/python3 -c 'import carbon.hashing' 2>/dev/null || need+=(graphite-carbon)
/usr/bin/python3 -c 'import whisper' 2>/dev/null || need+=(python3-whisper)
[ -x /usr/bin/carbon-cache ] || need+=(graphite-carbon)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need+=(python3-aiosmtpd)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
/usr/bin/python3 -c 'import graphite.finders' 2>/dev/null || need+=(graphite-web)
command -v chromium >/dev/null || need+=(chromium)
command -v snmptrapd >/dev/null || [ -x /usr/sbin/snmptrapd ] || need+=(snmptrapd)
# The package tests: dpkg-deb comes with dpkg; systemd-analyze and man.
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v man >/dev/null || need+=(man-db)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test --all-targets -- --include-ignored
