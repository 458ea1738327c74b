#!/usr/bin/env bash
# Installs what wasmkafka needs and is missing; reuses what is installed.
#   - the wasm32-wasip2 rustup target (plugins are built for it)
#   - the Tansu test broker, crates.io `tansu` 0.6.0 (about 15 minutes to build, once)
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_VERSION=0.6.0
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust with rustup first" >&2
  exit 1
fi

if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "setup: rustup target wasm32-wasip2 is installed"
else
  echo "setup: adding rustup target wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

installed_tansu_version() {
  command -v tansu >/dev/null || return 1
  cargo install --list 2>/dev/null | sed -n 's/^tansu v\([0-9.]*\):$/\1/p'
}

if [ -n "${TANSU_BIN:-}" ] && [ -x "$TANSU_BIN" ]; then
  echo "setup: using TANSU_BIN=$TANSU_BIN"
elif [ "$(installed_tansu_version || true)" = "$TANSU_VERSION" ]; then
  echo "setup: tansu $TANSU_VERSION is installed ($(command -v tansu))"
else
  echo "setup: installing tansu $TANSU_VERSION (about 15 minutes, only this once)"
  cargo install --locked tansu --version "$TANSU_VERSION" --features dynostore,libsql
fi
