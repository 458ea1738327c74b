"""Writes one partition per codec with librdkafka (confluent-kafka), for a Rust test.

Usage: codec_produce.py BOOTSTRAP TOPIC COUNT

Partition 0 gets gzip batches, 1 snappy, 2 lz4, 3 zstd: COUNT records each, with key
"k<P>-<N>", value "<codec>-<N>-" followed by N % 100 times "x", and a header "n" = N.
Records linger so that batches hold many of them.

Reports on stdout: {"event": "done", "librdkafka": "2.x.y"}
"""

import json
import sys

from confluent_kafka import Producer, libversion

CODECS = ["gzip", "snappy", "lz4", "zstd"]


def main():
    bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for partition, codec in enumerate(CODECS):
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": codec,
                "linger.ms": 50,
                "batch.num.messages": 1000,
            }
        )
        for n in range(count):
            producer.produce(
                topic,
                key=f"k{partition}-{n}".encode(),
                value=(f"{codec}-{n}-" + "x" * (n % 100)).encode(),
                headers=[("n", str(n).encode())],
                partition=partition,
            )
            producer.poll(0)
        if producer.flush(60):
            raise RuntimeError(f"{codec}: records not delivered within 60 s")
    sys.stdout.write(json.dumps({"event": "done", "librdkafka": libversion()[0]}) + "\n")


if __name__ == "__main__":
    main()
