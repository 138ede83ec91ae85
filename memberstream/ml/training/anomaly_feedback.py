"""The learning loop's anomaly task: the learned score refitted with analysts' verdicts.

Labels. An analyst's verdict on a flag (``labels.feedback``, collected as an ``anomaly``
sample) is a label for the flagged order: ``confirmed`` = 1, ``false_positive`` = 0. One
label per flag: the newest verdict wins (an analyst may revise one). Only verdicts whose
sample carries the order's behaviour features count, i.e. on learned_score and
order_value_outlier flags the collector saw on ``member.anomalies``
(:mod:`memberstream.domain.samples`); a verdict on a click burst or a review says nothing
about an order's vector.

Data and weights. The candidate is fitted on the bootstrap's synthetic stream (the
training part of :func:`~memberstream.ml.training.anomaly.bootstrap_set`, same seed and
recipe as the bootstrap scorer) plus the analysts' training window. Each analyst label
weighs ``analyst_weight`` synthetic orders (default 10): it is a real order judged by a
person, where a synthetic label is the generator's idea of a takeover; and analysts
label few orders, so at weight 1 a hundred verdicts would vanish among tens of thousands
of synthetic orders. The classes stay balanced by their total weight, as in the
bootstrap fit, and the candidate gets the bootstrap's Platt scaling step (fitted on the
bootstrap's calibration orders, not on the verdicts, which are a sample of flagged
orders only), so its output is a probability on the same scale as before and
``anomaly.learned.threshold`` keeps its meaning. The candidate takes no item embedding
(``embedding_dim`` 0): flags carry the behaviour features only.

Evaluation. The analysts' verdicts are split by time (the newest
``validation_fraction`` validate, see :func:`~memberstream.ml.training.loop.time_split`);
the gate compares the candidate with production by AUC on that window (confirmed above
rejected) and on the bootstrap's held-out part (the synthetic orders after its time
split, which neither was fitted on) as the regression set. Production is the registry's
production scorer; before any promotion, the bootstrap scorer shipped in the model
directory; without one, the same recipe fitted on the bootstrap alone. Promotion,
registry and announcement are the other tasks' (:func:`memberstream.core.learning.train_task`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from memberstream.domain.anomaly.order_features import BEHAVIOUR_FEATURES, OrderVector
from memberstream.domain.vectors import Encoder
from memberstream.ml.learned_scorer import SCORER_FILE, LearnedScorer, fit_logistic
from memberstream.ml.training.anomaly import (
    TrainingConfig,
    _auc,
    bootstrap_set,
    calibrate_scorer,
)
from memberstream.ml.training.loop import (
    Candidate,
    Decision,
    GateRules,
    LabeledSample,
    decide,
    time_split,
)
from memberstream.ml.training.sample_store import SampleStore

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

VERDICT_LABELS = {"confirmed": 1.0, "false_positive": 0.0}


@dataclass(frozen=True)
class Verdict:
    """An analyst-labeled order: the flag's sample id, the label and the order's features."""

    sample_id: str
    label: float
    event_time: datetime
    """The verdict's event time (what the time split orders by)."""
    features: np.ndarray
    kind: str | None = None


@dataclass(frozen=True)
class FeedbackTrainingConfig:
    bootstrap: TrainingConfig = field(default_factory=TrainingConfig)
    analyst_weight: float = 10.0
    """How many synthetic orders one analyst label weighs."""


def _features(details: dict[str, Any]) -> np.ndarray | None:
    named = details.get("features")
    if not isinstance(named, dict):
        return None
    values = [named.get(name) for name in BEHAVIOUR_FEATURES]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return np.array(values, dtype=np.float64)


def analyst_verdicts(
    store: SampleStore, since: datetime | None = None, until: datetime | None = None
) -> list[Verdict]:
    """One verdict per flag with the order's features, ``since <= t < until``, in
    event-time order (see the module doc)."""
    newest: dict[str, dict[str, Any]] = {}
    features: dict[str, tuple[np.ndarray, str | None]] = {}
    for r in store.rows("anomaly"):  # flush order: a later row of the same time wins
        if r["label_source"] != "analyst" or r["label"] not in VERDICT_LABELS:
            continue
        sid = r["sample_id"]
        details = orjson.loads(r["details"] or "{}")
        found = _features(details)
        if found is not None:
            features[sid] = (found, details.get("kind"))
        current = newest.get(sid)
        if current is None or r["event_time"] >= current["event_time"]:
            newest[sid] = r
    out = []
    for sid, r in newest.items():
        if sid not in features:
            continue
        t = r["event_time"]
        if (since is not None and t < since) or (until is not None and t >= until):
            continue
        vector, kind = features[sid]
        out.append(Verdict(sid, VERDICT_LABELS[r["label"]], t, vector, kind))
    out.sort(key=lambda v: (v.event_time, v.sample_id))
    return out


def _probabilities(scorer: LearnedScorer, vectors: Sequence[OrderVector]) -> np.ndarray:
    return np.array([s.probability for s in scorer.score(vectors)], dtype=np.float64)


def _fit(
    x: np.ndarray, y: np.ndarray, w: np.ndarray | None, l2: float, meta: dict
) -> LearnedScorer:
    mean, scale, weights, bias = fit_logistic(x, y, l2=l2, sample_weight=w)
    return LearnedScorer(mean, scale, weights, bias, 0, metadata=meta)


def _window_figures(scorer: LearnedScorer, verdicts: Sequence[Verdict]) -> dict[str, Any]:
    if not verdicts:
        return {"n": 0, "auc": float("nan")}
    probs = _probabilities(scorer, [OrderVector(v.features, None) for v in verdicts])
    labels = np.array([v.label for v in verdicts])
    figures: dict[str, Any] = {"n": len(verdicts), "auc": _auc(probs, labels)}
    for name, value in (("confirmed", 1.0), ("false_positive", 0.0)):
        chosen = probs[labels == value]
        figures[f"mean_score_{name}"] = float(chosen.mean()) if len(chosen) else float("nan")
    return figures


def train_anomaly_candidate(
    verdicts: Sequence[Verdict],
    production: LearnedScorer | None,
    encoder: Encoder,
    work_dir: Path,
    rules: GateRules,
    config: FeedbackTrainingConfig = FeedbackTrainingConfig(),
    progress: Progress = log.info,
) -> Candidate:
    """Fit the learned scorer on bootstrap + the analysts' training window; gate it."""
    by_id = {v.sample_id: v for v in verdicts}
    proxies = [
        LabeledSample(v.sample_id, str(v.label), "analyst", v.event_time, "", None)
        for v in verdicts
    ]
    split = time_split(proxies, rules.validation_fraction)
    train = [by_id[s.sample_id] for s in split.train]
    held = [by_id[s.sample_id] for s in split.validation]
    confirmed = sum(1 for v in verdicts if v.label > 0)
    counts = {
        "total": len(verdicts),
        "train": len(train),
        "validation": len(held),
        "confirmed": confirmed,
        "false_positive": len(verdicts) - confirmed,
    }
    if len(verdicts) < rules.min_samples:
        reason = f"{len(verdicts)} analyst verdicts, fewer than min_samples {rules.min_samples}"
        return Candidate("anomaly", None, Decision(False, reason), split, counts)
    boot = bootstrap_set(encoder, config.bootstrap, progress)
    x_boot = boot.matrix(0)
    fit_rows = boot.train_rows
    x_analyst = np.array([v.features for v in train]).reshape(len(train), len(BEHAVIOUR_FEATURES))
    x = np.vstack([x_boot[fit_rows], x_analyst])
    y = np.concatenate([boot.y[fit_rows], [v.label for v in train]])
    w = np.concatenate([np.ones(int(fit_rows.sum())), np.full(len(train), config.analyst_weight)])
    progress(
        f"anomaly: fitting on {int(fit_rows.sum()):,} synthetic orders and {len(train):,} "
        f"analyst verdicts at weight {config.analyst_weight:g} (before {split.cutoff}); "
        f"validating on {len(held):,}"
    )
    meta = {
        "seed": config.bootstrap.seed,
        "encoder": getattr(encoder, "version", "?"),
        "analyst_verdicts": len(train),
        "analyst_weight": config.analyst_weight,
    }
    candidate = calibrate_scorer(_fit(x, y, w, config.bootstrap.l2, meta), boot, progress)
    if production is None:
        progress("anomaly: no production scorer; comparing with the bootstrap recipe alone")
        production = calibrate_scorer(
            _fit(x_boot[fit_rows], boot.y[fit_rows], None, config.bootstrap.l2, {}), boot, progress
        )
    reg_vectors = [v for v, keep in zip(boot.vectors, fit_rows, strict=True) if not keep]
    reg_labels = boot.y[~fit_rows]
    cand_reg = _auc(_probabilities(candidate, reg_vectors), reg_labels)
    prod_reg = _auc(_probabilities(production, reg_vectors), reg_labels)
    cand_val = _window_figures(candidate, held)
    prod_val = _window_figures(production, held)
    decision = decide(cand_val["auc"], prod_val["auc"], cand_reg, prod_reg, rules, metric="auc")
    decision.figures["candidate"] = {"validation": cand_val, "regression_auc": cand_reg}
    decision.figures["production"] = {"validation": prod_val, "regression_auc": prod_reg}
    decision.figures["production_version"] = production.version
    decision.figures["analyst_weight"] = config.analyst_weight
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / SCORER_FILE
    candidate.save(path)
    counts["bootstrap_train"] = int(fit_rows.sum())
    counts["bootstrap_held_out"] = len(reg_vectors)
    return Candidate("anomaly", path, decision, split, counts)
