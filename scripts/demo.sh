#!/usr/bin/env bash
# The main job, end to end: set up what is missing, start a local Tansu broker, create a topic,
# produce sample records, and consume them with wasmkafka: first every partition, then as a
# consumer group of two members that split the topic with a Wasm assignor plugin and start
# where a Wasm reset-policy plugin says. Stops the broker on exit.
#   COUNT=1000 PARTITIONS=4 TOPIC=demo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

COUNT="${COUNT:-1000}"
PARTITIONS="${PARTITIONS:-4}"
TOPIC="${TOPIC:-demo}"

scripts/setup.sh
cargo build --release --locked -p wasmkafka
cargo build --release --locked --target wasm32-wasip2 -p assignor-weighted -p reset-rewind
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
WASMKAFKA="$TARGET/release/wasmkafka"
PLUGINS="$TARGET/wasm32-wasip2/release"
TANSU="${TANSU_BIN:-$(command -v tansu)}"

WORK="$(mktemp -d -t wasmkafka-demo-XXXXXX)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BROKER="127.0.0.1:$PORT"
cleanup() {
  [ -n "${TANSU_PID:-}" ] && kill "$TANSU_PID" 2>/dev/null && wait "$TANSU_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== starting tansu on $BROKER (data in $WORK)"
(cd "$WORK" && exec "$TANSU" broker --listener-url "tcp://$BROKER" \
  --advertised-listener-url "tcp://$BROKER" --storage-engine sqlite://tansu.db \
  >"$WORK/tansu.log" 2>&1) &
TANSU_PID=$!
for _ in $(seq 1 100); do
  "$WASMKAFKA" metadata --brokers "$BROKER" >/dev/null 2>&1 && break
  sleep 0.2
done

echo "== creating topic $TOPIC with $PARTITIONS partitions"
(cd "$WORK" && "$TANSU" topic create --broker "tcp://$BROKER" --partitions "$PARTITIONS" "$TOPIC")

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

