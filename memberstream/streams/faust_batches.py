"""Faust's side of the batchers (:mod:`memberstream.core.ingest`,
:mod:`memberstream.core.product_ingest`): a table as their state store, the current
event a table write needs, and acks held until a batch completes."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from faust.streams import _current_event
from faust.types import EventT, TableT


@contextlib.contextmanager
def event_context(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event while writing a table.

    Faust picks the changelog partition (and the RocksDB shard) of a table write
    from the current event. In a ``take_events`` batch that context belongs to
    the background reader, so the agent sets it to the event whose partition
    owns the key.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


@contextlib.contextmanager
def held_acks(events: Sequence[EventT]) -> Iterator[None]:
    """Let Faust ack ``events`` only if the block completes.

    ``Stream.take_events`` acks the whole batch in a ``finally`` when the loop
    asks for the next batch, and also when the loop body raises or is
    cancelled; a commit after that would skip records whose effects were never
    produced. Marking the messages acked up front turns that ``finally`` into a
    no-op; only a completed batch is released for the normal ack.
    """
    for ev in events:
        ev.message.acked = True
    yield
    for ev in events:
        ev.message.acked = False


class TableStore:
    """A Faust table of raw bytes as a batcher's state store
    (:class:`memberstream.core.batching.StateStore`): each read and write runs in the
    context of the event whose partition owns the key."""

    def __init__(self, table: TableT) -> None:
        self.table = table

    def get(self, key: bytes | None, event: Any) -> bytes | None:
        with event_context(event):
            return self.table.get(key)

    def put(self, key: bytes | None, value: bytes, event: Any) -> None:
        with event_context(event):
            self.table[key] = value
