#!/usr/bin/env bash
# Builds the Debian package: the release binary, its man pages and shell
# completions (generated from the binary itself), then cargo-deb, which is
# installed first when missing. The package lands in target/debian/.
#   scripts/build-deb.sh [cargo-deb options]
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
cargo build --release
bin=target/release/carbonwatch
assets=target/assets
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" man --out "$assets/man" >/dev/null
gzip -9n "$assets"/man/*
"$bin" completions bash > "$assets/completions/carbonwatch.bash"
"$bin" completions zsh > "$assets/completions/_carbonwatch"
"$bin" completions fish > "$assets/completions/carbonwatch.fish"
cargo deb --no-build --strip "$@"
