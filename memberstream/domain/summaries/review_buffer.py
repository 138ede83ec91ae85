"""What a product keeps for its review summary, and when the summary is due.

The product agent adds each review here. A summary is due after
``refresh_reviews`` new reviews, or once the newest unsummarized review is
``refresh_after_days`` (event time) newer than what the last summary covered,
and never from fewer than ``min_reviews`` reviews. The summary is made from
the ``max_reviews`` most recent reviews kept (by event time, then id), with
every review's stars counted in the rating statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from memberstream.domain.summaries.summarizer import ReviewText, SummarizerSettings

DAY_S = 86_400.0


class SummarySettings(BaseModel):
    """Product review summaries (``[summary]`` in the config file)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="needs the text model (inference.enabled)")
    refresh_reviews: int = Field(5, ge=1, description="new reviews that make a summary due (K)")
    refresh_after_days: float = Field(
        7.0, gt=0, description="a summary older than this in event time is redone (T)"
    )
    min_reviews: int = Field(3, ge=1, description="no summary from fewer reviews")
    max_reviews: int = Field(50, ge=1, description="most recent reviews a summary is made from")
    abstractive_model_dir: Path | None = Field(
        None,
        description="a local seq2seq checkpoint (T5/BART family) to write the summary text; "
        "pros and cons stay extractive. None: extractive only",
    )
    summarizer: SummarizerSettings = Field(default_factory=SummarizerSettings)


@dataclass(frozen=True)
class KeptReview:
    review_id: str
    t: float
    rating: int
    text: str
    language: str | None

    def review_text(self) -> ReviewText:
        return ReviewText(self.review_id, self.rating, self.text, self.language)


@dataclass(eq=False)
class ReviewBuffer:
    reviews: list[KeptReview] = field(default_factory=list)
    """The most recent reviews, sorted by (t, id)."""
    count: int = 0
    rating_sum: int = 0
    unsummarized: int = 0
    covered_until: float | None = None
    """Event time of the newest review the last summary was made from."""
    first_unsummarized: float | None = None

    def add(self, review: KeptReview, settings: SummarySettings) -> bool:
        """Keep ``review``; True when a summary is due."""
        self.count += 1
        self.rating_sum += review.rating
        self.unsummarized += 1
        if self.first_unsummarized is None or review.t < self.first_unsummarized:
            self.first_unsummarized = review.t
        key = (review.t, review.review_id)
        i = len(self.reviews)
        while i > 0 and (self.reviews[i - 1].t, self.reviews[i - 1].review_id) > key:
            i -= 1
        self.reviews.insert(i, review)
        del self.reviews[: max(len(self.reviews) - settings.max_reviews, 0)]
        return self.due(settings)

    def due(self, settings: SummarySettings) -> bool:
        if self.unsummarized == 0 or len(self.reviews) < settings.min_reviews:
            return False
        if self.unsummarized >= settings.refresh_reviews:
            return True
        since = self.covered_until if self.covered_until is not None else self.first_unsummarized
        newest = self.reviews[-1].t
        return since is not None and newest - since >= settings.refresh_after_days * DAY_S

    def mark_summarized(self) -> None:
        self.unsummarized = 0
        self.first_unsummarized = None
        self.covered_until = self.reviews[-1].t if self.reviews else None

    @property
    def rating_mean(self) -> float:
        return self.rating_sum / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "r": [[r.review_id, r.t, r.rating, r.text, r.language] for r in self.reviews],
            "n": [self.count, self.rating_sum, self.unsummarized],
            "c": [self.covered_until, self.first_unsummarized],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReviewBuffer:
        count, rating_sum, unsummarized = d["n"]
        covered, first = d["c"]
        return cls(
            reviews=[KeptReview(*r) for r in d["r"]],
            count=count,
            rating_sum=rating_sum,
            unsummarized=unsummarized,
            covered_until=covered,
            first_unsummarized=first,
        )
