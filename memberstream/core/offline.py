"""The worker's logic without Kafka: events in, every output out, in one process.

Drives the processing core (:class:`~memberstream.core.pipeline.ChainedBatches`, the
same batchers the worker's agents run) over records held in memory: events are
encoded as the platform would produce them, given positions in one partition per
topic, and processed in batches of ``batch.max_batch`` in the order given. Text and
order scores are pure functions of their inputs, so the outputs equal a worker's
for the same per-member order. Used to compute what a worker must produce (tests),
to evaluate detectors quickly (``bench.anomalies --offline``), and to tune
thresholds.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from memberstream.config import Settings
from memberstream.core.batching import BatchStats, Record
from memberstream.core.in_memory import DictStore, MemoryItem, MemoryRecord
from memberstream.core.member.processor import MemberProcessor
from memberstream.core.member_state import MemberState
from memberstream.core.pipeline import ChainedBatches
from memberstream.core.product_processor import ProductProcessor, ProductState
from memberstream.core.roles import Emit, OutputRole
from memberstream.schemas.codec import DecodeFailure, encode
from memberstream.schemas.events import Envelope


class CollectingPort:
    """An output port that keeps what it is sent: payloads by role, as a consumer would
    decode them, and dead letters with their records."""

    def __init__(self) -> None:
        self.outputs: dict[OutputRole, list[dict[str, Any]]] = defaultdict(list)
        self.dead_letters: list[tuple[Record, DecodeFailure]] = []

    async def emit(self, emit: Emit) -> None:
        self.outputs[emit.role].append(orjson.loads(orjson.dumps(emit.payload)))

    async def dead_letter(self, message: Record, failure: DecodeFailure) -> None:
        self.dead_letters.append((message, failure))

    async def drain(self) -> None:
        return None


@dataclass
class OfflineRun:
    """Holds member and product state across :meth:`feed` calls."""

    settings: Settings
    stage: Any = None
    """The :class:`~memberstream.ml.inference.InferenceStage` (None: no text model)."""
    stats: BatchStats = field(default_factory=BatchStats)
    _offsets: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.port = CollectingPort()
        self.member_store = DictStore()
        self.product_store = DictStore()
        self.chain = ChainedBatches(
            self.settings, self.port, self.member_store, self.product_store, self.stage
        )

    @property
    def outputs(self) -> dict[OutputRole, list[dict[str, Any]]]:
        """Topic role -> payloads, in the order produced (profiles: see :meth:`profiles`)."""
        return self.port.outputs

    @property
    def dead_letters(self) -> list[tuple[Record, DecodeFailure]]:
        return self.port.dead_letters

    @property
    def processor(self) -> MemberProcessor:
        return self.chain.member.processor

    @property
    def product_processor(self) -> ProductProcessor:
        return self.chain.product.processor

    @property
    def members(self) -> dict[str, MemberState]:
        """Each member's current state (decoded afresh on every access)."""
        load = self.processor.load
        return {key.decode(): load(raw) for key, raw in self.member_store.items() if key}

    @property
    def products(self) -> dict[str, ProductState]:
        load = self.product_processor.load
        out = {}
        for key, raw in self.product_store.items():
            state = load(raw)
            if key and state is not None:
                out[key.decode()] = state
        return out

    def feed(self, events: Iterable[Envelope]) -> None:
        """Process ``events`` in order, in batches of ``batch.max_batch``."""
        size = self.settings.batch.max_batch
        batch: list[MemoryItem] = []
        for event in events:
            batch.append(self._item(event))
            if len(batch) >= size:
                self._process(batch)
                batch = []
        if batch:
            self._process(batch)

    def apply(self, event: Envelope) -> None:
        """One event, in a batch of its own."""
        self._process([self._item(event)])

    def _item(self, event: Envelope) -> MemoryItem:
        topic = self.settings.topics.for_event(event.type)  # type: ignore[attr-defined]
        offset = self._offsets.get(topic, 0)
        self._offsets[topic] = offset + 1
        record = MemoryRecord(topic, 0, offset, event.member_id.encode("utf-8"), encode(event))
        return MemoryItem(record)

    def _process(self, batch: Sequence[MemoryItem]) -> None:
        self.stats.add(asyncio.run(self.chain.process(batch)))

    def profiles(self) -> dict[str, dict[str, Any]]:
        """Each member's latest profile (what the compacted topic converges to)."""
        out = {}
        for mid, state in self.members.items():
            if state.counts.events:
                emit = self.processor.profile(state)
                assert emit.role is OutputRole.PROFILES
                out[mid] = orjson.loads(orjson.dumps(emit.payload))
        return out
