"""The confluent-kafka (librdkafka) peer of the benchmark: reads COUNT records from offset 0 of
partitions 0..PARTITIONS of TOPIC, writes each value and a newline to stdout, prints
"consumed N" to stderr. Usage: confluent_consume.py BROKERS TOPIC PARTITIONS COUNT
With BENCH_FLUSH_EACH_POLL=1 in the environment it flushes after every poll (the latency
benchmark reads the records as they come). With BENCH_GROUP=G it joins consumer group G and
subscribes to TOPIC (from the earliest offset, committing nothing) instead of assigning. With
BENCH_LOW_LATENCY=1 it uses librdkafka's documented low-latency consumer settings
(fetch.wait.max.ms=10, fetch.error.backoff.ms=10)."""
import os
import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

brokers, topic, partitions, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
group = os.environ.get("BENCH_GROUP")
config = {
    "bootstrap.servers": brokers,
    "group.id": group or "bench-unused",
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
}
if os.environ.get("BENCH_LOW_LATENCY") == "1":
    config.update({"fetch.wait.max.ms": 10, "fetch.error.backoff.ms": 10})
consumer = Consumer(config)
if group:
    consumer.subscribe([topic])
else:
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
out = sys.stdout.buffer
flush_each_poll = os.environ.get("BENCH_FLUSH_EACH_POLL") == "1"
n = 0

def next_batch():
    """Up to 10,000 records. For throughput: waits for the batch to fill (or 1 s). Flushing each
    poll: waits for one record, then takes what is already there."""
    if not flush_each_poll:
        return consumer.consume(num_messages=10000, timeout=1.0)
    first = consumer.poll(1.0)
    if first is None:
        return []
    return [first] + consumer.consume(num_messages=9999, timeout=0)


while n < count:
    for message in next_batch():
        if message.error():
            raise SystemExit(str(message.error()))
        value = message.value()
        if value is not None:
            out.write(value)
        out.write(b"\n")
        n += 1
    if flush_each_poll:
        out.flush()
out.flush()
consumer.close()
print(f"consumed {n}", file=sys.stderr)
