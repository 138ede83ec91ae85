"""One training run of the learning loop: samples -> candidate -> registry -> gate -> promotion.

The Kafka side (announcing a promotion on model.updates) is the caller's; this
module decides and records. Every candidate is registered, promoted or not, with the
gate's figures and decision in its manifest, so ``models list`` shows what was tried
and why it was refused.

Production, for the gate, is the registry's production version of the task; before
the first promotion it is the head shipped in the encoder's directory (registered
and promoted as the baseline, so a rollback can return to it) or, for interest
without a fine-tuned head, the zero-shot head. The anomaly task refits the learned
scorer on the bootstrap's synthetic stream plus the analysts' verdicts
(:mod:`memberstream.ml.training.anomaly_feedback`); workers hot-swap it like the heads.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from memberstream.config import Settings
from memberstream.ml.category_heads import CategoryHead, load_head
from memberstream.ml.encoder import TextEncoder
from memberstream.ml.inference import load_taxonomy
from memberstream.ml.learned_scorer import LearnedScorer
from memberstream.ml.registry import (
    ARTIFACT_FILES,
    ModelRegistry,
    ModelVersion,
    code_version,
    load_check,
)
from memberstream.ml.sentiment import SentimentHead, load_sentiment_head
from memberstream.ml.training.anomaly import TrainingConfig
from memberstream.ml.training.anomaly_feedback import (
    FeedbackTrainingConfig,
    analyst_verdicts,
    train_anomaly_candidate,
)
from memberstream.ml.training.loop import (
    Candidate,
    GateRules,
    labeled_samples,
    train_interest_candidate,
    train_sentiment_candidate,
)
from memberstream.ml.training.sample_store import SampleStore
from memberstream.ml.training.sentiment import EmbeddingMemo

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
TRAINABLE = ("sentiment", "interest", "anomaly")


@dataclass
class TrainResult:
    task: str
    decision: str
    """promoted, refused, or skipped (too few samples)."""
    reason: str
    candidate: ModelVersion | None = None
    production_before: str | None = None
    promotion: dict[str, Any] | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    window: dict[str, str | None] = field(default_factory=dict)


def gate_rules(settings: Settings) -> GateRules:
    g = settings.learning.gate
    return GateRules(g.margin, g.regression_tolerance, g.validation_fraction, g.min_samples)


def registry_of(settings: Settings) -> ModelRegistry:
    return ModelRegistry(settings.learning.registry_dir)


def ensure_baseline(
    registry: ModelRegistry, task: str, model_dir: Path, encoder_version: str
) -> ModelVersion | None:
    """The task's production version; the encoder directory's head becomes the first
    one when nothing was promoted yet (None: no head there either)."""
    current = registry.production(task)
    if current is not None:
        return current
    artifact = model_dir / ARTIFACT_FILES[task]
    if not artifact.is_file():
        return None
    baseline = registry.register(
        task,
        {artifact.name: artifact},
        parent=None,
        encoder_version=encoder_version,
        data_window={"since": None, "until": None},
        samples={},
        metrics={},
        code_version=code_version(),
        extra={"origin": f"bootstrap head from {model_dir}"},
    )
    registry.promote(task, baseline.version, reason="baseline: the bootstrap head", actor="learn")
    log.info("registry: %s baseline %s from %s", task, baseline.version, artifact)
    return baseline


def feedback_config(settings: Settings) -> FeedbackTrainingConfig:
    """The anomaly task's recipe: the bootstrap's synthetic stream and the analyst weight."""
    conf = settings.learning.anomaly
    bootstrap = TrainingConfig(
        seed=conf.bootstrap_seed,
        members=conf.bootstrap_members,
        days=conf.bootstrap_days,
        threshold=settings.anomaly.learned.threshold,
    )
    return FeedbackTrainingConfig(bootstrap=bootstrap, analyst_weight=conf.analyst_weight)


def _anomaly_candidate(
    settings: Settings,
    production_mv: ModelVersion | None,
    store: SampleStore,
    encoder: TextEncoder,
    window: tuple[datetime | None, datetime | None],
    work: Path,
    progress: Progress,
) -> Candidate:
    verdicts = analyst_verdicts(store, *window)
    progress(
        f"anomaly: {len(verdicts):,} analyst verdicts with order features in "
        f"{settings.learning.samples_dir}"
    )
    production = None if production_mv is None else LearnedScorer.load(production_mv.artifact)
    return train_anomaly_candidate(
        verdicts,
        production,
        encoder,
        work,
        gate_rules(settings),
        feedback_config(settings),
        progress,
    )


def train_task(
    settings: Settings,
    task: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    promote: bool = True,
    progress: Progress = log.info,
    encoder: TextEncoder | None = None,
) -> TrainResult:
    """Train ``task`` on the collected samples, register the candidate, gate it, and
    promote it when the gate says so (and ``promote``)."""
    if task not in TRAINABLE:
        raise ValueError(f"task must be one of {TRAINABLE}, got {task!r}")
    conf = settings.inference.encoder
    model_dir = conf.resolved_model_dir()
    encoder = encoder or TextEncoder.from_settings(conf)
    registry = registry_of(settings)
    store = SampleStore(settings.learning.samples_dir)
    rules = gate_rules(settings)
    production_mv = ensure_baseline(registry, task, model_dir, encoder.version)
    samples = [] if task == "anomaly" else labeled_samples(store, task, since, until)
    if task != "anomaly":
        progress(f"{task}: {len(samples):,} labeled samples in {settings.learning.samples_dir}")
    memo = EmbeddingMemo(encoder, progress)
    taxonomy = load_taxonomy(settings)
    with tempfile.TemporaryDirectory(prefix=f"memberstream-train-{task}-") as tmp:
        work = Path(tmp)
        if task == "anomaly":
            candidate = _anomaly_candidate(
                settings, production_mv, store, encoder, (since, until), work, progress
            )
        elif task == "sentiment":
            prod_head: SentimentHead | None = (
                load_sentiment_head(production_mv.path) if production_mv is not None else None
            )
            if prod_head is None:
                raise FileNotFoundError(
                    f"no production sentiment head: neither the registry nor {model_dir} has one "
                    "(`memberstream models train-sentiment` makes the bootstrap head)"
                )
            candidate = train_sentiment_candidate(samples, prod_head, memo, work, rules, progress)
        else:
            from memberstream.ml.training.loop import zero_shot_as_linear

            prod: CategoryHead | None = None
            if production_mv is not None:
                prod = load_head(production_mv.path, taxonomy)
            if prod is None:
                zs = zero_shot_as_linear(
                    memo(taxonomy.descriptions()), settings.inference.zero_shot_temperature
                )
                prod = zs
            candidate = train_interest_candidate(
                samples,
                prod,
                taxonomy,
                memo,
                settings.inference.zero_shot_temperature,
                work,
                rules,
                progress,
            )
        result = TrainResult(
            task,
            "skipped",
            candidate.decision.reason,
            production_before=None if production_mv is None else production_mv.version,
            figures=candidate.decision.figures,
            samples=candidate.samples,
            window=candidate.split.window,
        )
        if candidate.artifact is None:
            return result
        metrics = {
            "gate": {
                "promote": candidate.decision.promote,
                "reason": candidate.decision.reason,
                **candidate.decision.figures,
            }
        }
        mv = registry.register(
            task,
            {candidate.artifact.name: candidate.artifact},
            parent=result.production_before,
            encoder_version=encoder.version,
            data_window=candidate.split.window,
            samples=candidate.samples,
            metrics=metrics,
            code_version=code_version(),
        )
    result.candidate = mv
    if not candidate.decision.promote:
        result.decision = "refused"
        return result
    if not promote:
        result.decision = "passed (not promoted: --no-promote)"
        return result
    check = load_check(task, encoder.dim, taxonomy=taxonomy)
    result.promotion = registry.promote(
        task, mv.version, check=check, reason=candidate.decision.reason, actor="train"
    )
    result.decision = "promoted"
    return result
