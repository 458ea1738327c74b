#!/usr/bin/env bash
# Sets up what is missing, then runs every check and test: formatting, clippy (host and tests;
# plugins for wasm32-wasip2), unit tests, and the integration tests against Apache Kafka (single
# node and three-node cluster), librdkafka and the scripted fault broker. The Tansu
# compatibility tests run only where TANSU_BIN or an installed `tansu` is found.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (host, tests)"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo clippy (plugins, wasm32-wasip2)"
plugins=(-p wasmkafka-plugin-sdk)
while read -r name; do plugins+=(-p "$name"); done < <(scripts/build-plugins.sh --list)
cargo clippy --locked --target wasm32-wasip2 "${plugins[@]}" -- -D warnings
echo "== plugins (wasm32-wasip2)"
scripts/build-plugins.sh
echo "== cargo test"
cargo test --locked
