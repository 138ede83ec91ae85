"""Thresholds and windows of the anomaly detectors (``[anomaly]`` in the config file).

Every duration is event time, in seconds. The defaults keep the false-positive
rate on normal synthetic traffic under ``flag_budget_per_10k_events`` (checked
by the tests and reported by ``python -m bench.anomalies``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86_400.0


class _Detector(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    cooldown_s: float = Field(
        1800.0, ge=0, description="after a flag, the same kind is not raised again for this long"
    )


class ClickBurstSettings(_Detector):
    """Clicks in a sliding window far above the member's own baseline and a global cap."""

    window_s: float = Field(MINUTE_S, gt=0)
    min_clicks: int = Field(
        20, gt=0, description="global cap: fewer clicks than this in the window never flag"
    )
    baseline_multiplier: float = Field(
        5.0, gt=1, description="flag only above this multiple of the member's baseline"
    )
    baseline_alpha: float = Field(
        0.05,
        gt=0,
        le=1,
        description="EWMA weight of the clicks-in-window baseline per window_s of clicking: a "
        "click weighs baseline_alpha * min(time since the previous click / window_s, 1), so a "
        "burst of many clicks teaches the baseline no more than one slow click would",
    )
    human_cv: float = Field(
        0.3,
        gt=0,
        description="a window whose click gaps vary more than this (coefficient of "
        "variation), or that holds an add-to-cart, is a person shopping fast: not flagged "
        "below hard_cap",
    )
    hard_cap: int = Field(
        90, gt=0, description="clicks in the window that flag whatever the rhythm or funnel"
    )


class BotPatternSettings(_Detector):
    """Machine-regular inter-click intervals, or too many distinct products per minute."""

    min_intervals: int = Field(15, ge=3, description="consecutive intervals the regularity needs")
    max_cv: float = Field(
        0.12,
        gt=0,
        description="coefficient of variation of the intervals at or below which "
        "clicks count as machine-regular",
    )
    max_mean_interval_s: float = Field(
        20.0, gt=0, description="regular but slower than this is not a bot pattern"
    )
    session_gap_s: float = Field(300.0, gt=0, description="a longer gap starts a new run")
    distinct_products_per_min: int = Field(
        15, gt=0, description="distinct products viewed within one minute that flag"
    )
    sustain_s: float = Field(
        120.0,
        ge=60,
        description="the distinct-products signal must hold this long (that many minutes' "
        "worth of distinct products within it) with no add-to-cart: opening a page of "
        "results in tabs is one burst, walking the catalogue goes on",
    )
    max_walk_cv: float = Field(
        0.3,
        gt=0,
        description="and at a steady pace: the coefficient of variation of its click gaps at "
        "most this (a script's gaps barely vary, a person's vary about as much as they last)",
    )


class OrderValueSettings(_Detector):
    """An order total far outside the member's own history (robust, in log space)."""

    history: int = Field(20, ge=3, description="paid order totals kept per member")
    min_history: int = Field(
        3, ge=1, description="orders needed before the member's own baseline is used"
    )
    z_threshold: float = Field(
        3.5, gt=0, description="robust z-score of log(total) against the member's history"
    )
    min_scale: float = Field(
        0.5, gt=0, description="floor of the robust log-space scale (MAD x 1.4826)"
    )
    min_total: float = Field(
        1500.0,
        ge=0,
        description="orders below this total never flag as outliers; from the false-alert "
        "target: on normal synthetic traffic 400 gives 1.3 order_value alerts per 10,000 events, "
        "800 gives 0.6, 1,200 gives 0.4, 1,500 gives 0.1 (takeovers of a few hundred dollars "
        "look like a member's one large purchase by value alone)",
    )
    population_cap: float = Field(
        3000.0,
        gt=0,
        description="an order at or above this total flags when the member has "
        "too little history for a baseline (e.g. a first order)",
    )
    new_instrument_min_total: float = Field(
        250.0,
        ge=0,
        description="the floor instead of min_total for an order paid with a payment_ref the "
        "member has never used and sent to a shipping_ref (or from a device_ref) it has never "
        "used either, once the member has new_instrument_min_orders orders that carried a "
        "payment_ref; the robust z against the member's own history still has to reach "
        "z_threshold (a takeover at 5-10x a $50 median is a $250-500 order on a stranger's "
        "card to a stranger's address; a member adding one new card is not held to it)",
    )
    new_instrument_min_orders: int = Field(
        3,
        ge=1,
        description="paid orders with a payment_ref a member needs before new references "
        "lower the floor (a member whose platform sends no references is never affected)",
    )


class OrderVelocitySettings(_Detector):
    """Tiny orders, refunds and new cards piling up in minutes (card testing, refund
    abuse); a household placing several ordinary orders at a sale does not count."""

    window_s: float = Field(10 * MINUTE_S, gt=0)
    max_orders: int = Field(
        3,
        ge=2,
        description="tiny paid orders plus refunds plus orders on a new payment_ref in the "
        "window that raise a flag",
    )
    tiny_total: float = Field(
        20.0,
        ge=0,
        description="paid orders above this total are not counted (stolen cards are tried "
        "on cheap goods); 0 counts every order",
    )
    new_payment_refs: bool = Field(
        True,
        description="also count each distinct payment_ref the member had never used, "
        "whatever the order's total (card testing tries several cards); one new card "
        "counts once",
    )
    cooldown_s: float = Field(HOUR_S, ge=0)


class ReviewBombingSettings(_Detector):
    """A burst of low ratings on one product against the product's own baseline."""

    cooldown_s: float = Field(
        1800.0,
        ge=0,
        description="not used: at most one flag per product and bucket instead, "
        "which unlike a cooldown does not depend on arrival order",
    )
    bucket_s: float = Field(DAY_S, gt=0, description="tumbling event-time window per product")
    low_rating: int = Field(2, ge=1, le=4, description="ratings at or below this count as low")
    min_low: int = Field(8, ge=2, description="low ratings in one window needed to flag")
    min_low_share: float = Field(
        0.6, gt=0, le=1, description="share of the window's reviews that must be low"
    )
    baseline_buckets: int = Field(28, ge=1, description="past windows the baseline averages")
    baseline_multiplier: float = Field(
        4.0, gt=1, description="low ratings must exceed this multiple of the baseline"
    )
    spread_s: float = Field(
        4 * DAY_S,
        gt=0,
        description="sliding window of the second signal: low ratings from reviewers who "
        "never bought the product, however they are spread over the days",
    )
    min_unverified_low: int = Field(
        5, ge=2, description="such low ratings within spread_s that flag (one flag per episode)"
    )
    unverified_alpha: float = Field(
        0.001,
        gt=0,
        lt=1,
        description="and they must be this improbable (binomial tail) given the product's own "
        "share of low ratings among non-buyers' earlier reviews: a product whose unverified "
        "reviews are simply mixed (imported or off-platform reviews, half of them low) is "
        "not being bombed. On the demo's 4,384 real reviews from non-buyers (48% low, spread "
        "over 150 products and 30 days), 0.005 / 0.002 / 0.001 raise 18 / 4 / 2 flags; on "
        "a product without history 0.001 takes 6 low ratings in a row, or 8 of 9",
    )
    unverified_prior_share: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="that share for a product without such history (a prior, worth "
        "unverified_prior_reviews reviews)",
    )
    unverified_prior_reviews: float = Field(10.0, gt=0)
    unverified_half_life_days: float = Field(
        30.0, gt=0, description="half-life of the earlier non-buyer reviews in that share"
    )


class ReviewDuplicateSettings(_Detector):
    """Near-duplicate review texts from different members on one product within a window."""

    cooldown_s: float = Field(
        1800.0,
        ge=0,
        description="not used: at most one flag per product and bucket instead, "
        "which unlike a cooldown does not depend on arrival order",
    )
    window_s: float = Field(3 * DAY_S, gt=0, description="reviews compared with each other")
    bucket_s: float = Field(
        7 * DAY_S, gt=0, description="at most one flag per product per tumbling window of this"
    )
    min_chars: int = Field(40, ge=1, description="shorter reviews are never compared")
    similarity: float = Field(
        0.95, gt=0, le=1, description="cosine similarity of the embeddings counted as a copy"
    )
    promo_similarity: float = Field(
        0.7,
        gt=0,
        le=1,
        description="cosine enough between two top ratings from reviewers who never bought "
        "the product: a ring paraphrasing one promotional text (friends who bought it and "
        "praise the same points are held to `similarity`). Follows the encoder; for the "
        "default one, the lowest value at which 3 genuine reviews of one product form a "
        "cluster at most 1% of the time (bench/results/paraphrase_rings.md)",
    )
    promo_rating: int = Field(4, ge=1, le=5, description="ratings at or above this are 'top'")
    min_members: int = Field(3, ge=2, description="distinct members posting the same text")
    max_recent: int = Field(200, gt=0, description="recent reviews kept per product")
    allowed_lateness_s: float = Field(
        DAY_S,
        ge=0,
        description="reviews are kept this long beyond window_s, so one arriving up to this "
        "far behind the product's newest review still meets its copies (within it, flags "
        "do not depend on arrival order)",
    )


class MismatchCutoffs(BaseModel):
    """One language's cutoffs of rating_text_mismatch; a field left out keeps the shared one."""

    model_config = ConfigDict(extra="forbid")

    min_probability: float | None = Field(None, gt=0.5, le=1)
    min_margin: float | None = Field(None, ge=-1, le=1)


class RatingMismatchSettings(_Detector):
    """A review whose stars and text disagree: top stars over negative text, or the
    lowest stars over positive text (sentiment head of the inference stage; the rule is
    :func:`memberstream.domain.anomaly.rating_mismatch.rating_mismatch`).

    With the sentiment head's probabilities of the text, ``against`` the sentiment the
    stars claim (negative under top stars, positive under the lowest) and ``agreeing``
    with it, a review flags when ``against >= min_probability`` and ``against - agreeing
    >= min_margin``. The margin keeps out texts that hold both (praise and complaint:
    "pricey but worth every cent"); the probability floor keeps out texts the head is
    unsure of. ``by_language`` may override either per language.

    Tuned on family a only (``memberstream.datasets.anomalies``: the ``rating_mismatch``
    scenario, half obvious and half understated texts, and ``hn_honest_mixed_reviews``,
    honest mixed reviews, over the background reviews), on four seeds (13-16: 844
    mismatches, 1,664 benign 1- and 5-star reviews), then checked on the benchmark's seed
    12. The earlier single cutoff, ``against >= 0.8``, caught 57% of the mismatches (32% of
    the understated ones) with 3.5 false alerts per seed. ``min_probability 0.6,
    min_margin 0.5`` catches 82% (obvious 96%, understated 66%; English 79%, Chinese 84%)
    at precision 0.96 and 6.5 false alerts per seed (seed 12: 81%, obvious 97%,
    understated 69%, precision 0.96, 8 false alerts, 0.63 per 10,000 benign events).
    Dropping the margin (0.6 alone) adds 1.3 false alerts per seed for 1% more recall;
    0.5 / 0.3 reaches 87% at twice the false alerts. Per language: the best pairs for
    English and for Chinese fall on the shared pairs' curve (English 0.6 / 0.5 with
    Chinese 0.5 / 0.4: 84.0% at 7.8 false alerts per seed; shared 0.55 / 0.4: 84.7% at
    8.5), the calibration does not differ enough to pay, so ``by_language`` is empty.
    The false alerts that remain are texts the head reads the wrong way with confidence
    (0.7-0.9): "Exactly as described, would buy again" read as negative, "the colour is
    pretty, that's about the only good thing I can say" as positive, "说明书写得很差，
    东西是真的好" (poor manual, good product) as negative; no cutoff below 0.9 avoids them.
    Real reviews decide ``min_probability``: family a's texts are ours, and the head reads
    real ones less surely. On the platform-traffic part of the real corpora, which the
    shipped head never saw (``python -m bench.mismatch --sweep --split traffic``: 516
    English and 3,375 Chinese polar reviews, 10% injected), 0.6 / 0.5 flags at precision
    0.75 (18.7 false alarms per 1,000 consistent reviews); the rule fixed before looking,
    the most recall at precision >= 0.9, picks 0.8 in both languages (precision 0.92,
    recall 0.21; English 0.42, Chinese 0.18; 2.0 false alarms per 1,000), so the default
    is 0.8. At 0.8 the margin cannot bind (p(against) >= 0.8 leaves p(agreeing) <= 0.2);
    it stays for looser cutoffs, per language or platform-wide. What limits recall on
    real text is the head's confidence, not the cutoff. The same rule, run again for the
    head trained with the movie snippets as an auxiliary domain (``sentiment@2d7494cfc903``),
    keeps 0.8 for Chinese (precision 0.92, recall 0.18) and picks 0.85 for English
    (precision 0.95, recall 0.36; at 0.8 it had 0.87), hence the English override.
    """

    min_probability: float = Field(
        0.8,
        gt=0.5,
        le=1,
        description="the text's sentiment against the stars must be at least this sure",
    )
    min_margin: float = Field(
        0.5,
        ge=-1,
        le=1,
        description="and at least this far above the sentiment that agrees with the stars "
        "(p(against) - p(agreeing)); -1 turns the margin off",
    )
    by_language: dict[Literal["en", "zh", "other"], MismatchCutoffs] = Field(
        default_factory=lambda: {"en": MismatchCutoffs(min_probability=0.85)},
        description="per-language overrides of min_probability and min_margin, e.g. "
        "{zh = {min_margin = 0.4}}; a language not listed uses the shared ones",
    )
    high_rating: int = Field(5, ge=4, le=5, description="ratings at or above this are 'top'")
    low_rating: int = Field(1, ge=1, le=2, description="ratings at or below this are 'lowest'")
    languages: list[Literal["en", "zh", "other"]] = Field(
        default_factory=lambda: ["en", "zh"],
        description="review languages the sentiment head is trusted on (as "
        "memberstream.domain.language names them; the default head is trained and measured "
        "on real English and Chinese reviews)",
    )

    def cutoffs(self, language: Literal["en", "zh", "other"]) -> tuple[float, float]:
        """``(min_probability, min_margin)`` for a review in ``language``."""
        own = self.by_language.get(language)
        if own is None:
            return self.min_probability, self.min_margin
        return (
            self.min_probability if own.min_probability is None else own.min_probability,
            self.min_margin if own.min_margin is None else own.min_margin,
        )


class LearnedScoreSettings(BaseModel):
    """The learned anomaly score over member feature vectors (orders)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True, description="score orders when the model directory holds a trained scorer"
    )
    threshold: float = Field(0.9, gt=0, lt=1, description="probability at or above which to flag")
    top_features: int = Field(4, ge=1, description="feature contributions listed as evidence")


class AdaptiveBaselineSettings(BaseModel):
    """A member's own allowances, moved only by analysts' false_positive verdicts on
    order_value_outlier and click_burst flags (memberstream.domain.anomaly.adaptive)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="False: verdicts never move a member's limits")
    margin: float = Field(
        0.1, ge=0, le=1, description="an allowance sits this share above what the flag measured"
    )
    max_factor: float = Field(
        2.0,
        ge=1,
        description="an allowance is at most this multiple of the detector's own limit when "
        "the rejected flag was raised (never of an earlier allowance)",
    )
    max_order_total: float = Field(
        10_000.0, gt=0, description="hard cap: an order-value allowance never exceeds this total"
    )
    max_kept: int = Field(
        4, ge=1, le=16, description="allowances kept per member; a new one drops the first to lapse"
    )
    expire_days: float = Field(
        30.0, gt=0, description="an allowance lapses this many days after the rejected flag"
    )


class AnomalySettings(BaseModel):
    """All anomaly detectors; each can be switched off on its own."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="False: no detector runs and no flag is raised")
    max_evidence: int = Field(50, gt=0, description="event ids listed in one flag, at most")
    flag_budget_per_10k_events: float = Field(
        2.0, ge=0, description="flags that normal traffic may raise per 10,000 events"
    )
    target_false_alerts_per_10k: float = Field(
        1.0,
        gt=0,
        description="false alerts per 10,000 benign events all kinds together may raise; "
        "split equally among the kinds, it sets each kind's threshold "
        "(memberstream.domain.anomaly.calibration; recorded by bench.anomalies)",
    )
    flags_kept: int = Field(
        32, gt=0, description="recent flags kept per member or product, to apply feedback to"
    )
    rejected_kept: int = Field(
        256, gt=0, description="event ids of rejected flags kept per member or product"
    )
    refs_kept: int = Field(
        8,
        ge=1,
        le=16,
        description="payment, shipping and device references (PurchaseEvent.payment_ref, "
        "shipping_ref, device_ref) remembered per member and kind, from its paid orders: "
        "the ones it used last",
    )
    click_burst: ClickBurstSettings = Field(default_factory=ClickBurstSettings)
    bot_pattern: BotPatternSettings = Field(default_factory=BotPatternSettings)
    order_value: OrderValueSettings = Field(default_factory=OrderValueSettings)
    order_velocity: OrderVelocitySettings = Field(default_factory=OrderVelocitySettings)
    review_bombing: ReviewBombingSettings = Field(default_factory=ReviewBombingSettings)
    review_duplicate: ReviewDuplicateSettings = Field(default_factory=ReviewDuplicateSettings)
    rating_text_mismatch: RatingMismatchSettings = Field(default_factory=RatingMismatchSettings)
    learned: LearnedScoreSettings = Field(default_factory=LearnedScoreSettings)
    adaptive: AdaptiveBaselineSettings = Field(default_factory=AdaptiveBaselineSettings)
