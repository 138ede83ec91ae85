"""The periodic trainer: collected samples -> a candidate head -> the gate's decision.

For each task the trainer reads the committed samples
(:class:`~memberstream.ml.training.sample_store.SampleStore`), resolves each sample id
to one label (an analyst's correction wins over the stars or the behaviour rule),
orders them by event time and splits them by time: the newest
``validation_fraction`` of the samples (every sample at or after the cut-off time) is
the validation window, the older ones train. Nothing is shuffled across the cut.

Candidates are heads on the frozen encoder:

- **sentiment**: the bootstrap head's recipe
  (:func:`memberstream.ml.training.sentiment.train_sentiment`: per-language weights
  over the embedding, hashed n-grams, lexicon) fitted on the bootstrap training part
  plus the collected training window;
- **interest**: the zero-shot head written as a linear head (``W = C / T``) plus an
  L2-penalised correction fitted to the collected (title, category) pairs, so
  categories without samples keep their zero-shot behaviour.

The gate compares the candidate with the production version on the same validation
window (macro-F1 over the classes present) and on a fixed regression set that neither
was fitted on (for sentiment, binary accuracy on the 120 hand-written mixed-verdict
reviews; for interest, macro-F1 on the taxonomy's own descriptions, each of which must
still score its category). Data a version was fitted on would make a poor regression
set: it favours the version that fits its training data more tightly, not the one that
generalises better. The candidate is
promoted only when it beats production by ``margin`` on the window and loses at most
``regression_tolerance`` on the regression set. Every figure and the decision are
returned for the registry's manifest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.category_heads import CategoryHead, LinearHead
from memberstream.ml.sentiment import LABELS, NEGATIVE, NEUTRAL, POSITIVE, SentimentHead
from memberstream.ml.training import text_corpus as tc
from memberstream.ml.training.sample_store import SampleStore
from memberstream.ml.training.sentiment import EmbeddingMemo

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
Embed = Callable[[Sequence[str]], np.ndarray]

LABEL_INDEX = {"negative": NEGATIVE, "neutral": NEUTRAL, "positive": POSITIVE}
SOURCE_RANK = {"analyst": 2, "behaviour": 1, "stars": 1}


@dataclass(frozen=True)
class LabeledSample:
    sample_id: str
    label: str
    label_source: str
    event_time: datetime
    text: str
    language: str | None


@dataclass(frozen=True)
class Split:
    train: list[LabeledSample]
    validation: list[LabeledSample]
    cutoff: datetime | None
    """Validation holds every sample at or after it; training every sample before it."""

    @property
    def window(self) -> dict[str, str | None]:
        every = [*self.train, *self.validation]
        return {
            "since": every[0].event_time.isoformat() if every else None,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "until": every[-1].event_time.isoformat() if every else None,
        }


def labeled_samples(
    store: SampleStore,
    kind: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[LabeledSample]:
    """One label per sample id (analyst over stars/behaviour; the newest analyst label
    among several), with its text, in event-time order; ``since <= t < until``."""
    rows = store.rows(kind)
    texts: dict[str, tuple[str, str | None, datetime]] = {}
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        sid = r["sample_id"]
        if r["text"]:
            texts.setdefault(sid, (r["text"], r["language"], r["event_time"]))
        current = best.get(sid)
        rank = (SOURCE_RANK.get(r["label_source"], 0), r["event_time"])
        if current is None or rank > current["_rank"]:
            best[sid] = {**r, "_rank": rank}
    out = []
    for sid, r in best.items():
        if sid not in texts:  # a correction of a review the collector never saw
            continue
        text, language, t = texts[sid]  # the event time of what is labeled, not the label
        if (since is not None and t < since) or (until is not None and t >= until):
            continue
        out.append(LabeledSample(sid, r["label"], r["label_source"], t, text, language))
    out.sort(key=lambda s: (s.event_time, s.sample_id))
    return out


def time_split(samples: Sequence[LabeledSample], validation_fraction: float) -> Split:
    """Older samples train, the newest ``validation_fraction`` validate (whole timestamps)."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    ordered = sorted(samples, key=lambda s: (s.event_time, s.sample_id))
    if len(ordered) < 2:
        return Split(list(ordered), [], None)
    n_val = max(1, math.ceil(len(ordered) * validation_fraction))
    cutoff = ordered[-n_val].event_time
    train = [s for s in ordered if s.event_time < cutoff]
    validation = [s for s in ordered if s.event_time >= cutoff]
    return Split(train, validation, cutoff)


# --- metrics -------------------------------------------------------------------------


def macro_f1(truth: Sequence[int], predicted: Sequence[int]) -> float:
    """Macro-F1 over the classes present in ``truth``."""
    t = np.asarray(truth)
    p = np.asarray(predicted)
    if t.size == 0:
        return float("nan")
    scores = []
    for c in np.unique(t):
        tp = float(np.sum((t == c) & (p == c)))
        fp = float(np.sum((t != c) & (p == c)))
        fn = float(np.sum((t == c) & (p != c)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def sentiment_figures(
    head: SentimentHead, embed: Embed, texts: Sequence[str], labels: Sequence[int]
) -> dict[str, float]:
    """Macro-F1 (3-class) and binary accuracy (polar truth: positive vs negative)."""
    if not texts:
        return {"n": 0, "macro_f1": float("nan"), "binary_accuracy": float("nan")}
    probs = head.predict_proba(embed(texts), list(texts))
    truth = np.asarray(labels)
    polar = truth != NEUTRAL
    said_pos = probs[polar, POSITIVE] > probs[polar, NEGATIVE]
    return {
        "n": len(texts),
        "macro_f1": macro_f1(truth, probs.argmax(axis=1)),
        "binary_accuracy": float((said_pos == (truth[polar] == POSITIVE)).mean())
        if polar.any()
        else float("nan"),
    }


# --- the gate ------------------------------------------------------------------------


@dataclass(frozen=True)
class GateRules:
    margin: float = 0.002
    regression_tolerance: float = 0.02
    validation_fraction: float = 0.2
    min_samples: int = 200


@dataclass
class Decision:
    promote: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def decide(
    candidate: float,
    production: float,
    candidate_regression: float,
    production_regression: float,
    rules: GateRules,
    metric: str = "macro_f1",
    regression_metric: str | None = None,
) -> Decision:
    """Promote only on a win by ``margin`` on the window and no regression beyond tolerance."""
    regression_metric = regression_metric or metric
    figures = {
        "metric": metric,
        "regression_metric": regression_metric,
        "validation": {"candidate": candidate, "production": production},
        "regression": {"candidate": candidate_regression, "production": production_regression},
        "margin": rules.margin,
        "regression_tolerance": rules.regression_tolerance,
    }
    if not math.isfinite(candidate):
        return Decision(False, "no validation figure for the candidate", figures)
    if math.isfinite(production) and candidate < production + rules.margin:
        return Decision(
            False,
            f"{metric} {candidate:.4f} on the validation window does not beat production "
            f"{production:.4f} by the margin {rules.margin}",
            figures,
        )
    if (
        math.isfinite(production_regression)
        and candidate_regression < production_regression - rules.regression_tolerance
    ):
        return Decision(
            False,
            f"regression set {regression_metric} {candidate_regression:.4f} is more than "
            f"{rules.regression_tolerance} below production's {production_regression:.4f}",
            figures,
        )
    return Decision(
        True,
        f"{metric} {candidate:.4f} vs production {production:.4f} on the validation window; "
        f"regression set {regression_metric} {candidate_regression:.4f} vs "
        f"{production_regression:.4f}",
        figures,
    )


# --- sentiment -----------------------------------------------------------------------


@dataclass
class Candidate:
    task: str
    artifact: Path | None
    """The candidate's file, written into the work directory (None: no candidate)."""
    decision: Decision
    split: Split
    samples: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)


def _as_labeled_text(s: LabeledSample) -> tc.LabeledText | None:
    language = s.language if s.language in ("en", "zh") else None
    if language is None:
        return None
    label = LABEL_INDEX[s.label]
    score = {NEGATIVE: -2.0, NEUTRAL: 0.0, POSITIVE: 2.0}[label]
    return tc.LabeledText(
        text=s.text,
        language=language,
        source=f"platform-{language}",
        score=score,
        label=label,
        polar=label != NEUTRAL,
    )


def train_sentiment_candidate(
    samples: Sequence[LabeledSample],
    production: SentimentHead,
    memo: EmbeddingMemo,
    work_dir: Path,
    rules: GateRules,
    progress: Progress = log.info,
    data_dir: Path | None = None,
) -> Candidate:
    """Fit a sentiment head on bootstrap + the collected training window; gate it."""
    from memberstream.ml.training.sentiment import SentimentTrainingConfig, train_sentiment

    usable = [s for s in samples if s.label in LABEL_INDEX]
    split = time_split(usable, rules.validation_fraction)
    counts = {"total": len(usable), "train": len(split.train), "validation": len(split.validation)}
    if len(usable) < rules.min_samples:
        reason = f"{len(usable)} labeled samples, fewer than min_samples {rules.min_samples}"
        return Candidate("sentiment", None, Decision(False, reason), split, counts)
    extra_rows = [r for r in map(_as_labeled_text, split.train) if r is not None]
    bootstrap = tc.bootstrap_training(SentimentTrainingConfig().sources, data_dir)
    progress(
        f"sentiment: fitting on {len(bootstrap):,} bootstrap texts and {len(extra_rows):,} "
        f"collected ones (before {split.cutoff}); validating on {len(split.validation):,}"
    )
    report = train_sentiment(
        memo.encoder, work_dir, progress=progress, memo=memo, data_dir=data_dir,
        rows=bootstrap, extra_rows=extra_rows,
    )  # fmt: skip
    candidate = report.head
    assert candidate is not None and report.path is not None
    val_texts = [s.text for s in split.validation]
    val_labels = [LABEL_INDEX[s.label] for s in split.validation]
    reg = tc.mixed_reviews()
    reg_texts, reg_labels = [r.text for r in reg], [r.label for r in reg]
    progress("sentiment: scoring candidate and production on the window and the regression set")
    cand_val = sentiment_figures(candidate, memo, val_texts, val_labels)
    prod_val = sentiment_figures(production, memo, val_texts, val_labels)
    cand_reg = sentiment_figures(candidate, memo, reg_texts, reg_labels)
    prod_reg = sentiment_figures(production, memo, reg_texts, reg_labels)
    decision = decide(
        cand_val["macro_f1"], prod_val["macro_f1"],
        cand_reg["binary_accuracy"], prod_reg["binary_accuracy"],
        rules, regression_metric="binary_accuracy",
    )  # fmt: skip
    decision.figures["candidate"] = {"validation": cand_val, "regression": cand_reg}
    decision.figures["production"] = {"validation": prod_val, "regression": prod_reg}
    decision.figures["production_version"] = production.version
    decision.figures["candidate_head"] = candidate.version
    counts["bootstrap"] = len(bootstrap)
    return Candidate("sentiment", report.path, decision, split, counts)


# --- interest ------------------------------------------------------------------------


def zero_shot_as_linear(category_embeddings: np.ndarray, temperature: float) -> LinearHead:
    c = np.asarray(category_embeddings, dtype=np.float64)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return LinearHead(c / temperature, np.zeros(len(c)), None, True)


def fit_correction(
    base: LinearHead,
    x: np.ndarray,
    y: np.ndarray,
    l2: float = 1.0,
    max_iter: int = 200,
) -> LinearHead:
    """``base`` plus an L2-penalised correction (dW, db) minimising cross-entropy on
    (x, y): where data says nothing the head stays the base."""
    from scipy.optimize import minimize

    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k, d = base.weight.shape
    onehot = np.zeros((len(y), k))
    onehot[np.arange(len(y)), y] = 1.0

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        dw = theta[: k * d].reshape(k, d)
        db = theta[k * d :]
        logits = xn @ (base.weight + dw).T + base.bias + db
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        n = len(y)
        loss = -np.sum(onehot * np.log(np.maximum(p, 1e-300))) / n
        loss += 0.5 * l2 * (np.sum(dw * dw) + np.sum(db * db))
        g = (p - onehot) / n
        gw = g.T @ xn + l2 * dw
        gb = g.sum(axis=0) + l2 * db
        return float(loss), np.concatenate([gw.ravel(), gb])

    result = minimize(
        loss_grad, np.zeros(k * d + k), jac=True, method="L-BFGS-B",
        options={"maxiter": max_iter},
    )  # fmt: skip
    dw = result.x[: k * d].reshape(k, d)
    db = result.x[k * d :]
    return LinearHead(base.weight + dw, base.bias + db, base.category_ids, True)


def train_interest_candidate(
    samples: Sequence[LabeledSample],
    production: CategoryHead,
    taxonomy: Taxonomy,
    embed: Embed,
    temperature: float,
    work_dir: Path,
    rules: GateRules,
    progress: Progress = log.info,
) -> Candidate:
    """Fit a correction of the zero-shot head to collected (title, category) pairs."""
    from memberstream.ml.category_heads import HEAD_FILE

    index = {cid: i for i, cid in enumerate(taxonomy.ids)}
    usable = [s for s in samples if s.label in index]
    split = time_split(usable, rules.validation_fraction)
    counts = {"total": len(usable), "train": len(split.train), "validation": len(split.validation)}
    if len(usable) < rules.min_samples:
        reason = f"{len(usable)} labeled samples, fewer than min_samples {rules.min_samples}"
        return Candidate("interest", None, Decision(False, reason), split, counts)
    progress(
        f"interest: fitting on {len(split.train):,} collected titles (before {split.cutoff}); "
        f"validating on {len(split.validation):,}"
    )
    base = zero_shot_as_linear(embed(taxonomy.descriptions()), temperature)
    base = LinearHead(base.weight, base.bias, taxonomy.ids, True)
    x = np.asarray(embed([s.text for s in split.train]), dtype=np.float64)
    y = np.array([index[s.label] for s in split.train])
    candidate = fit_correction(base, x, y)
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / HEAD_FILE
    candidate.save(path)

    def f1(head: CategoryHead, texts: list[str], labels: list[int]) -> float:
        if not texts:
            return float("nan")
        return macro_f1(labels, head.predict_proba(embed(texts)).argmax(axis=1))

    val_texts = [s.text for s in split.validation]
    val_labels = [index[s.label] for s in split.validation]
    reg_texts = taxonomy.descriptions()
    reg_labels = list(range(len(taxonomy)))
    cand = (f1(candidate, val_texts, val_labels), f1(candidate, reg_texts, reg_labels))
    prod = (f1(production, val_texts, val_labels), f1(production, reg_texts, reg_labels))
    decision = decide(cand[0], prod[0], cand[1], prod[1], rules)
    return Candidate("interest", path, decision, split, counts)


__all__ = [
    "LABELS",
    "Candidate",
    "Decision",
    "GateRules",
    "LabeledSample",
    "Split",
    "decide",
    "labeled_samples",
    "macro_f1",
    "time_split",
    "train_interest_candidate",
    "train_sentiment_candidate",
]
