"""Scoring anomaly flags: Wilson intervals, hard negatives, false alerts per 10k benign
events, recall per scenario and precision-recall curves, on hand-made cases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from memberstream.domain.anomaly.evaluation import (
    PRPoint,
    cooldown,
    evaluate,
    once_per_bucket,
    pr_curve,
    wilson_interval,
)


@dataclass(frozen=True)
class Lab:
    incident_id: str
    scenario: str
    kinds: frozenset[str]
    event_ids: tuple[str, ...]


def lab(iid: str, scenario: str, kinds: set[str], *events: str) -> Lab:
    return Lab(iid, scenario, frozenset(kinds), events)


def flag(
    kind: str,
    *evidence: str,
    member: str = "m1",
    as_of: str = "2024-01-01T00:00:00Z",
    window_start: str | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "subject": "member",
        "member_id": member,
        "product_id": None,
        "evidence": list(evidence),
        "as_of": as_of,
        "window_start": window_start or as_of,
    }


# -- Wilson intervals ----------------------------------------------------------------------


def test_wilson_interval_matches_hand_computed_values() -> None:
    # p = 0.8, n = 10, z^2 = 3.8416: centre (0.8 + 0.19208) / 1.38416 = 0.71674,
    # half 1.96 * sqrt(0.016 + 0.009604) / 1.38416 = 0.22658
    lo, hi = wilson_interval(8, 10)  # type: ignore[misc]
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)
    # p = 0: centre = half = 0.19208 / 1.38416 = 0.13877
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    # 1 of 2: centre 0.5, half 1.96 * sqrt(0.125 + 0.9604 / 4) / 2.9208 = 0.40544
    assert wilson_interval(1, 2) == pytest.approx((0.0945, 0.9055), abs=1e-4)
    lo99, hi99 = wilson_interval(8, 10, z=2.576)  # type: ignore[misc]
    assert lo99 < lo and hi99 > hi


def test_wilson_interval_without_trials_is_none_and_rejects_impossible_counts() -> None:
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(-1, 2)


# -- evaluate: incidents, hard negatives, false alerts ---------------------------------------

LABELS = [
    lab("I1", "card_testing", {"order_velocity"}, "e1", "e2"),
    lab("I2", "bot_session", {"click_burst", "bot_pattern"}, "e3", "e4"),
    lab("I3", "card_testing", {"order_velocity"}, "e5"),
    lab("H1", "hn_flash_sale", set(), "h1", "h2"),
    lab("H2", "hn_flash_sale", set(), "h3"),
    lab("H3", "hn_power_user", set(), "h4"),
]
FLAGS = [
    flag("order_velocity", "e1"),  # TP on I1
    flag("click_burst", "e3", "n9"),  # TP on I2
    flag("order_velocity", "h1", "h2"),  # FP on hard negative H1
    flag("click_burst", "h1"),  # FP on hard negative H1
    flag("learned_score", "e1"),  # FP: I1 should not raise learned_score
    flag("order_velocity", "n1"),  # FP on background
    flag("bot_pattern", "h4"),  # FP on hard negative H3
]
TOTAL = 100  # 5 incident events, 4 hard-negative events, 91 background


def test_hard_negatives_count_cases_flagged_by_any_kind_and_per_kind() -> None:
    ev = evaluate(FLAGS, LABELS, TOTAL)
    flash, power = ev.hard_negatives["hn_flash_sale"], ev.hard_negatives["hn_power_user"]
    assert (flash.cases, flash.flagged, flash.flags) == (2, 1, 2)
    assert flash.flagged_by_kind == {"order_velocity": 1, "click_burst": 1}
    assert flash.flagged_share == 0.5
    assert (power.cases, power.flagged, power.flags) == (1, 1, 1)
    assert power.flagged_by_kind == {"bot_pattern": 1}
    # hard negatives are not incidents: no kind counts them, and their flags are false
    assert ev.kinds["order_velocity"].incidents == 2
    assert ev.kinds["order_velocity"].true_positives == 1
    assert ev.kinds["order_velocity"].flags == 3
    assert ev.kinds["bot_pattern"].precision == 0.0


def test_false_alerts_per_10k_benign_events() -> None:
    ev = evaluate(FLAGS, LABELS, TOTAL)
    assert ev.benign_events == 95  # background 91 + hard negatives 4
    assert ev.normal_events == 91
    assert ev.false_positives == 5
    assert ev.false_positives_by_source == {
        "background": 1,
        "hard_negative": 3,
        "other_incident": 1,
    }
    # false alerts: the four on benign events; learned_score on I1 flagged a real incident
    assert ev.false_alerts == 4
    assert ev.false_alerts_per_10k == pytest.approx(10_000 * 4 / 95)  # 421.05
    by_kind = ev.false_alerts_per_10k_by_kind()
    assert by_kind["order_velocity"] == pytest.approx(10_000 * 2 / 95)
    assert by_kind["click_burst"] == pytest.approx(10_000 * 1 / 95)
    assert by_kind["bot_pattern"] == pytest.approx(10_000 * 1 / 95)
    assert by_kind["learned_score"] == 0.0
    assert by_kind["review_bombing"] == 0.0
    # flags on no label at all, against the budget: as before
    assert ev.flags_on_normal_traffic == 1
    assert ev.normal_flags_by_kind == {"order_velocity": 1}
    assert ev.normal_flags_per_10k == pytest.approx(10_000 / 91)


def test_recall_per_scenario_names_the_missed_incidents() -> None:
    ev = evaluate(FLAGS, LABELS, TOTAL)
    card, bot = ev.scenarios["card_testing"], ev.scenarios["bot_session"]
    assert (card.incidents, card.found, card.recall, card.missed) == (2, 1, 0.5, ["I3"])
    assert (bot.incidents, bot.found, bot.missed) == (1, 1, [])
    assert bot.recall_by_kind() == {"click_burst": 1.0, "bot_pattern": 0.0}
    assert set(ev.scenarios) == {"card_testing", "bot_session"}


def test_per_kind_results_carry_intervals() -> None:
    ev = evaluate(FLAGS, LABELS, TOTAL)
    vel = ev.kinds["order_velocity"]
    assert vel.precision == pytest.approx(1 / 3)
    assert vel.recall == 0.5
    assert vel.precision_ci == wilson_interval(1, 3)
    assert vel.recall_ci == wilson_interval(1, 2)
    d = vel.as_dict()
    assert d["precision_ci"] == list(wilson_interval(1, 3))  # type: ignore[arg-type]
    assert d["recall_ci"] == list(wilson_interval(1, 2))  # type: ignore[arg-type]
    assert d["false_positives"] == 2
    review = ev.kinds["review_bombing"].as_dict()
    assert review["precision_ci"] is None and review["recall_ci"] is None
    whole = ev.as_dict()
    assert whole["false_alerts_per_10k"] == pytest.approx(10_000 * 4 / 95)
    assert {h["scenario"] for h in whole["hard_negatives"]} == {"hn_flash_sale", "hn_power_user"}


def test_without_hard_negatives_the_old_figures_are_unchanged() -> None:
    labels = [lab("I1", "card_testing", {"order_velocity"}, "e1", "e2")]
    flags = [flag("order_velocity", "e1"), flag("order_velocity", "e2"), flag("click_burst", "x")]
    ev = evaluate(flags, labels, 1002)
    assert ev.normal_events == ev.benign_events == 1000
    assert ev.kinds["order_velocity"].true_positives == 2
    assert ev.kinds["order_velocity"].found == 1
    assert ev.normal_flags_per_10k == ev.false_alerts_per_10k == pytest.approx(10.0)
    assert ev.meets(0.9, 0.8) == {"order_velocity": True}
    assert ev.hard_negatives == {}


# -- precision-recall curves -----------------------------------------------------------------

CURVE_LABELS = [
    lab("I1", "card_testing", {"order_velocity"}, "e1"),
    lab("I2", "card_testing", {"order_velocity"}, "e2"),
    lab("I3", "card_testing", {"order_velocity"}, "e3"),
    lab("H1", "hn_flash_sale", set(), "h1"),
]
CURVE_TOTAL = 10_003  # 3 incident events: 10,000 benign, so FA/10k = false positives


def test_pr_curve_on_hand_made_flags() -> None:
    scored = [
        (2.0, flag("order_velocity", "e1")),  # TP I1
        (1.5, flag("order_velocity", "n1")),  # FP background
        (1.2, flag("order_velocity", "e2")),  # TP I2
        (1.0, flag("order_velocity", "e1")),  # TP I1 again
        (0.8, flag("order_velocity", "h1")),  # FP hard negative
        (0.6, flag("order_velocity", "e3")),  # TP I3
        (0.5, flag("click_burst", "n2")),  # another kind: ignored
    ]
    points = pr_curve(scored, CURVE_LABELS, "order_velocity", [2.5, 1.0, 0.5, 1.6], CURVE_TOTAL)
    assert [p.cutoff for p in points] == [0.5, 1.0, 1.6, 2.5]
    # >= 0.5: 6 flags, 4 TP (I1 twice, I2, I3), 2 FP -> P 4/6, R 3/3, FA 2
    # >= 1.0: a b c d: 3 TP, 1 FP -> P 3/4, R 2/3 (I1, I2), FA 1
    # >= 1.6: a: P 1, R 1/3, FA 0;  >= 2.5: nothing flagged, R 0
    expected = [
        (0.5, 4 / 6, 1.0, 2.0),
        (1.0, 0.75, 2 / 3, 1.0),
        (1.6, 1.0, 1 / 3, 0.0),
        (2.5, None, 0.0, 0.0),
    ]
    for got, want in zip(points, expected, strict=True):
        assert isinstance(got, PRPoint)
        assert got.cutoff == want[0]
        assert got.precision == (None if want[1] is None else pytest.approx(want[1]))
        assert got.recall == pytest.approx(want[2])
        assert got.false_alerts_per_10k == pytest.approx(want[3])


def test_pr_curve_without_incidents_has_no_recall() -> None:
    scored = [(0.9, flag("rating_text_mismatch", "n1"))]
    (point,) = pr_curve(scored, CURVE_LABELS, "rating_text_mismatch", [0.8], CURVE_TOTAL)
    assert point == PRPoint(0.8, 0.0, None, 1.0)


def test_pr_curve_with_a_cooldown_keeps_what_the_detector_would_have_raised() -> None:
    weak_fp = flag("order_velocity", "n1", as_of="2024-01-01T00:00:00Z")
    strong_tp = flag("order_velocity", "e1", as_of="2024-01-01T00:10:00Z")
    later_tp = flag("order_velocity", "e2", as_of="2024-01-01T00:40:00Z")
    other_member = flag("order_velocity", "e3", member="m2", as_of="2024-01-01T00:05:00Z")
    scored = [(0.6, weak_fp), (1.4, strong_tp), (1.1, later_tp), (1.0, other_member)]
    points = pr_curve(
        scored, CURVE_LABELS, "order_velocity", [0.5, 1.0], CURVE_TOTAL, cooldown(1800.0)
    )
    # >= 0.5: the weak flag at 00:00 starts m1's cooldown, hiding 00:10 but not 00:40:
    #   kept weak_fp (FP), later_tp (I2), other_member (I3) -> P 2/3, R 2/3, FA 1
    # >= 1.0: strong_tp at 00:10 starts it instead; later_tp at 00:40 is exactly one
    #   cooldown later, so it is raised again -> all three TP
    assert points[0] == PRPoint(0.5, pytest.approx(2 / 3), pytest.approx(2 / 3), 1.0)
    assert points[1] == PRPoint(1.0, 1.0, 1.0, 0.0)


def test_cooldown_and_once_per_bucket_suppression() -> None:
    a = flag("click_burst", "x", as_of="2024-01-01T00:00:00Z")
    b = flag("click_burst", "y", as_of="2024-01-01T00:29:59Z")
    c = flag("click_burst", "z", as_of="2024-01-01T00:30:00Z")
    d = flag("click_burst", "w", member="m2", as_of="2024-01-01T00:01:00Z")
    e = flag("bot_pattern", "v", as_of="2024-01-01T00:01:00Z")
    kept = cooldown(1800.0)([(1.0, c), (1.0, b), (1.0, a), (1.0, d), (1.0, e)])
    assert [f for _, f in kept] == [a, d, e, c]
    week = 7 * 86_400.0
    p1 = flag("review_duplicate", "r1", as_of="2024-01-02T00:00:00Z")
    p2 = flag("review_duplicate", "r2", as_of="2024-01-03T00:00:00Z")
    p3 = flag("review_duplicate", "r3", as_of="2024-01-20T00:00:00Z")
    kept = once_per_bucket(week)([(1.0, p2), (1.0, p1), (1.0, p3)])
    assert [f for _, f in kept] == [p1, p3]
