"""One micro-batch of input records: decode, validate, apply to member state, produce.

Within a batch each member's state is loaded once, updated per event in order,
and written back to the table once; the profile is emitted once per member per
batch (it goes to a compacted topic, so only the latest matters).
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from faust.streams import _current_event
from faust.types import EventT, TableT

from memberstream.schemas.codec import DecodeFailure, decode_event
from memberstream.schemas.events import Envelope
from memberstream.streams.member_processor import MemberProcessor
from memberstream.streams.member_state import MemberState
from memberstream.streams.outputs import OutputSink

log = logging.getLogger(__name__)


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


@dataclass
class _Touched:
    state: MemberState
    event: EventT
    changed: bool


@dataclass
class BatchStats:
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    tier_changes: int = 0


class IngestBatcher:
    """Processes batches of raw input events against the ``members`` table."""

    def __init__(
        self,
        table: TableT,
        processor: MemberProcessor,
        sink: OutputSink,
        event_types: Mapping[str, type[Envelope]],
    ) -> None:
        self.table = table
        self.processor = processor
        self.sink = sink
        self.event_types = event_types

    async def process(self, events: Sequence[EventT]) -> BatchStats:
        stats = BatchStats(records=len(events))
        touched: dict[str, _Touched] = {}
        for ev in events:
            await self._process_one(ev, touched, stats)
        for entry in touched.values():
            if entry.changed:
                with event_context(entry.event):
                    self.table[entry.event.message.key] = entry.state.to_bytes()
            await self.sink.emit(self.processor.profile(entry.state))
        return stats

    async def _process_one(
        self, ev: EventT, touched: dict[str, _Touched], stats: BatchStats
    ) -> None:
        msg = ev.message
        decoded = self._decode(msg.topic, msg.key, msg.value)
        if isinstance(decoded, DecodeFailure):
            await self.sink.dead_letter(msg, decoded)
            stats.dead_letters += 1
            return
        mid = decoded.member_id
        entry = touched.get(mid)
        try:
            if entry is None:
                with event_context(ev):
                    before = self.table.get(msg.key)
                state = self.processor.load(before)
            else:
                state = entry.state
                before = state.to_bytes()  # to roll back to if apply fails
            applied = self.processor.apply(state, decoded)
        except Exception as exc:
            # A bug (or a state that cannot be loaded) must not stop the partition:
            # the record goes to the DLQ with the reason, the member's state is kept.
            log.exception("processing failed: topic=%s offset=%s", msg.topic, msg.offset)
            failure = DecodeFailure("processing", f"{type(exc).__name__}: {exc}")
            await self.sink.dead_letter(msg, failure)
            stats.dead_letters += 1
            if entry is not None:
                entry.state = self.processor.load(before)  # type: ignore[assignment]
            return
        if applied.duplicate:
            stats.duplicates += 1
        else:
            stats.accepted += 1
            stats.tier_changes += len(applied.emits)
        changed = (entry is not None and entry.changed) or not applied.duplicate
        touched[mid] = _Touched(applied.state, ev, changed)
        for emit in applied.emits:
            await self.sink.emit(emit)

    def _decode(
        self, topic: str, key: bytes | None, value: bytes | None
    ) -> Envelope | DecodeFailure:
        event_type = self.event_types[topic]
        decoded = decode_event(value, event_type)
        if isinstance(decoded, DecodeFailure):
            return decoded
        if key != decoded.member_id.encode("utf-8"):
            shown = key.decode("utf-8", "replace") if key is not None else None
            return DecodeFailure(
                "validation",
                f"record key {shown!r} does not match member_id {decoded.member_id!r}; "
                "inputs must be keyed by member_id",
                [{"field": "(key)", "message": "must equal member_id"}],
            )
        return decoded
