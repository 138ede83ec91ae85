"""Kafka positions a key's state has already applied: redelivery detection at any scale.

A member's (or product's) state records, for each input partition it reads, the
offset of the last record it applied. A record at or below that offset is a
redelivery (a restart before the commit, a rebalance, the commit watchdog's
re-read): it is skipped, however far back the redelivery reaches and however
many events the key had in between. Event-id de-duplication stays for the other
kind of duplicate (the same event produced twice, at two offsets), within the
key's last ``dedupe_ids_per_member`` events.

Skipping is safe because the worker makes a batch's outputs durable (broker
acknowledged) before it writes any state: state that says "applied" implies the
outputs exist. One entry per partition the key was read from: bounded by the
number of input partitions, not by activity.
"""

from __future__ import annotations

from typing import NamedTuple


class Position(NamedTuple):
    """Where a record sits in Kafka."""

    topic: str
    partition: int
    offset: int

    @property
    def slot(self) -> str:
        return f"{self.topic}:{self.partition}"

    def to_list(self) -> list[str | int]:
        return [self.topic, self.partition, self.offset]

    @classmethod
    def from_list(cls, raw: object) -> Position | None:
        """A position carried in a record (``[topic, partition, offset]``); None if absent
        or malformed."""
        if not isinstance(raw, list) or len(raw) != 3:
            return None
        topic, partition, offset = raw
        if not isinstance(topic, str) or not isinstance(partition, int):
            return None
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            return None
        return cls(topic, partition, offset)


class AppliedOffsets:
    """The highest applied offset per input partition (``"topic:partition"`` → offset)."""

    __slots__ = ("offsets",)

    def __init__(self, offsets: dict[str, int] | None = None) -> None:
        self.offsets = {} if offsets is None else offsets

    def covers(self, at: Position | None) -> bool:
        """True when the record at ``at`` was applied already."""
        if at is None:
            return False
        done = self.offsets.get(at.slot)
        return done is not None and at.offset <= done

    def mark(self, at: Position | None) -> None:
        if at is not None:
            slot = at.slot
            if at.offset > self.offsets.get(slot, -1):
                self.offsets[slot] = at.offset

    def to_dict(self) -> dict[str, int]:
        return self.offsets
