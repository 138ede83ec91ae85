"""Precision-recall curves of the anomaly detectors, from one run with lowered thresholds.

A detector only raises flags at or above its threshold, so a curve needs the
candidates below it. :func:`lowered` scales every threshold of the default
:class:`~memberstream.domain.anomaly.settings.AnomalySettings` down (counts, z-scores
and totals by ``scale``, the bot regularity limit ``max_cv`` up by ``1 / scale``,
probabilities by ``scale``) and turns off what would hide candidates: the member
detectors' cooldowns, and review_duplicate's once-per-week bucket (one-minute
buckets instead, so each new copy raises a flag with the cluster grown). One run
with these settings gives the candidates; :func:`strength` puts each on a common
scale (:data:`STRENGTHS`): 1.0 is the default threshold for count and z-score
kinds, the probability itself for probability kinds. Sweeping a cutoff over it
(:func:`memberstream.domain.anomaly.evaluation.pr_curve`), with the default
cooldowns and buckets applied again to the candidates above the cutoff
(:func:`suppression`), approximates what the detectors would flag with their
thresholds at that cutoff.

Approximate, because state depends on earlier flags: click_burst does not learn
its baseline from a flagged click (so under lowered thresholds its baseline grows
more slowly), order_value_outlier keeps outliers out of the member's history (more
of them under lowered thresholds), a cooldown started by a weak candidate is not
modelled beyond the suppression above, bot_pattern reports the regularity signal
when both of its signals fire, review_bombing decides on a prefix of its bucket.
Each curve is printed next to the default run's own precision and recall, which
shows how far the point at the default cutoff is off.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from memberstream.domain.anomaly.calibration import (
    PROBABILITY_KINDS,
    probability_offset,
    probability_threshold,
    scale_kind,
    set_probability,
)
from memberstream.domain.anomaly.evaluation import (
    Label,
    PRPoint,
    Scored,
    Suppress,
    cooldown,
    once_per_bucket,
    pr_curve,
)
from memberstream.domain.anomaly.flags import KINDS
from memberstream.domain.anomaly.settings import AnomalySettings
from memberstream.schemas.events import Envelope, ReviewEvent

CURVE_SCALE = 0.5
"""Thresholds of the curve run, as a fraction of the defaults."""
DUPLICATE_BUCKET_S = 60.0
"""review_duplicate's bucket in the curve run (the default flags once per week)."""
MAX_STRENGTH = 100.0
BOT_MINUTE_S = 60.0
"""bot_pattern's distinct-products minute."""
PROBABILITY_FLOORS = {"learned_score": 0.01, "rating_text_mismatch": 0.51}
"""The lowest probability the curve run goes to (the mismatch setting's own floor)."""

STRENGTHS: Mapping[str, str] = {
    "click_burst": "clicks in the window / max(min_clicks, baseline_multiplier x baseline), "
    "or / hard_cap when the window has an add-to-cart or gaps with cv above human_cv",
    "bot_pattern": "max_cv / cv of the intervals (regular signal); min(distinct products in "
    "the minute / distinct_products_per_min, distinct products in sustain_s / what it needs) "
    "(distinct signal)",
    "order_value_outlier": "min(z / z_threshold, total / min_total) with a baseline "
    "(new_instrument_min_total for a new card to a new address or from a new device); "
    "total / population_cap without",
    "order_velocity": "orders and refunds in the window / max_orders",
    "review_bombing": "min(low / threshold, low share / min_low_share) of the flagged bucket "
    "at its end (counted from the stream; the detector flags a bucket once, when it first "
    "crosses, so its own score is the threshold); spread signal: non-buyers' low ratings / "
    "min_unverified_low",
    "review_duplicate": "members posting the copy / min_members",
    "learned_score": "the scorer's probability",
    "rating_text_mismatch": "the sentiment head's probability of the opposite sentiment",
}
"""What each kind's curve sweeps; the defaults in each formula."""


def lowered(settings: AnomalySettings, scale: float = CURVE_SCALE) -> AnomalySettings:
    """``settings`` with every detector's threshold scaled down by ``scale`` (0 < scale <= 1)
    and the cooldowns and buckets that hide candidates turned off."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale {scale} not in (0, 1]")
    d = settings.model_dump()
    for kind in KINDS:  # scale_kind leaves the probability kinds to set_probability
        scale_kind(d, kind, scale)
    for kind in ("click_burst", "bot_pattern", "order_value", "order_velocity"):
        d[kind]["cooldown_s"] = 0.0
    d["review_duplicate"]["bucket_s"] = DUPLICATE_BUCKET_S
    for kind in PROBABILITY_KINDS:
        set_probability(d, kind, lowest_cutoff(kind, settings, scale))
    return AnomalySettings.model_validate(d)


class ReviewBuckets:
    """Reviews and low reviews per (product, review_bombing bucket), from the stream."""

    def __init__(self, events: Iterable[Envelope], settings: AnomalySettings) -> None:
        rb = settings.review_bombing
        self.counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        for event in events:
            if isinstance(event, ReviewEvent):
                b = math.floor(event.occurred_at.timestamp() / rb.bucket_s)
                c = self.counts[(event.product_id, b)]
                c[0] += 1
                c[1] += event.rating <= rb.low_rating

    def at(self, product_id: str, window_start: float, bucket_s: float) -> tuple[int, int]:
        """(reviews, low reviews) of the bucket ``window_start`` falls in."""
        c = self.counts.get((product_id, math.floor(window_start / bucket_s)))
        return (0, 0) if c is None else (c[0], c[1])


def _epoch(value: Any) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def _click_limit(details: Mapping[str, Any], d: AnomalySettings) -> float:
    """click_burst's default limit for the flagged window: the baseline's, or ``hard_cap``
    when the window looks like a person (an add-to-cart, or irregular gaps)."""
    cb = d.click_burst
    baseline = float(details["baseline"])
    limit = min(max(float(cb.min_clicks), cb.baseline_multiplier * baseline), 256.0)
    hard_cap = getattr(cb, "hard_cap", None)
    human_cv = getattr(cb, "human_cv", None)
    if hard_cap is None:
        return limit
    cv = float(details.get("cv", -1.0))
    human = int(details.get("add_to_cart", 0)) > 0 or (
        human_cv is not None and cv >= 0 and cv > human_cv
    )
    return max(limit, float(hard_cap)) if human else limit


def strength(flag: Mapping[str, Any], d: AnomalySettings, reviews: ReviewBuckets) -> float:
    """The flag's strength on its kind's curve (:data:`STRENGTHS`), ``d`` the defaults."""
    kind, score, details = flag["kind"], float(flag["score"]), flag.get("details", {})
    if kind in PROBABILITY_KINDS:  # a language with its own cutoff: against the shared one
        return score - probability_offset(d, kind, details.get("language"))
    if kind == "click_burst":
        value = score / _click_limit(details, d)
    elif kind == "bot_pattern":
        bp = d.bot_pattern
        if details.get("signal") == "regular_intervals":
            value = bp.max_cv / max(float(details["cv"]), 1e-9)
        else:  # distinct products: in the last minute, and (if set) sustained
            sustain = getattr(bp, "sustain_s", BOT_MINUTE_S)
            needed = math.ceil(bp.distinct_products_per_min * sustain / BOT_MINUTE_S)
            walked = float(details.get("distinct_products", score))
            minute = float(details.get("distinct_last_minute", walked))
            value = min(minute / bp.distinct_products_per_min, walked / needed)
    elif kind == "order_value_outlier":
        ov = d.order_value
        if details.get("reason") == "member_baseline":
            value = score / ov.z_threshold
            floor = ov.min_total
            if details.get("floor") == "new_instrument":  # a new card to a new address
                floor = min(floor, ov.new_instrument_min_total)
            if floor > 0:
                value = min(value, float(details["total"]) / floor)
        else:
            value = score / ov.population_cap
    elif kind == "order_velocity":
        value = score / d.order_velocity.max_orders
    elif kind == "review_bombing" and details.get("signal") == "unverified_low_spread":
        value = score / d.review_bombing.min_unverified_low
    elif kind == "review_bombing":
        rb = d.review_bombing
        n, low = reviews.at(flag["product_id"], _epoch(flag["window_start"]), rb.bucket_s)
        limit = rb.baseline_multiplier * max(float(details["baseline"]), 0.5)
        threshold = max(rb.min_low, math.floor(limit) + 1)
        value = min(low / threshold, (low / n if n else 0.0) / rb.min_low_share)
    elif kind == "review_duplicate":
        value = score / d.review_duplicate.min_members
    else:
        value = score / float(flag["threshold"])
    return min(value, MAX_STRENGTH)


def suppression(kind: str, d: AnomalySettings) -> Suppress | None:
    """The default rule that holds back repeats of ``kind`` (turned off in the curve run)."""
    cooldowns = {
        "click_burst": d.click_burst.cooldown_s,
        "bot_pattern": d.bot_pattern.cooldown_s,
        "order_value_outlier": d.order_value.cooldown_s,
        "order_velocity": d.order_velocity.cooldown_s,
    }
    if kind in cooldowns:
        return cooldown(cooldowns[kind])
    if kind == "review_duplicate":
        return once_per_bucket(d.review_duplicate.bucket_s)
    return None  # review_bombing: one flag per bucket in both runs; probabilities: per event


def default_cutoff(kind: str, d: AnomalySettings) -> float:
    """Where the default thresholds sit on the kind's curve."""
    return probability_threshold(d, kind) if kind in PROBABILITY_KINDS else 1.0


def lowest_cutoff(kind: str, d: AnomalySettings, scale: float) -> float:
    """Where the curve run's thresholds sit on the kind's curve (as :func:`lowered` sets them)."""
    if kind in PROBABILITY_KINDS:
        return max(PROBABILITY_FLOORS[kind], probability_threshold(d, kind) * scale)
    return scale


def cutoffs(kind: str, d: AnomalySettings, scale: float) -> list[float]:
    """The cutoffs swept: from the curve run's threshold up, the default among them."""
    start = lowest_cutoff(kind, d, scale)
    if kind in PROBABILITY_KINDS:
        grid = [start, *(k / 20 for k in range(1, 20) if k / 20 > start), 0.97, 0.98, 0.99]
    else:
        grid = [start, *(k / 20 for k in range(1, 31) if k / 20 > start), 1.75, 2.0, 2.5, 3.0]
    return sorted({round(c, 4) for c in [*grid, default_cutoff(kind, d)]})


def curves(
    candidates: Sequence[Mapping[str, Any]],
    labels: Sequence[Label],
    events: Sequence[Envelope],
    d: AnomalySettings,
    scale: float,
    kinds: Iterable[str],
) -> dict[str, dict[str, Any]]:
    """Per kind: its curve points over the curve run's ``candidates`` (every flag record,
    repeats included), the default cutoff and what the strength is."""
    reviews = ReviewBuckets(events, d)
    scored: dict[str, list[Scored]] = defaultdict(list)
    for flag in candidates:
        scored[flag["kind"]].append((strength(flag, d, reviews), flag))
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        points: list[PRPoint] = pr_curve(
            scored.get(kind, []),
            labels,
            kind,
            cutoffs(kind, d, scale),
            len(events),
            suppression(kind, d),
        )
        out[kind] = {
            "strength": STRENGTHS.get(kind, "score / threshold"),
            "default_cutoff": default_cutoff(kind, d),
            "candidates": len(scored.get(kind, [])),
            "points": [p._asdict() for p in points],
        }
    return out
