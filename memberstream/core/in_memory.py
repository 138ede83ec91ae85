"""Records and a state store in memory: the batchers driven without Kafka or Faust
(the core benchmark, tests, and in-process runs), through the protocols of
:mod:`memberstream.core.batching`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MemoryRecord:
    """A Kafka record as the batchers read it (:class:`~memberstream.core.batching.Record`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float = 0.0
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class MemoryItem:
    """A batch item carrying its record (:class:`~memberstream.core.batching.Delivered`)."""

    message: MemoryRecord


class DictStore(dict[bytes | None, bytes]):
    """A :class:`~memberstream.core.batching.StateStore` over a dict (one partition space)."""

    def get(self, key: bytes | None, event: object = None) -> bytes | None:  # type: ignore[override]
        return super().get(key)

    def put(self, key: bytes | None, value: bytes, event: object) -> None:
        self[key] = value
