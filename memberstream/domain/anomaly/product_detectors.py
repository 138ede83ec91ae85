"""Per-product anomaly detectors: review bombing and duplicated review texts.

Plain code, no Kafka: the product agent keeps one :class:`ProductAnomalyState`
per product and calls :meth:`ProductDetectors.on_review` for each review
(:class:`ProductReview`), which updates the state and returns the flag
candidates (subject ``"product"``). All windows are event time.

review_bombing
    Tumbling windows of ``bucket_s`` (bucket ``floor(t / bucket_s)``). Per bucket
    the state counts all and low (rating at most ``low_rating``) reviews, for the
    latest ``baseline_buckets + 1`` buckets. A bucket flags once when its low
    count reaches ``max(min_low, floor(limit) + 1)`` with ``limit =
    baseline_multiplier * max(baseline, 0.5)``, i.e. ``low >= min_low`` and ``low >
    limit``, and low reviews make at least ``min_low_share`` of the bucket. The
    baseline is the mean low count of the ``baseline_buckets`` buckets before it
    (missing buckets count 0; the 0.5 floor keeps a product with no history from
    flagging on a handful of low ratings).
    Second signal (spread bombing): low ratings from reviewers who never bought the
    product (``verified`` false on the forwarded review: the member's state holds no
    paid order of it), at least ``min_unverified_low`` within a sliding ``spread_s``
    that does not reset at midnight, and improbable (binomial tail below
    ``unverified_alpha``) given the product's own share of low ratings among non-buyers'
    earlier reviews (decayed; a prior for a product without them): a product whose
    unverified reviews are simply mixed is not bombed. Buyers of a defective product do
    not count, and an episode's reviews never join that share. The
    flag's window starts at the bucket of the episode's first such review, and a flag
    of either signal quiets the spread signal for ``spread_s``: one episode, one flag.
review_duplicate
    Reviews with an embedding and at least ``min_chars`` characters are kept
    (``window_s + allowed_lateness_s`` of event time, at most ``max_recent``). The
    near-duplicates of a review are the kept reviews of *other* members within
    ``window_s`` of it whose cosine similarity reaches ``similarity``; a review
    whose near-duplicates and itself span ``min_members`` members is the centre of
    a copy cluster. Two top ratings (``promo_rating``) from reviewers who never bought
    the product count as near-duplicates from ``promo_similarity`` already: a ring
    paraphrasing one promotional text; buyers who praise the same points are held to
    ``similarity``. When a review arrives, it and each of its near-duplicates
    (the only reviews whose neighbourhood grew) are checked as centres. A
    qualifying centre flags its bucket ``floor(t_centre / bucket_s)`` of
    ``bucket_s``, at most once per bucket.

Arrival order. The product agent receives reviews from several upstream
partitions in an order that can differ between runs. The flag id is made of
kind, product and ``window_start``, and ``window_start`` is always a bucket start
(never the time of whichever review happened to complete the pattern), so it does
not depend on that order. Whether a flag is raised:

* review_duplicate is exactly order-independent: the neighbourhood relation is
  symmetric and only grows as reviews arrive, so a centre qualifies in the full
  set iff it qualified when the last member of its neighbourhood arrived, and that
  arrival checks it. The set of flagged buckets is therefore the set of buckets of
  qualifying centres, in every order, provided no review is later than
  ``allowed_lateness_s`` behind the product's newest and at most ``max_recent``
  reviews fall within ``window_s + allowed_lateness_s``. Evidence and score are
  those of the moment the bucket first qualified and may differ between orders.
  A cluster that straddles a bucket boundary may flag both buckets.
* review_bombing decides in real time on the reviews seen so far. A bucket that
  qualifies with all its reviews (and complete previous buckets) is flagged in
  every order: its low count only grows, and a late review can only raise the
  baseline of *later* buckets. The converse does not hold: the share condition
  falls when high ratings arrive, so a bucket that qualifies only on a prefix
  of its reviews (e.g. 8 low ratings, then 10 high ones) may flag in some orders
  only. That is the price of flagging before the bucket ends.

Similarities are computed from the stored form only: embeddings are normalised
(``math.fsum``, correctly rounded) and quantized to float16 on insert, and dot
products of float16 vectors are summed in float64, where every product and
partial sum is exact (multiples of 2^-48 below 32 in magnitude). The cosine is
therefore bit-identical whatever BLAS kernel, summation order or state round
trip, and so is every flag decision.

Reviews are deduplicated by event id (the latest :data:`SEEN_KEPT` ids): a review
delivered again changes nothing and returns ``[]``. The ``cooldown_s`` of the
review settings is not used: once per (product, bucket) takes its place, and
unlike a cooldown it does not depend on arrival order.
"""

from __future__ import annotations

import base64
import binascii
import math
from bisect import insort
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from memberstream.domain.anomaly.flags import Candidate
from memberstream.domain.anomaly.settings import DAY_S, AnomalySettings
from memberstream.schemas.events import ReviewEvent

__all__ = [
    "SEEN_KEPT",
    "KeptReview",
    "ProductAnomalyState",
    "ProductDetectors",
    "ProductReview",
    "quantize",
]

STATE_VERSION = 1
SEEN_KEPT = 512
"""Event ids remembered per product for deduplication."""
OTHER_KEPT = 256
"""review_bombing (spread): non-buyers' higher ratings remembered per product."""
BASELINE_FLOOR = 0.5
"""review_bombing: the baseline (low reviews per bucket) is at least this."""


@dataclass(frozen=True, eq=False)
class ProductReview:
    """One review as the product detectors see it."""

    event_id: str
    member_id: str
    product_id: str
    t: float
    """Event time, epoch seconds."""
    rating: int
    text_chars: int
    embedding: np.ndarray | None = None
    """Unit-length float32 text embedding; None without a model."""
    verified: bool = True
    """The reviewer's state holds a paid order of the product."""

    @classmethod
    def from_event(cls, event: ReviewEvent, embedding: np.ndarray | None = None) -> ProductReview:
        """From a review event; ``text_chars`` counts title and text joined by a newline."""
        text = "\n".join(p for p in (event.title, event.text) if p)
        return cls(
            event_id=event.event_id,
            member_id=event.member_id,
            product_id=event.product_id,
            t=event.occurred_at.timestamp(),
            rating=event.rating,
            text_chars=len(text),
            embedding=embedding,
        )


class KeptReview(NamedTuple):
    """A review kept for the duplicate detector, with its quantized embedding."""

    t: float
    event_id: str
    member_id: str
    vec: np.ndarray
    """Unit vector as little-endian float16 (read-only after a round trip)."""
    promo: bool = False
    """A top rating from a reviewer who never bought the product (a ring's signature)."""


def quantize(embedding: np.ndarray) -> np.ndarray | None:
    """Normalise and round to float16, deterministically; None for an unusable vector."""
    v = np.asarray(embedding, dtype=np.float64).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        return None
    norm = math.sqrt(math.fsum((v * v).tolist()))
    if norm == 0.0:
        return None
    return (v / norm).astype("<f2")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(m, d) x (n, d) float16 -> (m, n) cosines, exact up to the final sqrt and division."""
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    dots = a64 @ b64.T
    na = (a64 * a64).sum(axis=1)
    nb = (b64 * b64).sum(axis=1)
    denom = np.sqrt(np.outer(na, nb))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(denom > 0, dots / denom, 0.0)
    return out


@dataclass(eq=False)
class ProductAnomalyState:
    """What the product detectors remember; see :meth:`to_dict` for the stored form."""

    clock: float | None = None
    """Latest review time seen (epoch seconds)."""
    seen: deque[str] = field(default_factory=lambda: deque(maxlen=SEEN_KEPT))
    counts: dict[int, list[int]] = field(default_factory=dict)
    """review_bombing: bucket -> [reviews, low reviews]."""
    low_ids: dict[int, list[tuple[float, str]]] = field(default_factory=dict)
    """review_bombing: bucket -> sorted (t, event id) of its low reviews (the latest
    two buckets that have not flagged, at most ``max_evidence`` each)."""
    bombed: set[int] = field(default_factory=set)
    """review_bombing: buckets already flagged."""
    unverified_low: list[tuple[float, str]] = field(default_factory=list)
    """review_bombing (spread): sorted (t, event id) of recent low ratings from reviewers
    who never bought the product, since the last flag."""
    unverified_other: list[float] = field(default_factory=list)
    """review_bombing (spread): sorted times of recent higher ratings from such reviewers
    (within ``spread_s``, at most :data:`OTHER_KEPT`)."""
    unverified_past: list[float] = field(default_factory=list)
    """review_bombing (spread): [reviews, low ones, as of t] of non-buyers' reviews that
    left the window without being flagged, decayed by ``unverified_half_life_days``."""
    quiet_until: float | None = None
    """review_bombing (spread): no spread flag before this event time (one per episode)."""
    recent: list[KeptReview] = field(default_factory=list)
    """review_duplicate: kept reviews sorted by (t, event id)."""
    duplicated: set[int] = field(default_factory=set)
    """review_duplicate: buckets already flagged."""

    def to_dict(self) -> dict[str, Any]:
        """Short keys and lists; embeddings as base64 float16. Empty parts are left out."""
        d: dict[str, Any] = {"v": STATE_VERSION}
        if self.clock is not None:
            d["c"] = self.clock
        if self.seen:
            d["s"] = list(self.seen)
        if self.counts:
            d["n"] = [[b, *self.counts[b]] for b in sorted(self.counts)]
        if self.low_ids:
            d["l"] = [[b, [list(x) for x in self.low_ids[b]]] for b in sorted(self.low_ids)]
        if self.bombed:
            d["bf"] = sorted(self.bombed)
        if self.unverified_low:
            d["u"] = [list(x) for x in self.unverified_low]
        if self.unverified_other:
            d["uo"] = list(self.unverified_other)
        if self.unverified_past:
            d["up"] = list(self.unverified_past)
        if self.quiet_until is not None:
            d["q"] = self.quiet_until
        if self.recent:
            d["r"] = [
                [k.t, k.event_id, k.member_id, base64.b64encode(k.vec.tobytes()).decode()]
                + ([1] if k.promo else [])
                for k in self.recent
            ]
        if self.duplicated:
            d["df"] = sorted(self.duplicated)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProductAnomalyState:
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported product anomaly state version {data.get('v')!r}")
        try:
            clock = data.get("c")
            state = cls(clock=None if clock is None else float(clock))
            state.seen.extend(str(e) for e in data.get("s", ()))
            state.counts = {int(b): [int(n), int(low)] for b, n, low in data.get("n", ())}
            state.low_ids = {
                int(b): [(float(t), str(e)) for t, e in ids] for b, ids in data.get("l", ())
            }
            state.bombed = {int(b) for b in data.get("bf", ())}
            state.unverified_low = [(float(t), str(e)) for t, e in data.get("u", ())]
            state.unverified_other = [float(t) for t in data.get("uo", ())]
            state.unverified_past = [float(x) for x in data.get("up", ())]
            quiet = data.get("q")
            state.quiet_until = None if quiet is None else float(quiet)
            state.recent = [
                KeptReview(
                    float(t),
                    str(e),
                    str(m),
                    np.frombuffer(base64.b64decode(v, validate=True), dtype="<f2"),
                    bool(promo and promo[0]),
                )
                for t, e, m, v, *promo in data.get("r", ())
            ]
            state.duplicated = {int(b) for b in data.get("df", ())}
        except (TypeError, KeyError, ValueError, binascii.Error) as exc:
            raise ValueError(f"malformed product anomaly state: {exc}") from None
        return state


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed exactly (``math.fsum``)."""
    if k <= 0:
        return 1.0
    return min(1.0, math.fsum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def _remember(past: list[float], t: float, low: bool, half_life_s: float) -> list[float]:
    """``past`` ([reviews, low ones, as of]) with one more review at ``t``, decayed."""
    n, k, t0 = past if past else (0.0, 0.0, t)
    if t >= t0:
        f = 0.5 ** ((t - t0) / half_life_s)
        n, k, t0, w = n * f, k * f, t, 1.0
    else:
        w = 0.5 ** ((t0 - t) / half_life_s)
    return [n + w, k + (w if low else 0.0), t0]


class ProductDetectors:
    """review_bombing and review_duplicate under one :class:`AnomalySettings`."""

    def __init__(self, settings: AnomalySettings) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self.max_evidence = settings.max_evidence
        self.rb = settings.review_bombing
        self.rd = settings.review_duplicate

    def on_review(self, state: ProductAnomalyState, review: ProductReview) -> list[Candidate]:
        """Both detectors for one review; updates ``state``. A review seen before: ``[]``."""
        if not self.enabled or review.event_id in state.seen:
            return []
        state.seen.append(review.event_id)
        now = review.t if state.clock is None or review.t > state.clock else state.clock
        state.clock = now
        out: list[Candidate] = []
        if self.rb.enabled:
            flag = self._bombing(state, review, now)
            if flag is None and not review.verified:
                flag = self._spread_bombing(state, review, now)
            if flag is not None:
                out.append(flag)
        if self.rd.enabled:
            out.extend(self._duplicate(state, review, now))
        return out

    # -- review bombing --

    def _bombing(
        self, state: ProductAnomalyState, review: ProductReview, now: float
    ) -> Candidate | None:
        rb = self.rb
        cur = math.floor(now / rb.bucket_s)
        oldest = cur - rb.baseline_buckets
        for b in [b for b in state.counts if b < oldest]:
            del state.counts[b]
        state.bombed = {b for b in state.bombed if b >= oldest}
        for b in [b for b in state.low_ids if b < cur - 1]:
            del state.low_ids[b]
        b = math.floor(review.t / rb.bucket_s)
        if b < oldest:
            return None  # too late: its bucket is no longer kept
        counts = state.counts.setdefault(b, [0, 0])
        counts[0] += 1
        if review.rating > rb.low_rating:
            return None  # a high rating can only lower the share
        counts[1] += 1
        if b in state.bombed:
            return None
        if b >= cur - 1:
            ids = state.low_ids.setdefault(b, [])
            insort(ids, (review.t, review.event_id))
            if len(ids) > self.max_evidence:
                del ids[0]
        reviews, low = counts
        past = (state.counts.get(k) for k in range(b - rb.baseline_buckets, b))
        baseline = sum(c[1] for c in past if c is not None) / rb.baseline_buckets
        limit = rb.baseline_multiplier * max(baseline, BASELINE_FLOOR)
        threshold = max(rb.min_low, math.floor(limit) + 1)
        share = low / reviews
        if low < threshold or share < rb.min_low_share:
            return None
        state.bombed.add(b)
        state.quiet_until = now + rb.spread_s  # the same episode, seen whole
        state.unverified_low.clear()
        state.unverified_other.clear()
        ids = state.low_ids.pop(b, [])
        evidence = tuple(e for _, e in ids) or (review.event_id,)
        return Candidate(
            kind="review_bombing",
            subject="product",
            subject_id=review.product_id,
            window_start=b * rb.bucket_s,
            window_end=(b + 1) * rb.bucket_s,
            score=float(low),
            threshold=float(threshold),
            evidence=evidence[-self.max_evidence :],
            details={
                "low": low,
                "reviews": reviews,
                "low_share": share,
                "min_low_share": rb.min_low_share,
                "baseline": baseline,
                "bucket_s": rb.bucket_s,
            },
        )

    def _spread_bombing(
        self, state: ProductAnomalyState, review: ProductReview, now: float
    ) -> Candidate | None:
        """Low ratings from reviewers who never bought the product, spread over days: at
        least ``min_unverified_low`` within a sliding ``spread_s`` (no reset at midnight).
        The flag's window starts at the bucket of the episode's first such review; after a
        flag (of either path) the product is quiet for ``spread_s``, so one episode is one
        flag. Decided on the reviews seen so far, like the bucket path."""
        rb = self.rb
        kept, other = state.unverified_low, state.unverified_other
        lo = now - rb.spread_s
        half_life = rb.unverified_half_life_days * DAY_S
        while kept and kept[0][0] <= lo:
            state.unverified_past = _remember(
                state.unverified_past, kept.pop(0)[0], True, half_life
            )
        while other and other[0] <= lo:
            state.unverified_past = _remember(state.unverified_past, other.pop(0), False, half_life)
        if review.t <= lo:
            return None
        if review.rating > rb.low_rating:
            insort(other, review.t)
            del other[: max(0, len(other) - OTHER_KEPT)]
            return None
        insort(kept, (review.t, review.event_id))
        del kept[: max(0, len(kept) - self.max_evidence)]
        if state.quiet_until is not None and now < state.quiet_until:
            return None
        if len(kept) < rb.min_unverified_low:
            return None
        past_n, past_low = state.unverified_past[:2] if state.unverified_past else (0.0, 0.0)
        prior = rb.unverified_prior_reviews
        base = (rb.unverified_prior_share * prior + past_low) / (prior + past_n)
        p_value = binomial_tail(len(kept), len(kept) + len(other), base)
        if p_value >= rb.unverified_alpha:
            return None
        start = math.floor(kept[0][0] / rb.bucket_s)
        state.quiet_until = now + rb.spread_s
        state.bombed.add(start)
        evidence = tuple(e for _, e in kept)
        reviews_above = len(other)
        kept.clear()  # an episode's reviews never join the baseline: it cannot mask the next
        other.clear()
        return Candidate(
            kind="review_bombing",
            subject="product",
            subject_id=review.product_id,
            window_start=start * rb.bucket_s,
            window_end=now,
            score=float(len(evidence)),
            threshold=float(rb.min_unverified_low),
            evidence=evidence,
            details={
                "signal": "unverified_low_spread",
                "unverified_low": len(evidence),
                "unverified_reviews": len(evidence) + reviews_above,
                "baseline_low_share": round(base, 4),
                "p_value": float(f"{p_value:.4g}"),
                "spread_s": rb.spread_s,
            },
        )

    # -- duplicated texts --

    def _duplicate(
        self, state: ProductAnomalyState, review: ProductReview, now: float
    ) -> list[Candidate]:
        rd = self.rd
        cutoff = now - rd.window_s - rd.allowed_lateness_s
        recent = state.recent
        drop = 0
        while drop < len(recent) and recent[drop].t < cutoff:
            drop += 1
        del recent[:drop]
        state.duplicated = {b for b in state.duplicated if (b + 1) * rd.bucket_s > cutoff}
        if review.embedding is None or review.text_chars < rd.min_chars or review.t < cutoff:
            return []
        vec = quantize(review.embedding)
        if vec is None:
            return []
        promo = not review.verified and review.rating >= rd.promo_rating
        new = KeptReview(review.t, review.event_id, review.member_id, vec, promo)
        insort(recent, new, key=lambda k: (k.t, k.event_id))
        if len(recent) > rd.max_recent:
            evicted = recent.pop(0)
            if evicted is new:
                return []
        pool = [k for k in recent if k.vec.shape == vec.shape]
        matrix = np.stack([k.vec for k in pool])
        sims = _cosines(vec[None, :], matrix)[0]
        near = [i for i, k in enumerate(pool) if self._near(new, k, float(sims[i]))]
        if not near:
            return []
        centres = [new] + [pool[i] for i in near]
        rows = np.vstack([sims[None, :], _cosines(matrix[near], matrix)])
        best: dict[int, tuple[int, KeptReview, list[int], float]] = {}
        for centre, row in zip(centres, rows, strict=True):
            bucket = math.floor(centre.t / rd.bucket_s)
            if bucket in state.duplicated:
                continue
            cluster = [j for j, k in enumerate(pool) if self._near(centre, k, float(row[j]))]
            members = len({centre.member_id, *(pool[j].member_id for j in cluster)})
            if members < rd.min_members:
                continue
            held = best.get(bucket)
            if held is None or (members, -centre.t) > (held[0], -held[1].t):
                best[bucket] = (members, centre, cluster, min(float(row[j]) for j in cluster))
        out = []
        for bucket in sorted(best):
            members, centre, cluster, similarity = best[bucket]
            state.duplicated.add(bucket)
            ids = sorted(
                [(centre.t, centre.event_id)] + [(pool[j].t, pool[j].event_id) for j in cluster]
            )
            out.append(
                Candidate(
                    kind="review_duplicate",
                    subject="product",
                    subject_id=review.product_id,
                    window_start=bucket * rd.bucket_s,
                    window_end=(bucket + 1) * rd.bucket_s,
                    score=float(members),
                    threshold=float(rd.min_members),
                    evidence=tuple(e for _, e in ids)[-self.max_evidence :],
                    details={
                        "members": members,
                        "similarity": similarity,
                        "min_similarity": rd.similarity,
                        "window": rd.window_s,
                        "centre": centre.event_id,
                    },
                )
            )
        return out

    def _near(self, a: KeptReview, b: KeptReview, cosine: float) -> bool:
        """b is a near-duplicate of a (symmetric): another member, close in time, similar;
        two top ratings from reviewers who never bought the product need only be
        paraphrases (``promo_similarity``)."""
        needed = self.rd.promo_similarity if a.promo and b.promo else self.rd.similarity
        return (
            a.member_id != b.member_id and abs(a.t - b.t) <= self.rd.window_s and cosine >= needed
        )
