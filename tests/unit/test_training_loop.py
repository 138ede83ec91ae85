"""The trainer's rules: one label per sample (analysts win), a time split that never
leaks newer samples into training, and a gate that refuses worse or unloadable
candidates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from memberstream.domain.samples import Sample
from memberstream.ml.registry import ModelRegistry, RegistryError, load_check
from memberstream.ml.training.loop import (
    GateRules,
    LabeledSample,
    decide,
    fit_correction,
    labeled_samples,
    macro_f1,
    time_split,
    zero_shot_as_linear,
)
from memberstream.ml.training.sample_store import Collected, SampleStore

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def sample(i: int, minutes: int, label: str = "positive") -> LabeledSample:
    return LabeledSample(f"s{i}", label, "stars", T0 + timedelta(minutes=minutes), f"t{i}", "en")


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_the_split_never_puts_a_newer_sample_in_training(fraction: float) -> None:
    rng = np.random.default_rng(3)
    minutes = rng.integers(0, 50, size=200)  # many samples share a timestamp
    samples = [sample(i, int(m)) for i, m in enumerate(minutes)]
    rng.shuffle(samples)  # arrival order is not time order
    split = time_split(samples, fraction)
    assert len(split.train) + len(split.validation) == 200
    assert max(s.event_time for s in split.train) < min(s.event_time for s in split.validation)
    assert split.cutoff == min(s.event_time for s in split.validation)
    assert len(split.validation) >= 200 * fraction  # whole timestamps go to validation


def test_the_split_of_too_few_samples_validates_nothing() -> None:
    split = time_split([sample(0, 0)], 0.2)
    assert (len(split.train), len(split.validation), split.cutoff) == (1, 0, None)
    with pytest.raises(ValueError):
        time_split([], 1.0)


def _row(sid: str, event: str, label: str, source: str, minutes: int, text: str | None) -> Sample:
    return Sample(
        sample_id=sid,
        event_id=event,
        kind="sentiment",
        label=label,
        label_source=source,  # type: ignore[arg-type]
        event_time=T0 + timedelta(minutes=minutes),
        member="m_x",
        text=text,
        language="en",
    )


def test_an_analyst_label_wins_over_the_stars_whichever_came_first(tmp_path: Path) -> None:
    store = SampleStore(tmp_path)
    rows = [
        _row("sentiment:r1", "f1", "negative", "analyst", 10, None),  # correction first
        _row("sentiment:r1", "r1", "positive", "stars", 1, "Lovely, but it broke"),
        _row("sentiment:r2", "r2", "positive", "stars", 2, "Great"),
        _row("sentiment:r2", "f2", "neutral", "analyst", 20, None),
        _row("sentiment:r2", "f3", "negative", "analyst", 30, None),  # the newest analyst
        _row("sentiment:r3", "f4", "negative", "analyst", 5, None),  # review never seen
    ]
    store.write([Collected(r, "t", 0, i) for i, r in enumerate(rows)], {("t", 0): len(rows)})
    got = {
        s.sample_id: (s.label, s.label_source, s.event_time)
        for s in labeled_samples(store, "sentiment")
    }
    assert got == {
        "sentiment:r1": ("negative", "analyst", T0 + timedelta(minutes=1)),
        "sentiment:r2": ("negative", "analyst", T0 + timedelta(minutes=2)),
    }
    # the time window filters on the labeled review's own event time
    assert [
        s.sample_id for s in labeled_samples(store, "sentiment", since=T0 + timedelta(minutes=2))
    ] == ["sentiment:r2"]


def test_macro_f1_against_a_hand_computed_value() -> None:
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 1 -> 2/3
    assert macro_f1([0, 0, 1, 1, 1], [0, 1, 1, 1, 0]) == pytest.approx((0.5 + 2 / 3) / 2)


RULES = GateRules(margin=0.01, regression_tolerance=0.02)


@pytest.mark.parametrize(
    ("candidate", "production", "cand_reg", "prod_reg", "promote"),
    [
        (0.80, 0.75, 0.70, 0.70, True),  # better, no regression
        (0.755, 0.75, 0.70, 0.70, False),  # better, but within the margin
        (0.70, 0.75, 0.80, 0.70, False),  # worse on the window
        (0.80, 0.75, 0.67, 0.70, False),  # regresses beyond the tolerance
        (0.80, 0.75, 0.69, 0.70, True),  # within the tolerance
        (float("nan"), 0.75, 0.7, 0.7, False),  # nothing to judge by
        (0.80, float("nan"), 0.7, float("nan"), True),  # nothing in production to beat
    ],
)
def test_the_gate(
    candidate: float, production: float, cand_reg: float, prod_reg: float, promote: bool
) -> None:
    decision = decide(candidate, production, cand_reg, prod_reg, RULES)
    assert decision.promote is promote, decision.reason
    assert decision.figures["validation"] == {"candidate": candidate, "production": production}


def test_a_candidate_the_worker_cannot_load_is_refused_at_promotion(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    bad = tmp_path / "sentiment_head.npz"
    bad.write_bytes(b"not an npz")
    mv = registry.register(
        "sentiment",
        {bad.name: bad},
        parent=None,
        encoder_version="e",
        data_window={},
        samples={},
        metrics={},
        code_version="c",
    )
    with pytest.raises(RegistryError):
        registry.promote("sentiment", mv.version, check=load_check("sentiment", 16))
    assert registry.production("sentiment") is None


def test_the_interest_correction_starts_from_zero_shot_and_learns_the_labels() -> None:
    rng = np.random.default_rng(0)
    categories = rng.normal(size=(3, 8))
    base = zero_shot_as_linear(categories, 0.05)
    # zero-shot on its own category vectors: each one is its own category
    assert (base.predict_proba(categories).argmax(axis=1) == [0, 1, 2]).all()
    # texts that look like category 0 but are labeled 2: the correction learns that
    x = categories[0] + 0.05 * rng.normal(size=(40, 8))
    y = np.full(40, 2)
    fitted = fit_correction(base, x, y, l2=0.01)
    assert (base.predict_proba(x).argmax(axis=1) == 0).all()
    assert (fitted.predict_proba(x).argmax(axis=1) == 2).mean() > 0.9
    assert fitted.predict_proba(categories[1:2]).argmax() == 1  # no data: still zero-shot
