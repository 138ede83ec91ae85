"""Interest tiers: weighted, event-time-decayed affinity, hysteresis, taste vector, heads."""

from __future__ import annotations

import doctest
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

import memberstream.domain.interest as interest_module
from memberstream.datasets.synthetic import CATEGORIES
from memberstream.domain.interest import (
    DAY_S,
    InterestChange,
    InterestPolicy,
    InterestSettings,
    InterestState,
    TierBand,
)
from memberstream.domain.taxonomy import Taxonomy
from memberstream.domain.vectors import zero_shot_probs
from memberstream.ml.category_heads import (
    HEAD_FILE,
    LinearHead,
    ZeroShotHead,
    category_head,
    load_head,
)

T0 = 1_700_000_000.0  # an arbitrary event-time origin (whole seconds)
HL = 14 * DAY_S
IDS = ("a", "b", "c", "d", "e", "f")


def at(days: float) -> float:
    return T0 + days * DAY_S


def policy(settings: InterestSettings | None = None, ids: Sequence[str] = IDS) -> InterestPolicy:
    return InterestPolicy(settings or InterestSettings(), taxonomy=ids)


def no_hysteresis(bands: list[TierBand]) -> InterestSettings:
    """The same enter thresholds with leave a hair below: practically no hysteresis."""
    return InterestSettings(
        tiers=[TierBand(name=b.name, enter=b.enter, leave=b.enter - 1e-9) for b in bands]
    )


def run(
    pol: InterestPolicy, events: list[tuple[float, float, str]], state: InterestState | None = None
) -> tuple[InterestState, list[InterestChange]]:
    """Observe (t, weight, category) events, evaluating after each; the changes in order."""
    state = state or InterestState()
    changes = []
    for t, weight, cid in events:
        pol.observe(state, t, weight, {cid: 1.0})
        change = pol.evaluate(state, t)
        if change is not None:
            changes.append(change)
    return state, changes


def moves(changes: list[InterestChange]) -> list[tuple[str, str | None, str | None]]:
    return [(m.category, m.previous, m.tier) for c in changes for m in c.moves]


# --- settings ------------------------------------------------------------------------------


def test_default_weights_rise_with_intent() -> None:
    s = InterestSettings()
    assert s.event_weight("click") == 1.0
    assert s.event_weight("review") == 3.0
    assert s.event_weight("purchase") == 5.0
    assert s.event_weight("click", "search") == 0.5
    assert s.event_weight("click", "view") == 1.0
    assert s.event_weight("click", "add_to_cart") == 2.0
    assert s.event_weight("click", "something_new") == s.click_weight
    assert s.taste_half_life_s == s.half_life_s == HL
    with pytest.raises(ValueError, match="unknown event kind"):
        s.event_weight("refund")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"review_weight": 6.0}, "click_weight < review_weight < purchase_weight"),
        ({"click_weight": 3.0}, "click_weight < review_weight < purchase_weight"),
        ({"tiers": []}, "at least one"),
        ({"tiers": [{"name": "core", "enter": 0.3, "leave": 0.3}]}, "must be above leave"),
        (
            {
                "tiers": [
                    {"name": "x", "enter": 0.2, "leave": 0.1},
                    {"name": "y", "enter": 0.3, "leave": 0.05},
                ]
            },
            "highest first",
        ),
        (
            {
                "tiers": [
                    {"name": "x", "enter": 0.4, "leave": 0.1},
                    {"name": "y", "enter": 0.3, "leave": 0.2},
                ]
            },
            "highest first",
        ),
        (
            {
                "tiers": [
                    {"name": "x", "enter": 0.4, "leave": 0.3},
                    {"name": "x", "enter": 0.2, "leave": 0.1},
                ]
            },
            "unique",
        ),
        ({"click_action_weights": {"view": -1.0}}, "finite and >= 0"),
        ({"half_life_days": 0}, "greater than 0"),
        ({"text_blend_with_category": 1.5}, "less than or equal to 1"),
        ({"max_categories_per_member": 0}, "greater than 0"),
        ({"no_such_setting": 1}, "Extra inputs"),
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        InterestSettings(**kwargs)


# --- affinity: weights and decay -----------------------------------------------------------


def test_a_purchase_moves_affinity_more_than_a_click() -> None:
    pol = policy()
    s = pol.settings
    results = {}
    for kind in ("click", "review", "purchase"):
        state = InterestState()
        pol.observe(state, at(0), 10.0, {"a": 1.0})  # an established interest elsewhere
        pol.observe(state, at(1), s.event_weight(kind), {"b": 1.0})  # type: ignore[arg-type]
        results[kind] = pol.shares(state, at(1))["b"]
    assert results["click"] < results["review"] < results["purchase"]
    # a purchase is worth five clicks on the same day
    five_clicks = InterestState()
    pol.observe(five_clicks, at(0), 10.0, {"a": 1.0})
    for _ in range(5):
        pol.observe(five_clicks, at(1), s.event_weight("click"), {"b": 1.0})
    assert pol.shares(five_clicks, at(1))["b"] == pytest.approx(results["purchase"], rel=1e-12)


def test_affinity_halves_exactly_each_half_life_of_event_time() -> None:
    pol = policy()
    state = InterestState()
    pol.observe(state, T0, 4.0, {"a": 1.0})
    assert pol.affinities(state, T0) == {"a": 4.0}
    assert pol.affinities(state, T0 + HL) == {"a": 2.0}
    assert pol.affinities(state, T0 + 2 * HL) == {"a": 1.0}
    assert pol.affinities(state, T0 + HL / 2)["a"] == pytest.approx(4.0 / 2**0.5, rel=1e-15)
    # the stored value is referenced to its event time: a new event decays it lazily
    pol.observe(state, T0 + HL, 1.0, {"a": 1.0})
    assert state.affinity["a"] == (3.0, T0 + HL)
    assert state.clock == T0 + HL


def test_evaluating_before_the_member_clock_does_not_undecay() -> None:
    pol = policy()
    state = InterestState()
    pol.observe(state, at(10), 2.0, {"a": 1.0})
    assert pol.affinities(state, at(0)) == {"a": 2.0}


def test_probabilities_spread_the_weight() -> None:
    pol = policy()
    state = InterestState()
    pol.observe(state, T0, 2.0, np.array([0.5, 0.25, 0.25, 0, 0, 0]))
    assert pol.affinities(state, T0) == {"a": 1.0, "b": 0.5, "c": 0.5}
    assert pol.shares(state, T0) == {"a": 0.5, "b": 0.25, "c": 0.25}


def test_category_probs_blend_event_category_and_model() -> None:
    pol = policy()
    model = np.array([0.1, 0.6, 0.1, 0.1, 0.1, 0.0])
    blended = pol.category_probs("a", model)
    assert blended is not None
    # the model's top 3 (ties in taxonomy order), renormalised: 0.1, 0.6, 0.1 over 0.8
    sparse = np.array([0.125, 0.75, 0.125, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(blended, 0.3 * sparse + 0.7 * np.eye(6)[0])
    assert blended.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(pol.category_probs(None, model), sparse)
    np.testing.assert_allclose(pol.category_probs("not-in-taxonomy", model), sparse)
    np.testing.assert_array_equal(pol.category_probs("c"), np.eye(6)[2])
    assert pol.category_probs(None) is None
    with pytest.raises(ValueError, match="6 finite non-negative"):
        pol.category_probs("a", [0.5, 0.5])


def test_model_probabilities_keep_only_the_strong_categories() -> None:
    pol = policy(InterestSettings(text_top_k=2, text_min_prob=0.2))
    probs = pol.category_probs(None, [0.05, 0.5, 0.15, 0.3, 0.0, 0.0])
    np.testing.assert_allclose(probs, [0.0, 0.625, 0.0, 0.375, 0.0, 0.0])
    # nothing strong enough: the text says nothing about categories
    flat = pol.category_probs(None, np.full(6, 1 / 6))
    np.testing.assert_array_equal(flat, np.zeros(6))


def test_bad_observations_are_rejected() -> None:
    pol = policy()
    state = InterestState()
    with pytest.raises(ValueError, match="unknown category 'zz'"):
        pol.observe(state, T0, 1.0, {"zz": 1.0})
    with pytest.raises(ValueError, match="weight must be finite"):
        pol.observe(state, T0, -1.0, {"a": 1.0})
    with pytest.raises(ValueError, match="event time must be finite"):
        pol.observe(state, float("nan"), 1.0, {"a": 1.0})
    with pytest.raises(ValueError, match="finite non-negative values"):
        pol.observe(state, T0, 1.0, np.ones(3))
    with pytest.raises(ValueError, match="item embedding must be 1-D"):
        pol.observe(state, T0, 1.0, {"a": 1.0}, np.ones(pol.settings.taste_dim + 1))
    assert state.to_dict() == InterestState().to_dict()  # nothing half-applied


# --- late events ---------------------------------------------------------------------------


def test_late_event_is_decayed_forward_to_the_member_clock() -> None:
    pol = policy()
    state = InterestState()
    pol.observe(state, T0 + 2 * HL, 1.0, {"a": 1.0})
    pol.observe(state, T0 + HL, 4.0, {"a": 1.0})  # one half-life late
    assert state.clock == T0 + 2 * HL
    assert state.affinity["a"] == (1.0 + 2.0, T0 + 2 * HL)
    pol.observe(state, T0, 8.0, {"b": 1.0})  # two half-lives late, new category
    assert pol.affinities(state, T0 + 2 * HL) == {"a": 3.0, "b": 2.0}


def test_arrival_order_does_not_change_the_outcome() -> None:
    rng = random.Random(3)
    events = [
        (at(rng.uniform(0, 60)), rng.choice([0.5, 1.0, 2.0, 3.0, 5.0]), rng.choice(IDS[:4]))
        for _ in range(300)
    ]
    pol = policy()
    in_order = InterestState()
    for t, w, cid in sorted(events):
        pol.observe(in_order, t, w, {cid: 1.0})
    shuffled = InterestState()
    for t, w, cid in rng.sample(events, len(events)):
        pol.observe(shuffled, t, w, {cid: 1.0})
    now = at(61)
    assert shuffled.clock == in_order.clock
    a, b = pol.affinities(in_order, now), pol.affinities(shuffled, now)
    assert list(a) == list(b)
    for cid in a:
        assert b[cid] == pytest.approx(a[cid], rel=1e-12)
    assert pol.tiers(in_order, now) == pol.tiers(shuffled, now)


# --- tiers and hysteresis ------------------------------------------------------------------


def test_tiers_follow_share_thresholds() -> None:
    pol = policy()
    state = InterestState()
    pol.observe(state, T0, 10.0, {"a": 0.5, "b": 0.3, "c": 0.12, "d": 0.06, "e": 0.02})
    assert pol.tiers(state, T0) == {"a": "core", "b": "active", "c": "casual", "d": "casual"}
    assert state.tiers == {}  # tiers() is a question, evaluate() the update
    change = pol.evaluate(state, T0)
    assert change is not None
    assert change.added == {"a": "core", "b": "active", "c": "casual", "d": "casual"}
    assert change.previous == {} and change.removed == {} and change.moved == {}
    assert change.shares == {"a": 0.5, "b": 0.3, "c": 0.12, "d": 0.06}
    assert state.tiers == change.tiers
    assert pol.evaluate(state, T0) is None


def test_hysteresis_holds_a_tier_between_leave_and_enter() -> None:
    pol = policy()
    assert pol.tier_for(0.30, 1.0, None) == "active"  # below core's enter
    assert pol.tier_for(0.30, 1.0, "core") == "core"  # above core's leave
    assert pol.tier_for(0.24, 1.0, "core") == "active"
    assert pol.tier_for(0.12, 1.0, "core") == "active"  # passes active's leave on the way down
    assert pol.tier_for(0.12, 1.0, "casual") == "casual"  # not yet active's enter
    assert pol.tier_for(0.04, 1.0, "casual") == "casual"
    assert pol.tier_for(0.04, 1.0, None) is None
    assert pol.tier_for(0.02, 1.0, "core") is None
    assert pol.tier_for(0.9, 1.0, "casual") == "core"  # upgrades jump straight up
    assert pol.tier_for(0.9, 0.4, "core") is None  # below min_affinity: stale
    assert pol.tier_for(0.3, 1.0, "retired-tier-name") == "active"


@pytest.mark.parametrize(
    ("settings", "pattern"),
    [
        # clicks alternating between two categories, share hovering around 0.5
        (
            InterestSettings(
                tiers=[
                    TierBand(name="core", enter=0.5, leave=0.4),
                    TierBand(name="casual", enter=0.1, leave=0.05),
                ]
            ),
            [("a", 1.0), ("b", 1.0)],
        ),
        # default tiers: a's share hovers around active's enter (0.15)
        (InterestSettings(), [("a", 0.9), ("b", 5.0)]),
    ],
)
def test_hysteresis_prevents_flapping(
    settings: InterestSettings, pattern: list[tuple[str, float]]
) -> None:
    events = [(at(i), w, cid) for i in range(200) for cid, w in [pattern[i % 2]]]
    _, with_h = run(policy(settings), events)
    _, without_h = run(policy(no_hysteresis(settings.tiers)), events)
    assert len(without_h) >= 150  # the baseline changes on nearly every event
    assert len(with_h) <= 6
    assert len(with_h) * 20 < len(without_h)
    # and once settled, no more changes at all
    assert all(c.as_of < at(10) for c in with_h)


def test_interest_moving_from_a_to_b_over_weeks() -> None:
    pol = policy()
    events = [(at(d), 1.0, "a" if d < 28 else "b") for d in range(112)]
    state, changes = run(pol, events)
    assert moves(changes) == [
        ("a", None, "core"),
        ("b", None, "casual"),
        ("b", "casual", "active"),
        ("b", "active", "core"),
        ("a", "core", "active"),
        ("a", "active", "casual"),
        ("a", "casual", None),
    ]
    days = [(c.as_of - T0) / DAY_S for c in changes for _ in c.moves]
    assert days == sorted(days)
    assert days[1] == 28  # b shows up on its first day
    assert days[3] < 42  # b is core within two weeks
    assert days[4] > days[3]  # a loses core only after b holds it
    assert state.tiers == {"b": "core"}
    directions = [m.direction for c in changes for m in c.moves if m.category == "a"]
    assert directions == ["added", "demoted", "demoted", "removed"]


def test_stale_interest_is_dropped_by_event_time() -> None:
    pol = policy()
    state = InterestState()
    pol.observe(state, T0, 1.0, {"a": 1.0})
    assert pol.evaluate(state, T0).tiers == {"a": "core"}  # type: ignore[union-attr]
    assert pol.evaluate(state, T0 + HL * 0.99) is None  # 0.503 >= min_affinity 0.5
    change = pol.evaluate(state, T0 + HL * 1.01)
    assert change is not None and change.removed == {"a": "core"} and change.tiers == {}


# --- bounds --------------------------------------------------------------------------------


def test_categories_per_member_are_bounded_keeping_the_strongest() -> None:
    pol = policy(InterestSettings(max_categories_per_member=3))
    state = InterestState()
    for i, (cid, w) in enumerate([("a", 5), ("b", 1), ("c", 4), ("d", 2), ("e", 3), ("f", 0.5)]):
        pol.observe(state, at(0), w, {cid: 1.0})
        assert len(state.affinity) == min(i + 1, 3)
    assert list(pol.affinities(state, at(0))) == ["a", "c", "e"]


def test_zero_shot_spread_stays_bounded_on_the_default_taxonomy() -> None:
    tax = Taxonomy.load()
    pol = InterestPolicy(InterestSettings(max_categories_per_member=12), tax)
    rng = np.random.default_rng(0)
    cat_emb = rng.normal(size=(len(tax), 16))
    state = InterestState()
    for i in range(500):
        item = rng.normal(size=16)
        probs = pol.category_probs(None, zero_shot_probs(item, cat_emb, temperature=1.0))
        pol.observe(state, at(i / 10), 1.0, probs)
        assert len(state.affinity) <= pol.settings.max_categories_per_member
    assert len(state.affinity) == pol.settings.max_categories_per_member


def test_tiny_contributions_do_not_create_categories() -> None:
    pol = policy(InterestSettings(prune_below=0.01))
    state = InterestState()
    pol.observe(state, T0, 1.0, {"a": 0.9995, "b": 0.0005})
    assert list(state.affinity) == ["a"]


# --- taste vector --------------------------------------------------------------------------


@pytest.mark.parametrize("taste_half_life_days", [None, 3.0])
def test_taste_vector_is_the_decayed_weighted_mean(taste_half_life_days: float | None) -> None:
    settings = InterestSettings(taste_dim=8, taste_half_life_days=taste_half_life_days)
    pol = policy(settings)
    rng = np.random.default_rng(1)
    events = [
        (at(float(d)), float(w), rng.normal(size=8))
        for d, w in zip(rng.uniform(0, 40, 50), rng.choice([0.5, 1, 3, 5], 50), strict=True)
    ]
    state = InterestState()
    for t, w, e in events:  # arrival order, some late
        pol.observe(state, t, w, {"a": 1.0}, e)
    hl = settings.taste_half_life_s
    clock = max(t for t, _, _ in events)
    weights = np.array([w * 0.5 ** ((clock - t) / hl) for t, w, _ in events])
    units = np.stack([e / np.linalg.norm(e) for _, _, e in events])
    expected = (weights[:, None] * units).sum(0) / weights.sum()
    expected /= np.linalg.norm(expected)
    taste = pol.taste(state)
    assert taste is not None
    np.testing.assert_allclose(taste, expected, rtol=1e-12, atol=1e-14)
    assert np.linalg.norm(taste) == pytest.approx(1.0)
    assert state.taste_weight == pytest.approx(weights.sum(), rel=1e-12)


def test_taste_restarts_when_the_embedding_dimension_changes() -> None:
    pol = policy()
    state = InterestState()
    assert pol.taste(state) is None
    pol.observe(state, T0, 1.0, {"a": 1.0}, np.ones(4))
    pol.observe(state, T0 + 1, 1.0, {"a": 1.0}, np.array([0.0, 3.0]))  # a new model
    np.testing.assert_array_equal(pol.taste(state), [0.0, 1.0])
    assert state.taste_weight == 1.0


# --- determinism and serialisation ---------------------------------------------------------


def _workload(seed: int) -> list[tuple[float, float, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    tax = Taxonomy.load()
    pol = InterestPolicy(InterestSettings(), tax)
    cat_emb = rng.normal(size=(len(tax), 32))
    out = []
    t = T0
    kinds = [
        ("click", "view"),
        ("click", "search"),
        ("click", "add_to_cart"),
        ("review", None),
        ("purchase", None),
    ]
    for _ in range(400):
        t += float(rng.exponential(DAY_S / 3))
        kind, action = kinds[int(rng.choice(5, p=[0.6, 0.15, 0.1, 0.05, 0.1]))]
        late = float(rng.uniform(0, 2 * DAY_S)) if rng.random() < 0.1 else 0.0
        item = rng.normal(size=32)
        cid = CATEGORIES[int(rng.integers(len(CATEGORIES)))].id if rng.random() < 0.8 else None
        probs = pol.category_probs(cid, zero_shot_probs(item, cat_emb, temperature=0.2))
        weight = pol.settings.event_weight(kind, action)  # type: ignore[arg-type]
        out.append((t - late, weight, probs, item))
    return out


def _replay(events: list, state: InterestState | None = None) -> tuple[InterestState, list]:
    pol = InterestPolicy(InterestSettings(taste_dim=32), Taxonomy.load())
    state = state or InterestState()
    changes = []
    for t, w, probs, item in events:
        pol.observe(state, t, w, probs, item)
        change = pol.evaluate(state, t)
        if change is not None:
            changes.append(change)
    return state, changes


def test_replay_is_bit_for_bit_deterministic(monkeypatch: pytest.MonkeyPatch) -> None:
    events = _workload(5)
    first, first_changes = _replay(events)
    monkeypatch.setattr(time, "time", lambda: 4_102_444_800.0)  # 2100: wall clock is ignored
    monkeypatch.setattr(time, "monotonic", lambda: 1e9)
    second, second_changes = _replay(events)
    assert orjson.dumps(first.to_dict()) == orjson.dumps(second.to_dict())
    assert first_changes == second_changes
    assert len(first_changes) >= 5
    assert first.tiers and len(first.affinity) <= len(Taxonomy.load())
    # the serialised form is plain JSON and round-trips exactly
    restored = InterestState.from_dict(json.loads(json.dumps(first.to_dict())))
    assert restored.to_dict() == first.to_dict()


def test_the_wall_clock_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> float:
        raise AssertionError("interest tiers must not read the wall clock")

    monkeypatch.setattr(time, "time", boom)
    monkeypatch.setattr(time, "time_ns", boom)
    _, changes = _replay(_workload(6)[:50])
    assert changes


def test_resuming_from_serialised_state_matches_an_uninterrupted_run() -> None:
    events = _workload(7)
    whole, whole_changes = _replay(events)
    half, changes_a = _replay(events[:200])
    restored = InterestState.from_dict(orjson.loads(orjson.dumps(half.to_dict())))
    resumed, changes_b = _replay(events[200:], restored)
    assert resumed.to_dict() == whole.to_dict()
    assert changes_a + changes_b == whole_changes


def test_malformed_state_is_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported interest state version"):
        InterestState.from_dict({"v": 99})
    with pytest.raises(ValueError, match="malformed interest state"):
        InterestState.from_dict({"v": 1, "affinity": {"a": [1.0]}})
    with pytest.raises(ValueError, match="malformed interest state"):
        InterestState.from_dict({"v": 1, "taste": {"sum": [1.0]}})


# --- category heads ------------------------------------------------------------------------


def test_taste_is_stored_exactly_and_compactly() -> None:
    state = InterestState(clock=1.0, taste_sum=np.array([0.1, -1 / 3, 1e-300]), taste_weight=2.5)
    state.taste_as_of = 1.0
    stored = state.to_dict()
    assert isinstance(stored["taste"]["sum"], str)  # base64 of float64, not JSON numbers
    back = InterestState.from_dict(orjson.loads(orjson.dumps(stored)))
    assert back.taste_sum is not None and back.taste_sum.tobytes() == state.taste_sum.tobytes()
    bad = {**stored, "taste": {**stored["taste"], "sum": "not base64!"}}
    with pytest.raises(ValueError, match="malformed interest state"):
        InterestState.from_dict(bad)


def test_zero_shot_probs_sum_to_one_and_pick_the_nearest_category() -> None:
    rng = np.random.default_rng(2)
    cats = rng.normal(size=(5, 24))
    items = cats[[3, 0, 4]] * np.array([[2.0], [0.5], [7.0]]) + rng.normal(scale=0.1, size=(3, 24))
    probs = zero_shot_probs(items, cats)
    assert probs.shape == (3, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs.argmax(axis=1).tolist() == [3, 0, 4]
    assert probs.max() > 0.99  # a temperature of 0.05 is decisive on a near match
    single = zero_shot_probs(items[0], cats)
    assert single.shape == (5,)
    np.testing.assert_allclose(single, probs[0])
    flatter = zero_shot_probs(items, cats, temperature=1.0)
    assert flatter.max(axis=1).tolist() < probs.max(axis=1).tolist()
    with pytest.raises(ValueError, match="dimension mismatch"):
        zero_shot_probs(items, cats[:, :10])
    with pytest.raises(ValueError, match="temperature"):
        zero_shot_probs(items, cats, temperature=0)


def test_linear_head_from_npz_replaces_zero_shot(tmp_path: Path) -> None:
    tax = Taxonomy.from_dict(
        {"categories": [{"id": c, "name_en": c, "description_en": c} for c in ("x", "y", "z")]}
    )
    cat_emb = np.eye(3, 4)
    item = np.array([1.0, 0.0, 0.0, 0.0])  # zero-shot: category x
    head = category_head(tmp_path, cat_emb, tax)
    assert isinstance(head, ZeroShotHead)
    assert load_head(tmp_path) is None
    assert int(np.argmax(head.predict_proba(item))) == 0

    # a fine-tuned head that learned items like this one belong to z
    weight = np.array([[0.0, 1, 0, 0], [0.0, 0, 1, 0], [5.0, 0, 0, 0]])
    LinearHead(weight, np.zeros(3), category_ids=("x", "y", "z")).save(tmp_path / HEAD_FILE)
    head = category_head(tmp_path, cat_emb, tax)
    assert isinstance(head, LinearHead)
    probs = head.predict_proba(np.stack([item, item]))
    assert probs.shape == (2, 3) and probs.argmax(axis=1).tolist() == [2, 2]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert head.category_ids == ("x", "y", "z")

    # rows stored in another order are put in taxonomy order
    LinearHead(weight[::-1], np.zeros(3), category_ids=("z", "y", "x")).save(tmp_path / HEAD_FILE)
    reordered = load_head(tmp_path, tax)
    assert reordered is not None and reordered.category_ids == ("x", "y", "z")
    np.testing.assert_allclose(reordered.predict_proba(item), probs[0])


def test_linear_head_npz_without_ids_and_bad_files(tmp_path: Path) -> None:
    tax = Taxonomy.from_dict(
        {"categories": [{"id": c, "name_en": c, "description_en": c} for c in ("x", "y")]}
    )
    np.savez(tmp_path / HEAD_FILE, W=np.eye(2, 3), b=np.zeros(2))
    head = load_head(tmp_path, tax)
    assert head is not None and head.category_ids == ("x", "y") and head.normalize
    np.savez(tmp_path / HEAD_FILE, W=np.eye(3, 3), b=np.zeros(3))
    with pytest.raises(ValueError, match="3 outputs for 2 categories"):
        load_head(tmp_path, tax)
    np.savez(tmp_path / HEAD_FILE, W=np.eye(2, 3))
    with pytest.raises(ValueError, match=r"missing arrays \['b'\]"):
        load_head(tmp_path)
    np.savez(tmp_path / HEAD_FILE, W=np.eye(2, 3), b=np.zeros(2), category_ids=np.array(["x", "q"]))
    with pytest.raises(ValueError, match=r"not in taxonomy \['q'\], not in head \['y'\]"):
        load_head(tmp_path, tax)
    (tmp_path / HEAD_FILE).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="cannot load"):
        load_head(tmp_path)
    with pytest.raises(ValueError, match=r"W \(k, d\) and b \(k,\)"):
        LinearHead(np.eye(2, 3), np.zeros(3))


def test_a_head_feeds_the_policy_through_category_probs(tmp_path: Path) -> None:
    tax = Taxonomy.load()
    rng = np.random.default_rng(4)
    cat_emb = rng.normal(size=(len(tax), 16))
    head = category_head(tmp_path, cat_emb, tax)
    pol = InterestPolicy(InterestSettings(taste_dim=16), tax)
    state = InterestState()
    books = cat_emb[tax.index("books")]
    for d in range(10):
        item = books + rng.normal(scale=0.05, size=16)
        pol.observe(state, at(d), 1.0, pol.category_probs(None, head.predict_proba(item)), item)
    change = pol.evaluate(state, at(10))
    assert change is not None and change.tiers == {"books": "core"}


def test_doctest() -> None:
    assert doctest.testmod(interest_module).failed == 0
