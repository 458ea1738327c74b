#!/usr/bin/env bash
# Benchmarks: builds the release binaries (wasmkafka, the harness, the rdkafka peer), then runs
# wasmkafka-bench, which starts Apache Kafka, loads each workload once and runs every consumer
# on it in the same run (see BENCHMARKS.md). Arguments go to wasmkafka-bench:
#   scripts/bench.sh [--rounds N] [--workload NAME]... [--peer ID]... [--out FILE.md]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
cargo build --release --locked -p wasmkafka -p wasmkafka-bench -p wasmkafka-bench-rdkafka
exec "${CARGO_TARGET_DIR:-target}/release/wasmkafka-bench" "$@"
