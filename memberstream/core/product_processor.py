"""Per-product state and logic behind the product agent: review spam and review bombing.

The ingest agent forwards every review (with its embedding) and every piece of
feedback on a product flag to ``memberstream.product-reviews``, keyed by
product_id, so one product's reviews meet in one place whichever members wrote
them. Plain code, no Kafka: the agent decodes records and produces what this
returns.

Records reach a product from several upstream partitions in an order that can
change between runs; the detectors' flags and their ids do not depend on it
(see :mod:`memberstream.domain.anomaly.product_detectors`). A record seen again
changes nothing: a review or verdict forwarded again after a crash upstream is
recognised by its position on the source topic (``src``, at any distance; see
:mod:`memberstream.core.positions`), anything else by its event id.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from memberstream.config import Settings
from memberstream.core.flags import raise_flags
from memberstream.core.positions import AppliedOffsets, Position
from memberstream.core.roles import Emit, OutputRole
from memberstream.domain.anomaly.flags import detector_version
from memberstream.domain.anomaly.ledger import FlagLedger
from memberstream.domain.anomaly.product_detectors import (
    ProductAnomalyState,
    ProductDetectors,
    ProductReview,
)
from memberstream.domain.rfm import iso
from memberstream.domain.summaries.review_buffer import KeptReview, ReviewBuffer
from memberstream.domain.summaries.summarizer import ReviewText, Summary, SummaryPoint
from memberstream.ml.sentiment import LABELS
from memberstream.schemas.outputs import OUTPUT_SCHEMA_VERSION, deterministic_id


def _point(point: SummaryPoint) -> dict[str, Any]:
    return {"text": point.text, "aspect": point.aspect, "review_ids": list(point.review_ids)}


PRODUCT_STATE_VERSION = 1


class BadProductRecord(ValueError):
    """A record on the product topic that cannot be used (goes to the DLQ)."""


@dataclass
class ProductState:
    product_id: str
    recent_ids: deque[str]
    applied: AppliedOffsets = field(default_factory=AppliedOffsets)
    """Last applied offset per source partition (events.reviews, labels.feedback)."""
    anomaly: ProductAnomalyState = field(default_factory=ProductAnomalyState)
    flags: FlagLedger = field(default_factory=FlagLedger)
    reviews: int = 0
    buffer: ReviewBuffer = field(default_factory=ReviewBuffer)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": PRODUCT_STATE_VERSION,
                "p": self.product_id,
                "ids": list(self.recent_ids),
                "ap": self.applied.to_dict(),
                "a": self.anomaly.to_dict(),
                "fl": self.flags.to_dict(),
                "n": self.reviews,
                "s": self.buffer.to_dict(),
            }
        )


@dataclass(frozen=True)
class ProductApplied:
    state: ProductState
    emits: list[Emit]
    duplicate: bool
    suppressed: int = 0
    summary: SummaryRequest | None = None
    """The product's review summary is due: the caller runs the model on this request
    and passes the result to :meth:`ProductProcessor.summary_emit`."""


@dataclass(frozen=True)
class SummaryRequest:
    """A summary to make, fixed when it fell due (so batching cannot change it)."""

    reviews: list[ReviewText]
    rating_count: int
    rating_mean: float
    as_of: float


def _review(record: dict[str, Any]) -> ProductReview:
    try:
        embedding = None
        if record.get("embedding_f16"):
            raw = base64.b64decode(record["embedding_f16"], validate=True)
            embedding = np.frombuffer(raw, dtype="<f2").astype(np.float32)
        text = "\n".join(p for p in (record.get("title"), record.get("text")) if p)
        return ProductReview(
            event_id=str(record["event_id"]),
            member_id=str(record["member_id"]),
            product_id=str(record["product_id"]),
            t=datetime.fromisoformat(record["occurred_at"]).timestamp(),
            rating=int(record["rating"]),
            text_chars=len(text),
            embedding=embedding,
            verified=record.get("verified") is not False,  # older records: assume bought
        )
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise BadProductRecord(f"bad review record: {type(exc).__name__}: {exc}") from exc


class ProductProcessor:
    """Product record → new product state and flags, under the configured detectors."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        anomaly = settings.anomaly
        self.anomaly = anomaly
        self.detectors = ProductDetectors(anomaly) if anomaly.enabled else None
        self.summaries = settings.summary
        self.versions = {
            "review_duplicate": detector_version("review_duplicate", anomaly.review_duplicate),
            "review_bombing": detector_version("review_bombing", anomaly.review_bombing),
        }

    def new_state(self, product_id: str) -> ProductState:
        return ProductState(
            product_id=product_id,
            recent_ids=deque(maxlen=self.settings.dedupe_ids_per_member),
            flags=FlagLedger(self.anomaly.flags_kept, self.anomaly.rejected_kept),
        )

    def load(self, raw: bytes | None) -> ProductState | None:
        if raw is None:
            return None
        d = orjson.loads(raw)
        if d.get("v") != PRODUCT_STATE_VERSION:
            raise ValueError(f"product state version {d.get('v')} is not {PRODUCT_STATE_VERSION}")
        return ProductState(
            product_id=d["p"],
            recent_ids=deque(d["ids"], maxlen=self.settings.dedupe_ids_per_member),
            applied=AppliedOffsets(d.get("ap")),
            anomaly=ProductAnomalyState.from_dict(d["a"]),
            buffer=ReviewBuffer.from_dict(d["s"]),
            flags=FlagLedger.from_dict(
                d["fl"], self.anomaly.flags_kept, self.anomaly.rejected_kept
            ),
            reviews=d["n"],
        )

    @staticmethod
    def decode(raw: bytes | None) -> dict[str, Any]:
        if raw is None:
            raise BadProductRecord("empty record (null value)")
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadProductRecord(f"invalid JSON: {exc}") from exc
        if not isinstance(record, dict) or record.get("type") not in ("review", "feedback"):
            raise BadProductRecord("expected an object with type review or feedback")
        for name in ("event_id", "product_id"):
            if not isinstance(record.get(name), str):
                raise BadProductRecord(f"{name} missing or not a string")
        return record

    def apply(self, state: ProductState | None, record: dict[str, Any]) -> ProductApplied:
        """Apply one review or feedback record; a record seen before changes nothing."""
        product_id = record["product_id"]
        if state is None:
            state = self.new_state(product_id)
        event_id = record["event_id"]
        src = Position.from_list(record.get("src"))
        if state.applied.covers(src) or event_id in state.recent_ids:
            return ProductApplied(state, [], duplicate=True)
        if record["type"] == "feedback":
            state.recent_ids.append(event_id)
            state.applied.mark(src)
            state.flags.apply_feedback(
                str(record.get("subject")), str(record.get("verdict")), str(record.get("ref_id"))
            )
            return ProductApplied(state, [], duplicate=False)
        review = _review(record)
        state.recent_ids.append(event_id)
        state.applied.mark(src)
        state.reviews += 1
        request = self._keep_for_summary(state, review, record)
        if self.detectors is None:
            return ProductApplied(state, [], duplicate=False, summary=request)
        emits, suppressed = raise_flags(
            state.flags,
            self.detectors.on_review(state.anomaly, review),
            self.versions,
            review.event_id,
            review.t,
        )
        return ProductApplied(state, emits, duplicate=False, suppressed=suppressed, summary=request)

    # -- summaries --

    def _keep_for_summary(
        self, state: ProductState, review: ProductReview, record: dict[str, Any]
    ) -> SummaryRequest | None:
        if not self.summaries.enabled:
            return None
        text = "\n".join(p for p in (record.get("title"), record.get("text")) if p)
        kept = KeptReview(review.event_id, review.t, review.rating, text, record.get("language"))
        buffer = state.buffer
        if not buffer.add(kept, self.summaries):
            return None
        request = SummaryRequest(
            reviews=[r.review_text() for r in buffer.reviews],
            rating_count=buffer.count,
            rating_mean=round(buffer.rating_mean, 4),
            as_of=buffer.reviews[-1].t,
        )
        buffer.mark_summarized()
        return request

    def summary_emit(
        self, state: ProductState, request: SummaryRequest, summary: Summary, version: str
    ) -> Emit:
        """The ReviewSummary record for ``summary``."""
        payload = {
            "output_id": deterministic_id(
                "summary", state.product_id, version, *summary.review_ids
            ),
            "schema_version": OUTPUT_SCHEMA_VERSION,
            "product_id": state.product_id,
            "summary": summary.text,
            "pros": [_point(p) for p in summary.pros],
            "cons": [_point(p) for p in summary.cons],
            "language": summary.language,
            "rating_count": request.rating_count,
            "rating_mean": request.rating_mean,
            "review_ids": list(summary.review_ids),
            "sentiment": {k: summary.sentiment.get(k, 0) for k in LABELS},
            "model_version": version,
            "as_of": iso(request.as_of),
        }
        return Emit(OutputRole.REVIEW_SUMMARIES, state.product_id, payload)
