"""rating_text_mismatch: stars that contradict the review's own text.

Plain code, no model: the inference stage's sentiment head gives the text's
probabilities of negative, neutral and positive; :func:`rating_mismatch` decides
whether the stars contradict them, under :class:`RatingMismatchSettings` (the cutoffs,
how they were tuned, and their figures are in its docstring).

A top rating (``high_rating`` or more) is held against the text's negative
probability, the lowest (``low_rating`` or less) against its positive one; the
ratings between never flag. The text's sentiment *against* the stars must reach
``min_probability`` and exceed the sentiment *agreeing* with them by ``min_margin``,
so a text that praises and complains at once ("pricey but worth every cent") is not
read as a contradiction. The cutoffs may differ per language (``by_language``).

>>> conf = RatingMismatchSettings()
>>> m = rating_mismatch(5, (0.86, 0.1, 0.04), "en", conf)
>>> m.against, round(m.margin, 2)
('negative', 0.82)
>>> m.reason
'5 stars over negative text: p(negative) 0.86 >= 0.85, exceeding p(positive) by 0.82 >= 0.5'
>>> rating_mismatch(5, (0.45, 0.1, 0.45), "en", conf) is None  # mixed: no margin
True
>>> rating_mismatch(4, (0.95, 0.03, 0.02), "en", conf) is None  # not a top rating
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from memberstream.domain.anomaly.settings import RatingMismatchSettings
from memberstream.domain.language import Language


@dataclass(frozen=True)
class Mismatch:
    """Why a review's stars contradict its text."""

    against: str
    """The text's sentiment that contradicts the stars: "negative" or "positive"."""
    probability: float
    """p(against)."""
    margin: float
    """p(against) - p(agreeing)."""
    min_probability: float
    min_margin: float
    reason: str
    """One line for the analyst."""

    def details(self) -> dict[str, float | str]:
        return {
            "text": self.against,
            "margin": round(self.margin, 6),
            "min_margin": self.min_margin,
            "reason": self.reason,
        }


def rating_mismatch(
    rating: int,
    sentiment: Sequence[float],
    language: Language,
    conf: RatingMismatchSettings,
) -> Mismatch | None:
    """The mismatch of a ``rating`` with the text's ``sentiment`` (negative, neutral,
    positive probabilities) in ``language``, or None when they agree or the rating is
    neither top nor lowest. ``conf.enabled`` and ``conf.languages`` are the caller's."""
    negative, _, positive = (float(p) for p in sentiment)
    if rating >= conf.high_rating:
        (against, p), (agreeing, q) = ("negative", negative), ("positive", positive)
    elif rating <= conf.low_rating:
        (against, p), (agreeing, q) = ("positive", positive), ("negative", negative)
    else:
        return None
    min_probability, min_margin = conf.cutoffs(language)
    margin = p - q
    if p < min_probability or margin < min_margin:
        return None
    reason = (
        f"{rating} stars over {against} text: p({against}) {p:.2f} >= {min_probability:g}, "
        f"exceeding p({agreeing}) by {margin:.2f} >= {min_margin:g}"
    )
    return Mismatch(against, p, margin, min_probability, min_margin, reason)
