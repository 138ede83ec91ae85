"""The auxiliary domain in the sentiment fit: another domain's rows inform the general
weights without overriding what the review rows teach.

Synthetic 4-d embeddings make the two domains disagree outright: in reviews the
first direction means positive and the second negative; in the auxiliary domain
(three times as many rows) the reverse. Texts are unique words, so n-grams carry
no label. Pooled, the auxiliary rows win; as an auxiliary domain, the head still
reads reviews the reviews' way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from memberstream.ml.sentiment import NEGATIVE, NEUTRAL, POSITIVE
from memberstream.ml.training import text_corpus as tc
from memberstream.ml.training.sentiment import (
    EmbeddingMemo,
    SentimentTrainingConfig,
    train_sentiment,
)

REVIEW, AUX = tc.VADER_AMAZON_EN, tc.VADER_MOVIE_EN
CONFIG = SentimentTrainingConfig(
    sources=(REVIEW, AUX),
    auxiliary_sources=(AUX,),
    buckets=1 << 10,
    lexicon=False,
    max_iter=200,
    l2_shared=1e-2,
    l2_language=(1e-3, 1e-3),
)


def _training_texts(prefix: str, n: int) -> list[str]:
    """n distinct texts that fall in the training part of the fixed split."""
    out, i = [], 0
    while len(out) < n:
        text = f"{prefix} word{i}"
        if tc.split_of(text) == tc.TRAIN and not tc.is_dev(text):
            out.append(text)
        i += 1
    return out


def _rows_and_memo() -> tuple[list[tc.LabeledText], EmbeddingMemo, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    memo = EmbeddingMemo(encoder=None, progress=lambda _m: None)  # type: ignore[arg-type]
    first, second = np.eye(4)[0], np.eye(4)[1]

    def add(text: str, direction: np.ndarray) -> None:
        memo.rows[text] = (direction + 0.1 * rng.standard_normal(4)).astype(np.float32)

    rows = []
    # Reviews: first direction positive, second negative; a few neutral near zero.
    for k, text in enumerate(_training_texts("review", 120)):
        label = (POSITIVE, NEGATIVE, NEUTRAL)[k % 3]
        add(text, {POSITIVE: first, NEGATIVE: second, NEUTRAL: np.zeros(4)}[label])
        rows.append(tc.LabeledText(text, "en", REVIEW, float(label - 1) * 2, label, label != 1))
    # The other domain says the reverse, with three times the rows, neutral ones too
    # (which an auxiliary source leaves out of the fit).
    for k, text in enumerate(_training_texts("movie", 360)):
        label = (POSITIVE, NEGATIVE, NEUTRAL)[k % 3]
        add(text, {POSITIVE: second, NEGATIVE: first, NEUTRAL: np.zeros(4)}[label])
        rows.append(tc.LabeledText(text, "en", AUX, float(label - 1) * 2, label, label != 1))
    probe_pos = np.stack([first + 0.05 * rng.standard_normal(4) for _ in range(20)])
    probe_neg = np.stack([second + 0.05 * rng.standard_normal(4) for _ in range(20)])
    return rows, memo, probe_pos, probe_neg


def _review_accuracy(config: SentimentTrainingConfig) -> float:
    rows, memo, probe_pos, probe_neg = _rows_and_memo()
    head = train_sentiment(None, None, config, lambda _m: None, memo, rows=rows).head  # type: ignore[arg-type]
    assert head is not None
    texts = [f"unseen probe {i}" for i in range(40)]
    probs = head.predict_proba(np.vstack([probe_pos, probe_neg]).astype(np.float32), texts)
    assert np.isfinite(probs).all()
    said_positive = probs[:, POSITIVE] > probs[:, NEGATIVE]
    truth = np.array([True] * 20 + [False] * 20)
    return float((said_positive == truth).mean())


def test_an_auxiliary_domain_does_not_override_the_reviews() -> None:
    assert _review_accuracy(CONFIG) == 1.0


def test_pooled_the_other_domain_would_win() -> None:
    # The control: the same rows as plain training rows turn the review head around,
    # so the test above passes because of the domain weights, not the data.
    pooled = SentimentTrainingConfig(**{**CONFIG.__dict__, "auxiliary_sources": ()})
    assert _review_accuracy(pooled) <= 0.25


def test_auxiliary_rows_weigh_as_configured() -> None:
    from memberstream.ml.training.sentiment import _design

    rows, memo, _, _ = _rows_and_memo()
    kept = [r for r in rows if not (r.source == AUX and r.label == NEUTRAL)]
    emb = memo([r.text for r in kept])
    for share in (0.5, 1.0, 2.0):
        config = SentimentTrainingConfig(**{**CONFIG.__dict__, "auxiliary_weight": share})
        design = _design(kept, emb, {}, config)
        aux = np.array([r.source == AUX for r in kept])
        assert math.isclose(design.weights.sum(), 1.0)
        assert design.weights[aux].sum() / design.weights[~aux].sum() == pytest.approx(share)
        # Each group is class-balanced on its own.
        for group in (aux, ~aux):
            per_class = [design.weights[group & (design.labels == c)].sum() for c in range(3)]
            present = [w for w in per_class if w > 0]
            assert present == pytest.approx([present[0]] * len(present))
        assert not design.domain[aux].any() and design.domain[~aux].all()
