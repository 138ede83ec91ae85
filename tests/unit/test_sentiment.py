"""The review-sentiment head: labels, text features, batch independence, the npz file."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from memberstream.ml.sentiment import (
    EN,
    LABELS,
    LEGACY_ONNX_FILE,
    WEIGHTS_FILE,
    ZH,
    SentimentHead,
    label_for_rating,
    language_of,
    lexicon_features,
    load_sentiment_head,
    ngram_features,
    polarity,
)
from memberstream.ml.training.sentiment import confusion_matrix, figures, macro_f1

from .text_doubles import DIM

BUCKETS = 1 << 12
LEXICON = {"good": 1.9, "great": 3.1, "bad": -2.5, "broken": -2.1, "love": 3.2}
TEXTS = [
    "Great sound, I love it!",
    "Broken after a week. Bad.",
    "not good, but the price is great",
    "价格小贵，但是真香。",
    "外观挺好看的，可是用了三天就坏了，已经退货。",
    "",
    "ok",
]


def _head(dim: int = DIM, seed: int = 0, text: bool = True) -> SentimentHead:
    rng = np.random.default_rng(seed)
    if not text:
        return SentimentHead(rng.normal(size=(dim, 3)) * 3, rng.normal(size=3))
    return SentimentHead(
        rng.normal(size=(2, dim, 3)) * 3,
        rng.normal(size=(2, 3)),
        ngram_weights=rng.normal(size=(BUCKETS, 3)),
        lexicon_weights=rng.normal(size=(2, 4, 3)),
        lexicon=LEXICON,
    )


def _unit_rows(n: int, dim: int = DIM, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _texts(n: int) -> list[str]:
    return [f"{TEXTS[i % len(TEXTS)]} {i}" if i % 3 else TEXTS[i % len(TEXTS)] for i in range(n)]


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


def test_language_and_ngram_features_are_stable() -> None:
    assert [language_of(t) for t in ("good", "真香", "iPhone 很好用", "")] == [EN, ZH, ZH, EN]
    idx, val = ngram_features("Good, GOOD good!", BUCKETS)
    # "good", "!", "good good", "good !": distinct, binary, L2-normalised, English half.
    assert len(idx) == 4 and np.all(idx < BUCKETS // 2)
    assert np.allclose(val, 0.5) and np.all(np.diff(idx) > 0)
    zh_idx, _ = ngram_features("真香", BUCKETS)
    assert len(zh_idx) == 3 and np.all(zh_idx >= BUCKETS // 2)
    # The hash is CRC-32 of the UTF-8 n-gram: pinned, so heads stay valid across Pythons.
    assert ngram_features("good", 1 << 18)[0].tolist() == [20114]
    assert ngram_features("香", 1 << 18)[0].tolist() == [131072 + 690]


def test_lexicon_features_handle_negation_and_but() -> None:
    good = lexicon_features("good", LEXICON)
    assert good[0] > 0 and good[3] == 1.0
    assert lexicon_features("not good", LEXICON)[0] < 0
    # After "but" the verdict counts 1.5x, before it 0.5x.
    assert lexicon_features("bad but great", LEXICON)[0] > 0
    assert lexicon_features("great but broken", LEXICON)[0] < 0
    assert np.array_equal(lexicon_features("", LEXICON), np.zeros(4))


def test_rows_sum_to_one_and_do_not_depend_on_the_batch() -> None:
    head, x, texts = _head(), _unit_rows(97), _texts(97)
    probs = head.predict_proba(x, texts)
    assert probs.shape == (97, 3) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    for i in range(97):
        assert np.array_equal(head.predict_proba(x[i : i + 1], texts[i : i + 1])[0], probs[i])
    assert np.array_equal(head.predict_proba(x[40:60], texts[40:60]), probs[40:60])
    order = np.random.default_rng(3).permutation(97)
    shuffled = head.predict_proba(x[order], [texts[i] for i in order])
    assert np.array_equal(shuffled, probs[order])


def test_the_text_matters() -> None:
    head, x = _head(), _unit_rows(1)
    a = head.predict_proba(x, ["great, love it"])
    b = head.predict_proba(x, ["broken and bad"])
    assert not np.array_equal(a, b)
    plain = _head(text=False)
    assert np.array_equal(plain.predict_proba(x, ["great"]), plain.predict_proba(x, ["bad"]))


def test_save_load_round_trip(tmp_path: Path) -> None:
    head, x, texts = _head(), _unit_rows(20), _texts(20)
    path = head.save(tmp_path)
    assert path == tmp_path / WEIGHTS_FILE and sorted(p.name for p in tmp_path.iterdir()) == [
        WEIGHTS_FILE
    ]
    loaded = load_sentiment_head(tmp_path, expected_dim=DIM)
    assert loaded is not None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.version == f"sentiment@{digest[:12]}" == head.content_version()
    assert np.array_equal(loaded.predict_proba(x, texts), head.predict_proba(x, texts))
    assert loaded.lexicon == pytest.approx(LEXICON)


def test_files_are_byte_identical_when_saved_twice(tmp_path: Path) -> None:
    _head().save(tmp_path / "a")
    _head().save(tmp_path / "b")
    a = (tmp_path / "a" / WEIGHTS_FILE).read_bytes()
    assert a == (tmp_path / "b" / WEIGHTS_FILE).read_bytes()
    _head(seed=1).save(tmp_path / "c")
    assert a != (tmp_path / "c" / WEIGHTS_FILE).read_bytes()


def test_missing_file_gives_none(tmp_path: Path) -> None:
    assert load_sentiment_head(tmp_path) is None


def test_dim_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    head = _head()
    head.save(tmp_path)
    with pytest.raises(ValueError, match=r"384-d.*another encoder.*train-sentiment"):
        load_sentiment_head(tmp_path, expected_dim=384)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        head.predict_proba(_unit_rows(3, dim=8), ["a", "b", "c"])
    with pytest.raises(ValueError, match="one text per embedding row"):
        head.predict_proba(_unit_rows(3), ["a", "b"])
    with pytest.raises(ValueError, match="one text per embedding row"):
        head.predict_proba(_unit_rows(3), "abc")


def test_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / WEIGHTS_FILE).write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="train-sentiment"):
        load_sentiment_head(tmp_path)


def _legacy_npz(path: Path, weights: np.ndarray, bias: np.ndarray, onnx_sha: str) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in (("W", weights), ("b", bias), ("onnx_sha256", np.array(onnx_sha))):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            archive.writestr(f"{name}.npy", buf.getvalue())


def test_an_old_embedding_only_head_still_loads(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    weights, bias = rng.normal(size=(DIM, 3)).astype(np.float32), np.zeros(3, np.float32)
    graph = b"an onnx graph"
    (tmp_path / LEGACY_ONNX_FILE).write_bytes(graph)
    digest = hashlib.sha256(graph).hexdigest()
    _legacy_npz(tmp_path / WEIGHTS_FILE, weights, bias, digest)
    head = load_sentiment_head(tmp_path, expected_dim=DIM)
    assert head is not None and head.version == f"sentiment@{digest[:12]}"
    x = _unit_rows(4)
    expected = SentimentHead(weights, bias).predict_proba(x, ["a"] * 4)
    assert np.array_equal(head.predict_proba(x, ["a", "b", "真香", ""]), expected)
    # A stray pair is refused, and a new head replaces the old pair.
    (tmp_path / LEGACY_ONNX_FILE).write_bytes(b"another graph")
    with pytest.raises(ValueError, match="train-sentiment"):
        load_sentiment_head(tmp_path)
    _head().save(tmp_path)
    assert not (tmp_path / LEGACY_ONNX_FILE).exists()
    assert load_sentiment_head(tmp_path) is not None


def test_figures() -> None:
    from memberstream.ml.training.text_corpus import LabeledText

    rows = [
        LabeledText("a", "en", "s", -2.0, 0, True),
        LabeledText("b", "en", "s", 0.0, 1, False),
        LabeledText("c", "en", "s", 2.0, 2, True),
        LabeledText("d", "en", "s", 0.8, 2, False),
    ]
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5], [0.1, 0.5, 0.4], [0.5, 0.1, 0.4]])
    f = figures(probs, rows)
    assert f["polar_n"] == 2 and f["binary_accuracy"] == 1.0  # c: p(pos) 0.4 > p(neg) 0.1
    assert f["accuracy"] == 0.25 and f["confusion"] == [[1, 0, 0], [0, 0, 1], [1, 1, 0]]
    conf = confusion_matrix(np.array([0, 2, 2]), np.array([0, 2, 1]))
    assert macro_f1(conf) == pytest.approx((1.0 + 2 / 3) / 2)
