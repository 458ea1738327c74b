# world: assignor-plugin
"""A Python assignor that misbehaves as its group's `mode` setting says, for the host's
hostile suite (what the Rust hostile plugins do, from a Python guest):
  loop      spins forever (the deadline ends it)
  sleep     time.sleep(60) (a blocking clock wait; the deadline ends it)
  memory    allocates 256 MiB (the memory cap ends it)
  raise     raises an exception (a trap)
  file      reads /etc/hostname (no directory is preopened: the read must fail)
  socket    connects to 127.0.0.1:<port setting> (sockets are refused: must fail)
  twice     assigns every partition to every member (validation refuses it)
Anything else: every partition to the first member."""

import socket
import time
from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import types


def share(group: types.Group, member_id: str) -> types.MemberAssignment:
    return types.MemberAssignment(
        member_id=member_id,
        partitions=[
            types.TopicPartitions(topic=t.topic, partitions=[p.partition for p in t.partitions])
            for t in group.topics
        ],
        user_data=b"",
    )


class Assignor(exports.Assignor):
    def name(self) -> str:
        return "py-hostile"

    def protocol(self) -> types.RebalanceProtocol:
        return types.RebalanceProtocol.EAGER

    def user_data(self, topics: List[str], state: bytes, settings: List[Tuple[str, str]]) -> bytes:
        return b""

    def assign(self, group: types.Group) -> List[types.MemberAssignment]:
        settings = dict(group.settings)
        mode = settings.get("mode", "")
        if mode == "loop":
            while True:
                pass
        if mode == "sleep":
            time.sleep(60)
        if mode == "memory":
            hog = bytearray(256 * 1024 * 1024)
            hog[-1] = 1
        if mode == "raise":
            raise RuntimeError("this assignor gives up")
        if mode == "file":
            try:
                with open("/etc/hostname") as file:
                    raise Err(f"read {len(file.read())} bytes of /etc/hostname")
            except OSError as error:
                raise Err(f"could not read /etc/hostname: {error}")
        if mode == "socket":
            try:
                socket.create_connection(("127.0.0.1", int(settings["port"])), timeout=1)
                raise Err("connected")
            except Err:
                raise
            except Exception as error:  # OSError, or the socket module refusing outright
                raise Err(f"could not connect: {type(error).__name__}: {error}")
        members = sorted(m.member_id for m in group.members)
        if mode == "twice":
            return [share(group, m) for m in members]
        return [share(group, members[0])] + [
            types.MemberAssignment(member_id=m, partitions=[], user_data=b"") for m in members[1:]
        ]

    def on_assignment(self, assignment: types.MemberAssignment, generation: int) -> bytes:
        return b""
