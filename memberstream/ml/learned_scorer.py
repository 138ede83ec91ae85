"""The learned anomaly score: logistic regression over an order's member feature vector.

The features (:mod:`memberstream.domain.anomaly.order_features`) weigh many
weak signals at once; a logistic regression trained on labeled orders
(``memberstream models train-anomaly``, :mod:`memberstream.ml.training.anomaly`)
turns the vector into a probability. The worker scores every order of a
micro-batch in one call of the inference stage and flags those at or above
``anomaly.learned.threshold``. Each flag lists the features that pushed the
score up most, so an analyst can see why.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memberstream.domain.anomaly.order_features import (
    BEHAVIOUR_FEATURES,
    OrderVector,
    feature_matrix,
)

SCORER_FILE = "anomaly_scorer.npz"
EMBEDDING_FEATURE = "items_embedding"


@dataclass(frozen=True)
class LearnedScore:
    probability: float
    contributions: dict[str, float]
    """Each feature's push on the log-odds, relative to the training mean."""


class LearnedScorer:
    """Standardise, dot, sigmoid: a logistic regression stored in one ``.npz`` file."""

    def __init__(
        self,
        mean: np.ndarray,
        scale: np.ndarray,
        weights: np.ndarray,
        bias: float,
        embedding_dim: int,
        version: str = "learned@in-memory",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        n_behaviour = len(BEHAVIOUR_FEATURES)
        if weights.shape != (n_behaviour + embedding_dim,):
            raise ValueError(f"weights shape {weights.shape} != ({n_behaviour}+{embedding_dim},)")
        self.mean = mean.astype(np.float64)
        self.scale = scale.astype(np.float64)
        self.weights = weights.astype(np.float64)
        self.bias = float(bias)
        self.embedding_dim = embedding_dim
        self.version = version
        self.metadata = dict(metadata or {})

    def logits(self, vectors: Sequence[OrderVector]) -> np.ndarray:
        """The log-odds of each row (what :meth:`score` turns into a probability)."""
        x = (feature_matrix(vectors, self.embedding_dim) - self.mean) / self.scale
        return x @ self.weights + self.bias

    def calibrated(self, a: float, b: float) -> LearnedScorer:
        """This scorer with Platt scaling ``sigmoid(a * logit + b)`` folded into its weights
        and bias: still one logistic regression, contributions scaled by ``a``."""
        return LearnedScorer(
            self.mean,
            self.scale,
            self.weights * a,
            self.bias * a + b,
            self.embedding_dim,
            version=self.version,
            metadata={**self.metadata, "platt": [round(a, 6), round(b, 6)]},
        )

    def score(self, vectors: Sequence[OrderVector]) -> list[LearnedScore]:
        """Probabilities and per-feature contributions, row by row (batch-independent)."""
        x = (feature_matrix(vectors, self.embedding_dim) - self.mean) / self.scale
        pushes = x * self.weights
        out = []
        n_behaviour = len(BEHAVIOUR_FEATURES)
        for row in pushes.tolist():  # Python floats: fsum and indexing without boxing
            logit = self.bias + math.fsum(row)
            contributions = {name: row[i] for i, name in enumerate(BEHAVIOUR_FEATURES)}
            if self.embedding_dim:
                contributions[EMBEDDING_FEATURE] = math.fsum(row[n_behaviour:])
            out.append(LearnedScore(1.0 / (1.0 + math.exp(-logit)), contributions))
        return out

    def save(self, path: Path) -> None:
        np.savez(
            path,
            mean=self.mean,
            scale=self.scale,
            weights=self.weights,
            bias=np.array(self.bias),
            embedding_dim=np.array(self.embedding_dim),
            features=np.array(BEHAVIOUR_FEATURES),
            metadata=np.array(repr(sorted(self.metadata.items()))),
        )

    @classmethod
    def load(cls, path: Path) -> LearnedScorer:
        with np.load(path, allow_pickle=False) as data:
            features = tuple(str(f) for f in data["features"])
            if features != BEHAVIOUR_FEATURES:
                raise ValueError(
                    f"{path}: trained on features {features}, this version computes "
                    f"{BEHAVIOUR_FEATURES}; retrain with `memberstream models train-anomaly`"
                )
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]
            return cls(
                data["mean"],
                data["scale"],
                data["weights"],
                float(data["bias"]),
                int(data["embedding_dim"]),
                version=f"learned@{digest}",
                metadata={"trained": str(data["metadata"])},
            )


def fit_platt(logits: np.ndarray, y: np.ndarray, iterations: int = 50) -> tuple[float, float]:
    """Platt scaling: (a, b) of ``P(y=1) = sigmoid(a * logit + b)`` by Newton's method,
    unweighted, so the result reflects the rate of positives in the rows it is fitted on.
    The class-balanced fit ranks well but its output is no probability; this makes it one
    (fitted on held-out rows, never on the rows the scorer was fitted on)."""
    if len(logits) == 0 or y.min() == y.max():
        raise ValueError("Platt scaling needs both classes")
    z = np.column_stack([np.asarray(logits, dtype=np.float64), np.ones(len(logits))])
    y = np.asarray(y, dtype=np.float64)
    reg = np.array([1e-6, 1e-6])

    def loss(w: np.ndarray) -> float:
        m = z @ w
        return float(np.sum(np.logaddexp(0.0, m) - y * m) + 0.5 * reg @ (w * w))

    w = np.zeros(2)
    current = loss(w)
    for _ in range(iterations):  # Newton's method, step halved until the loss falls
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -35, 35)))
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-6 and loss(w - t * step) > current:
            t /= 2
        w = w - t * step
        current = loss(w)
        if float(np.max(np.abs(t * step))) < 1e-10:
            break
    return float(w[0]), float(w[1])


def calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: mean |rate of positives - mean probability| over
    equal-width probability bins, weighted by the rows in each."""
    idx = np.minimum((np.asarray(probs) * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            total += sel.sum() * abs(float(y[sel].mean()) - float(probs[sel].mean()))
    return total / max(len(probs), 1)


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    l2: float = 1.0,
    iterations: int = 30,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Class-balanced, L2-regularised logistic regression by Newton's method.

    ``sample_weight`` (default: 1 each) says how much each row counts; the classes are
    then balanced by their total weight. Returns (mean, scale, weights, bias) with
    weights over standardised inputs.
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    pos = max(int(y.sum()), 1)
    neg = max(len(y) - pos, 1)
    sample_w = np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg))
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        pos_w = max(float(sw[y > 0].sum()), 1e-12)
        neg_w = max(float(sw[y <= 0].sum()), 1e-12)
        sample_w = sw * np.where(y > 0, sw.sum() / (2 * pos_w), sw.sum() / (2 * neg_w))
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0  # no penalty on the bias
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -35, 35)))
        grad = z.T @ (sample_w * (p - y)) + reg * w
        hess = (z * (sample_w * p * (1 - p))[:, None]).T @ z + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return mean, scale, w[:-1], float(w[-1])
