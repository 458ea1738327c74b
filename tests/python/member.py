"""A librdkafka (confluent-kafka) consumer group member, driven by a Rust test.

Usage: member.py BOOTSTRAP GROUP TOPIC STRATEGY [PROTOCOL]

Subscribes to TOPIC in GROUP, commits synchronously after every batch it reads, and reports
on stdout, one JSON object a line (below). PROTOCOL is group.protocol: "classic" (the
default) sets partition.assignment.strategy=STRATEGY and the session and heartbeat timings;
"consumer" (KIP-848, the broker assigns) sets none of them, as librdkafka refuses them with
that protocol, and takes STRATEGY as group.remote.assignor ("" for the broker's default).

  {"event": "started", "librdkafka": "2.x.y"}
  {"event": "joined", "generation": G, "protocol": "range", "leader": true|false}
                                       (from librdkafka's cgrp debug log, once per JoinGroup)
  {"event": "assigned" | "revoked" | "lost", "partitions": [P, ...],
   "owned": [P, ...]}                   (owned: the whole assignment after the change)
  {"event": "records", "records": [[P, OFFSET, "VALUE"], ...]}
  {"event": "committed", "offsets": [[P, OFFSET], ...]}
  {"event": "error", "error": "..."}
  {"event": "closed"}

Reads commands from stdin, one a line: "stop" commits, closes the consumer (leaving the
group) and exits.
"""

import json
import logging
import re
import sys
import threading

from confluent_kafka import Consumer, KafkaError, KafkaException, libversion

_out_lock = threading.Lock()


def emit(**event):
    with _out_lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


# librdkafka's cgrp debug line for a JoinGroup answer, e.g.
# "JoinGroup response: GenerationId 3, Protocol range, LeaderId rdkafka-.. (me), my MemberId .."
JOIN_RESPONSE = re.compile(
    r"JoinGroup response: GenerationId (-?\d+), Protocol (\S+), LeaderId (\S+)( \(me\))?"
)


class JoinWatcher(logging.Handler):
    """Turns librdkafka's JoinGroup debug lines into "joined" events."""

    def emit(self, record):
        message = record.getMessage()
        found = JOIN_RESPONSE.search(message)
        if found and int(found.group(1)) >= 0:  # an error answer has generation -1
            emit(
                event="joined",
                generation=int(found.group(1)),
                protocol=found.group(2).rstrip(","),
                leader=found.group(4) is not None,
            )


def main():
    bootstrap, group, topic, strategy = sys.argv[1:5]
    protocol = sys.argv[5] if len(sys.argv) > 5 else "classic"
    logger = logging.getLogger("librdkafka")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(JoinWatcher())
    logger.propagate = False
    owned = set()

    def on_assign(consumer, partitions):
        owned.update(p.partition for p in partitions)
        emit(event="assigned", partitions=sorted(p.partition for p in partitions), owned=sorted(owned))

    def on_revoke(consumer, partitions):
        owned.difference_update(p.partition for p in partitions)
        emit(event="revoked", partitions=sorted(p.partition for p in partitions), owned=sorted(owned))

    def on_lost(consumer, partitions):
        owned.difference_update(p.partition for p in partitions)
        emit(event="lost", partitions=sorted(p.partition for p in partitions), owned=sorted(owned))

    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": "librdkafka-member",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "debug": "cgrp",
    }
    if protocol == "classic":
        config.update(
            {
                "partition.assignment.strategy": strategy,
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 300,
            }
        )
    else:
        config["group.protocol"] = protocol
        if strategy:
            config["group.remote.assignor"] = strategy
    consumer = Consumer(config, logger=logger)
    emit(event="started", librdkafka=libversion()[0])
    consumer.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)

    stop = threading.Event()

    def read_commands():
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=read_commands, daemon=True).start()

    while not stop.is_set():
        messages = consumer.consume(num_messages=500, timeout=0.1)
        batch = []
        for message in messages:
            if message.error():
                emit(event="error", error=str(message.error()))
                continue
            batch.append([message.partition(), message.offset(), message.value().decode()])
        if batch:
            emit(event="records", records=batch)
            commit(consumer)
    commit(consumer)
    consumer.close()
    emit(event="closed")


def commit(consumer):
    """Commits the positions of what was read so far (synchronously)."""
    try:
        offsets = consumer.commit(asynchronous=False)
    except KafkaException as error:
        if error.args[0].code() != KafkaError._NO_OFFSET:
            emit(event="error", error=str(error))
        return
    emit(
        event="committed",
        offsets=sorted([tp.partition, tp.offset] for tp in offsets if tp.offset >= 0),
    )


if __name__ == "__main__":
    main()
