#!/usr/bin/env bash
# Builds every plugin crate (plugins/assignors/*, plugins/resets/*, tests/plugins/*) as a Wasm
# component: target/wasm32-wasip2/release/<crate>.wasm. Extra arguments go to cargo.
#   scripts/build-plugins.sh            # build
#   scripts/build-plugins.sh --list     # print the crate names
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

crates=()
for manifest in plugins/assignors/*/Cargo.toml plugins/resets/*/Cargo.toml tests/plugins/*/Cargo.toml; do
    crates+=("$(sed -n 's/^name = "\(.*\)"/\1/p' "$manifest" | head -n 1)")
done
if [ "${1:-}" = "--list" ]; then
    printf '%s\n' "${crates[@]}"
    exit 0
fi
packages=()
for name in "${crates[@]}"; do packages+=(-p "$name"); done
exec "${CARGO:-cargo}" build --release --locked --target wasm32-wasip2 "${packages[@]}" "$@"
