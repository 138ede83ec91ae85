"""The independent scenario family (family B): deterministic, valid, and true to its documented
parameters, with ids apart from the background's."""

from __future__ import annotations

import re
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from itertools import combinations, pairwise

import pytest

from memberstream.datasets import SyntheticWorkload, WorkloadConfig
from memberstream.datasets import independent_scenarios as fam
from memberstream.datasets.anomalies import AnomalyLabel
from memberstream.datasets.independent_scenarios import (
    EXPECTED,
    SCENARIOS,
    FamilyConfig,
    independent_family,
)
from memberstream.schemas.events import (
    ClickEvent,
    Envelope,
    PurchaseEvent,
    ReviewEvent,
)

CONFIG = FamilyConfig(seed=5, members=300, days=20, warmup_days=6, per_scenario=5)
TINY = FamilyConfig(seed=9, members=40, days=12, warmup_days=3, per_scenario=2)
"""Too few members to supply every case: exercises the created-account fallbacks."""
CJK = re.compile(r"[\u4e00-\u9fff]")

Family = tuple[list[Envelope], list[AnomalyLabel]]


@pytest.fixture(scope="module")
def family() -> Family:
    return independent_family(CONFIG)


@pytest.fixture(scope="module")
def tiny() -> Family:
    return independent_family(TINY)


class View:
    """Indexes over one generated family."""

    def __init__(self, data: Family, config: FamilyConfig) -> None:
        self.events, self.labels = data
        self.config = config
        self.by_id = {e.event_id: e for e in self.events}
        self.by_member: dict[str, list[Envelope]] = defaultdict(list)
        for e in self.events:
            self.by_member[e.member_id].append(e)

    def cases(self, scenario: str) -> list[tuple[AnomalyLabel, list[Envelope]]]:
        return [
            (lb, [self.by_id[i] for i in lb.event_ids])
            for lb in self.labels
            if lb.scenario == scenario
        ]

    def paid_before(self, member_id: str, at: object) -> list[PurchaseEvent]:
        return [
            e
            for e in self.by_member[member_id]
            if isinstance(e, PurchaseEvent) and e.status == "paid" and e.occurred_at < at
        ]

    def bought(self, member_id: str, product_id: str) -> list[PurchaseEvent]:
        return [
            e
            for e in self.by_member[member_id]
            if isinstance(e, PurchaseEvent)
            and e.status == "paid"
            and any(i.product_id == product_id for i in e.items)
        ]


@pytest.fixture(scope="module")
def view(family: Family) -> View:
    return View(family, CONFIG)


def _of(events: list[Envelope], cls: type, **attrs: object) -> list:
    return [
        e
        for e in events
        if isinstance(e, cls) and all(getattr(e, k) == v for k, v in attrs.items())
    ]


def _seconds(a: Envelope, b: Envelope) -> float:
    return (b.occurred_at - a.occurred_at).total_seconds()


# --- the stream and the labels ------------------------------------------------------------------


def test_same_config_same_family(tiny: Family) -> None:
    again = independent_family(TINY)
    assert [e.model_dump() for e in again[0]] == [e.model_dump() for e in tiny[0]]
    assert again[1] == tiny[1]


def test_other_seed_other_family(tiny: Family) -> None:
    other = independent_family(
        FamilyConfig(seed=10, members=40, days=12, warmup_days=3, per_scenario=2)
    )
    assert [lb.event_ids for lb in other[1]] != [lb.event_ids for lb in tiny[1]]


def test_small_config_runs_fast() -> None:
    began = time.perf_counter()
    independent_family(FamilyConfig(seed=3, members=100, days=10, warmup_days=2, per_scenario=1))
    assert time.perf_counter() - began < 10.0


@pytest.mark.parametrize("name", ["family", "tiny"])
def test_ids_unique_and_apart_from_background(name: str, request: pytest.FixtureRequest) -> None:
    config = CONFIG if name == "family" else TINY
    events, _ = request.getfixturevalue(name)
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids))
    workload = SyntheticWorkload(
        WorkloadConfig(
            seed=config.seed, members=config.members, days=config.days, start=config.start
        )
    )
    background = list(workload.events())
    bg_ids = {e.event_id for e in background}
    bg_members = {m.id for m in workload.members}
    bg_orders = {e.order_id for e in background if isinstance(e, PurchaseEvent)}
    seed = config.seed
    added = [e for e in events if e.event_id not in bg_ids]
    assert added and all(e.event_id.startswith(f"ind{seed}-") for e in added)
    orders = {e.order_id for e in added if isinstance(e, PurchaseEvent)}
    assert orders and all(o.startswith(f"oi{seed}-") for o in orders) and not orders & bg_orders
    created = {e.member_id for e in added} - bg_members
    assert created and all(m.startswith(f"ni{seed}-") for m in created)
    # every background event before the end is kept, unchanged
    end = config.start + timedelta(days=config.days)
    kept = [e for e in events if e.event_id in bg_ids]
    assert kept == [e for e in background if e.occurred_at < end]


@pytest.mark.parametrize("name", ["family", "tiny"])
def test_time_ordered_utc_inside_the_period(name: str, request: pytest.FixtureRequest) -> None:
    config = CONFIG if name == "family" else TINY
    events, labels = request.getfixturevalue(name)
    times = [e.occurred_at for e in events]
    assert all(a <= b for a, b in pairwise(times))
    assert all(t.utcoffset() == timedelta(0) for t in times)
    end = config.start + timedelta(days=config.days)
    assert config.start <= times[0] and times[-1] < end
    warm = config.start + timedelta(days=config.warmup_days)
    by_id = {e.event_id: e for e in events}
    for lb in labels:
        case_times = [by_id[i].occurred_at for i in lb.event_ids]
        assert case_times == sorted(case_times)
        assert warm <= lb.start == case_times[0] and lb.end == case_times[-1] < end


@pytest.mark.parametrize("name", ["family", "tiny"])
def test_labels_per_scenario_and_kinds(name: str, request: pytest.FixtureRequest) -> None:
    config = CONFIG if name == "family" else TINY
    events, labels = request.getfixturevalue(name)
    ids = {e.event_id for e in events}
    counts: dict[str, int] = defaultdict(int)
    for lb in labels:
        counts[lb.scenario] += 1
        assert lb.event_ids and set(lb.event_ids) <= ids
        assert lb.member_ids and lb.kinds == EXPECTED[lb.scenario]
        if lb.scenario.startswith("hn_"):
            assert lb.kinds == frozenset()
        else:
            assert lb.kinds
        if lb.scenario in fam.REVIEW_SCENARIOS:
            assert lb.subject == "product" and lb.product_id
        else:
            assert lb.subject == "member" and lb.product_id is None
    assert counts == {s: config.per_scenario for s in SCENARIOS}
    assert len({lb.incident_id for lb in labels}) == len(labels)
    # no event belongs to two cases
    assert len({i for lb in labels for i in lb.event_ids}) == sum(
        len(lb.event_ids) for lb in labels
    )


def test_events_revalidate(view: View) -> None:
    for e in view.events:
        if e.event_id.startswith("ind"):
            assert type(e).model_validate(e.model_dump()) == e


def test_expected_covers_every_scenario() -> None:
    assert set(EXPECTED) == set(SCENARIOS)
    hard = [s for s in SCENARIOS if s.startswith("hn_")]
    assert len(hard) == 8 and all(not EXPECTED[s] for s in hard)
    assert set().union(*EXPECTED.values()) == {
        "bot_pattern",
        "order_value_outlier",
        "learned_score",
        "order_velocity",
        "review_duplicate",
        "review_bombing",
        "rating_text_mismatch",
    }


def test_subset_of_scenarios() -> None:
    config = FamilyConfig(
        seed=4, members=60, days=10, warmup_days=2, per_scenario=2, scenarios=(fam.SLOW_BOT,)
    )
    _, labels = independent_family(config)
    assert [lb.scenario for lb in labels] == [fam.SLOW_BOT] * 2


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        FamilyConfig(scenarios=("no_such_scenario",))
    with pytest.raises(ValueError):
        FamilyConfig(days=10, warmup_days=5)
    with pytest.raises(ValueError):
        FamilyConfig(start=FamilyConfig().start.replace(tzinfo=None))


# --- hard negatives -------------------------------------------------------------------------------


def _burst_of(events: list[Envelope]) -> list[ClickEvent]:
    return [e for e in events if isinstance(e, ClickEvent)]


def test_power_users(view: View) -> None:
    for lb, events in view.cases(fam.HN_POWER_USER):
        clicks = _burst_of(events)
        minutes = _seconds(clicks[0], clicks[-1]) / 60
        assert 0.9 <= minutes <= 3.3
        assert 18 <= (len(clicks) - 1) / minutes <= 33
        gaps = [_seconds(a, b) for a, b in pairwise(clicks)]
        assert statistics.pstdev(gaps) / statistics.mean(gaps) > 0.3  # human-irregular
        assert {c.action for c in clicks} == {"view", "add_to_cart"}
        assert len(_of(events, PurchaseEvent, status="paid")) == 1
        (member,) = lb.member_ids
        week = [
            e
            for e in view.by_member[member]
            if lb.start - timedelta(days=7) <= e.occurred_at < lb.start
        ]
        assert len(_of(week, ClickEvent)) >= 80  # a heavy week of browsing
        assert view.by_member[member][0].occurred_at < lb.start - timedelta(days=6)


def test_tab_openers(view: View) -> None:
    for _, events in view.cases(fam.HN_TAB_OPENER):
        views = _of(events, ClickEvent, action="view")
        assert fam.TAB_COUNT[0] <= len(views) <= fam.TAB_COUNT[1]
        assert len({v.product_id for v in views}) == len(views)
        assert _seconds(views[0], views[-1]) <= 60
        (cart,) = _of(events, ClickEvent, action="add_to_cart")
        assert _seconds(views[-1], cart) >= 110  # reading before carting
        assert _of(events, ClickEvent, action="search")


def test_sale_day_orders(view: View) -> None:
    for _, events in view.cases(fam.HN_SALE_DAY):
        orders = _of(events, PurchaseEvent, status="paid")
        assert fam.SALE_ORDERS[0] <= len(orders) <= fam.SALE_ORDERS[1]
        assert _seconds(orders[0], orders[-1]) <= 3600
        products = [i.product_id for o in orders for i in o.items]
        assert len(products) == len(set(products))
        assert all(15 <= o.total <= 2 * fam.SALE_PRICE[1] for o in orders)
        assert not _of(events, PurchaseEvent, status="refunded")


def test_big_spenders(view: View) -> None:
    lo, hi = fam.BIG_SPENDER_TOTAL
    for lb, events in view.cases(fam.HN_BIG_SPENDER):
        (order,) = _of(events, PurchaseEvent, status="paid")
        assert lo <= order.total <= hi
        earlier = view.paid_before(lb.member_ids[0], order.occurred_at)
        assert len(earlier) >= fam.BIG_SPENDER_HISTORY[0]
        assert all(lo <= o.total <= hi for o in earlier)


def test_new_members_with_a_large_first_order(view: View) -> None:
    lo, hi = fam.NEW_MEMBER_TOTAL
    for lb, events in view.cases(fam.HN_NEW_BIG_ORDER):
        (member,) = lb.member_ids
        assert view.by_member[member] == events  # the account's whole life
        (order,) = _of(events, PurchaseEvent, status="paid")
        assert lo <= order.total <= hi


def _review_and_purchase_checks(
    view: View, scenario: str, count: tuple[int, int], rating_ok: Callable[[int], bool]
) -> None:
    for lb, events in view.cases(scenario):
        reviews = _of(events, ReviewEvent)
        assert count[0] <= len(reviews) <= count[1]
        assert [r.member_id for r in reviews] == list(lb.member_ids)
        assert all(r.product_id == lb.product_id and rating_ok(r.rating) for r in reviews)
        for r in reviews:  # verified buyers, at least a day earlier
            bought = view.bought(r.member_id, r.product_id)
            assert bought and bought[0].occurred_at <= r.occurred_at - timedelta(days=1)
        texts = [r.text for r in reviews]
        assert len(set(texts)) == len(texts)


def test_defective_product_reviews(view: View) -> None:
    _review_and_purchase_checks(view, fam.HN_DEFECTIVE, fam.DEFECT_BUYERS, lambda r: r <= 2)


def test_friends_reviews(view: View) -> None:
    _review_and_purchase_checks(view, fam.HN_FRIENDS, fam.FRIENDS, lambda r: r >= 4)
    for _, events in view.cases(fam.HN_FRIENDS):
        assert len({r.language for r in _of(events, ReviewEvent)}) == 1


def test_mixed_reviews(view: View) -> None:
    _review_and_purchase_checks(view, fam.HN_MIXED, (1, 1), lambda r: 2 <= r <= 5)


# --- incidents ----------------------------------------------------------------------------------


def test_slow_jittered_bots(view: View) -> None:
    for _, events in view.cases(fam.SLOW_BOT):
        assert all(isinstance(e, ClickEvent) and e.action == "view" for e in events)
        assert fam.BOT_VIEWS[0] <= len(events) <= fam.BOT_VIEWS[1]
        gaps = [_seconds(a, b) for a, b in pairwise(events)]
        mean = statistics.mean(gaps)
        assert fam.BOT_INTERVAL_S[0] * 0.98 <= mean <= fam.BOT_INTERVAL_S[1] * 1.02
        assert statistics.pstdev(gaps) / mean <= 0.1
        assert len({e.product_id for e in events}) == len(events)


def test_takeovers_are_5_to_10_times_the_median(view: View) -> None:
    for lb, events in view.cases(fam.TAKEOVER):
        (order,) = _of(events, PurchaseEvent, status="paid")
        earlier = view.paid_before(lb.member_ids[0], order.occurred_at)
        assert len(earlier) >= fam.TAKEOVER_MIN_ORDERS
        ratio = order.total / statistics.median(o.total for o in earlier)
        assert fam.TAKEOVER_RATIO[0] <= ratio <= fam.TAKEOVER_RATIO[1]
        assert fam.TAKEOVER_TOTAL[0] <= order.total <= fam.TAKEOVER_TOTAL[1]
        assert all(i.category in fam.RESELLABLE_CATEGORIES for i in order.items)


def test_card_testing(view: View) -> None:
    for _, events in view.cases(fam.CARD_TESTING):
        orders = _of(events, PurchaseEvent, status="paid")
        assert fam.CARD_TEST_ORDERS[0] <= len(orders) <= fam.CARD_TEST_ORDERS[1]
        assert _seconds(orders[0], orders[-1]) <= 600
        assert all(1.0 <= o.total <= 15.0 for o in orders)
        refunds = _of(events, PurchaseEvent, status="refunded")
        assert refunds and {r.order_id for r in refunds} <= {o.order_id for o in orders}


def test_paraphrase_rings(view: View) -> None:
    for lb, events in view.cases(fam.PARAPHRASE_RING):
        reviews = _of(events, ReviewEvent)
        assert fam.RING_ACCOUNTS[0] <= len(reviews) <= fam.RING_ACCOUNTS[1]
        assert len(set(lb.member_ids)) == len(reviews)
        assert all(r.rating == 5 for r in reviews)
        assert not any(view.bought(m, lb.product_id) for m in lb.member_ids)
        for a, b in combinations(reviews, 2):
            assert a.text != b.text
            assert a.language == b.language
            # same message: as many sentences, none shared
            split = re.compile(r"(?<=[.!?！。])\s*")
            sa = [s for s in split.split(a.text) if s]
            sb = [s for s in split.split(b.text) if s]
            assert len(sa) == len(sb) and not set(sa) & set(sb)


def test_slow_review_bombing(view: View) -> None:
    for lb, events in view.cases(fam.SLOW_BOMBING):
        reviews = _of(events, ReviewEvent)
        assert fam.BOMB_ACCOUNTS[0] <= len(reviews) <= fam.BOMB_ACCOUNTS[1]
        assert len(set(lb.member_ids)) == len(reviews)
        assert all(r.rating <= 2 for r in reviews)
        assert not any(view.bought(m, lb.product_id) for m in lb.member_ids)
        days = _seconds(reviews[0], reviews[-1]) / 86400
        assert fam.BOMB_SPAN_DAYS[0] <= days <= fam.BOMB_SPAN_DAYS[1]
        assert len({r.occurred_at.date() for r in reviews}) >= 2


def test_five_star_negative_text(view: View) -> None:
    _review_and_purchase_checks(view, fam.FIVE_STAR_NEGATIVE, (1, 1), lambda r: r == 5)


def test_review_texts_match_their_language(view: View) -> None:
    for scenario in fam.REVIEW_SCENARIOS:
        for _, events in view.cases(scenario):
            for r in _of(events, ReviewEvent):
                assert r.text and bool(CJK.search(r.text)) == (r.language == "zh")


def test_english_and_chinese_cases() -> None:
    scenarios = (fam.PARAPHRASE_RING, fam.FIVE_STAR_NEGATIVE, fam.HN_MIXED, fam.SLOW_BOMBING)
    config = FamilyConfig(
        seed=2, members=200, days=12, warmup_days=3, per_scenario=30, scenarios=scenarios
    )
    events, labels = independent_family(config)
    by_id = {e.event_id: e for e in events}
    for scenario in scenarios:
        langs = {
            by_id[i].language
            for lb in labels
            if lb.scenario == scenario
            for i in lb.event_ids
            if isinstance(by_id[i], ReviewEvent)
        }
        assert langs == {"en", "zh"}, scenario
