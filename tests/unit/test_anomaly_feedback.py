"""Feedback that teaches: analysts' verdicts on flags become training labels for the
learned anomaly score, through the collector, the trainer, the gate and the registry."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memberstream.config import Settings
from memberstream.core.learning import registry_of, train_task
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES
from memberstream.domain.anomaly.order_features import (
    BEHAVIOUR_FEATURES,
    OrderVector,
    feature_details,
)
from memberstream.domain.samples import SampleDeriver
from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.inference import InferenceStage
from memberstream.ml.learned_scorer import LearnedScorer
from memberstream.ml.training.anomaly import TrainingConfig, train
from memberstream.ml.training.anomaly_feedback import analyst_verdicts
from memberstream.ml.training.sample_store import Collected, SampleStore
from memberstream.schemas.events import Feedback
from memberstream.schemas.outputs import AnomalyFlag, ModelUpdate
from memberstream.streams.model_watch import load_announced

from .test_anomaly_flow import order, toy_scorer
from .text_doubles import DIM, WordHashEncoder

KEY = b"test-key"
T0 = datetime(2024, 5, 1, tzinfo=UTC)
SMALL = TrainingConfig(members=300, days=40.0)
"""A small bootstrap stream (under a second): 300 members, 40 days."""


class Encoder(WordHashEncoder):
    dim = DIM


def verdict_on(flag_id: str, verdict: str, n: int = 0, days: float = 0.0) -> Feedback:
    return Feedback(
        event_id=f"fb-{n}",
        member_id="m1",
        occurred_at=T0 + timedelta(days=days),
        subject="anomaly_flag",
        ref_id=flag_id,
        verdict=verdict,  # type: ignore[arg-type]
    )


# --- flags carry the order's features; verdicts on them are samples with them ----------------


def takeover_flags() -> list[dict]:
    """A member's six small book orders, then a $5,400 laptop order (toy learned scorer)."""
    stage = InferenceStage(WordHashEncoder(), Taxonomy.load(None))
    stage.scorer = toy_scorer()
    run = OfflineRun(Settings(), stage)
    run.feed(order(i, "m1", day=i * 7, price=12.0 + i) for i in range(6))
    run.apply(order(99, "m1", day=50, price=1800.0, qty=3))
    return run.outputs[ANOMALIES]


@pytest.mark.parametrize("verdict", ["confirmed", "false_positive"])
def test_a_verdict_on_a_learned_score_flag_is_a_sample_with_the_orders_features(
    verdict: str,
) -> None:
    flags = {f["kind"]: AnomalyFlag.model_validate(f) for f in takeover_flags()}
    learned = flags["learned_score"]
    deriver = SampleDeriver(KEY)
    deriver.observe_flag(learned)
    (sample,) = deriver.derive(verdict_on(learned.flag_id, verdict))
    assert sample.label == verdict and sample.label_source == "analyst"
    features = sample.details["features"]
    assert list(features) == list(BEHAVIOUR_FEATURES)
    # worked out from the orders themselves: six earlier orders, $5,400 in one line of 3
    assert features["log_total"] == round(math.log1p(5400.0), 4)
    assert features["log_prior_orders"] == round(math.log1p(6), 4)
    assert features["first_order"] == 0.0
    assert features["line_items"] == 1.0
    assert features["log_quantity"] == round(math.log1p(3), 4)
    assert features["log_max_unit_price"] == round(math.log1p(1800.0), 4)
    assert features["log_hours_since_last_order"] == round(math.log1p(15 * 24), 4)
    assert features["new_category_share"] == 1.0
    # the order-value flag on the same order carries the same vector
    value_flag = flags["order_value_outlier"]
    assert {k: v for k, v in value_flag.details.items() if k.startswith("x:")} == {
        f"x:{k}": v for k, v in features.items()
    }


def test_a_verdict_on_an_unseen_flag_is_not_a_training_label(tmp_path: Path) -> None:
    deriver = SampleDeriver(KEY)
    (sample,) = deriver.derive(verdict_on("never-seen", "false_positive"))
    store = SampleStore(tmp_path)
    store.write([Collected(sample, "labels.feedback", 0, 0)], {("labels.feedback", 0): 1})
    assert "features" not in sample.details
    assert analyst_verdicts(store) == []


# --- train --task anomaly --------------------------------------------------------------------

# A long-standing member's big order (30 orders over 300 days, $2,500, a category and taste
# the member knows): the synthetic bootstrap's scorer flags it, the analysts reject it.
REJECTED = np.array(
    [math.log1p(2500), 1.0, math.log1p(30), 0, math.log1p(300), math.log1p(200), 0.1, 1,
     math.log1p(1), math.log1p(2500), 0.0, 0.8, 0.0]
)  # fmt: skip
# A quieter takeover ($900 in a new category, four earlier orders): the analysts confirm it.
CONFIRMED = np.array(
    [math.log1p(900), 3.0, math.log1p(4), 0, math.log1p(40), math.log1p(5), 0.8, 2,
     math.log1p(2), math.log1p(600), 1.0, 0.1, 0.0]
)  # fmt: skip


def analyst_store(root: Path, n: int = 40) -> SampleStore:
    """``n`` verdicts, alternating, twelve hours apart, as the collector writes them."""
    rng = np.random.default_rng(1)
    deriver = SampleDeriver(KEY)
    rows = []
    for i in range(n):
        base, verdict = (REJECTED, "false_positive") if i % 2 == 0 else (CONFIRMED, "confirmed")
        at = T0 + timedelta(hours=12 * i)
        details = {"total": 1.0, **feature_details(base + rng.normal(0, 0.1, len(base)))}
        deriver.observe_flag(
            AnomalyFlag(
                output_id=f"flag-{i}", flag_id=f"flag-{i}", kind="learned_score",
                subject="member", member_id="m1", product_id=None, score=0.95,
                threshold=0.9, window_start=at, window_end=at, evidence=[f"o-{i}"],
                details=details, detector_version="learned@test", cause_event_id=f"o-{i}",
                as_of=at,
            )
        )  # fmt: skip
        (sample,) = deriver.derive(verdict_on(f"flag-{i}", verdict, i, days=i / 2 + 0.1))
        rows.append(Collected(sample, "labels.feedback", 0, i))
    store = SampleStore(root / "samples")
    store.write(rows, {("labels.feedback", 0): n})
    return store


def settings_for(root: Path) -> Settings:
    return Settings(
        learning={
            "samples_dir": root / "samples",
            "registry_dir": root / "registry",
            "member_key": "k",
            "gate": {"min_samples": 20},
            "anomaly": {"bootstrap_members": SMALL.members, "bootstrap_days": SMALL.days},
        },
        inference={"encoder": {"model_dir": root / "models"}},
    )


def score(scorer: LearnedScorer, vector: np.ndarray) -> float:
    return scorer.score([OrderVector(vector, None)])[0].probability


def test_train_anomaly_learns_the_verdicts_and_workers_swap_it_in(tmp_path: Path) -> None:
    encoder = Encoder()
    train(encoder, tmp_path / "models", SMALL, progress=lambda _m: None)  # the bootstrap scorer
    bootstrap = LearnedScorer.load(tmp_path / "models" / "anomaly_scorer.npz")
    threshold = Settings().anomaly.learned.threshold
    before_rejected, before_confirmed = score(bootstrap, REJECTED), score(bootstrap, CONFIRMED)
    assert before_rejected >= threshold > before_confirmed  # why the analysts disagreed
    analyst_store(tmp_path)
    settings = settings_for(tmp_path)

    result = train_task(settings, "anomaly", encoder=encoder, progress=lambda _m: None)

    assert result.decision == "promoted", result.reason
    assert result.samples["train"] == 32 and result.samples["validation"] == 8
    figures = result.figures
    assert figures["metric"] == "auc"
    assert figures["validation"]["candidate"] > figures["validation"]["production"]
    assert figures["regression"]["candidate"] >= figures["regression"]["production"] - 0.02
    registry = registry_of(settings)
    production = registry.production("anomaly")
    assert production is not None and production.version == result.candidate.version
    assert production.version != result.production_before  # the bootstrap was the baseline
    learned = LearnedScorer.load(production.artifact)
    assert score(learned, REJECTED) < min(before_rejected, threshold)
    assert score(learned, CONFIRMED) > before_confirmed

    # a worker hot-swaps the promoted scorer between two batches
    stage = InferenceStage(WordHashEncoder(), Taxonomy.load(None))
    stage.scorer = bootstrap
    run = OfflineRun(Settings(), stage)
    update = ModelUpdate(
        output_id="u1", task="anomaly", version=production.version, previous_version=None,
        action="promote", location=str(production.path), files=dict(production.manifest["files"]),
        encoder_version=encoder.version, announced_at=datetime.now(UTC),
    )  # fmt: skip
    scorer, label = load_announced(update, stage)
    stage.offer("anomaly", scorer, label)
    assert stage.scorer is scorer and label == learned.version
    assert run.processor.learned_version == f"{learned.version}+{stage.encoder.version}"


def test_too_few_verdicts_train_nothing(tmp_path: Path) -> None:
    analyst_store(tmp_path, n=10)
    settings = settings_for(tmp_path)
    result = train_task(settings, "anomaly", encoder=Encoder(), progress=lambda _m: None)
    assert result.decision == "skipped" and result.candidate is None
    assert "10 analyst verdicts" in result.reason


def test_the_newest_verdict_on_a_flag_wins(tmp_path: Path) -> None:
    store = analyst_store(tmp_path, n=2)
    deriver = SampleDeriver(KEY)
    (revised,) = deriver.derive(verdict_on("flag-0", "confirmed", 99, days=5))
    store.write([Collected(revised, "labels.feedback", 0, 2)], {("labels.feedback", 0): 3})
    labels = {v.sample_id: v.label for v in analyst_verdicts(store)}
    assert labels == {"anomaly:flag-0": 1.0, "anomaly:flag-1": 1.0}
