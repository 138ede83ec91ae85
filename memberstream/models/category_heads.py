"""Category scoring for interest: zero-shot against embedded category descriptions,
or a fine-tuned linear head loaded from the model directory when one exists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from memberstream.models.taxonomy import Taxonomy

HEAD_FILE = "interest_head.npz"


# --- category scoring ----------------------------------------------------------------------


def _l2(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _rowwise_dot(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T``, computed so that each row's result does not depend on the other rows.

    BLAS picks kernels (and summation orders) by matrix shape, so ``x @ w.T`` can
    give a row different last bits alone than inside a batch; einsum's plain loop
    sums each element in the same order whatever the batch, which keeps a
    replay's category probabilities bit-identical however events were batched.
    """
    return np.einsum("nd,kd->nk", x, w, optimize=False)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _as_matrix(x: Any, name: str) -> tuple[np.ndarray, bool]:
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
    x, single = _as_matrix(item_embeddings, "item_embeddings")
    c, _ = _as_matrix(category_embeddings, "category_embeddings")
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"dimension mismatch: items have {x.shape[1]}, categories {c.shape[1]}")
    probs = _softmax(_rowwise_dot(_l2(x), _l2(c)) / temperature)
    return probs[0] if single else probs


@runtime_checkable
class CategoryHead(Protocol):
    """Anything that turns item embeddings (n, d) into category probabilities (n, k)."""

    category_ids: tuple[str, ...] | None

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class ZeroShotHead:
    """Cold start: cosine similarity to the embedded category descriptions."""

    category_embeddings: np.ndarray
    temperature: float = 0.05
    category_ids: tuple[str, ...] | None = None

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        return zero_shot_probs(embeddings, self.category_embeddings, self.temperature)


@dataclass(frozen=True, eq=False)
class LinearHead:
    """A fine-tuned classification head: ``softmax(x @ W.T + b)``, x L2-normalised if asked."""

    weight: np.ndarray  # (k, d)
    bias: np.ndarray  # (k,)
    category_ids: tuple[str, ...] | None = None
    normalize: bool = True

    def __post_init__(self) -> None:
        w = np.asarray(self.weight, dtype=np.float64)
        b = np.asarray(self.bias, dtype=np.float64)
        if w.ndim != 2 or b.shape != (w.shape[0],):
            raise ValueError(f"head needs W (k, d) and b (k,), got {w.shape} and {b.shape}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ValueError("head weights must be finite")
        if self.category_ids is not None and len(self.category_ids) != w.shape[0]:
            raise ValueError(f"head has {w.shape[0]} outputs but {len(self.category_ids)} ids")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        x, single = _as_matrix(embeddings, "embeddings")
        if x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"head expects dimension {self.weight.shape[1]}, got {x.shape[1]}")
        if self.normalize:
            x = _l2(x)
        probs = _softmax(_rowwise_dot(x, self.weight) + self.bias)
        return probs[0] if single else probs

    def save(self, path: str | Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "W": self.weight,
            "b": self.bias,
            "normalize": np.asarray(self.normalize),
        }
        if self.category_ids is not None:
            arrays["category_ids"] = np.asarray(self.category_ids, dtype=np.str_)
        with open(path, "wb") as f:
            np.savez(f, **arrays)


def load_head(model_dir: str | Path, taxonomy: Taxonomy | None = None) -> LinearHead | None:
    """The fine-tuned head in ``model_dir/interest_head.npz``, or None when there is none.

    The file holds ``W`` (k, d), ``b`` (k,), optionally ``category_ids`` (k,) and
    ``normalize``. With a taxonomy, the rows are checked against (and, when only
    the order differs, rearranged to) the taxonomy's order.
    """
    path = Path(model_dir) / HEAD_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("W", "b") if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing arrays {missing} (has {sorted(z.files)})")
            weight, bias = z["W"], z["b"]
            ids = tuple(str(i) for i in z["category_ids"]) if "category_ids" in z.files else None
            normalize = bool(z["normalize"]) if "normalize" in z.files else True
    except (OSError, ValueError) as exc:
        raise ValueError(f"interest head {path}: cannot load: {exc}") from None
    head = LinearHead(weight, bias, ids, normalize)
    if taxonomy is None:
        return head
    if ids is None:
        if len(bias) != len(taxonomy):
            raise ValueError(
                f"interest head {path}: {len(bias)} outputs for {len(taxonomy)} categories"
            )
        return LinearHead(head.weight, head.bias, taxonomy.ids, normalize)
    if ids == taxonomy.ids:
        return head
    if sorted(ids) != sorted(taxonomy.ids):
        extra = sorted(set(ids) - set(taxonomy.ids))
        lacking = sorted(set(taxonomy.ids) - set(ids))
        raise ValueError(
            f"interest head {path}: categories differ from taxonomy {taxonomy.name!r}: "
            f"not in taxonomy {extra}, not in head {lacking}"
        )
    order = [ids.index(cid) for cid in taxonomy.ids]
    return LinearHead(head.weight[order], head.bias[order], taxonomy.ids, normalize)


def category_head(
    model_dir: str | Path | None,
    category_embeddings: np.ndarray,
    taxonomy: Taxonomy | None = None,
    temperature: float = 0.05,
) -> CategoryHead:
    """The fine-tuned head when ``model_dir`` has one, else zero-shot on the descriptions."""
    head = load_head(model_dir, taxonomy) if model_dir is not None else None
    if head is not None:
        return head
    ids = taxonomy.ids if taxonomy is not None else None
    return ZeroShotHead(np.asarray(category_embeddings, dtype=np.float64), temperature, ids)
