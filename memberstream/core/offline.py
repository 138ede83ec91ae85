"""The worker's logic without Kafka: events in, every output out, in one process.

Applies each event in the order given through the same processors the agents
use (member state, then the product agent for reviews), scoring texts with the
inference stage on the calling thread and orders with the learned scorer one
at a time (both are batch-independent, so the results equal the worker's).
Used to compute what a worker must produce (tests), to evaluate detectors
quickly (``bench.anomalies --offline``), and to tune thresholds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from memberstream.config import Settings
from memberstream.core.member.processor import MemberProcessor
from memberstream.core.member_state import MemberState
from memberstream.core.product_processor import ProductProcessor, ProductState
from memberstream.core.roles import Emit, OutputRole
from memberstream.core.summaries import build_summarizer, summary_version
from memberstream.ml.inference import InferenceStage
from memberstream.schemas.events import Envelope, Feedback, PurchaseEvent


@dataclass
class OfflineRun:
    """Holds member and product state across :meth:`feed` calls."""

    settings: Settings
    stage: InferenceStage | None = None
    members: dict[str, MemberState] = field(default_factory=dict)
    products: dict[str, ProductState] = field(default_factory=dict)
    outputs: dict[OutputRole, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    """Topic role -> payloads, in the order produced (profiles: see :meth:`profiles`)."""

    def __post_init__(self) -> None:
        stage = self.stage
        learned = None
        if stage is not None and stage.scorer is not None:
            learned = f"{stage.scorer.version}+{stage.encoder.version}"
        self.processor = MemberProcessor(
            self.settings, None, None if stage is None else stage.model_version, learned
        )
        self.product_processor = ProductProcessor(self.settings)
        self.summarizer = build_summarizer(self.settings, stage)

    def feed(self, events: Iterable[Envelope]) -> None:
        for event in events:
            self.apply(event)

    def apply(self, event: Envelope) -> None:
        if isinstance(event, Feedback) and event.product_id is not None:
            record = {"type": "feedback", **event.model_dump(mode="json")}
            self._product(record)
            return
        scores = None
        if self.stage is not None:
            scores = self.stage.score_now(self.processor.texts(event))
        applied = self.processor.apply(self.members.get(event.member_id), event, scores)
        self.members[event.member_id] = applied.state
        emits = list(applied.emits)
        if applied.order is not None and self.stage is not None and self.stage.scorer is not None:
            (result,) = self.stage.scorer.score([applied.order])
            assert isinstance(event, PurchaseEvent)
            flag = self.processor.learned_flag(applied.state, event, result)
            if flag is not None:
                emits.append(flag)
        for emit in emits:
            self._route(emit)

    def _route(self, emit: Emit) -> None:
        payload = orjson.loads(orjson.dumps(emit.payload))  # as a consumer would see it
        if emit.role is OutputRole.PRODUCT_REVIEWS:
            self._product(payload)
        else:
            self.outputs[emit.role].append(payload)

    def _product(self, record: dict[str, Any]) -> None:
        pid = record["product_id"]
        applied = self.product_processor.apply(self.products.get(pid), record)
        self.products[pid] = applied.state
        emits = list(applied.emits)
        request = applied.summary
        if request is not None and self.summarizer is not None:
            summary = self.summarizer.summarize(request.reviews)
            emits.append(
                self.product_processor.summary_emit(
                    applied.state, request, summary, summary_version(self.summarizer, self.stage)
                )
            )
        for emit in emits:
            self._route(emit)

    def profiles(self) -> dict[str, dict[str, Any]]:
        """Each member's latest profile (what the compacted topic converges to)."""
        out = {}
        for mid, state in self.members.items():
            if state.counts.events:
                emit = self.processor.profile(state)
                assert emit.role is OutputRole.PROFILES
                out[mid] = orjson.loads(orjson.dumps(emit.payload))
        return out
