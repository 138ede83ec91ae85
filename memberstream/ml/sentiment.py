"""Review sentiment: a linear softmax head over the encoder's embeddings.

The head maps a review's unit embedding (title and body, embedded as the worker
embeds them) to probabilities of ``negative``, ``neutral`` and ``positive``. It
is trained from star ratings (:mod:`memberstream.ml.training.sentiment`),
so no hand labels are needed to bootstrap it.

It is saved twice, with the same float32 weights:

- ``sentiment_head.onnx``, a MatMul + Add + Softmax graph, so any ONNX runtime
  (or a GPU batch job) can run it next to the encoder; its sha256 names the
  head's version;
- ``sentiment_head.npz``, which the worker reads with numpy alone: the worker
  has onnxruntime but not the ``onnx`` package, and a three-output head is
  cheaper to run in numpy than to hand to another session. The npz records the
  sha256 of the ``.onnx`` it was written with, so a stray pair is refused.

The numpy path computes each row on its own (see
:func:`memberstream.domain.vectors.rowwise_dot`), so a review's
probabilities are bit-identical whatever batch it arrived in, and agree with
ONNX Runtime on the graph within 1e-6.

Both files are written byte for byte deterministically (fixed zip timestamps,
fixed graph metadata): the same weights give the same files and the same version.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from memberstream.domain.vectors import rowwise_dot, softmax

LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
NEGATIVE, NEUTRAL, POSITIVE = range(3)
SENTIMENT_FILE = "sentiment_head.onnx"
WEIGHTS_FILE = "sentiment_head.npz"
OPSET = 17
IR_VERSION = 8
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def label_for_rating(rating: int) -> int:
    """The weak label of a star rating: 1-2 negative, 3 neutral, 4-5 positive."""
    if not 1 <= rating <= 5:
        raise ValueError(f"rating must be 1..5, got {rating}")
    if rating <= 2:
        return NEGATIVE
    return NEUTRAL if rating == 3 else POSITIVE


def polarity(probs: np.ndarray) -> float:
    """p(positive) - p(negative) of one row of probabilities, in [-1, 1]."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape != (len(LABELS),):
        raise ValueError(f"polarity needs one row of {len(LABELS)} probabilities, got {p.shape}")
    return float(np.clip(p[POSITIVE] - p[NEGATIVE], -1.0, 1.0))


class SentimentHead:
    """``softmax(x @ W + b)`` over unit embeddings ``x`` (n, dim); W (dim, 3), b (3,)."""

    def __init__(
        self, weights: np.ndarray, bias: np.ndarray, version: str = "sentiment@in-memory"
    ) -> None:
        w = np.asarray(weights, dtype=np.float32)
        b = np.asarray(bias, dtype=np.float32)
        k = len(LABELS)
        if w.ndim != 2 or w.shape[1] != k or b.shape != (k,):
            raise ValueError(
                f"sentiment head needs W (dim, {k}) and b ({k},), got {w.shape}, {b.shape}"
            )
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise ValueError("sentiment head weights must be finite")
        self.weights = w
        self.bias = b
        self.version = version

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def predict_proba(self, embeddings: np.ndarray) -> np.ndarray:
        """Probabilities (n, 3) in label order, float64; each row independent of the batch."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(
                f"sentiment head expects embeddings of shape (n, {self.dim}), got {x.shape}"
            )
        w = self.weights.astype(np.float64)
        logits = rowwise_dot(x, w.T) + self.bias.astype(np.float64)
        return softmax(logits)

    def save(self, model_dir: str | Path) -> Path:
        """Write ``sentiment_head.onnx`` and ``sentiment_head.npz`` into ``model_dir``."""
        directory = Path(model_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / SENTIMENT_FILE
        save_onnx(self, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        _write_npz(directory / WEIGHTS_FILE, W=self.weights, b=self.bias, onnx_sha256=digest)
        return path


def onnx_bytes(head: SentimentHead) -> bytes:
    """The head as a serialized ONNX model (needs the ``onnx`` package: train/dev extras)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["embedding", "W"], ["logits_w"]),
            helper.make_node("Add", ["logits_w", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
        ],
        "sentiment_head",
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", head.dim])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", len(LABELS)])],
        initializer=[
            numpy_helper.from_array(head.weights, "W"),
            numpy_helper.from_array(head.bias, "b"),
        ],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="memberstream",
        ir_version=IR_VERSION,
    )
    model.doc_string = "review sentiment head; outputs " + ",".join(LABELS)
    return model.SerializeToString(deterministic=True)


def save_onnx(head: SentimentHead, path: str | Path) -> None:
    """Write the head's ONNX graph to ``path`` (same weights, same bytes)."""
    Path(path).write_bytes(onnx_bytes(head))


def _write_npz(path: Path, **arrays: np.ndarray | str) -> None:
    """``np.savez`` with fixed zip timestamps, so the same arrays give the same bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", _ZIP_TIME), buf.getvalue())


def load_sentiment_head(
    model_dir: str | Path, expected_dim: int | None = None
) -> SentimentHead | None:
    """The head saved in ``model_dir``, or None when it has no ``sentiment_head.onnx``.

    Weights come from the npz beside the graph (numpy only); the version is
    ``sentiment@`` and the first 12 hex digits of the graph's sha256. With
    ``expected_dim`` (the encoder's), a head trained on another encoder is refused.
    """
    directory = Path(model_dir)
    path = directory / SENTIMENT_FILE
    if not path.is_file():
        return None
    retrain = "retrain it with `memberstream models train-sentiment`"
    npz = directory / WEIGHTS_FILE
    if not npz.is_file():
        raise ValueError(f"sentiment head {path}: {npz.name} is missing beside it; {retrain}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        with np.load(npz, allow_pickle=False) as z:
            weights, bias, recorded = z["W"], z["b"], str(z["onnx_sha256"])
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"sentiment head {npz}: cannot load ({exc}); {retrain}") from None
    if recorded != digest:
        raise ValueError(f"sentiment head {npz} was not written with {path.name}; {retrain}")
    head = SentimentHead(weights, bias, version=f"sentiment@{digest[:12]}")
    if expected_dim is not None and head.dim != expected_dim:
        raise ValueError(
            f"sentiment head {path} takes {head.dim}-d embeddings but the encoder gives "
            f"{expected_dim}-d: it was trained on another encoder; {retrain}"
        )
    return head
