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


class OrderVelocitySettings(_Detector):
    """Tiny orders and refunds piling up in minutes (card testing, refund abuse); a
    household placing several ordinary orders at a sale does not count."""

    window_s: float = Field(10 * MINUTE_S, gt=0)
    max_orders: int = Field(
        3, ge=2, description="tiny paid orders plus refunds in the window that raise a flag"
    )
    tiny_total: float = Field(
        20.0,
        ge=0,
        description="paid orders above this total are not counted (stolen cards are tried "
        "on cheap goods); 0 counts every order",
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
        0.8,
        gt=0,
        le=1,
        description="cosine enough between two top ratings from reviewers who never bought "
        "the product: a ring paraphrasing one promotional text (friends who bought it and "
        "praise the same points are held to `similarity`)",
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


class RatingMismatchSettings(_Detector):
    """A review whose stars and text disagree: top stars with clearly negative text, or
    the lowest stars with clearly positive text (sentiment head of the inference stage)."""

    min_probability: float = Field(
        0.8, gt=0.5, le=1, description="the text's opposite sentiment must be at least this sure"
    )
    high_rating: int = Field(5, ge=4, le=5, description="ratings at or above this are 'top'")
    low_rating: int = Field(1, ge=1, le=2, description="ratings at or below this are 'lowest'")
    languages: list[Literal["en", "zh", "other"]] = Field(
        default_factory=lambda: ["en", "zh"],
        description="review languages the sentiment head is trusted on (as "
        "memberstream.domain.language names them; the default head is trained and measured "
        "on real English and Chinese reviews)",
    )


class LearnedScoreSettings(BaseModel):
    """The learned anomaly score over member feature vectors (orders)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True, description="score orders when the model directory holds a trained scorer"
    )
    threshold: float = Field(0.9, gt=0, lt=1, description="probability at or above which to flag")
    top_features: int = Field(4, ge=1, description="feature contributions listed as evidence")


class AnomalySettings(BaseModel):
    """All anomaly detectors; each can be switched off on its own."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="False: no detector runs and no flag is raised")
    max_evidence: int = Field(50, gt=0, description="event ids listed in one flag, at most")
    flag_budget_per_10k_events: float = Field(
        2.0, ge=0, description="flags that normal traffic may raise per 10,000 events"
    )
    flags_kept: int = Field(
        32, gt=0, description="recent flags kept per member or product, to apply feedback to"
    )
    rejected_kept: int = Field(
        256, gt=0, description="event ids of rejected flags kept per member or product"
    )
    click_burst: ClickBurstSettings = Field(default_factory=ClickBurstSettings)
    bot_pattern: BotPatternSettings = Field(default_factory=BotPatternSettings)
    order_value: OrderValueSettings = Field(default_factory=OrderValueSettings)
    order_velocity: OrderVelocitySettings = Field(default_factory=OrderVelocitySettings)
    review_bombing: ReviewBombingSettings = Field(default_factory=ReviewBombingSettings)
    review_duplicate: ReviewDuplicateSettings = Field(default_factory=ReviewDuplicateSettings)
    rating_text_mismatch: RatingMismatchSettings = Field(default_factory=RatingMismatchSettings)
    learned: LearnedScoreSettings = Field(default_factory=LearnedScoreSettings)
