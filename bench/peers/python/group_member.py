"""The librdkafka peer of `wasmkafka-bench group-scale`: one member of consumer group GROUP
(confluent-kafka), subscribed to TOPIC from its end (auto.offset.reset=latest), everything else
the client's defaults. Usage: group_member.py BROKERS TOPIC GROUP PROTOCOL, where PROTOCOL is
"eager" (the classic protocol, partition.assignment.strategy=range), "cooperative"
(cooperative-sticky) or "consumer" (group.protocol=consumer, KIP-848).
Writes each record's value and a newline to stdout (the harness reads the partition from the
value), flushed after each poll. On SIGTERM it closes the consumer (committing and leaving the
group) and exits. BENCH_RDKAFKA_DEBUG in the environment sets librdkafka's `debug` (to stderr)."""
import os
import signal
import sys

from confluent_kafka import Consumer

brokers, topic, group, protocol = sys.argv[1:5]
config = {
    "bootstrap.servers": brokers,
    "group.id": group,
    "auto.offset.reset": "latest",
}
if protocol == "consumer":
    config["group.protocol"] = "consumer"
elif protocol == "eager":
    config["partition.assignment.strategy"] = "range"
elif protocol == "cooperative":
    config["partition.assignment.strategy"] = "cooperative-sticky"
else:
    raise SystemExit(f"PROTOCOL is eager, cooperative or consumer, not {protocol}")
if os.environ.get("BENCH_RDKAFKA_DEBUG"):
    config["debug"] = os.environ["BENCH_RDKAFKA_DEBUG"]

stopping = False


def stop(_signum, _frame):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
consumer = Consumer(config)
consumer.subscribe([topic])
out = sys.stdout.buffer
while not stopping:
    # A short poll: the signal handler runs between polls.
    first = consumer.poll(0.1)
    if first is None:
        continue
    for message in [first] + consumer.consume(num_messages=9999, timeout=0):
        if message.error():
            print(f"error: {message.error()}", file=sys.stderr)
            continue
        value = message.value()
        if value is not None:
            out.write(value)
        out.write(b"\n")
    out.flush()
consumer.close()
print("closed", file=sys.stderr)
