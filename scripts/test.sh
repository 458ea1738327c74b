#!/usr/bin/env bash
# Sets up what is missing, then runs every check and test: formatting, clippy, unit tests,
# real-broker (Tansu) and fault-broker integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
# The plugin crates (plugins/*, tests/plugins/*) build for wasm32-wasip2 only; everything
# else is a default member of the workspace.
plugins=(-p wasmkafka-plugin-sdk)
for manifest in plugins/assignors/*/Cargo.toml plugins/resets/*/Cargo.toml tests/plugins/*/Cargo.toml; do
    plugins+=(-p "$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)")
done
echo "== cargo clippy (host, tests)"
cargo clippy --all-targets --locked -- -D warnings
echo "== cargo clippy (plugins, wasm32-wasip2)"
cargo clippy --locked --target wasm32-wasip2 "${plugins[@]}" -- -D warnings
echo "== cargo build (plugins, wasm32-wasip2)"
cargo build --release --locked --target wasm32-wasip2 "${plugins[@]}"
echo "== cargo test"
cargo test --locked
