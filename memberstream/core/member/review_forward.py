"""A member's review, forwarded to the product agent: keyed by product_id, with the
review text's embedding and sentiment (the model scored it once, on the member side)
and its position on the reviews topic."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import numpy as np

from memberstream.core.positions import Position
from memberstream.core.roles import Emit, OutputRole
from memberstream.domain.rfm import iso
from memberstream.ml.inference import Scored
from memberstream.schemas.events import ReviewEvent


def product_review(
    event: ReviewEvent, scores: Sequence[Scored] | None, at: Position | None, verified: bool = False
) -> Emit:
    """The review for the product agent (keyed by product_id), with its embedding, its
    position on the reviews topic (``src``: how the product agent recognises a review
    forwarded again after a crash) and whether the member's state holds a paid order of
    the product (``verified``; a purchase on the purchases topic and a review on the
    reviews topic are not ordered against each other by Kafka, so a review made within
    moments of its purchase may be read first: replays, which merge by timestamp, agree)."""
    embedding = None
    if scores:  # the review's one text: title and body (see InterestStep.items)
        embedding = base64.b64encode(np.asarray(scores[0].embedding, dtype="<f2").tobytes()).decode(
            "ascii"
        )
    payload = {
        "type": "review",
        "event_id": event.event_id,
        "member_id": event.member_id,
        "product_id": event.product_id,
        "occurred_at": iso(event.occurred_at.timestamp()),
        "rating": event.rating,
        "title": event.title,
        "text": event.text,
        "language": event.language,
        "embedding_f16": embedding,
        "sentiment": (
            None
            if not scores or scores[0].sentiment is None
            else [round(float(p), 6) for p in scores[0].sentiment]
        ),
        "src": None if at is None else at.to_list(),
        "verified": verified,
    }
    return Emit(OutputRole.PRODUCT_REVIEWS, event.product_id, payload)
