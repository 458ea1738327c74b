"""Writes interleaved transactions with librdkafka (confluent-kafka), for a Rust test.

Usage: txn_produce.py BOOTSTRAP TOPIC ROUNDS

Two transactional producers (a and b) and one plain producer write to partitions 0 and 1 of
TOPIC. In every round both transactions are open at once and their records alternate in the
log with each other and with plain records (every record is flushed before the next); then a
ends its transaction and b ends its own, by the table below (round r uses row r % 4):

    a: commit  abort   abort  commit
    b: abort   commit  abort  commit

Reports on stdout, one JSON object a line:
  {"event": "record", "partition": P, "offset": O, "value": "...",
   "kind": "committed" | "aborted" | "plain"}     (once its transaction has ended)
  {"event": "done", "librdkafka": "2.x.y"}
"""

import json
import sys

from confluent_kafka import Producer, libversion

OUTCOMES = [("commit", "abort"), ("abort", "commit"), ("abort", "abort"), ("commit", "commit")]


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


class Writer:
    """A producer that remembers where each of its records landed."""

    def __init__(self, bootstrap, transactional_id=None):
        config = {"bootstrap.servers": bootstrap, "linger.ms": 0}
        if transactional_id:
            config["transactional.id"] = transactional_id
        self.producer = Producer(config)
        self.delivered = []

    def write(self, topic, partition, value):
        def delivered(error, message):
            if error is not None:
                raise RuntimeError(f"delivery of {value} failed: {error}")
            self.delivered.append((message.partition(), message.offset(), value))

        self.producer.produce(topic, value=value.encode(), partition=partition, on_delivery=delivered)
        remaining = self.producer.flush(30)
        if remaining:
            raise RuntimeError(f"{value} was not delivered within 30 s")

    def take(self):
        taken, self.delivered = self.delivered, []
        return taken


def main():
    bootstrap, topic, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    a = Writer(bootstrap, f"{topic}-a")
    b = Writer(bootstrap, f"{topic}-b")
    plain = Writer(bootstrap)
    a.producer.init_transactions(30)
    b.producer.init_transactions(30)
    for r in range(rounds):
        a.producer.begin_transaction()
        b.producer.begin_transaction()
        for i in range(3):
            for p in (0, 1):
                a.write(topic, p, f"r{r}-a-{p}-{i}")
                b.write(topic, p, f"r{r}-b-{p}-{i}")
                if i == 1:
                    plain.write(topic, p, f"r{r}-plain-{p}")
        for writer, outcome in zip((a, b), OUTCOMES[r % len(OUTCOMES)]):
            if outcome == "commit":
                writer.producer.commit_transaction(30)
                kind = "committed"
            else:
                writer.producer.abort_transaction(30)
                kind = "aborted"
            for partition, offset, value in writer.take():
                emit(event="record", partition=partition, offset=offset, value=value, kind=kind)
        for partition, offset, value in plain.take():
            emit(event="record", partition=partition, offset=offset, value=value, kind="plain")
    emit(event="done", librdkafka=libversion()[0])


if __name__ == "__main__":
    main()
