#!/usr/bin/env bash
# The main job, end to end: set up what is missing, start a local Apache Kafka broker (jars
# fetched once from Maven Central), create a topic, produce sample records, and consume them
# with wasmkafka: first every partition, then as a consumer group of two members that split the
# topic with a Wasm assignor plugin and start where a Wasm reset-policy plugin says. Stops the
# broker on exit.
#   COUNT=1000 PARTITIONS=4 TOPIC=demo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

COUNT="${COUNT:-1000}"
PARTITIONS="${PARTITIONS:-4}"
TOPIC="${TOPIC:-demo}"

SETUP_PROFILE=release scripts/setup.sh
cargo build --release --locked -p wasmkafka -p wasmkafka-tests --bin wasmkafka --bin kafka-local
scripts/build-plugins.sh
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
WASMKAFKA="$TARGET/release/wasmkafka"
KAFKA_LOCAL="$TARGET/release/kafka-local"
PLUGINS="$TARGET/wasm32-wasip2/release"

WORK="$(mktemp -d -t wasmkafka-demo-XXXXXX)"
cleanup() {
  if [ -n "${KAFKA_PID:-}" ]; then
    kill "$KAFKA_PID" 2>/dev/null || true
    wait "$KAFKA_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== starting Apache Kafka (one KRaft node on a free loopback port; log in $WORK/kafka.log)"
# Kafka's default initial rebalance delay (3 s): the two group members below join one
# generation instead of the first taking every partition alone.
"$KAFKA_LOCAL" run --ready-file "$WORK/brokers" --set group.initial.rebalance.delay.ms=3000 \
  >"$WORK/kafka.log" 2>&1 &
KAFKA_PID=$!
for _ in $(seq 1 600); do
  [ -s "$WORK/brokers" ] && break
  kill -0 "$KAFKA_PID" 2>/dev/null || { cat "$WORK/kafka.log" >&2; exit 1; }
  sleep 0.2
done
[ -s "$WORK/brokers" ] || { echo "Kafka did not start within 120 s" >&2; cat "$WORK/kafka.log" >&2; exit 1; }
BROKER="$(cat "$WORK/brokers")"
echo "   Kafka is up at $BROKER"

echo "== creating topic $TOPIC with $PARTITIONS partitions"
"$KAFKA_LOCAL" create-topic "$BROKER" "$TOPIC" "$PARTITIONS"

echo "== producing $COUNT sample records"
"$WASMKAFKA" produce --brokers "$BROKER" --topic "$TOPIC" --count "$COUNT" --distinct-keys 10

echo "== cluster metadata"
"$WASMKAFKA" metadata --brokers "$BROKER"

OUT="$TARGET/demo-records.jsonl"
echo "== consuming $COUNT records (first 5 shown; all of them in $OUT)"
"$WASMKAFKA" run --brokers "$BROKER" --topic "$TOPIC" --from earliest \
  --max-records "$COUNT" --format json >"$OUT"
head -n 5 "$OUT"
echo "== consumed $(wc -l <"$OUT") records"

echo "== checking the plugins"
"$WASMKAFKA" plugin check "$PLUGINS/assignor_weighted.wasm" | grep -E "^(kind|name|smoke)"
"$WASMKAFKA" plugin check "$PLUGINS/reset_rewind.wasm" | grep -E "^(kind|name|smoke)"

# Two group members: one announces weight 3, the other weight 1 (the weighted assignor plugin
# gives the first three times the partitions); with no committed offsets, the rewind plugin
# starts each partition 50 records before its end.
for member in heavy light; do
  weight=1; [ "$member" = heavy ] && weight=3
  cat >"$WORK/$member.toml" <<TOML
brokers = ["$BROKER"]
[consumer]
topics = ["$TOPIC"]
group = "demo-group"
heartbeat_interval_ms = 500
[plugins]
[[plugins.assignors]]
path = "$PLUGINS/assignor_weighted.wasm"
settings = { weight = "$weight" }
[plugins.reset_policy]
path = "$PLUGINS/reset_rewind.wasm"
settings = { records = "50" }
TOML
done
EXPECTED=$((PARTITIONS * 50))
echo "== a consumer group of two members (weights 3 and 1) reading the last 50 records of each partition"
"$WASMKAFKA" run --config "$WORK/heavy.toml" --max-records $((EXPECTED * 3 / 4)) >"$WORK/heavy.jsonl" 2>"$WORK/heavy.log" &
HEAVY=$!
sleep 1
"$WASMKAFKA" run --config "$WORK/light.toml" --max-records $((EXPECTED / 4)) >"$WORK/light.jsonl" 2>"$WORK/light.log" &
LIGHT=$!
wait "$HEAVY" "$LIGHT"
for member in heavy light; do
  partitions=$(python3 -c 'import json,sys; print(sorted({json.loads(l)["partition"] for l in open(sys.argv[1])}))' "$WORK/$member.jsonl")
  echo "   $member: $(wc -l <"$WORK/$member.jsonl") records from partitions $partitions"
done

