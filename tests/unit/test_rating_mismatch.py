"""rating_text_mismatch: the rule on the sentiment head's probabilities (cutoffs, margin,
per-language overrides), then single reviews through the processors with the default
models: understated complaints under 5 stars flag in English and Chinese with the reason
in the flag, honest mixed reviews do not, and 1 star over praise flags."""

from __future__ import annotations

import doctest
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES
from memberstream.domain.anomaly import rating_mismatch as rule
from memberstream.domain.anomaly.rating_mismatch import rating_mismatch
from memberstream.domain.anomaly.settings import RatingMismatchSettings
from memberstream.ml.inference import InferenceStage
from memberstream.schemas.events import ReviewEvent

T0 = datetime(2025, 5, 1, 9, tzinfo=UTC)
CONF = RatingMismatchSettings(by_language={})
"""The shared cutoffs alone (the defaults raise English's probability, tested below)."""


# -- the rule ------------------------------------------------------------------------------


def test_the_module_examples_hold() -> None:
    result = doctest.testmod(rule)
    assert result.attempted >= 3 and result.failed == 0


def test_a_top_rating_over_negative_text_flags_with_its_reason() -> None:
    m = rating_mismatch(5, (0.85, 0.1, 0.05), "en", CONF)
    assert m is not None
    assert (m.against, m.probability, m.min_probability) == ("negative", 0.85, 0.8)
    assert m.margin == pytest.approx(0.8)
    details = m.details()
    assert details["text"] == "negative" and details["min_margin"] == 0.5
    assert "p(negative) 0.85 >= 0.8" in str(details["reason"])
    assert "p(positive) by 0.80" in str(details["reason"])


def test_the_lowest_rating_over_positive_text_flags() -> None:
    m = rating_mismatch(1, (0.05, 0.15, 0.8), "zh", CONF)
    assert m is not None and m.against == "positive" and m.probability == 0.8


def test_text_that_praises_and_complains_has_no_margin() -> None:
    # With a looser probability (the margin cannot bind at the default 0.8: p(against)
    # >= 0.8 leaves p(agreeing) <= 0.2): sure enough of the complaint, but nearly as sure
    # of the praise.
    loose = RatingMismatchSettings(min_probability=0.6, by_language={})
    assert rating_mismatch(5, (0.62, 0.0, 0.38), "en", loose) is None
    assert rating_mismatch(5, (0.62, 0.26, 0.12), "en", loose) is not None


def test_an_unsure_text_does_not_flag() -> None:
    assert rating_mismatch(5, (0.79, 0.21, 0.0), "en", CONF) is None
    assert rating_mismatch(5, (0.8, 0.2, 0.0), "en", CONF) is not None


@pytest.mark.parametrize("rating", [2, 3, 4])
def test_middle_ratings_never_flag(rating: int) -> None:
    assert rating_mismatch(rating, (0.98, 0.01, 0.01), "en", CONF) is None
    assert rating_mismatch(rating, (0.01, 0.01, 0.98), "en", CONF) is None


def test_the_default_cutoffs_per_language() -> None:
    # From the real-review sweep (bench.mismatch --sweep --split traffic): English 0.85,
    # the rest the shared 0.8.
    conf = RatingMismatchSettings()
    assert conf.cutoffs("en") == (0.85, 0.5)
    assert conf.cutoffs("zh") == conf.cutoffs("other") == (0.8, 0.5)
    assert rating_mismatch(5, (0.82, 0.1, 0.08), "en", conf) is None
    assert rating_mismatch(5, (0.82, 0.1, 0.08), "zh", conf) is not None


def test_per_language_overrides_replace_only_what_they_name() -> None:
    conf = RatingMismatchSettings.model_validate(
        {"by_language": {"zh": {"min_probability": 0.6, "min_margin": 0.2}}}
    )
    assert conf.cutoffs("zh") == (0.6, 0.2)
    assert conf.cutoffs("en") == (0.8, 0.5)
    probs = (0.62, 0.0, 0.38)  # margin 0.24
    assert rating_mismatch(5, probs, "zh", conf) is not None
    assert rating_mismatch(5, probs, "en", conf) is None
    strict = RatingMismatchSettings.model_validate(
        {"by_language": {"en": {"min_probability": 0.9}}}
    )
    assert strict.cutoffs("en") == (0.9, 0.5)
    m = rating_mismatch(5, (0.95, 0.05, 0.0), "en", strict)
    assert m is not None and m.min_probability == 0.9


@pytest.mark.parametrize(
    "bad",
    [
        {"by_language": {"fr": {"min_margin": 0.2}}},
        {"by_language": {"zh": {"min_probability": 0.4}}},
        {"by_language": {"zh": {"margin": 0.2}}},
        {"min_margin": 1.5},
        {"min_probability": 0.5},
    ],
)
def test_bad_cutoffs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RatingMismatchSettings.model_validate(bad)


# -- through the processors with the default models ------------------------------------------


def _flags(
    stage: InferenceStage, rating: int, text: str, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """The mismatch flags of one review, its language left for the detector to find."""
    run = OfflineRun(settings or Settings(), stage)
    run.apply(
        ReviewEvent(
            event_id="r1",
            member_id="m1",
            occurred_at=T0 + timedelta(days=3),
            product_id="p1",
            rating=rating,
            title="",
            text=text,
        )
    )
    return [f for f in run.outputs[ANOMALIES] if f["kind"] == "rating_text_mismatch"]


ZH_LOOSER = {"by_language": {"zh": {"min_probability": 0.6}}}


@pytest.mark.parametrize(
    ("text", "language", "conf"),
    [
        ("It stopped charging after a week, not what I hoped for.", "en", {}),
        # The head reads real Chinese complaints less surely: a platform may lower the
        # Chinese cutoff (bench.mismatch --sweep shows what it costs in precision).
        ("用了两天就不亮了，有点失望。", "zh", ZH_LOOSER),
    ],
)
def test_an_understated_complaint_under_five_stars_flags(
    default_stage: InferenceStage, text: str, language: str, conf: dict[str, Any]
) -> None:
    settings = Settings(anomaly={"rating_text_mismatch": conf})
    (flag,) = _flags(default_stage, 5, text, settings)
    details = flag["details"]
    assert flag["member_id"] == "m1" and flag["evidence"] == ["r1"]
    assert details["text"] == "negative" and details["language"] == language
    assert details["rating"] == 5 and details["product_id"] == "p1"
    assert str(details["reason"]).startswith("5 stars over negative text: p(negative)")
    cutoffs = settings.anomaly.rating_text_mismatch.cutoffs(language)
    assert flag["score"] >= flag["threshold"] == cutoffs[0]
    assert details["margin"] >= details["min_margin"] == cutoffs[1]


@pytest.mark.parametrize(
    ("rating", "text"),
    [
        (5, "Pricey, but worth every cent."),
        (5, "有点贵，但是物有所值。"),
        (4, "Good, though the cable is a bit short."),
        (2, "Looks nice, but it broke after two days."),
    ],
)
def test_an_honest_mixed_review_does_not_flag(
    default_stage: InferenceStage, rating: int, text: str
) -> None:
    assert _flags(default_stage, rating, text) == []


def test_one_star_over_praise_flags(default_stage: InferenceStage) -> None:
    (flag,) = _flags(default_stage, 1, "Absolutely love it, works perfectly and looks great!")
    assert flag["details"]["text"] == "positive"
    assert str(flag["details"]["reason"]).startswith("1 stars over positive text")
