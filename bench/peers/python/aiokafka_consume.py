"""The aiokafka peer of the benchmark: reads COUNT records from offset 0 of partitions
0..PARTITIONS of TOPIC, writes each value and a newline to stdout, prints "consumed N" to
stderr. Usage: aiokafka_consume.py BROKERS TOPIC PARTITIONS COUNT"""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, TopicPartition


async def main():
    brokers, topic = sys.argv[1], sys.argv[2]
    partitions, count = int(sys.argv[3]), int(sys.argv[4])
    consumer = AIOKafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False)
    await consumer.start()
    assigned = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(assigned)
    await consumer.seek_to_beginning(*assigned)
    out = sys.stdout.buffer
    n = 0
    try:
        while n < count:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for messages in batches.values():
                for message in messages:
                    if message.value is not None:
                        out.write(message.value)
                    out.write(b"\n")
                    n += 1
        out.flush()
    finally:
        await consumer.stop()
    print(f"consumed {n}", file=sys.stderr)


asyncio.run(main())
