"""bench.anomalies' pure parts: the lowered settings of the curve run, strengths on a
common scale, the cutoffs, the floors check and family b's construction."""

from __future__ import annotations

import argparse
import math
import sys
import types
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bench.anomalies import build_family_b, check_floors, parse_args
from bench.anomaly_curves import (
    ReviewBuckets,
    cutoffs,
    default_cutoff,
    lowered,
    lowest_cutoff,
    strength,
    suppression,
)
from memberstream.datasets.anomalies import AnomalyLabel
from memberstream.domain.anomaly.settings import AnomalySettings
from memberstream.schemas.events import ReviewEvent

D = AnomalySettings()
T0 = datetime(2024, 1, 10, tzinfo=UTC)


def test_lowered_scales_every_threshold_and_turns_off_what_hides_candidates() -> None:
    low = lowered(D, 0.5)
    cb, bp, ov, vel = D.click_burst, D.bot_pattern, D.order_value, D.order_velocity
    assert low.click_burst.min_clicks == round(cb.min_clicks / 2)
    assert low.click_burst.baseline_multiplier == max(1.01, cb.baseline_multiplier / 2)
    assert low.click_burst.hard_cap == round(cb.hard_cap / 2)
    assert low.bot_pattern.max_cv == pytest.approx(2 * bp.max_cv)
    assert low.bot_pattern.distinct_products_per_min == round(bp.distinct_products_per_min / 2)
    assert low.order_value.z_threshold == ov.z_threshold / 2
    assert low.order_value.min_total == ov.min_total / 2
    assert low.order_value.population_cap == ov.population_cap / 2
    assert low.order_velocity.max_orders == max(2, round(vel.max_orders / 2))
    assert low.review_bombing.min_low == max(2, round(D.review_bombing.min_low / 2))
    assert low.review_bombing.min_low_share == D.review_bombing.min_low_share / 2
    assert low.review_duplicate.min_members == max(2, round(D.review_duplicate.min_members / 2))
    assert low.review_duplicate.bucket_s == 60.0
    assert low.learned.threshold == D.learned.threshold / 2
    assert low.rating_text_mismatch.min_probability == 0.51
    for section in (low.click_burst, low.bot_pattern, low.order_value, low.order_velocity):
        assert section.cooldown_s == 0.0
    # secondary knobs stay: the curve sweeps the thresholds only
    assert low.order_velocity.tiny_total == vel.tiny_total
    assert low.review_duplicate.similarity == D.review_duplicate.similarity
    assert low.model_dump() != D.model_dump()
    assert AnomalySettings().model_dump() == D.model_dump()  # the defaults are not touched
    assert lowered(D, 1.0).order_velocity.max_orders == vel.max_orders
    with pytest.raises(ValueError):
        lowered(D, 0.0)


def _flag(kind: str, score: float, **details: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "score": score,
        "threshold": score / 2,
        "details": details,
        "product_id": "p1",
        "window_start": T0.isoformat(),
    }


def test_strength_is_one_at_the_default_threshold() -> None:
    cb, bp, rb = D.click_burst, D.bot_pattern, D.review_bombing
    start = T0.replace(hour=0)
    low_needed = max(rb.min_low, math.floor(rb.baseline_multiplier * 0.5) + 1)
    reviews = [
        ReviewEvent(
            event_id=f"r{i}", member_id=f"m{i}", occurred_at=start + timedelta(minutes=i),
            product_id="p1", rating=1 if i < low_needed else 5,
        )
        for i in range(low_needed + 2)
    ]  # fmt: skip
    buckets = ReviewBuckets(reviews, D)
    assert buckets.at("p1", start.timestamp(), rb.bucket_s) == (low_needed + 2, low_needed)
    needed = math.ceil(bp.distinct_products_per_min * bp.sustain_s / 60)
    at_default = {
        "click_burst": _flag("click_burst", cb.min_clicks, baseline=1.0, cv=0.1),
        "bot_pattern": _flag(
            "bot_pattern",
            needed,
            signal="distinct_products",
            distinct_products=needed,
            distinct_last_minute=bp.distinct_products_per_min,
        ),
        "order_velocity": _flag("order_velocity", D.order_velocity.max_orders),
        "review_duplicate": _flag("review_duplicate", D.review_duplicate.min_members),
        "review_bombing": _flag("review_bombing", 4, baseline=0.0),
    }
    for kind, f in at_default.items():
        assert strength(f, D, buckets) == pytest.approx(1.0), kind
    busy = _flag("click_burst", 30 * cb.baseline_multiplier, baseline=30.0, cv=0.1)
    assert strength(busy, D, buckets) == pytest.approx(1.0)
    carting = _flag("click_burst", cb.hard_cap, baseline=1.0, cv=0.1, add_to_cart=1)
    assert strength(carting, D, buckets) == pytest.approx(1.0)  # a person: hard_cap applies
    irregular = _flag("click_burst", cb.hard_cap / 2, baseline=1.0, cv=cb.human_cv + 0.1)
    assert strength(irregular, D, buckets) == pytest.approx(0.5)
    regular = _flag("bot_pattern", 0.9, signal="regular_intervals", cv=bp.max_cv / 2)
    assert strength(regular, D, buckets) == pytest.approx(2.0)
    outlier = _flag(
        "order_value_outlier", 2 * D.order_value.z_threshold, reason="member_baseline",
        total=D.order_value.min_total,
    )  # fmt: skip
    assert strength(outlier, D, buckets) == pytest.approx(1.0)  # z twice, total just enough
    first = _flag("order_value_outlier", 1.5 * D.order_value.population_cap, reason="cap")
    assert strength(first, D, buckets) == pytest.approx(1.5)
    assert strength(_flag("learned_score", 0.73), D, buckets) == 0.73


def test_cutoffs_run_from_the_curve_run_to_beyond_the_default() -> None:
    for kind in ("click_burst", "learned_score", "rating_text_mismatch"):
        c = cutoffs(kind, D, 0.5)
        assert c == sorted(c)
        assert c[0] == lowest_cutoff(kind, D, 0.5)
        assert default_cutoff(kind, D) in c
    assert default_cutoff("learned_score", D) == 0.9
    assert cutoffs("click_burst", D, 0.5)[-1] == 3.0
    assert suppression("review_bombing", D) is None
    assert suppression("order_velocity", D) is not None


def _ev(kinds: list[dict[str, Any]], **rest: Any) -> dict[str, Any]:
    base = {
        "kinds": kinds,
        "scenarios": [{"scenario": "card_testing", "recall": 0.5}],
        "hard_negatives": [{"scenario": "hn_flash_sale", "flagged_share": 0.25}],
        "false_alerts_per_10k": 3.0,
        "false_alerts_per_10k_by_kind": {"order_velocity": 3.0},
    }
    return {"evaluation": base | rest}


def test_check_floors_lists_every_broken_floor() -> None:
    kinds = [
        {"kind": "order_velocity", "precision": 0.8, "recall": 0.9},
        {"kind": "review_bombing", "precision": None, "recall": None},
    ]
    families = {"a": _ev(kinds)}
    ok = {
        "a": {
            "precision_min": {"order_velocity": 0.8, "review_bombing": 0.9},
            "recall_min": {"order_velocity": 0.9},
            "false_alerts_per_10k_max": 3.0,
        },
        "b": {"recall_min": {"order_velocity": 1.0}},  # not run: skipped
    }
    assert check_floors(families, ok) == []
    broken = check_floors(
        families,
        {
            "a": {
                "precision_min": {"order_velocity": 0.85},
                "recall_min": {"review_bombing": 0.5},
                "scenario_recall_min": {"card_testing": 0.6},
                "false_alerts_per_10k_max": 2.5,
                "false_alerts_per_10k_max_by_kind": {"order_velocity": 1.0},
                "hard_negative_flagged_share_max": {"hn_flash_sale": 0.2, "hn_missing": 0.5},
                "recal_min": {},
            }
        },
    )
    assert len(broken) == 8
    assert any("unknown floor keys ['recal_min']" in b for b in broken)
    assert any("review_bombing recall none" in b for b in broken)
    assert any("hn_missing" in b for b in broken)


def test_family_b_is_built_from_the_independent_scenarios_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against a stand-in module with the promised API."""

    @dataclass(frozen=True)
    class FamilyConfig:
        seed: int = 101
        members: int = 1500
        days: float = 30.0
        per_scenario: int = 60
        warmup_days: float = 7.0

    calls: list[FamilyConfig] = []

    def independent_family(config: FamilyConfig) -> tuple[list[Any], list[AnomalyLabel]]:
        calls.append(config)
        label = AnomalyLabel(
            "b1", "slow_bot", frozenset({"bot_pattern"}), "member", ("m1",), None,
            ("e1", "e2"), T0, T0,
        )  # fmt: skip
        hard = AnomalyLabel(
            "b2", "hn_flash_sale", frozenset(), "member", ("m2",), None, ("e3",), T0, T0
        )
        return ["event"] * 10, [label, hard]

    stub = types.ModuleType("memberstream.datasets.independent_scenarios")
    stub.FamilyConfig = FamilyConfig  # type: ignore[attr-defined]
    stub.independent_family = independent_family  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "memberstream.datasets.independent_scenarios", stub)

    fam = build_family_b(parse_args(["--family", "b", "--per-scenario", "5"]))
    assert calls == [FamilyConfig(per_scenario=5)]
    assert fam.stream["incidents"] == 1 and fam.stream["hard_negatives"] == 1
    assert fam.stream["hard_negative_events"] == 1 and fam.stream["events"] == 10
    small = parse_args(["--small", "--members", "200"])
    assert isinstance(small, argparse.Namespace)
    build_family_b(small)
    assert calls[-1] == FamilyConfig(members=200, days=15.0, per_scenario=8, warmup_days=5.0)
