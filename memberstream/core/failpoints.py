"""Named points in the batch path where a test can have the worker kill itself.

``MEMBERSTREAM_FAILPOINTS="outputs_sent:3,state_written:1"`` makes the worker
SIGKILL itself the 3rd time a batch has sent its outputs (before the broker
acknowledged them), or the 1st time it has written state (before the batch's
offsets are committed). The crash tests use it to stop a real worker at exact
points of the at-least-once protocol; unset (production), :func:`reached` is a
no-op. The points, in the order a batch passes them:

``batch_start``   a batch arrived, nothing done yet
``outputs_sent``  outputs handed to the producer, not yet acknowledged
``drained``       outputs acknowledged, state not yet written
``state_written`` state written to the table, offsets not yet committed

And in the sample collector's flush:

``shard_written``   a shard file renamed into place, the flush's commit record not yet
``flush_recorded``  the commit record written, the Kafka offsets not yet committed

And in a replay's batch (``memberstream replay --into``):

``replay_outputs``    outputs acknowledged, state and progress not yet committed
``replay_committed``  state and progress committed, the group's offsets not yet
"""

from __future__ import annotations

import os
import signal

ENV = "MEMBERSTREAM_FAILPOINTS"
POINTS = (
    "batch_start",
    "outputs_sent",
    "drained",
    "state_written",
    "shard_written",
    "flush_recorded",
    "replay_outputs",
    "replay_committed",
)


def _parse(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown point {name!r}; points: {', '.join(POINTS)}")
        armed[name] = int(count or "1")
    return armed


_armed = _parse(os.environ.get(ENV, ""))


def reached(point: str) -> None:
    """Count a pass through ``point``; SIGKILL this process on the armed pass."""
    if not _armed or point not in _armed:
        return
    _armed[point] -= 1
    if _armed[point] == 0:
        os.kill(os.getpid(), signal.SIGKILL)
