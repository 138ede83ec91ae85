"""The review-sentiment head: labels, batch independence, ONNX/npz files, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memberstream.ml.sentiment import (
    LABELS,
    SENTIMENT_FILE,
    WEIGHTS_FILE,
    SentimentHead,
    label_for_rating,
    load_sentiment_head,
    polarity,
    save_onnx,
)
from memberstream.ml.training.sentiment import (
    SentimentTrainingConfig,
    confusion_matrix,
    fit_softmax,
    macro_f1,
    train_sentiment,
)

from .text_doubles import DIM, WordHashEncoder

SMALL = SentimentTrainingConfig(seed=211, members=600, days=60)


def _head(dim: int = DIM, seed: int = 0) -> SentimentHead:
    rng = np.random.default_rng(seed)
    return SentimentHead(rng.normal(size=(dim, 3)) * 3, rng.normal(size=3))


def _unit_rows(n: int, dim: int = DIM, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_label_for_rating() -> None:
    assert [LABELS[label_for_rating(r)] for r in range(1, 6)] == [
        "negative",
        "negative",
        "neutral",
        "positive",
        "positive",
    ]
    with pytest.raises(ValueError):
        label_for_rating(0)


def test_polarity() -> None:
    assert polarity(np.array([0.1, 0.2, 0.7])) == pytest.approx(0.6)
    assert polarity(np.array([1.0, 0.0, 0.0])) == -1.0


def test_rows_sum_to_one_and_do_not_depend_on_the_batch() -> None:
    head, x = _head(), _unit_rows(97)
    probs = head.predict_proba(x)
    assert probs.shape == (97, 3) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    for i in (0, 13, 96):
        assert np.array_equal(head.predict_proba(x[i : i + 1])[0], probs[i])
    assert np.array_equal(head.predict_proba(x[40:60]), probs[40:60])


def test_save_load_round_trip(tmp_path: Path) -> None:
    head, x = _head(), _unit_rows(20)
    head.save(tmp_path)
    loaded = load_sentiment_head(tmp_path, expected_dim=DIM)
    assert loaded is not None
    assert loaded.version.startswith("sentiment@") and len(loaded.version) == len("sentiment@") + 12
    assert np.array_equal(loaded.predict_proba(x), head.predict_proba(x))


def test_onnx_runtime_agrees_with_the_numpy_path(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    head, x = _head(), _unit_rows(50)
    head.save(tmp_path)
    session = ort.InferenceSession(
        str(tmp_path / SENTIMENT_FILE), providers=["CPUExecutionProvider"]
    )
    (onnx_probs,) = session.run(["probs"], {"embedding": x})
    loaded = load_sentiment_head(tmp_path)
    assert loaded is not None
    np.testing.assert_allclose(onnx_probs, loaded.predict_proba(x), atol=1e-6, rtol=0)


def test_files_are_byte_identical_when_saved_twice(tmp_path: Path) -> None:
    head = _head()
    head.save(tmp_path / "a")
    _head().save(tmp_path / "b")
    for name in (SENTIMENT_FILE, WEIGHTS_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    save_onnx(_head(seed=1), tmp_path / "other.onnx")
    assert (tmp_path / "other.onnx").read_bytes() != (tmp_path / "a" / SENTIMENT_FILE).read_bytes()


def test_missing_file_gives_none(tmp_path: Path) -> None:
    assert load_sentiment_head(tmp_path) is None


def test_dim_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    head = _head()
    head.save(tmp_path)
    with pytest.raises(ValueError, match=r"384-d.*train-sentiment"):
        load_sentiment_head(tmp_path, expected_dim=384)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        head.predict_proba(_unit_rows(3, dim=8))


def test_npz_from_another_onnx_is_refused(tmp_path: Path) -> None:
    _head().save(tmp_path)
    save_onnx(_head(seed=3), tmp_path / SENTIMENT_FILE)
    with pytest.raises(ValueError, match="train-sentiment"):
        load_sentiment_head(tmp_path)


def test_fit_softmax_separates_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, DIM)) * 2
    y = np.repeat(np.arange(3), [200, 40, 80])  # imbalanced, as star ratings are
    x = centres[y] + rng.normal(size=(len(y), DIM))
    weights, bias = fit_softmax(x, y)
    predicted = (x @ weights + bias).argmax(axis=1)
    assert macro_f1(confusion_matrix(y, predicted)) > 0.95
    assert abs(float(bias.sum())) < 1e-9


def test_training_beats_chance_and_is_deterministic(tmp_path: Path) -> None:
    report = train_sentiment(WordHashEncoder(), tmp_path / "a", SMALL, progress=lambda _m: None)
    # Chance macro-F1 is about 0.33; word-hash embeddings give 0.69 on this seed.
    assert report.macro_f1 > 0.55
    assert report.accuracy > 0.65
    assert report.train_texts + report.heldout_texts == report.texts < report.reviews
    assert sum(map(sum, report.confusion)) == report.heldout_texts
    assert report.head is not None and report.head.version.startswith("sentiment@")
    train_sentiment(WordHashEncoder(), tmp_path / "b", SMALL, progress=lambda _m: None)
    for name in (SENTIMENT_FILE, WEIGHTS_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
