"""One micro-batch of the product topic: decode, apply to product state, produce flags.

Same shape as :mod:`memberstream.core.ingest`: each product's state is
loaded once per batch and written back once, a record that cannot be used
goes to the DLQ with the reason, and the agent exits without committing if
producing fails. As there, a batch's outputs are acknowledged before any product
state is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from memberstream.core import failpoints
from memberstream.core.batching import BatchStats, Delivered, OutputPort, StateStore, Touched
from memberstream.core.product_processor import (
    BadProductRecord,
    ProductProcessor,
    ProductState,
    SummaryRequest,
)
from memberstream.core.summaries import Summarizer, summarize_all, summary_version
from memberstream.ml.inference import InferenceStage
from memberstream.schemas.codec import DecodeFailure

log = logging.getLogger(__name__)


class ProductBatcher:
    """Processes batches of product records against the products' state store."""

    def __init__(
        self,
        store: StateStore,
        processor: ProductProcessor,
        sink: OutputPort,
        stage: InferenceStage | None = None,
        summarizer: Summarizer | None = None,
    ) -> None:
        self.store = store
        self.processor = processor
        self.sink = sink
        self.stage = stage
        self.summarizer = summarizer if stage is not None else None

    async def process(self, events: Sequence[Delivered]) -> BatchStats:
        stats = BatchStats(product_records=len(events))
        touched: dict[bytes, Touched[ProductState]] = {}
        due: list[tuple[bytes, SummaryRequest]] = []  # in the order they fell due
        for ev in events:
            await self._process_one(ev, touched, stats, due)
        if due and self.summarizer is not None:
            await self._summarize(due, touched, stats)
        failpoints.reached("outputs_sent")
        await self.sink.drain()  # outputs durable before the state that remembers them
        failpoints.reached("drained")
        for key, entry in touched.items():
            if entry.changed:
                self.store.put(key, entry.state.to_bytes(), entry.event)
        failpoints.reached("state_written")
        return stats

    async def _summarize(
        self,
        due: list[tuple[bytes, SummaryRequest]],
        touched: dict[bytes, Touched[ProductState]],
        stats: BatchStats,
    ) -> None:
        """The summaries that fell due in the batch, in one call on the stage's thread."""
        assert self.stage is not None and self.summarizer is not None
        inputs = [request.reviews for _, request in due]
        summaries = await self.stage.run(summarize_all, self.summarizer, inputs)
        for (key, request), summary in zip(due, summaries, strict=True):
            entry = touched[key]
            emit = self.processor.summary_emit(
                entry.state, request, summary, summary_version(self.summarizer, self.stage)
            )
            entry.changed = True
            stats.summaries += 1
            await self.sink.emit(emit)

    async def _process_one(
        self,
        ev: Delivered,
        touched: dict[bytes, Touched[ProductState]],
        stats: BatchStats,
        due: list[tuple[bytes, SummaryRequest]],
    ) -> None:
        msg = ev.message
        entry = None if msg.key is None else touched.get(msg.key)
        before: bytes | None = None
        try:
            record = self.processor.decode(msg.value)
            if msg.key != record["product_id"].encode("utf-8"):
                raise BadProductRecord("record key does not match product_id")
            if entry is None:
                before = self.store.get(msg.key, ev)
                state = self.processor.load(before)
            else:
                state = entry.state
                before = state.to_bytes()
            applied = self.processor.apply(state, record)
        except Exception as exc:
            kind = "validation" if isinstance(exc, BadProductRecord) else "processing"
            if kind == "processing":
                log.exception("product record failed: offset=%s", msg.offset)
            await self.sink.dead_letter(msg, DecodeFailure(kind, f"{type(exc).__name__}: {exc}"))
            stats.dead_letters += 1
            if entry is not None and before is not None:
                entry.state = self.processor.load(before)  # type: ignore[assignment]
            return
        if applied.duplicate:
            stats.duplicates += 1
        else:
            stats.reviews += record["type"] == "review"
            stats.flags += len(applied.emits)
            stats.flags_suppressed += applied.suppressed
        changed = (entry is not None and entry.changed) or not applied.duplicate
        touched[msg.key] = Touched(applied.state, ev, changed)
        if applied.summary is not None:
            due.append((msg.key, applied.summary))
        for emit in applied.emits:
            await self.sink.emit(emit)
