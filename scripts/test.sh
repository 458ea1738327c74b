#!/usr/bin/env bash
# Sets up what is missing, then runs every check and test: formatting, clippy (host and tests;
# plugins for wasm32-wasip2), unit tests, and the integration tests against Apache Kafka (single
# node and three-node cluster), librdkafka and the scripted fault broker. The Tansu
# compatibility tests run only where TANSU_BIN or an installed `tansu` is found.
# Everything runs on the default Apache Kafka version; the group and fetch suites run again on
# the newest one the harness knows (tests/src/kafka/versions.rs, `kafka-local versions`).
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
echo "== docs without warnings (host, plugin SDK); the SDK publishable (cargo package builds it alone)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps -p wasmkafka -p wasmkafka-plugin-sdk -p wasmkafka-policy
cargo package --locked --allow-dirty -p wasmkafka-policy -p wasmkafka-plugin-sdk
echo "== plugins (wasm32-wasip2)"
scripts/build-plugins.sh
# The harness picks the broker from WASMKAFKA_KAFKA_VERSION: the first pass runs the default.
unset WASMKAFKA_KAFKA_VERSION
kafka_local=(cargo run --locked --quiet --profile "${SETUP_PROFILE:-dev}" -p wasmkafka-tests
  --bin kafka-local --)
default_version=$("${kafka_local[@]}" version)
known_versions=$("${kafka_local[@]}" versions)
newest_version=${known_versions##*$'\n'}
[ -n "$newest_version" ] || { echo "kafka-local versions printed nothing" >&2; exit 1; }
echo "== cargo test (Apache Kafka $default_version)"
cargo test --locked
echo "== group, fetch and OAuth suites again (Apache Kafka $newest_version)"
if [ "$newest_version" = "$default_version" ]; then
  echo "the newest known version is the default: done above"
else
  WASMKAFKA_KAFKA_VERSION=$newest_version cargo test --locked -p wasmkafka-tests \
    --test real_broker_group --test real_broker_consumer_protocol --test real_broker_fetch \
    --test kafka_offset_recovery --test kafka_follow --test kafka_interop --test kafka_interop_kip848 \
    --test kafka_rack_fetch --test real_broker_lab
  WASMKAFKA_KAFKA_VERSION=$newest_version cargo test --locked -p wasmkafka \
    --test cli_delivery --test cli_group_edges --test cli_authorization --test cli_oauth
fi
