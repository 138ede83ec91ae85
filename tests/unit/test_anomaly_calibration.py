"""Thresholds from the false-alert target (memberstream.domain.anomaly.calibration)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from memberstream.domain.anomaly.calibration import (
    RAISED,
    apply_cutoffs,
    budgets,
    calibrate,
    poisson_upper,
)
from memberstream.domain.anomaly.evaluation import PRPoint
from memberstream.domain.anomaly.settings import AnomalySettings

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "anomalies.json"


def curve(default: float, *points: tuple[float, float, float | None]) -> dict[str, Any]:
    """A curve as bench.anomaly_curves records it: (cutoff, false alerts per 10k, recall)."""
    return {
        "default_cutoff": default,
        "points": [PRPoint(c, None, r, fa)._asdict() for c, fa, r in points],
    }


def test_budget_is_split_equally() -> None:
    assert budgets(1.0, ["a", "b", "c", "d"]) == {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}
    assert budgets(1.0, []) == {}


def test_poisson_upper_bound_matches_the_known_values() -> None:
    # Exact one-sided 95% bounds: 0 counted -> -ln(0.05) = 2.996; 1 counted -> 4.744.
    assert poisson_upper(0) == pytest.approx(-math.log(0.05), abs=1e-6)
    assert poisson_upper(1) == pytest.approx(4.7439, abs=1e-3)


def test_defaults_within_the_target_together_stay() -> None:
    """0.6 + 0.3 false alerts per 10k is within 1.0: neither moves, even though each is
    above an equal share (0.5) alone."""
    cal = calibrate(
        {
            "order_value_outlier": curve(1.0, (0.5, 2.0, 0.9), (1.0, 0.6, 0.8), (1.5, 0.0, 0.4)),
            "learned_score": curve(0.9, (0.45, 3.0, 0.9), (0.9, 0.3, 0.7), (0.99, 0.0, 0.2)),
        },
        100_000,
        1.0,
    )
    assert {k: (c.cutoff, c.decision) for k, c in cal.items()} == {
        "order_value_outlier": (1.0, "default"),
        "learned_score": (0.9, "default"),
    }


def test_over_the_target_the_cheapest_raise_in_recall_goes_first() -> None:
    """Together 1.6 per 10k against a target of 1.0. Raising order value to 1.25 saves 0.6
    for 0.02 recall (cost 0.033 per false alert); raising the learned score to 0.95 saves
    0.6 for 0.3 recall (0.5 per false alert). The first is taken, and it is enough."""
    cal = calibrate(
        {
            "order_value_outlier": curve(
                1.0, (0.5, 2.0, 0.9), (1.0, 1.0, 0.8), (1.25, 0.4, 0.78), (1.5, 0.0, 0.4)
            ),
            "learned_score": curve(0.9, (0.45, 3.0, 0.9), (0.9, 0.6, 0.7), (0.95, 0.0, 0.4)),
        },
        100_000,
        1.0,
    )
    assert (cal["order_value_outlier"].cutoff, cal["order_value_outlier"].decision) == (
        1.25,
        RAISED,
    )
    assert (cal["learned_score"].cutoff, cal["learned_score"].decision) == (0.9, "default")
    assert cal["order_value_outlier"].false_alerts_per_10k + 0.6 <= 1.0


def test_no_false_alert_on_little_traffic_is_no_reason_to_lower() -> None:
    # 100,000 benign events and none flagged: the bound 3/100k = 0.30 per 10k > 0.125.
    kinds = {f"kind{i}": curve(1.0, (0.5, 0.0, 1.0), (1.0, 0.0, 0.9)) for i in range(8)}
    cal = calibrate(kinds, 100_000, 1.0)
    assert {c.cutoff for c in cal.values()} == {1.0}
    assert cal["kind0"].share_per_10k == 0.125
    assert cal["kind0"].upper_per_10k == pytest.approx(2.996 / 100_000 * 10_000, abs=1e-3)


def test_enough_benign_traffic_lowers_down_to_where_the_bound_breaks() -> None:
    # 10 million benign events: at 0.75 none (bound 0.003 per 10k), at 0.5 1,000 false
    # alerts (1.0 per 10k, over the share 0.5), so the threshold goes down to 0.75 only.
    cal = calibrate(
        {
            "click_burst": curve(1.0, (0.5, 1.0, 1.0), (0.75, 0.0, 0.95), (1.0, 0.0, 0.9)),
            "bot_pattern": curve(1.0, (1.0, 0.0, 1.0)),
        },
        10_000_000,
        1.0,
    )
    assert cal["click_burst"].cutoff == 0.75
    assert cal["click_burst"].decision.startswith("lowered")


def test_lowering_stops_at_the_first_cutoff_that_breaks_the_bound() -> None:
    # 0.5 is within the bound again, but 0.75 between it and the default is not.
    cal = calibrate(
        {"click_burst": curve(1.0, (0.5, 0.0, 1.0), (0.75, 1.0, 1.0), (1.0, 0.0, 1.0))},
        10_000_000,
        1.0,
    )
    assert cal["click_burst"].cutoff == 1.0


def test_a_target_no_cutoff_meets_is_reported() -> None:
    cal = calibrate({"order_velocity": curve(1.0, (1.0, 2.0, 1.0), (2.0, 1.5, 0.5))}, 100_000, 1.0)
    assert cal["order_velocity"].cutoff == 2.0
    assert cal["order_velocity"].decision.endswith("target not met")


def test_the_curve_must_hold_the_default_cutoff() -> None:
    with pytest.raises(ValueError, match="default cutoff"):
        calibrate({"learned_score": curve(0.9, (0.5, 0.0, 1.0), (0.95, 0.0, 1.0))}, 1000, 1.0)


def test_cutoffs_become_settings() -> None:
    base = AnomalySettings()
    s = apply_cutoffs(
        base,
        {
            "learned_score": 0.97,
            "order_velocity": 1.5,
            "click_burst": 2.0,
            "order_value_outlier": 1.0,
        },
    )
    assert s.learned.threshold == 0.97
    assert s.order_velocity.max_orders == round(base.order_velocity.max_orders * 1.5)
    assert s.click_burst.hard_cap == base.click_burst.hard_cap * 2
    assert s.click_burst.min_clicks == base.click_burst.min_clicks * 2
    assert s.order_value == base.order_value  # a cutoff of 1 leaves the kind alone
    with pytest.raises(ValueError, match="unknown kind"):
        apply_cutoffs(base, {"no_such_kind": 1.5})


def test_the_shipped_defaults_sit_at_their_calibrated_cutoffs() -> None:
    """The defaults come from the target: calibrating the recorded tuning-family curves
    (bench.anomalies) for the configured target leaves every kind at its default. Fails
    when a default changes without recalibrating, or the curves call for another one."""
    recorded = json.loads(RESULTS.read_text())
    a = recorded["families"]["a"]
    settings = AnomalySettings()
    cal = calibrate(
        a["curves"], a["evaluation"]["benign_events"], settings.target_false_alerts_per_10k
    )
    defaults = {
        "learned_score": settings.learned.threshold,
        "rating_text_mismatch": settings.rating_text_mismatch.min_probability,
    }
    for kind, c in cal.items():
        assert c.default_cutoff == defaults.get(kind, 1.0), f"{kind}: curves of other defaults"
        assert c.cutoff == c.default_cutoff, f"{kind}: calibrated {c.cutoff} ({c.decision})"
