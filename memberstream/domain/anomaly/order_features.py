"""The features of the learned anomaly score: an order's member feature vector.

Rules catch what someone thought of; the learned score weighs many weak
signals at once. Each paid order gets a vector of behaviour features (its
value against the member's own history, how new the account and its
categories are, quantities, prices) and the cosine between the mean embedding
of its items and the member's purchase taste, i.e. what was bought against
what the member usually buys; a scorer may also weigh the items' mean
embedding itself (``embedding_dim`` > 0). The default training leaves the raw
embedding out: on synthetic data it learns the injected products rather than
the behaviour, and recall on streams it has not seen drops (see
:mod:`memberstream.ml.training.anomaly`). A logistic regression trained on
labeled orders (``memberstream models train-anomaly``;
:mod:`memberstream.ml.learned_scorer`) turns the vector into a probability.

Features come from the purchase topic alone (Kafka orders each member's
purchases but not purchases against clicks), so a replay rebuilds the same
vectors and the same flags. Plain numpy: the per-member summary here is part of
the member's state, the scorer is ML runtime.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BEHAVIOUR_FEATURES: tuple[str, ...] = (
    "log_total",
    "z_vs_own_orders",
    "log_prior_orders",
    "first_order",
    "log_days_since_first_order",
    "log_hours_since_last_order",
    "log_total_vs_own_max",
    "line_items",
    "log_quantity",
    "log_max_unit_price",
    "new_category_share",
    "taste_cosine",
    "no_taste",
)
MAX_CATEGORIES = 32
_MIN_LOG_STD = 0.5
_HOUR_S = 3600.0
_DAY_S = 86_400.0


@dataclass(frozen=True)
class OrderLine:
    category: str
    quantity: int
    unit_price: float


@dataclass(eq=False)
class PurchaseProfile:
    """What the learned score keeps per member: a summary of earlier paid orders."""

    orders: int = 0
    log_sum: float = 0.0
    log_sq: float = 0.0
    max_total: float = 0.0
    first_t: float | None = None
    last_t: float | None = None
    categories: dict[str, int] = field(default_factory=dict)
    taste: np.ndarray | None = None
    """float32 sum of the unit embeddings of items bought."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.orders,
            "s": [self.log_sum, self.log_sq, self.max_total],
            "t": [self.first_t, self.last_t],
            "c": self.categories,
            "v": None
            if self.taste is None
            else base64.b64encode(self.taste.astype("<f4").tobytes()).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PurchaseProfile:
        taste = d.get("v")
        return cls(
            orders=d["n"],
            log_sum=d["s"][0],
            log_sq=d["s"][1],
            max_total=d["s"][2],
            first_t=d["t"][0],
            last_t=d["t"][1],
            categories=dict(d["c"]),
            taste=None
            if taste is None
            else np.frombuffer(base64.b64decode(taste), dtype="<f4").astype(np.float32),
        )


def order_embedding(embeddings: Sequence[np.ndarray]) -> np.ndarray | None:
    """Unit mean of the items' unit embeddings (None without any)."""
    if not embeddings:
        return None
    mean = np.sum(np.stack(embeddings).astype(np.float32), axis=0)
    norm = float(np.linalg.norm(mean))
    return None if norm == 0.0 else (mean / norm).astype(np.float32)


def behaviour_features(
    profile: PurchaseProfile,
    t: float,
    total: float,
    lines: Sequence[OrderLine],
    embedding: np.ndarray | None,
) -> np.ndarray:
    """The behaviour part of an order's vector, from the member's earlier orders."""
    log_total = math.log1p(max(total, 0.0))
    n = profile.orders
    if n >= 2:
        mean = profile.log_sum / n
        std = math.sqrt(max(profile.log_sq / n - mean * mean, 0.0))
        z = (log_total - mean) / max(std, _MIN_LOG_STD)
    elif n == 1:
        z = (log_total - profile.log_sum) / _MIN_LOG_STD
    else:
        z = 0.0
    value = sum(line.quantity * line.unit_price for line in lines) or 1.0
    new_value = sum(
        line.quantity * line.unit_price for line in lines if line.category not in profile.categories
    )
    cosine, no_taste = 0.0, 1.0
    if profile.taste is not None and embedding is not None:
        norm = float(np.linalg.norm(profile.taste))
        if norm > 0:
            cosine, no_taste = float(np.dot(profile.taste, embedding)) / norm, 0.0
    return np.array(
        [
            log_total,
            z,
            math.log1p(n),
            1.0 if n == 0 else 0.0,
            0.0 if profile.first_t is None else math.log1p(max(t - profile.first_t, 0) / _DAY_S),
            0.0 if profile.last_t is None else math.log1p(max(t - profile.last_t, 0) / _HOUR_S),
            0.0 if n == 0 else log_total - math.log1p(profile.max_total),
            float(len(lines)),
            math.log1p(sum(line.quantity for line in lines)),
            math.log1p(max(line.unit_price for line in lines)),
            new_value / value if n else 1.0,
            cosine,
            no_taste,
        ],
        dtype=np.float64,
    )


def observe_order(
    profile: PurchaseProfile,
    t: float,
    total: float,
    lines: Sequence[OrderLine],
    item_embeddings: Sequence[np.ndarray],
) -> None:
    """Add a paid order to the profile (after its features were taken)."""
    log_total = math.log1p(max(total, 0.0))
    profile.orders += 1
    profile.log_sum += log_total
    profile.log_sq += log_total * log_total
    profile.max_total = max(profile.max_total, total)
    profile.first_t = t if profile.first_t is None else min(profile.first_t, t)
    profile.last_t = t if profile.last_t is None else max(profile.last_t, t)
    for line in lines:
        if line.category in profile.categories:
            profile.categories[line.category] += 1
        elif len(profile.categories) < MAX_CATEGORIES:
            profile.categories[line.category] = 1
    for emb in item_embeddings:
        unit = np.asarray(emb, dtype=np.float32)
        profile.taste = unit.copy() if profile.taste is None else profile.taste + unit


@dataclass(frozen=True)
class OrderVector:
    """One order's input to the scorer: behaviour features and the items' mean embedding."""

    behaviour: np.ndarray
    embedding: np.ndarray | None


def feature_matrix(vectors: Sequence[OrderVector], embedding_dim: int) -> np.ndarray:
    """Rows of behaviour features then embedding (zeros for an order without one; left out
    when ``embedding_dim`` is 0)."""
    zero = np.zeros(embedding_dim, dtype=np.float64)
    rows = [
        np.concatenate(
            [v.behaviour, v.embedding if embedding_dim and v.embedding is not None else zero]
        )
        for v in vectors
    ]
    if not rows:
        return np.zeros((0, len(BEHAVIOUR_FEATURES) + embedding_dim))
    return np.stack(rows).astype(np.float64)


FEATURE_PREFIX = "x:"
"""A flag's details carry the order's behaviour features under ``x:<name>``."""
FEATURE_DIGITS = 4


def feature_details(behaviour: np.ndarray) -> dict[str, float]:
    """An order's behaviour features for a flag's details (rounded; numbers about the
    member's own orders, no personal data), so an analyst's verdict on the flag can
    become a training label for the learned score."""
    return {
        f"{FEATURE_PREFIX}{name}": round(float(value), FEATURE_DIGITS)
        for name, value in zip(BEHAVIOUR_FEATURES, behaviour.tolist(), strict=True)
    }


def features_from_details(details: Mapping[str, Any]) -> list[float] | None:
    """The behaviour features a flag's details carry, in :data:`BEHAVIOUR_FEATURES`
    order (None unless every one is there: a flag of a version with other features)."""
    out = []
    for name in BEHAVIOUR_FEATURES:
        value = details.get(f"{FEATURE_PREFIX}{name}")
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        out.append(float(value))
    return out
