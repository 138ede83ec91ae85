"""The processing core: the member and product batchers, built in one place and driven
by every runner.

Three runners drive the same two batchers (:class:`~memberstream.core.ingest.IngestBatcher`
and :class:`~memberstream.core.product_ingest.ProductBatcher`):

- the worker's Faust agents (:mod:`memberstream.streams.app`), where a review or a
  product verdict reaches the product batcher through the ``product.reviews`` topic;
- the in-process run (:class:`~memberstream.core.offline.OfflineRun`) and the replay
  (:mod:`memberstream.streams.replay`), which chain the two batchers in one process
  with :class:`ChainedBatches`: what the member batch forwards is processed by the
  product batcher before the member batch's state is written.

So a replay or an in-process run cannot drift from the live path: decoding,
de-duplication, scoring, state and outputs are the same code; only the transport
between the two batchers differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from memberstream.config import Settings
from memberstream.core.batching import BatchStats, Delivered, OutputPort, Record, StateStore
from memberstream.core.in_memory import MemoryItem, MemoryRecord
from memberstream.core.ingest import IngestBatcher
from memberstream.core.member.processor import MemberProcessor
from memberstream.core.product_ingest import ProductBatcher
from memberstream.core.product_processor import ProductProcessor
from memberstream.core.roles import Emit, OutputRole
from memberstream.core.summaries import build_summarizer
from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.inference import InferenceStage
from memberstream.schemas.codec import DecodeFailure
from memberstream.schemas.events import ClickEvent, Envelope, Feedback, PurchaseEvent, ReviewEvent


def learned_version(stage: InferenceStage | None) -> str | None:
    """The learned anomaly scorer's version as outputs name it (None: no scorer)."""
    if stage is None or stage.scorer is None:
        return None
    return f"{stage.scorer.version}+{stage.encoder.version}"


def event_types(settings: Settings) -> dict[str, type[Envelope]]:
    """Input topic → the event type its records must decode to."""
    topics = settings.topics
    return {
        topics.clicks: ClickEvent,
        topics.purchases: PurchaseEvent,
        topics.reviews: ReviewEvent,
        topics.feedback: Feedback,
    }


def member_batcher(
    settings: Settings,
    store: StateStore,
    sink: OutputPort,
    stage: InferenceStage | None,
    taxonomy: Taxonomy | None = None,
) -> IngestBatcher:
    """The member batcher over ``store``, producing through ``sink``; it follows the
    stage's model swaps (outputs name the version that made them)."""
    processor = MemberProcessor(
        settings,
        taxonomy,
        None if stage is None else stage.model_version,
        learned_version(stage),
    )
    if stage is not None:
        stage.on_swap(lambda swapped: processor.set_model_version(swapped.model_version))
        stage.on_swap(lambda swapped: processor.set_learned_version(learned_version(swapped)))
    return IngestBatcher(
        store,
        processor,
        sink,
        event_types(settings),
        stage,
        state_cache_bytes=int(settings.batch.state_cache_mb * 2**20),
    )


def product_batcher(
    settings: Settings, store: StateStore, sink: OutputPort, stage: InferenceStage | None
) -> ProductBatcher:
    """The product batcher over ``store``, producing through ``sink``."""
    return ProductBatcher(
        store, ProductProcessor(settings), sink, stage, build_summarizer(settings, stage)
    )


class _Forwarding:
    """The member batch's output port in a chained run: records for the product agent
    are kept and processed by the product batcher when the member batch drains, before
    the member batch writes its state (the order of effects of the live path, where they
    are acknowledged by the ``product.reviews`` topic at that point)."""

    def __init__(self, sink: OutputPort, products: ProductBatcher, topic: str) -> None:
        self.sink = sink
        self.products = products
        self.topic = topic
        self.forwarded: list[MemoryItem] = []
        self.offset = 0
        self.stats = BatchStats()

    async def emit(self, emit: Emit) -> None:
        if emit.role is not OutputRole.PRODUCT_REVIEWS:
            await self.sink.emit(emit)
            return
        record = MemoryRecord(
            self.topic, 0, self.offset, emit.key.encode("utf-8"), orjson.dumps(emit.payload)
        )
        self.offset += 1
        self.forwarded.append(MemoryItem(record))

    async def dead_letter(self, message: Record, failure: DecodeFailure) -> None:
        await self.sink.dead_letter(message, failure)

    async def drain(self) -> None:
        forwarded, self.forwarded = self.forwarded, []
        if forwarded:  # drains the sink and writes product state
            self.stats.add(await self.products.process(forwarded))
        await self.sink.drain()


class ChainedBatches:
    """The member batcher and the product batcher in one process (see the module doc).

    :meth:`process` takes a batch of input records and returns the stats of both
    stages; outputs go to ``sink``, state to ``members`` and ``products``.
    """

    def __init__(
        self,
        settings: Settings,
        sink: OutputPort,
        members: StateStore,
        products: StateStore,
        stage: InferenceStage | None,
        taxonomy: Taxonomy | None = None,
    ) -> None:
        self.product = product_batcher(settings, products, sink, stage)
        self._port = _Forwarding(sink, self.product, settings.topics.product_reviews)
        self.member = member_batcher(settings, members, self._port, stage, taxonomy)
        self.stage = stage

    async def process(self, batch: Sequence[Delivered]) -> BatchStats:
        if self.stage is not None:
            self.stage.batch_started()  # a new model version never lands mid-batch
        try:
            stats = await self.member.process(batch)
        finally:
            if self.stage is not None:
                self.stage.batch_finished()
        stats.add(self._port.stats)
        self._port.stats = BatchStats()
        return stats
