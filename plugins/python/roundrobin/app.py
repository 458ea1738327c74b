# world: assignor-plugin
"""The round-robin assignor in Python: the same algorithm as the host's built-in
`roundrobin` (wasmkafka-policy): every partition, sorted by topic then partition, dealt to
the members in turn (static members by instance id, the others by member id), skipping a
member that does not subscribe to the partition's topic. The tests hold it against the
native one on random groups."""

from typing import List, Tuple

from wit_world import exports
from wit_world.imports import types


class Assignor(exports.Assignor):
    def name(self) -> str:
        return "py-roundrobin"

    def protocol(self) -> types.RebalanceProtocol:
        return types.RebalanceProtocol.EAGER

    def user_data(self, topics: List[str], state: bytes, settings: List[Tuple[str, str]]) -> bytes:
        return b""

    def assign(self, group: types.Group) -> List[types.MemberAssignment]:
        members = sorted(
            group.members,
            key=lambda m: (m.instance_id if m.instance_id is not None else m.member_id, m.member_id),
        )
        shares = {m.member_id: {} for m in members}
        partitions = sorted(
            (topic.topic, p.partition) for topic in group.topics for p in topic.partitions
        )
        turn = 0
        for topic, partition in partitions:
            for step in range(len(members)):
                member = members[(turn + step) % len(members)]
                if topic in member.topics:
                    shares[member.member_id].setdefault(topic, []).append(partition)
                    turn = (turn + step + 1) % len(members)
                    break
        return [
            types.MemberAssignment(
                member_id=member_id,
                partitions=[
                    types.TopicPartitions(topic=topic, partitions=ps)
                    for topic, ps in sorted(share.items())
                ],
                user_data=b"",
            )
            for member_id, share in shares.items()
        ]

    def on_assignment(self, assignment: types.MemberAssignment, generation: int) -> bytes:
        return b""
