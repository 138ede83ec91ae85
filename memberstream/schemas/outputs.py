"""Records memberstream publishes.

Every output has a deterministic ``output_id`` derived from what caused it, so a
record re-emitted after a restart or a replay carries the same id and a
consumer can drop repeats. No output holds wall-clock time: ``as_of`` is event
time, so replaying the same input yields byte-identical outputs.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

OUTPUT_SCHEMA_VERSION = 2
"""2: the profile's taste vector is ``taste_f16`` (base64 of little-endian float16) instead
of a list of 384 JSON numbers (``taste``)."""
_NAMESPACE = uuid.UUID("6f1c2a4e-3b7d-5e8f-9a0b-1c2d3e4f5a6b")


def deterministic_id(*parts: object) -> str:
    """A stable id for an output, from the things that identify it."""
    return str(uuid.uuid5(_NAMESPACE, "\x1f".join(str(p) for p in parts)))


class Output(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    output_id: str
    schema_version: int = OUTPUT_SCHEMA_VERSION


class RFM(BaseModel):
    """Recency, frequency and monetary value over the trailing event-time window."""

    model_config = ConfigDict(frozen=True)

    window_days: float
    recency_days: float | None = Field(
        description="days from the last paid order to as_of; None before any order"
    )
    frequency: int = Field(description="paid orders in the window")
    monetary: float = Field(description="net spend in the window: paid minus refunded")
    refunds: int = Field(description="refunds in the window")


class MemberTierUpdate(Output):
    """A member's membership tier changed."""

    member_id: str
    tier: str
    previous_tier: str | None
    direction: Literal["upgrade", "downgrade"]
    reason: str
    rfm: RFM
    cause_event_id: str
    as_of: datetime


class InterestTier(BaseModel):
    """A member's tier in one category, with the category's share of their affinity."""

    model_config = ConfigDict(frozen=True)

    category: str
    tier: str
    share: float = Field(description="the category's share of the member's decayed affinity")


class InterestMove(BaseModel):
    model_config = ConfigDict(frozen=True)

    category: str
    previous_tier: str | None
    tier: str | None
    direction: Literal["added", "removed", "promoted", "demoted"]


class InterestTierUpdate(Output):
    """A member's interest tiers changed (member.interest-tiers)."""

    member_id: str
    tiers: list[InterestTier] = Field(description="all current tiers, highest first")
    changes: list[InterestMove] = Field(description="what moved, in taxonomy order")
    model_version: str = Field(description="encoder and category head that scored the texts")
    cause_event_id: str
    cause_event_type: Literal["click", "purchase", "review"]
    as_of: datetime


class MemberProfile(Output):
    """The latest picture of a member, for recommenders and CRM (compacted topic)."""

    member_id: str
    tier: str
    tier_since: datetime
    downgrade_pending_since: datetime | None
    rfm: RFM
    first_seen: datetime
    last_event_at: datetime
    last_purchase_at: datetime | None
    clicks: int
    orders: int
    refunds: int
    reviews: int
    events: int = Field(description="distinct events accepted for this member")
    last_event_id: str
    interests: list[InterestTier] = Field(
        default_factory=list, description="interest tiers, highest first"
    )
    taste_f16: str | None = Field(
        None,
        description="unit-length decayed mean of the embeddings of items the member touched "
        "(one value per encoder dimension: 512 for the default encoder), as base64 of "
        "little-endian IEEE float16: numpy.frombuffer(base64.b64decode(s), '<f2'); None "
        "before any item text",
    )
    review_sentiment: float | None = Field(
        None,
        description="mean text sentiment of the member's reviews, p(positive) - p(negative), "
        "in [-1, 1]; None before a review scored by the sentiment head",
    )
    model_version: str | None = Field(
        None, description="text model behind interests and taste; None without one"
    )
    as_of: datetime

    @property
    def taste(self) -> list[float] | None:
        """The taste vector decoded from ``taste_f16``."""
        if self.taste_f16 is None:
            return None
        raw = base64.b64decode(self.taste_f16, validate=True)
        return np.frombuffer(raw, dtype="<f2").astype(np.float64).tolist()


AnomalyKind = Literal[
    "click_burst",
    "bot_pattern",
    "order_value_outlier",
    "order_velocity",
    "review_duplicate",
    "review_bombing",
    "learned_score",
    "rating_text_mismatch",
]


class AnomalyFlag(Output):
    """One anomaly flag (member.anomalies), for risk teams.

    ``flag_id`` (equal to ``output_id``) comes from the kind, the subject and
    the event-time window of the anomaly, so the same anomaly raised again
    after a restart or a replay carries the same id. Member flags are keyed by
    member_id on the topic, product flags (review spam) by product_id.
    """

    flag_id: str
    kind: AnomalyKind
    subject: Literal["member", "product"]
    member_id: str | None = Field(description="the member flagged; None for a product flag")
    product_id: str | None = Field(description="the product flagged; None for a member flag")
    score: float = Field(description="what the detector measured; flagged because >= threshold")
    threshold: float
    window_start: datetime = Field(description="event time where the anomaly's window begins")
    window_end: datetime = Field(
        description="event time where the window ends: the raising event, or the end of a "
        "fixed window (review bombing, review duplicates)"
    )
    evidence: list[str] = Field(description="ids of the events behind the flag, oldest first")
    details: dict[str, float | int | str] = Field(
        default_factory=dict, description="the measured quantities next to their limits"
    )
    detector_version: str = Field(
        description="detector and a hash of its settings (or the learned model's version)"
    )
    cause_event_id: str = Field(description="the event whose arrival raised the flag")
    as_of: datetime = Field(description="event time of the cause event")


class SummaryPoint(BaseModel):
    """A pro or a con: a sentence taken verbatim from a review, and the reviews behind it."""

    model_config = ConfigDict(frozen=True)

    text: str
    aspect: str = Field(description="what it is about, e.g. quality, delivery, value")
    review_ids: list[str] = Field(description="reviews that say it (verbatim or near-identical)")


class SentimentSplit(BaseModel):
    model_config = ConfigDict(frozen=True)

    negative: int
    neutral: int
    positive: int


class ReviewSummary(Output):
    """A product's review summary (product.review-summaries, compacted, keyed by product_id).

    Every pro and con cites the reviews that support it; ``review_ids`` lists every
    review the summary was made from (the product's most recent ones).
    """

    product_id: str
    summary: str
    pros: list[SummaryPoint]
    cons: list[SummaryPoint]
    language: str = Field(description="the summary's language: the reviews' main language")
    rating_count: int = Field(description="reviews of the product seen so far")
    rating_mean: float = Field(description="mean star rating over those reviews")
    review_ids: list[str] = Field(description="the reviews this summary was made from")
    sentiment: SentimentSplit = Field(description="the text model's sentiment over those reviews")
    model_version: str = Field(description="summarizer, encoder and sentiment head")
    as_of: datetime = Field(description="event time of the newest review used")


class DeadLetter(Output):
    """A record that could not be processed, kept whole so it can be fixed and replayed."""

    source_topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = Field(description="the Kafka record timestamp")
    key_b64: str | None = Field(description="the record's key, base64; cut when key_truncated")
    key_truncated: bool = False
    key_length: int | None = Field(None, description="the whole key's length in bytes")
    value_b64: str | None = Field(
        description="the record's value, base64; only its first bytes when value_truncated"
    )
    value_truncated: bool = Field(
        False, description="the value was cut to the DLQ's cap: fetch the original by offset"
    )
    value_length: int | None = Field(None, description="the whole value's length in bytes")
    value_sha256: str | None = Field(None, description="sha256 (hex) of the whole value")
    error_type: Literal["decode", "validation", "processing"]
    reason: str
    errors: list[dict[str, str]] = Field(
        default_factory=list, description="one entry per failing field: field and message"
    )
    redrive_of: str | None = Field(
        None,
        description="the dead letter this record was redriven from (`memberstream dlq "
        "redrive`), when it failed again; such letters are not redriven again by default",
    )


class ModelUpdate(Output):
    """A model version promoted or rolled back (model.updates, compacted, keyed by task).

    The latest record per task names the version workers must run: a worker that
    starts reads it before its first batch, a running worker loads it in the
    background and swaps between two batches. ``location`` is the version's
    directory in the registry, which workers must be able to read (a shared volume
    or a synced copy). Unlike the other outputs this one is an operator's act, so
    ``announced_at`` is wall-clock time.
    """

    task: Literal["sentiment", "interest", "anomaly"]
    version: str = Field(description="content-addressed: <task>@<sha256 prefix of the artifact>")
    previous_version: str | None = Field(description="what ran before; None for the first")
    action: Literal["promote", "rollback"]
    location: str = Field(description="the version's directory in the model registry")
    files: dict[str, str] = Field(description="artifact file name -> sha256, checked at load")
    encoder_version: str = Field(description="the encoder the version was trained on")
    announced_at: datetime
