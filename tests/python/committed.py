"""Reads a group's committed offsets with librdkafka (confluent-kafka), for a Rust test.

Usage: committed.py BOOTSTRAP GROUP TOPIC PARTITIONS

Prints one JSON object: {"committed": [[P, OFFSET], ...]} with OFFSET -1001 (librdkafka's
OFFSET_INVALID) where nothing is committed. Does not join the group.
"""

import json
import sys

from confluent_kafka import Consumer, TopicPartition


def main():
    bootstrap, group, topic, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    consumer.close()
    print(json.dumps({"committed": sorted([tp.partition, tp.offset] for tp in committed)}))


if __name__ == "__main__":
    main()
