"""One micro-batch of input records: decode, validate, score texts, apply to member
state, produce.

The batch's item texts go to the inference stage in one call, before any state
is touched; the stage runs the model off the event loop. Within a batch each
member's state is loaded once, updated per event in order, and written back to
the state store (the ``members`` table) once; the profile is emitted once per
member per batch (it goes to a compacted topic, so only the latest matters).

Order of effects: every output of the batch (and every dead letter) is
acknowledged by the broker before any member state is written. A state that
remembers a record's Kafka position therefore implies the record's outputs
exist, so a redelivered record is skipped outright (see
:mod:`memberstream.core.positions`); a crash before the state write leaves the
old state, and the records are processed again into the same outputs (same ids).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from memberstream.core import failpoints
from memberstream.core.batching import BatchStats, Delivered, OutputPort, StateStore, Touched
from memberstream.core.member.processor import MemberProcessor
from memberstream.core.member_state import MemberState
from memberstream.core.positions import Position
from memberstream.core.roles import Emit, OutputRole
from memberstream.core.state_cache import StateCache
from memberstream.domain.anomaly.order_features import OrderVector
from memberstream.ml.inference import InferenceStage, Scored, TextItem
from memberstream.schemas.codec import DecodeFailure, decode_event
from memberstream.schemas.events import Envelope, Feedback, PurchaseEvent

log = logging.getLogger(__name__)


class IngestBatcher:
    """Processes batches of raw input events against the members' state store."""

    def __init__(
        self,
        store: StateStore,
        processor: MemberProcessor,
        sink: OutputPort,
        event_types: Mapping[str, type[Envelope]],
        stage: InferenceStage | None = None,
        state_cache_bytes: int = 0,
    ) -> None:
        self.store = store
        self.states: StateCache[MemberState] = StateCache(state_cache_bytes)
        self.processor = processor
        self.sink = sink
        self.event_types = event_types
        self.stage = stage

    async def process(self, events: Sequence[Delivered]) -> BatchStats:
        failpoints.reached("batch_start")
        stats = BatchStats(records=len(events))
        decoded: list[tuple[Delivered, Envelope]] = []
        for ev in events:
            msg = ev.message
            result = self._decode(msg.topic, msg.key, msg.value)
            if isinstance(result, DecodeFailure):
                await self.sink.dead_letter(msg, result)
                stats.dead_letters += 1
            else:
                decoded.append((ev, result))
        scores = await self._score(decoded, stats)
        touched: dict[str, Touched[MemberState]] = {}
        orders: list[tuple[str, PurchaseEvent, OrderVector]] = []
        for (ev, event), scored in zip(decoded, scores, strict=True):
            if isinstance(event, Feedback) and event.product_id is not None:
                await self._forward_feedback(ev, event, stats)
                continue
            await self._process_one(ev, event, scored, touched, stats, orders)
        if orders:
            await self._score_orders(orders, touched, stats)
        changed = [entry for entry in touched.values() if entry.changed]
        for entry in changed:
            if entry.state.counts.events:  # not for a member known from feedback alone
                await self.sink.emit(self.processor.profile(entry.state))
        failpoints.reached("outputs_sent")
        await self.sink.drain()  # outputs durable before the state that remembers them
        failpoints.reached("drained")
        for entry in changed:
            key, raw = entry.event.message.key, entry.state.to_bytes()
            self.store.put(key, raw, entry.event)
            self.states.put(key, raw, entry.state)
        failpoints.reached("state_written")
        return stats

    async def _score_orders(
        self,
        orders: list[tuple[str, PurchaseEvent, OrderVector]],
        touched: dict[str, Touched[MemberState]],
        stats: BatchStats,
    ) -> None:
        """The batch's paid orders through the learned scorer in one stage call."""
        assert self.stage is not None  # orders come only with a learned scorer
        results = await self.stage.score_orders([vector for _, _, vector in orders])
        for (mid, event, vector), result in zip(orders, results, strict=True):
            entry = touched[mid]
            flag = self.processor.learned_flag(entry.state, event, result, vector)
            if flag is not None:
                stats.flags += 1
                entry.changed = True
                await self.sink.emit(flag)

    async def _forward_feedback(self, ev: Delivered, feedback: Feedback, stats: BatchStats) -> None:
        """Feedback on a product flag goes to the product agent, keyed by product_id, with
        its position (the product agent's test for a verdict forwarded twice)."""
        stats.feedback += 1
        msg = ev.message
        payload = {
            "type": "feedback",
            **feedback.model_dump(mode="json"),
            "src": [msg.topic, msg.partition, msg.offset],
        }
        await self.sink.emit(Emit(OutputRole.PRODUCT_REVIEWS, feedback.product_id or "", payload))

    async def _score(
        self, decoded: Sequence[tuple[Delivered, Envelope]], stats: BatchStats
    ) -> list[list[Scored] | None]:
        """The model's scores for each event's texts (one stage call for the whole batch)."""
        if self.stage is None:
            return [None] * len(decoded)
        per_event: list[list[TextItem]] = []
        for _, event in decoded:
            try:
                items = self.processor.texts(event)
            except Exception:  # reported per record in _process_one
                items = []
            per_event.append(items)
        flat = [item for items in per_event for item in items]
        stats.texts = len(flat)
        scored = await self.stage.score(flat) if flat else []
        out: list[list[Scored] | None] = []
        start = 0
        for items in per_event:
            out.append(scored[start : start + len(items)])
            start += len(items)
        return out

    async def _process_one(
        self,
        ev: Delivered,
        decoded: Envelope,
        scores: list[Scored] | None,
        touched: dict[str, Touched[MemberState]],
        stats: BatchStats,
        orders: list[tuple[str, PurchaseEvent, OrderVector]],
    ) -> None:
        msg = ev.message
        mid = decoded.member_id
        entry = touched.get(mid)
        try:
            if entry is None:
                before = self.store.get(msg.key, ev)
                state = None if before is None else self.states.get(msg.key, before)
                if state is None:
                    state = self.processor.load(before)
            else:
                state = entry.state
                before = state.to_bytes()  # to roll back to if apply fails
            at = Position(msg.topic, msg.partition, msg.offset)
            applied = self.processor.apply(state, decoded, scores, at)
        except Exception as exc:
            # A bug (or a state that cannot be loaded) must not stop the partition:
            # the record goes to the DLQ with the reason, the member's state is kept.
            log.exception("processing failed: topic=%s offset=%s", msg.topic, msg.offset)
            failure = DecodeFailure("processing", f"{type(exc).__name__}: {exc}")
            await self.sink.dead_letter(msg, failure)
            stats.dead_letters += 1
            self.states.drop(msg.key)  # a cached state may be half-applied
            if entry is not None:
                entry.state = self.processor.load(before)  # type: ignore[assignment]
            return
        if applied.duplicate:
            stats.duplicates += 1
        else:
            stats.accepted += 1
            stats.flags_suppressed += applied.suppressed
            if isinstance(decoded, Feedback):
                stats.feedback += 1
            for emit in applied.emits:
                if emit.role is OutputRole.INTEREST_TIERS:
                    stats.interest_changes += 1
                elif emit.role is OutputRole.TIERS:
                    stats.tier_changes += 1
                elif emit.role is OutputRole.ANOMALIES:
                    stats.flags += 1
        if applied.order is not None:
            orders.append((mid, decoded, applied.order))  # type: ignore[arg-type]
        changed = (entry is not None and entry.changed) or not applied.duplicate
        touched[mid] = Touched(applied.state, ev, changed)
        for emit in applied.emits:
            await self.sink.emit(emit)

    def _decode(
        self, topic: str, key: bytes | None, value: bytes | None
    ) -> Envelope | DecodeFailure:
        event_type = self.event_types[topic]
        decoded = decode_event(value, event_type)
        if isinstance(decoded, DecodeFailure):
            return decoded
        if key == decoded.member_id.encode("utf-8"):
            return decoded
        product = decoded.product_id if isinstance(decoded, Feedback) else None
        if product is not None and key == product.encode("utf-8"):
            return decoded  # feedback on a product flag, keyed by product
        shown = key.decode("utf-8", "replace") if key is not None else None
        return DecodeFailure(
            "validation",
            f"record key {shown!r} does not match member_id {decoded.member_id!r}; "
            "inputs must be keyed by member_id (feedback on a product flag: by product_id)",
            [{"field": "(key)", "message": "must equal member_id"}],
        )
