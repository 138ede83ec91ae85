"""What the batchers need from the stream they process, small enough that the core
stays free of Faust.

A batch is a sequence of :class:`Delivered` items, each carrying the Kafka
:class:`Record` it came from (a Faust event and its message fit as they are).
State lives in a :class:`StateStore` of bytes keyed by record key; a read or write
names the delivered item whose partition owns the key (the Faust adapter,
:class:`memberstream.streams.faust_batches.TableStore`, makes it the current event
so the changelog partition is right). Outputs go to an :class:`OutputPort`
(:class:`memberstream.streams.outputs.OutputSink`, or a test double).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Generic, Protocol, TypeVar

from memberstream.core.roles import Emit
from memberstream.schemas.codec import DecodeFailure


class Record(Protocol):
    """A Kafka record: where it was read and its raw bytes."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def value(self) -> bytes | None: ...


class Delivered(Protocol):
    """One item of a batch: the record it carries."""

    @property
    def message(self) -> Record: ...


class StateStore(Protocol):
    """Per-key state as bytes; ``event`` is the delivered item whose partition owns the key."""

    def get(self, key: bytes | None, event: Delivered) -> bytes | None: ...

    def put(self, key: bytes | None, value: bytes, event: Delivered) -> None: ...


class OutputPort(Protocol):
    """Where a batch's outputs and dead letters go; :meth:`drain` returns once the broker
    has acknowledged everything sent."""

    async def emit(self, emit: Emit) -> None: ...

    async def dead_letter(self, message: Record, failure: DecodeFailure) -> None: ...

    async def drain(self) -> None: ...


S = TypeVar("S")


@dataclass
class Touched(Generic[S]):
    """A key's state loaded in this batch: written back once, at the end, if it changed,
    in the context of ``event`` (the last of the key's events, whose partition owns it)."""

    state: S
    event: Delivered
    changed: bool


@dataclass
class BatchStats:
    """What one batch did (either batcher), and running totals of many (:meth:`add`).

    The member batcher counts ``records`` and the member fields; the product batcher
    counts ``product_records`` and the product fields; both count dead letters,
    duplicates and flags.
    """

    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    tier_changes: int = 0
    interest_changes: int = 0
    flags: int = 0
    flags_suppressed: int = 0
    feedback: int = 0
    texts: int = 0
    product_records: int = 0
    reviews: int = 0
    summaries: int = 0

    def add(self, other: BatchStats) -> None:
        for f in fields(BatchStats):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
