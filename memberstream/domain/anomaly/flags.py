"""What a detector returns: a flag candidate, before feedback and the output schema.

A detector decides *whether* and *why*; the flag id, the output record and the
suppression of flags an analyst rejected are shared by all of them
(:func:`flag_id`, :class:`memberstream.domain.anomaly.ledger.FlagLedger`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, get_args

import orjson
from pydantic import BaseModel

from memberstream.schemas.outputs import AnomalyKind, deterministic_id

DETECTOR_GENERATION = "v1"
"""Bumped when a detector's logic changes in a way its settings hash cannot show."""

Subject = Literal["member", "product"]

KINDS: tuple[str, ...] = get_args(AnomalyKind)
MEMBER_KINDS = frozenset(
    {
        "click_burst",
        "bot_pattern",
        "order_value_outlier",
        "order_velocity",
        "learned_score",
        "rating_text_mismatch",
    }
)
PRODUCT_KINDS = frozenset({"review_duplicate", "review_bombing"})


@dataclass(frozen=True)
class Candidate:
    """A flag a detector wants raised.

    ``window_start`` identifies the episode (with kind and subject it makes the
    flag id), so it must come from event time and from state that a replay
    rebuilds identically. ``score >= threshold`` always holds.
    """

    kind: str
    subject: Subject
    subject_id: str
    window_start: float
    window_end: float
    score: float
    threshold: float
    evidence: tuple[str, ...]
    """Event ids, oldest first, at most ``AnomalySettings.max_evidence``."""
    details: dict[str, float | int | str] = field(default_factory=dict)
    """Why: the measured quantities next to their limits, for the analyst."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown anomaly kind {self.kind!r}")
        if not self.score >= self.threshold:
            raise ValueError(f"{self.kind}: score {self.score} below threshold {self.threshold}")


def flag_id(kind: str, subject: Subject, subject_id: str, window_start: float) -> str:
    """The flag's id: the same anomaly raised again (restart, replay) gets the same id."""
    return deterministic_id("flag", kind, subject, subject_id, f"{window_start:.3f}")


def detector_version(kind: str, settings: BaseModel) -> str:
    """``kind/v1@hash`` of the detector's settings: a changed threshold shows in every flag."""
    blob = orjson.dumps(settings.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return f"{kind}/{DETECTOR_GENERATION}@{hashlib.sha256(blob).hexdigest()[:8]}"
