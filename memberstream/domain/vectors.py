"""Small numeric helpers on embeddings that domain policies and the ML runtime share.

Rows are computed independently of each other (see :func:`rowwise_dot`), so a
result does not depend on how inputs were batched: that is what keeps replays
bit-identical. Also the :class:`Encoder` protocol: what a policy needs from a text
encoder (the runtime encoder in :mod:`memberstream.ml.encoder`, or a test double).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class Encoder(Protocol):
    """What the inference stage and the summarizer need from a text encoder (a
    :class:`~memberstream.ml.encoder.TextEncoder` or a test double)."""

    @property
    def version(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def l2_rows(x: np.ndarray) -> np.ndarray:
    """Each row scaled to unit L2 length (a zero row stays zero)."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def rowwise_dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T``, computed so that each row's result does not depend on the other rows.

    BLAS picks kernels (and summation orders) by matrix shape, so ``x @ w.T`` can
    give a row different last bits alone than inside a batch; einsum's plain loop
    sums each element in the same order whatever the batch, which keeps a
    replay's category probabilities bit-identical however events were batched.
    """
    return np.einsum("nd,kd->nk", x, w, optimize=False)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def as_matrix(x: Any, name: str) -> tuple[np.ndarray, bool]:
    """``x`` as a finite float64 (n, d) matrix, and whether it was a single (d,) row."""
    arr = np.asarray(x, dtype=np.float64)
    single = arr.ndim == 1
    if single:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a (n, d) or (d,) array, got shape {np.shape(x)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr, single


def zero_shot_probs(
    item_embeddings: np.ndarray, category_embeddings: np.ndarray, temperature: float = 0.05
) -> np.ndarray:
    """Softmax over cosine similarities of items (n, d) to categories (k, d): (n, k).

    Both inputs are L2-normalised here. A 1-D item embedding gives a 1-D result.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    x, single = as_matrix(item_embeddings, "item_embeddings")
    c, _ = as_matrix(category_embeddings, "category_embeddings")
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"dimension mismatch: items have {x.shape[1]}, categories {c.shape[1]}")
    probs = softmax(rowwise_dot(l2_rows(x), l2_rows(c)) / temperature)
    return probs[0] if single else probs
