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


def fit_logistic(
    x: np.ndarray, y: np.ndarray, l2: float = 1.0, iterations: int = 30
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Class-balanced, L2-regularised logistic regression by Newton's method.

    Returns (mean, scale, weights, bias) with weights over standardised inputs.
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    pos = max(int(y.sum()), 1)
    neg = max(len(y) - pos, 1)
    sample_w = np.where(y > 0, len(y) / (2 * pos), len(y) / (2 * neg))
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
