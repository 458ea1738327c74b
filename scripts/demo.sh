#!/usr/bin/env bash
# The main job, end to end: set up what is missing, start a local Tansu broker, create a topic,
# produce sample records, and consume them with wasmkafka. Stops the broker on exit.
#   COUNT=1000 PARTITIONS=4 TOPIC=demo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

COUNT="${COUNT:-1000}"
PARTITIONS="${PARTITIONS:-4}"
TOPIC="${TOPIC:-demo}"

scripts/setup.sh
cargo build --release --locked -p wasmkafka
WASMKAFKA="$PWD/target/release/wasmkafka"
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

OUT="$PWD/target/demo-records.jsonl"
echo "== consuming $COUNT records (first 5 shown; all of them in $OUT)"
"$WASMKAFKA" run --brokers "$BROKER" --topic "$TOPIC" --from earliest \
  --max-records "$COUNT" --format json >"$OUT"
head -n 5 "$OUT"
echo "== consumed $(wc -l <"$OUT") records"
