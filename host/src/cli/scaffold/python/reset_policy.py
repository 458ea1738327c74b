"""`@NAME@`: a wasmkafka reset-policy plugin in Python. The consumer asks it where a
partition starts when it has no committed offset, or when its offset is out of range
(deleted or compacted data) or past a truncated log; the host checks the answer against the
log. Built into a WebAssembly component with componentize-py (see README.md)."""

from typing import List

from wit_world import exports
from wit_world.imports import types


class ResetPolicy(exports.ResetPolicy):
    def name(self) -> str:
        return "@NAME@"

    def decide(self, context: types.ResetContext) -> types.ResetDecision:
        if isinstance(context.reason, types.ResetReason_NoCommittedOffset):
            # Nothing committed yet: only what arrives from now on.
            return types.ResetDecision_Latest()
        # Data gone (or a log truncated under us): the oldest record still there.
        return types.ResetDecision_Earliest()

    def decide_all(self, contexts: List[types.ResetContext]) -> List[types.ResetDecision]:
        return [self.decide(context) for context in contexts]
