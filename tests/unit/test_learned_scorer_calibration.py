"""Platt scaling of the learned anomaly score (memberstream.ml.learned_scorer)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from memberstream.domain.anomaly.order_features import BEHAVIOUR_FEATURES, OrderVector
from memberstream.ml.learned_scorer import (
    LearnedScorer,
    calibration_error,
    fit_logistic,
    fit_platt,
)


def test_platt_recovers_the_scaling_that_made_the_labels() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 3, 40_000)
    true_a, true_b = 0.6, -2.0
    y = (rng.random(logits.size) < 1 / (1 + np.exp(-(true_a * logits + true_b)))).astype(float)
    a, b = fit_platt(logits, y)
    assert a == pytest.approx(true_a, abs=0.03)
    assert b == pytest.approx(true_b, abs=0.06)


def test_platt_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        fit_platt(np.array([0.1, 0.2]), np.array([1.0, 1.0]))


def test_a_calibrated_scorer_is_the_sigmoid_of_the_scaled_logit() -> None:
    rng = np.random.default_rng(5)
    n = len(BEHAVIOUR_FEATURES)
    x = rng.normal(size=(400, n))
    y = (x[:, 0] + 0.5 * rng.normal(size=400) > 1.0).astype(float)
    scorer = LearnedScorer(*fit_logistic(x, y), embedding_dim=0)
    vectors = [OrderVector(tuple(row), None) for row in x[:20]]
    logits = scorer.logits(vectors)
    scaled = scorer.calibrated(0.5, -1.5)
    probs = [s.probability for s in scaled.score(vectors)]
    expected = [1 / (1 + math.exp(-(0.5 * z - 1.5))) for z in logits]
    assert probs == pytest.approx(expected, rel=1e-9)
    assert scaled.metadata["platt"] == [0.5, -1.5]


def test_class_balanced_scores_overstate_rare_positives_until_scaled() -> None:
    """The balanced fit's output is no probability when positives are rare; Platt scaling
    on held-out rows brings the calibration error down."""
    rng = np.random.default_rng(9)
    n = len(BEHAVIOUR_FEATURES)

    def draw(rows: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(rows, n))
        p = 1 / (1 + np.exp(-(2.0 * x[:, 0] - 5.0)))  # about 2% positives
        return x, (rng.random(rows) < p).astype(float)

    x_fit, y_fit = draw(20_000)
    x_cal, y_cal = draw(20_000)
    x_test, y_test = draw(20_000)
    scorer = LearnedScorer(*fit_logistic(x_fit, y_fit), embedding_dim=0)

    def vectors(x: np.ndarray) -> list[OrderVector]:
        return [OrderVector(tuple(r), None) for r in x]

    raw = np.array([s.probability for s in scorer.score(vectors(x_test))])
    a, b = fit_platt(scorer.logits(vectors(x_cal)), y_cal)
    scaled = np.array([s.probability for s in scorer.calibrated(a, b).score(vectors(x_test))])
    assert raw.mean() > 3 * y_test.mean()  # balanced classes: far too many "likely" rows
    assert scaled.mean() == pytest.approx(y_test.mean(), rel=0.2)
    assert calibration_error(scaled, y_test) < calibration_error(raw, y_test) / 5


def test_calibration_error_by_hand() -> None:
    probs = np.array([0.05, 0.05, 0.95, 0.95])
    y = np.array([0.0, 0.0, 1.0, 0.0])
    # bins: 0.0-0.1 holds 2 rows at rate 0 vs 0.05; 0.9-1.0 holds 2 at rate 0.5 vs 0.95
    assert calibration_error(probs, y) == pytest.approx((2 * 0.05 + 2 * 0.45) / 4)
