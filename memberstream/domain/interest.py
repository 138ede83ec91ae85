"""Interest tiers: event-weighted, time-decayed category affinity with hysteresis.

Every event adds ``weight × p(category)`` to a member's affinity for each
category: the weight grows with intent (a click < a review < a purchase) and
``p`` blends the event's own catalog category with the text model's category
probabilities. Affinity halves every ``half_life_days`` of *event* time; the
decay is applied lazily and exactly, since each value is stored with the event
time it refers to: ``a(t) = a(t0) * 0.5 ** ((t - t0) / half_life)``. A late
event (older than the member's clock) adds its contribution decayed forward to
the value's reference time, so the result does not depend on arrival order
beyond float rounding.

A category's tier comes from its *share* of the member's total affinity, with
separate enter and leave thresholds per tier so a member hovering near a
threshold does not flap. A category whose absolute affinity has decayed below
``min_affinity`` holds no tier (the interest has gone stale).

Alongside, a taste vector keeps the decayed, weighted mean of the embeddings of
the items the member interacted with.

No wall-clock time, no set iteration, and cross-category sums use ``math.fsum``:
replaying the same events in the same order gives bit-identical state.

Example:
    >>> policy = InterestPolicy(InterestSettings(), taxonomy=["books", "electronics", "grocery"])
    >>> state = InterestState()
    >>> buy = policy.settings.event_weight("purchase")
    >>> policy.observe(state, t=0.0, weight=buy, category_probs={"books": 1.0})
    >>> policy.evaluate(state, now=0.0).tiers
    {'books': 'core'}
    >>> for day in range(1, 29):  # four weeks of daily electronics views
    ...     probs = policy.category_probs("electronics", model_probs=[0.1, 0.8, 0.1])
    ...     policy.observe(state, t=day * DAY_S, weight=1.0, category_probs=probs)
    >>> change = policy.evaluate(state, now=28 * DAY_S)
    >>> change.tiers  # books fell below core's leave (0.25) but not active's (0.10)
    {'electronics': 'core', 'books': 'active'}
    >>> round(change.shares["books"], 3)
    0.102
    >>> [(m.category, m.direction) for m in change.moves]
    [('books', 'demoted'), ('electronics', 'added')]
    >>> policy.evaluate(state, now=28 * DAY_S) is None  # nothing changed since
    True
"""

from __future__ import annotations

import base64
import binascii
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from memberstream.domain.rfm import DAY_S
from memberstream.domain.taxonomy import Taxonomy

__all__ = [
    "DAY_S",
    "InterestChange",
    "InterestPolicy",
    "InterestSettings",
    "InterestState",
    "TierBand",
    "TierMove",
]

STATE_VERSION = 1

# --- settings ------------------------------------------------------------------------------


class TierBand(BaseModel):
    """One interest tier: entered at ``share >= enter``, left at ``share < leave``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    enter: float = Field(gt=0, le=1)
    leave: float = Field(gt=0, le=1)

    @model_validator(mode="after")
    def _enter_above_leave(self) -> TierBand:
        if not self.enter > self.leave:
            raise ValueError(
                f"tier {self.name}: enter ({self.enter}) must be above leave ({self.leave}), "
                "otherwise there is no hysteresis"
            )
        return self


def _default_bands() -> list[TierBand]:
    return [
        TierBand(name="core", enter=0.35, leave=0.25),
        TierBand(name="active", enter=0.15, leave=0.10),
        TierBand(name="casual", enter=0.05, leave=0.03),
    ]


def _default_click_weights() -> dict[str, float]:
    return {"view": 1.0, "add_to_cart": 2.0, "search": 0.5}


class InterestSettings(BaseModel):
    """Weights, decay and tier thresholds of :class:`InterestPolicy`."""

    model_config = ConfigDict(extra="forbid")

    click_weight: float = Field(1.0, gt=0, description="a click whose action has no own weight")
    click_action_weights: dict[str, float] = Field(default_factory=_default_click_weights)
    review_weight: float = Field(3.0, gt=0)
    purchase_weight: float = Field(5.0, gt=0)
    half_life_days: float = Field(14.0, gt=0)
    text_blend_with_category: float = Field(
        0.3, ge=0, le=1, description="share of the model's probabilities when the event has one"
    )
    text_blend_without_category: float = Field(
        1.0, ge=0, le=1, description="share of the model's probabilities when it has none"
    )
    tiers: list[TierBand] = Field(
        default_factory=_default_bands, description="highest first; thresholds on affinity share"
    )
    min_affinity: float = Field(
        0.5, ge=0, description="decayed affinity a category needs to hold any tier (stale below)"
    )
    text_top_k: int = Field(
        3, gt=0, description="the model's strongest categories an item text counts toward"
    )
    text_min_prob: float = Field(
        0.05, ge=0, lt=1, description="model probabilities below this count as zero"
    )
    prune_below: float = Field(
        0.0,
        ge=0,
        description="decayed affinity under which a category is forgotten. 0: never (the "
        "taxonomy bounds the categories). Which mass is dropped depends on the order "
        "events arrive in, so a replay may differ slightly when this is above 0",
    )
    max_categories_per_member: int = Field(
        32, gt=0, description="strongest kept, others dropped (a bound beyond the taxonomy size)"
    )
    taste_dim: int = Field(
        512,
        gt=0,
        description="largest item-embedding dimension accepted (unless set, the configured "
        "encoder's dimension, from its manifest)",
    )
    taste_half_life_days: float | None = Field(None, gt=0, description="None: half_life_days")

    @field_validator("click_action_weights")
    @classmethod
    def _weights_finite(cls, weights: dict[str, float]) -> dict[str, float]:
        for action, w in weights.items():
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"click action {action!r}: weight must be finite and >= 0")
        return weights

    @field_validator("tiers")
    @classmethod
    def _bands_ordered(cls, bands: list[TierBand]) -> list[TierBand]:
        if not bands:
            raise ValueError("at least one interest tier is required")
        names = [b.name for b in bands]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        for high, low in itertools.pairwise(bands):
            if not (high.enter > low.enter and high.leave > low.leave):
                raise ValueError(
                    f"tier {high.name} must have higher enter and leave thresholds than "
                    f"{low.name}; list tiers highest first"
                )
        return bands

    @model_validator(mode="after")
    def _intent_order(self) -> InterestSettings:
        if not self.click_weight < self.review_weight < self.purchase_weight:
            raise ValueError(
                "weights must rise with intent: click_weight < review_weight < purchase_weight, "
                f"got {self.click_weight}, {self.review_weight}, {self.purchase_weight}"
            )
        return self

    @property
    def half_life_s(self) -> float:
        return self.half_life_days * DAY_S

    @property
    def taste_half_life_s(self) -> float:
        days = self.taste_half_life_days or self.half_life_days
        return days * DAY_S

    def event_weight(
        self, kind: Literal["click", "review", "purchase"], action: str | None = None
    ) -> float:
        """Weight of one event; ``action`` refines a click (view, add_to_cart, search)."""
        if kind == "click":
            if action is None:
                return self.click_weight
            return self.click_action_weights.get(action, self.click_weight)
        if kind == "review":
            return self.review_weight
        if kind == "purchase":
            return self.purchase_weight
        raise ValueError(f"unknown event kind {kind!r} (click, review or purchase)")


# --- per-member state ----------------------------------------------------------------------


@dataclass(eq=False)
class InterestState:
    """What the policy remembers per member; see :meth:`to_dict` for the stored form."""

    clock: float | None = None
    """Latest event time seen for this member."""
    affinity: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Category id -> (value, as_of): the affinity as of event time ``as_of``."""
    tiers: dict[str, str] = field(default_factory=dict)
    """Category id -> tier, as of the last :meth:`InterestPolicy.evaluate`."""
    taste_sum: np.ndarray | None = None
    """Decayed, weighted sum of unit item embeddings as of ``taste_as_of``."""
    taste_weight: float = 0.0
    taste_as_of: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain lists, floats and strings (for orjson); equal state gives equal bytes."""
        taste = None
        if self.taste_sum is not None:
            taste = {
                # raw little-endian float64 in base64: exact, and half the size of
                # JSON numbers (the taste is most of a member's state)
                "sum": base64.b64encode(self.taste_sum.astype("<f8").tobytes()).decode(),
                "weight": self.taste_weight,
                "as_of": self.taste_as_of,
            }
        return {
            "v": STATE_VERSION,
            "clock": self.clock,
            "affinity": {cid: [v, t] for cid, (v, t) in sorted(self.affinity.items())},
            "tiers": dict(self.tiers),  # in rank order, highest tier first
            "taste": taste,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InterestState:
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported interest state version {data.get('v')!r}")
        try:
            affinity = {
                str(cid): (float(v), float(t)) for cid, (v, t) in data.get("affinity", {}).items()
            }
            tiers = {str(cid): str(tier) for cid, tier in data.get("tiers", {}).items()}
            clock = data.get("clock")
            state = cls(None if clock is None else float(clock), affinity, tiers)
            taste = data.get("taste")
            if taste is not None:
                raw = taste["sum"]
                if isinstance(raw, str):
                    state.taste_sum = np.frombuffer(
                        base64.b64decode(raw, validate=True), dtype="<f8"
                    ).astype(np.float64)
                else:  # the plain list form
                    state.taste_sum = np.asarray(raw, dtype=np.float64)
                state.taste_weight = float(taste["weight"])
                state.taste_as_of = float(taste["as_of"])
                if state.taste_sum.ndim != 1:
                    raise ValueError("taste sum must be a flat list")
        except (TypeError, KeyError, ValueError, binascii.Error) as exc:
            raise ValueError(f"malformed interest state: {exc}") from None
        return state


# --- changes -------------------------------------------------------------------------------

Direction = Literal["added", "removed", "promoted", "demoted"]


@dataclass(frozen=True)
class TierMove:
    category: str
    previous: str | None
    tier: str | None
    direction: Direction


@dataclass(frozen=True)
class InterestChange:
    """What :meth:`InterestPolicy.evaluate` changed, ready to become an interest-tier update."""

    as_of: float
    tiers: dict[str, str]
    previous: dict[str, str]
    moves: tuple[TierMove, ...]
    shares: dict[str, float]
    """Affinity share of every category in ``tiers``."""

    @property
    def added(self) -> dict[str, str]:
        return {m.category: m.tier for m in self.moves if m.direction == "added" and m.tier}

    @property
    def removed(self) -> dict[str, str]:
        return {
            m.category: m.previous for m in self.moves if m.direction == "removed" and m.previous
        }

    @property
    def moved(self) -> dict[str, tuple[str, str]]:
        return {
            m.category: (m.previous, m.tier)
            for m in self.moves
            if m.previous is not None and m.tier is not None
        }


# --- policy --------------------------------------------------------------------------------


def _decay(dt: float, half_life: float) -> float:
    return 0.5 ** (dt / half_life)


def _shares(values: Mapping[str, float]) -> dict[str, float]:
    """Each category's share of the total of ``values`` (empty when the total is 0)."""
    total = math.fsum(values.values())
    if total <= 0:
        return {}
    return {cid: v / total for cid, v in values.items()}


@dataclass(frozen=True)
class PreparedItem:
    """An item's checked category pairs (non-zero, taxonomy order) and unit embedding."""

    pairs: list[tuple[str, float]]
    unit: np.ndarray | None


class InterestPolicy:
    """Affinity updates, tiers with hysteresis, and the taste vector (see the module doc)."""

    def __init__(
        self,
        settings: InterestSettings | None = None,
        taxonomy: Taxonomy | Sequence[str] | None = None,
    ) -> None:
        self.settings = settings if settings is not None else InterestSettings()
        if taxonomy is None:
            taxonomy = Taxonomy.load()
        self.ids: tuple[str, ...] = (
            taxonomy.ids if isinstance(taxonomy, Taxonomy) else tuple(taxonomy)
        )
        self._index = {cid: i for i, cid in enumerate(self.ids)}
        if len(self._index) != len(self.ids) or not self.ids:
            raise ValueError("taxonomy ids must be unique and non-empty")
        self.bands = tuple(self.settings.tiers)
        self.rank = {b.name: i for i, b in enumerate(self.bands)}  # 0 is the highest tier
        self.enters = tuple(b.enter for b in self.bands)
        self.min_affinity = self.settings.min_affinity
        self.half_life_s = self.settings.half_life_s
        self.taste_half_life_s = self.settings.taste_half_life_s

    # -- inputs --

    def category_probs(
        self, category: str | None, model_probs: Sequence[float] | np.ndarray | None = None
    ) -> np.ndarray | None:
        """Blend the event's own category with the model's probabilities (taxonomy order).

        A category outside the taxonomy counts as none. None when there is neither.
        """
        idx = self._index.get(category) if category is not None else None
        out = np.zeros(len(self.ids), dtype=np.float64)
        if model_probs is not None:
            m = np.asarray(model_probs, dtype=np.float64)
            if m.shape != out.shape or not np.all(np.isfinite(m)) or np.any(m < 0):
                raise ValueError(
                    f"model_probs must be {len(self.ids)} finite non-negative values, "
                    f"got shape {m.shape}"
                )
            s = self.settings
            blend = s.text_blend_with_category if idx is not None else s.text_blend_without_category
            out += blend * self._sparsify(m)
            if idx is not None:
                out[idx] += 1.0 - blend
        elif idx is not None:
            out[idx] = 1.0
        else:
            return None
        return out

    def _sparsify(self, probs: np.ndarray) -> np.ndarray:
        """Keep the ``text_top_k`` strongest probabilities at or above ``text_min_prob``,
        renormalised; the rest of a softmax's tail is noise that would spread
        affinity over every category. All zero when none qualifies."""
        s = self.settings
        keep = np.argsort(-probs, kind="stable")[: s.text_top_k]
        keep = keep[probs[keep] >= s.text_min_prob]
        out = np.zeros_like(probs)
        total = float(probs[keep].sum())
        if total > 0:
            out[keep] = probs[keep] / total
        return out

    def _pairs(
        self, probs: Mapping[str, float] | np.ndarray | Sequence[float]
    ) -> list[tuple[str, float]]:
        if isinstance(probs, Mapping):
            pairs = []
            for cid, p in probs.items():
                if cid not in self._index:
                    raise ValueError(f"unknown category {cid!r} (not in the taxonomy)")
                p = float(p)
                if not (math.isfinite(p) and p >= 0):
                    raise ValueError(f"probability of {cid!r} must be finite and >= 0, got {p}")
                pairs.append((self._index[cid], cid, p))
            pairs.sort()
            return [(cid, p) for _, cid, p in pairs]
        arr = np.asarray(probs, dtype=np.float64)
        if arr.shape != (len(self.ids),) or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(
                f"category_probs must be {len(self.ids)} finite non-negative values in taxonomy "
                f"order, got shape {arr.shape}"
            )
        # zero probabilities add nothing (observe skips them): only the others, in order
        ids = self.ids
        return [(ids[i], float(arr[i])) for i in np.flatnonzero(arr).tolist()]

    def observe(
        self,
        state: InterestState,
        t: float,
        weight: float,
        category_probs: Mapping[str, float] | np.ndarray | Sequence[float] | None,
        item_embedding: np.ndarray | None = None,
    ) -> None:
        """Add one event at event time ``t`` (seconds) with ``weight`` spread by the probs.

        ``item_embedding`` (1-D, at most ``taste_dim``) joins the taste vector as a
        unit vector; one of another dimension than the stored taste (a model
        swap) starts the taste afresh.
        """
        pairs = self._pairs(category_probs) if category_probs is not None else []
        unit = self._unit(item_embedding) if item_embedding is not None else None
        self.observe_prepared(state, t, weight, PreparedItem(pairs, unit))

    def prepare(
        self,
        category: str | None,
        model_probs: Sequence[float] | np.ndarray | None,
        item_embedding: np.ndarray | None,
    ) -> PreparedItem | None:
        """What an item contributes whatever the member: its category probabilities
        (:meth:`category_probs`) as checked pairs and its unit embedding. None when it has
        no category at all. A caller may keep it for items that recur (a product's title
        and category) and pass it to :meth:`observe_prepared` each time."""
        probs = self.category_probs(category, model_probs)
        if probs is None:
            return None
        unit = self._unit(item_embedding) if item_embedding is not None else None
        return PreparedItem(self._pairs(probs), unit)

    def observe_prepared(
        self, state: InterestState, t: float, weight: float, item: PreparedItem
    ) -> None:
        """:meth:`observe` for an item from :meth:`prepare`."""
        t = float(t)
        weight = float(weight)
        if not math.isfinite(t):
            raise ValueError(f"event time must be finite, got {t}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError(f"weight must be finite and >= 0, got {weight}")
        pairs, unit = item.pairs, item.unit
        clock = t if state.clock is None else max(state.clock, t)
        hl = self.half_life_s
        for cid, p in pairs:
            add = weight * p
            if add <= 0:
                continue
            old = state.affinity.get(cid)
            if old is None:
                if add * _decay(clock - t, hl) >= self.settings.prune_below:
                    state.affinity[cid] = (add, t)
                continue
            value, as_of = old
            ref = max(as_of, t)
            state.affinity[cid] = (value * _decay(ref - as_of, hl) + add * _decay(ref - t, hl), ref)
        state.clock = clock
        self._prune(state)
        if unit is not None and weight > 0:
            self._add_taste(state, t, weight, unit)

    def _unit(self, embedding: np.ndarray) -> np.ndarray | None:
        e = np.asarray(embedding, dtype=np.float64)
        if e.ndim != 1 or e.size == 0 or e.size > self.settings.taste_dim:
            raise ValueError(
                f"item embedding must be 1-D with 1..{self.settings.taste_dim} values, "
                f"got shape {e.shape}"
            )
        if not np.all(np.isfinite(e)):
            raise ValueError("item embedding must be finite")
        norm = float(np.linalg.norm(e))
        return e / norm if norm > 0 else None

    def _add_taste(self, state: InterestState, t: float, weight: float, unit: np.ndarray) -> None:
        if (
            state.taste_sum is None
            or state.taste_as_of is None
            or state.taste_sum.shape != unit.shape
        ):
            state.taste_sum = weight * unit
            state.taste_weight = weight
            state.taste_as_of = t
            return
        hl = self.taste_half_life_s
        ref = max(state.taste_as_of, t)
        f_old = _decay(ref - state.taste_as_of, hl)
        f_new = weight * _decay(ref - t, hl)
        state.taste_sum = state.taste_sum * f_old + f_new * unit
        state.taste_weight = state.taste_weight * f_old + f_new
        state.taste_as_of = ref

    def _prune(self, state: InterestState) -> None:
        """Forget faded categories, then keep only the strongest ``max_categories_per_member``."""
        if state.clock is None:
            return
        s = self.settings
        if s.prune_below <= 0 and len(state.affinity) <= s.max_categories_per_member:
            return  # affinities are never negative: every category stays, nothing to sort
        values = self._decayed(state, state.clock)
        keep = [cid for cid, v in values.items() if v >= self.settings.prune_below]
        keep = keep[: self.settings.max_categories_per_member]
        if len(keep) != len(state.affinity):
            kept = set(keep)
            state.affinity = {cid: va for cid, va in state.affinity.items() if cid in kept}

    # -- outputs --

    def _decayed(self, state: InterestState, now: float) -> dict[str, float]:
        """Affinity of each category at ``now``, strongest first (ties in taxonomy order)."""
        hl = self.half_life_s
        index, unknown = self._index, len(self.ids)
        values = [
            (-(value * 0.5 ** ((now - as_of) / hl)), index.get(cid, unknown), cid)  # _decay
            for cid, (value, as_of) in state.affinity.items()
        ]
        values.sort()
        return {cid: -neg for neg, _, cid in values}

    def _now(self, state: InterestState, now: float) -> float:
        # never evaluate before the member's clock: later events would "un-decay"
        return now if state.clock is None else max(float(now), state.clock)

    def affinities(self, state: InterestState, now: float) -> dict[str, float]:
        """Decayed affinity per category at event time ``now``, strongest first."""
        return self._decayed(state, self._now(state, now))

    def shares(self, state: InterestState, now: float) -> dict[str, float]:
        """Each category's share of the member's total affinity (time-invariant between events)."""
        return _shares(self.affinities(state, now))

    def taste(self, state: InterestState) -> np.ndarray | None:
        """The L2-normalised decayed mean of item embeddings, or None before any."""
        if state.taste_sum is None or state.taste_weight <= 0:
            return None
        mean = state.taste_sum / state.taste_weight
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else None

    def tier_for(self, share: float, affinity: float, previous: str | None) -> str | None:
        """One category's tier, given its share, absolute affinity and previous tier."""
        if affinity < self.min_affinity:
            return None
        up = None
        for i, enter in enumerate(self.enters):  # the highest band whose entry it reaches
            if share >= enter:
                up = i
                break
        prev = self.rank.get(previous) if previous is not None else None
        if prev is None:
            return None if up is None else self.bands[up].name
        if up is not None and up < prev:
            return self.bands[up].name
        for band in self.bands[prev:]:  # moving down: leave thresholds of the bands passed
            if share >= band.leave:
                return band.name
        return None

    def tiers(self, state: InterestState, now: float) -> dict[str, str]:
        """Tiers at ``now`` against the stored ones; highest tier first, then by share."""
        return self._tiers(state, self.affinities(state, now))

    def _tiers(self, state: InterestState, values: dict[str, float]) -> dict[str, str]:
        total = math.fsum(values.values())
        ranked = []
        for cid in [*values, *(c for c in state.tiers if c not in values)]:
            affinity = values.get(cid, 0.0)
            share = affinity / total if total > 0 else 0.0
            tier = self.tier_for(share, affinity, state.tiers.get(cid))
            if tier is not None:
                ranked.append((self.rank[tier], -share, self._index.get(cid, len(self.ids)), cid))
        ranked.sort()
        return {cid: self.bands[r].name for r, _, _, cid in ranked}

    def evaluate(self, state: InterestState, now: float) -> InterestChange | None:
        """Update the stored tiers to ``now``; the change, or None when nothing moved."""
        now = self._now(state, now)
        values = self._decayed(state, now)
        new = self._tiers(state, values)
        previous = dict(state.tiers)
        if new == previous:
            if list(new) != list(previous):
                state.tiers = new  # same tiers, fresher order
            return None
        lowest = len(self.bands)
        moves: list[tuple[int, TierMove]] = []
        for cid in [*new, *(c for c in previous if c not in new)]:
            old, tier = previous.get(cid), new.get(cid)
            if old == tier:
                continue
            if old is None:
                direction: Direction = "added"
            elif tier is None:
                direction = "removed"
            elif self.rank[tier] < self.rank.get(old, lowest):
                direction = "promoted"
            else:
                direction = "demoted"
            moves.append((self._index.get(cid, len(self.ids)), TierMove(cid, old, tier, direction)))
        moves.sort(key=lambda m: (m[0], m[1].category))
        state.tiers = new
        shares = _shares(values)
        return InterestChange(
            as_of=now,
            tiers=dict(new),
            previous=previous,
            moves=tuple(m for _, m in moves),
            shares={cid: shares.get(cid, 0.0) for cid in new},
        )
