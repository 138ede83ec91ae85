"""Category scoring for interest: zero-shot against embedded category descriptions,
or a fine-tuned linear head loaded from the model directory when one exists."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from memberstream.domain.taxonomy import Taxonomy
from memberstream.domain.vectors import as_matrix, l2_rows, rowwise_dot, softmax, zero_shot_probs

HEAD_FILE = "interest_head.npz"


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
        x, single = as_matrix(embeddings, "embeddings")
        if x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"head expects dimension {self.weight.shape[1]}, got {x.shape[1]}")
        if self.normalize:
            x = l2_rows(x)
        probs = softmax(rowwise_dot(x, self.weight) + self.bias)
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
