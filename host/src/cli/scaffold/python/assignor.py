"""`@NAME@`: a wasmkafka assignor plugin in Python. The leader of a consumer group runs
`assign` over every member and every partition of the subscribed topics; the host checks the
answer and falls back to a built-in when it is invalid. Built into a WebAssembly component
with componentize-py (see README.md)."""

from typing import List, Tuple

from wit_world import exports
from wit_world.imports import types
from wit_world.imports.log import Level, log


class Assignor(exports.Assignor):
    def name(self) -> str:
        return "@NAME@"

    def protocol(self) -> types.RebalanceProtocol:
        # EAGER: every member gives everything up at each rebalance. COOPERATIVE promises
        # never to move a partition straight from one owner to another.
        return types.RebalanceProtocol.EAGER

    def user_data(self, topics: List[str], state: bytes, settings: List[Tuple[str, str]]) -> bytes:
        # What this member tells the leader (the leader sees it as `member.user_data`).
        return b""

    def assign(self, group: types.Group) -> List[types.MemberAssignment]:
        # Round robin: each topic's partitions in order, dealt to the members that subscribe
        # to it, in member-id order.
        members = sorted(m.member_id for m in group.members)
        shares = {member: {} for member in members}
        for topic in sorted(group.topics, key=lambda t: t.topic):
            subscribers = [m.member_id for m in group.members if topic.topic in m.topics]
            subscribers.sort()
            for index, partition in enumerate(sorted(p.partition for p in topic.partitions)):
                owner = subscribers[index % len(subscribers)] if subscribers else None
                if owner is not None:
                    shares[owner].setdefault(topic.topic, []).append(partition)
        # A line in the consumer's log under this plugin's name (`plugin check` and
        # `plugin test` print it; `WASMKAFKA_LOG=debug` shows it in `run`).
        log(Level.DEBUG, "assigning", [("members", str(len(members)))])
        return [
            types.MemberAssignment(
                member_id=member,
                partitions=[
                    types.TopicPartitions(topic=topic, partitions=partitions)
                    for topic, partitions in sorted(share.items())
                ],
                user_data=b"",
            )
            for member, share in shares.items()
        ]

    def on_assignment(self, assignment: types.MemberAssignment, generation: int) -> bytes:
        # The state handed to this member's next `user_data` call.
        return b""
