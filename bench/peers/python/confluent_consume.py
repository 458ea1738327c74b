"""The confluent-kafka (librdkafka) peer of the benchmark: reads COUNT records from offset 0 of
partitions 0..PARTITIONS of TOPIC, writes each value and a newline to stdout, prints
"consumed N" to stderr. Usage: confluent_consume.py BROKERS TOPIC PARTITIONS COUNT"""
import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

brokers, topic, partitions, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
consumer = Consumer(
    {"bootstrap.servers": brokers, "group.id": "bench-unused", "enable.auto.commit": False}
)
consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
out = sys.stdout.buffer
n = 0
while n < count:
    for message in consumer.consume(num_messages=10000, timeout=1.0):
        if message.error():
            raise SystemExit(str(message.error()))
        value = message.value()
        if value is not None:
            out.write(value)
        out.write(b"\n")
        n += 1
out.flush()
consumer.close()
print(f"consumed {n}", file=sys.stderr)
