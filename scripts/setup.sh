#!/usr/bin/env bash
# Installs what wasmkafka needs and is missing; reuses what is installed. Needs: Rust (rustup),
# Java 17 (java on PATH or JAVA_HOME), Maven (mvn), python3 with venv and pip.
#   - the wasm32-wasip2 rustup target (plugins are built for it)
#   - for the static musl build (scripts/release.sh, the Dockerfile, host/tests/packaging.rs):
#     the x86_64-unknown-linux-musl rustup target, and musl-gcc (Debian's musl-tools, installed
#     with apt-get when running as root; elsewhere the musl tests say SKIPPED)
#   - Chromium (Debian's chromium, installed with apt-get when running as root): the headless
#     browser the HTML report tests render in (they fail without it) and scripts/lab-screenshot.sh
#   - the Apache Kafka jars (Maven Central, cached in ~/.cache/wasmkafka, about 55 MB, once)
#   - Python venvs with confluent-kafka (the interop tests) and componentize-py (Python
#     plugins) from PyPI (~/.cache/wasmkafka, once)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

missing() {
  echo "setup: $1 not found; $2" >&2
  exit 1
}
command -v cargo >/dev/null || missing cargo "install Rust with rustup (https://rustup.rs)"
command -v rustup >/dev/null || missing rustup "install Rust with rustup (https://rustup.rs)"
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
command -v "$JAVA" >/dev/null || missing java "install Java 17 (Debian: apt install openjdk-17-jre-headless)"
command -v mvn >/dev/null || missing mvn "install Maven (Debian: apt install maven)"
command -v python3 >/dev/null || missing python3 "install Python 3 with venv (Debian: apt install python3-venv)"

java_major=$("$JAVA" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1)
if [ "${java_major:-0}" -lt 17 ]; then
  echo "setup: Apache Kafka 4.x needs Java 17 or newer; $JAVA is version ${java_major:-unknown}" >&2
  exit 1
fi

if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  echo "setup: rustup target wasm32-wasip2 is installed"
else
  echo "setup: adding rustup target wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

if rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  echo "setup: rustup target x86_64-unknown-linux-musl is installed"
else
  echo "setup: adding rustup target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl ||
    echo "setup: could not add x86_64-unknown-linux-musl: no musl build, the musl tests will say SKIPPED" >&2
fi
if command -v musl-gcc >/dev/null; then
  echo "setup: musl-gcc is installed"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing musl-tools (musl-gcc) with apt-get"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends musl-tools >/dev/null; } ||
    echo "setup: apt-get could not install musl-tools: no musl build, the musl tests will say SKIPPED" >&2
else
  echo "setup: musl-gcc not found (Debian: apt install musl-tools): no musl build, the musl tests will say SKIPPED" >&2
fi

if command -v chromium >/dev/null; then
  echo "setup: chromium is installed"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "setup: installing chromium (the HTML report tests' headless browser) with apt-get"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } ||
    echo "setup: apt-get could not install chromium: the HTML report tests will fail" >&2
else
  echo "setup: chromium not found (Debian: apt install chromium): the HTML report tests will fail" >&2
fi

echo "setup: Apache Kafka jars, Python venvs with confluent-kafka and componentize-py"
cargo run --locked --quiet --profile "${SETUP_PROFILE:-dev}" -p wasmkafka-tests --bin kafka-local -- fetch
