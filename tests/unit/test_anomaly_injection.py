"""Anomaly injection: deterministic, lazy-friendly, time-ordered, and labeled as promised."""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
from difflib import SequenceMatcher
from itertools import combinations, pairwise
from pathlib import Path

import pytest

from memberstream.datasets import SyntheticEvent, SyntheticWorkload, WorkloadConfig
from memberstream.datasets.anomalies import (
    ATO_CATEGORIES,
    ATO_MAX_TOTAL,
    ATO_MEDIAN_MULTIPLE,
    ATO_MIN_PRICE,
    ATO_MIN_TOTAL,
    ATO_NEW_MIN_TOTAL,
    CARD_MAX_PRICE,
    EXPECTED_KINDS,
    SCENARIOS,
    SUBJECTS,
    AnomalyInjector,
    AnomalyLabel,
    InjectionConfig,
    anomalous_workload,
    read_labels,
    write_labels,
)
from memberstream.datasets.synthetic import Product, _lower_noun
from memberstream.schemas.codec import decode_event, encode
from memberstream.schemas.events import ClickEvent, PurchaseEvent, ReviewEvent

SMALL = WorkloadConfig(members=300, products=300, days=20)
RATE = 1.5  # incidents per day and scenario: about 30 of each over SMALL's 20 days
INJECTED_ID = re.compile(r"syn-11-x\d+")
NEW_ACCOUNT = re.compile(r"x\d{6}")
CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class Run:
    workload: SyntheticWorkload
    events: list[SyntheticEvent]
    labels: list[AnomalyLabel]

    @property
    def by_id(self) -> dict[str, SyntheticEvent]:
        return {e.event_id: e for e in self.events}

    def incident(self, label: AnomalyLabel) -> list[SyntheticEvent]:
        by_id = self.by_id
        return [by_id[i] for i in label.event_ids]

    def normal_before(self, label: AnomalyLabel) -> list[SyntheticEvent]:
        return [
            e
            for e in self.events
            if not INJECTED_ID.fullmatch(e.event_id) and e.occurred_at < label.start
        ]

    def of(self, scenario: str) -> list[AnomalyLabel]:
        return [label for label in self.labels if label.scenario == scenario]


def _run(workload_config: WorkloadConfig = SMALL, injection: InjectionConfig | None = None) -> Run:
    workload, injector = anomalous_workload(
        workload_config, injection or InjectionConfig(incidents_per_day=RATE)
    )
    events = list(workload.events())
    return Run(workload, events, list(injector.labels))


@pytest.fixture(scope="module")
def run() -> Run:
    return _run()


def _noun(product: Product, lang: str) -> str:
    return product.noun_zh if lang == "zh" else _lower_noun(product.noun_en)


def _product(run: Run, product_id: str | None) -> Product:
    return next(p for p in run.workload.catalog if p.id == product_id)


# --- the stream --------------------------------------------------------------------------------


def test_same_configs_same_events_and_labels(run: Run) -> None:
    again = _run()
    assert again.events == run.events
    assert again.labels == run.labels
    other = _run(injection=InjectionConfig(seed=12, incidents_per_day=RATE))
    assert [label.start for label in other.labels] != [label.start for label in run.labels]


def test_an_injector_rerun_resets_its_labels() -> None:
    workload, injector = anomalous_workload(SMALL, InjectionConfig(incidents_per_day=RATE))
    first = list(workload.events())
    labels = list(injector.labels)
    assert list(workload.events()) == first
    assert injector.labels == labels


def test_time_ordered_unique_ids_and_normal_traffic_untouched(run: Run) -> None:
    assert all(a.occurred_at <= b.occurred_at for a, b in pairwise(run.events))
    ids = [e.event_id for e in run.events]
    assert len(set(ids)) == len(ids)
    normal = [e for e in run.events if not INJECTED_ID.fullmatch(e.event_id)]
    assert normal == list(SyntheticWorkload(SMALL).events())
    assert {e.source for e in run.events} == {"synthetic"}


def test_every_injected_event_is_labeled_exactly_once(run: Run) -> None:
    injected = [e.event_id for e in run.events if INJECTED_ID.fullmatch(e.event_id)]
    labeled = [i for label in run.labels for i in label.event_ids]
    assert len(labeled) == len(set(labeled)) == len(injected)
    assert set(labeled) == set(injected)
    for label in run.labels:
        events = run.incident(label)
        assert label.kinds == EXPECTED_KINDS[label.scenario]
        assert label.subject == SUBJECTS[label.scenario]
        assert (label.start, label.end) == (events[0].occurred_at, events[-1].occurred_at)
        assert {e.member_id for e in events} == set(label.member_ids)
        assert (label.product_id is None) == (label.subject == "member")


def test_injected_events_validate_and_round_trip(run: Run) -> None:
    for label in run.labels:
        for event in run.incident(label):
            assert decode_event(encode(event), type(event)) == event
            assert type(event).model_validate(event.model_dump()) == event


def test_incident_counts_follow_the_rate(run: Run) -> None:
    expected = RATE * SMALL.days
    counts = Counter(label.scenario for label in run.labels)
    assert set(counts) == set(SCENARIOS)
    for scenario in SCENARIOS:
        assert 0.5 * expected <= counts[scenario] <= 1.6 * expected, (scenario, counts)
    start, end = SMALL.start, SMALL.start + timedelta(days=SMALL.days)
    assert all(start <= label.start < end for label in run.labels)
    assert len({label.incident_id for label in run.labels}) == len(run.labels)


def test_existing_members_appeared_earlier_and_new_accounts_are_new(run: Run) -> None:
    workload_ids = {m.id for m in run.workload.members}
    kinds_of_account: Counter[str] = Counter()
    for label in run.labels:
        seen = {e.member_id for e in run.normal_before(label)}
        for member in label.member_ids:
            if member in workload_ids:
                assert member in seen, (label.incident_id, member)
                kinds_of_account["existing"] += 1
            else:
                assert NEW_ACCOUNT.fullmatch(member), member
                kinds_of_account["new"] += 1
    assert kinds_of_account["existing"] > 0 and kinds_of_account["new"] > 0
    assert all(run.of("bot_session")[i].member_ids[0] in workload_ids for i in range(3))


# --- scenarios ---------------------------------------------------------------------------------


def test_bot_sessions_click_machine_regularly_through_the_catalog(run: Run) -> None:
    normal_sessions = {
        e.session_id
        for e in run.events
        if isinstance(e, ClickEvent) and not INJECTED_ID.fullmatch(e.event_id)
    }
    for label in run.of("bot_session"):
        clicks = run.incident(label)
        assert all(isinstance(c, ClickEvent) and c.action == "view" for c in clicks)
        assert 80 <= len(clicks) <= 300
        sessions = {c.session_id for c in clicks if isinstance(c, ClickEvent)}
        assert len(sessions) == 1 and not sessions & normal_sessions
        gaps = [(b.occurred_at - a.occurred_at).total_seconds() for a, b in pairwise(clicks)]
        assert min(gaps) >= 0.49 and max(gaps) <= 3.07
        assert max(gaps) / min(gaps) <= 1.02 / 0.98 + 0.01
        assert len({c.product_id for c in clicks if isinstance(c, ClickEvent)}) >= 0.8 * len(clicks)


def test_card_testing_is_many_cheap_single_orders_with_quick_refunds(run: Run) -> None:
    refunds = 0
    for label in run.of("card_testing"):
        events = [e for e in run.incident(label) if isinstance(e, PurchaseEvent)]
        paid = {e.order_id: e for e in events if e.status == "paid"}
        assert len(events) == len(label.event_ids) and 8 <= len(paid) <= 20
        times = [e.occurred_at for e in paid.values()]
        assert max(times) - min(times) <= timedelta(minutes=15)
        for order in paid.values():
            (item,) = order.items
            assert item.quantity == 1 and item.unit_price <= CARD_MAX_PRICE
            assert order.total == item.unit_price
        for refund in (e for e in events if e.status == "refunded"):
            order = paid[refund.order_id]
            assert refund.total == order.total and refund.items == order.items
            assert timedelta(0) < refund.occurred_at - order.occurred_at <= timedelta(minutes=5)
            refunds += 1
    total_paid = sum(len(label.event_ids) for label in run.of("card_testing")) - refunds
    assert 0.2 < refunds / total_paid < 0.4


def test_account_takeover_orders_dwarf_the_members_history(run: Run) -> None:
    cases: Counter[str] = Counter()
    for label in run.of("account_takeover"):
        (order,) = run.incident(label)
        assert isinstance(order, PurchaseEvent) and order.status == "paid"
        assert order.total == round(sum(i.quantity * i.unit_price for i in order.items), 2)
        assert order.total <= ATO_MAX_TOTAL
        assert 2 <= sum(i.quantity for i in order.items) <= 8
        assert all(i.unit_price >= ATO_MIN_PRICE for i in order.items)
        assert all(i.category in ATO_CATEGORIES for i in order.items)
        (member,) = label.member_ids
        history = [
            e.total
            for e in run.normal_before(label)
            if isinstance(e, PurchaseEvent) and e.member_id == member and e.status == "paid"
        ]
        if NEW_ACCOUNT.fullmatch(member):
            assert not history and order.total >= ATO_NEW_MIN_TOTAL
            cases["new"] += 1
        else:
            assert len(history) >= 3
            assert order.total >= ATO_MEDIAN_MULTIPLE * statistics.median(history)
            assert order.total >= ATO_MIN_TOTAL
            cases["existing"] += 1
    assert cases["new"] > 0 and cases["existing"] > 0


def _reviews(run: Run, label: AnomalyLabel) -> list[ReviewEvent]:
    reviews = [e for e in run.incident(label) if isinstance(e, ReviewEvent)]
    assert len(reviews) == len(label.event_ids)
    assert len({r.member_id for r in reviews}) == len(reviews)
    assert {r.product_id for r in reviews} == {label.product_id}
    product = _product(run, label.product_id)
    for review in reviews:
        assert review.language == product.language
        assert _noun(product, product.language).lower() in review.text.lower()
        assert bool(CJK.search(review.text)) == (product.language == "zh")
    return reviews


def test_copy_paste_reviews_share_one_long_promotional_text(run: Run) -> None:
    for label in run.of("copy_paste_reviews"):
        reviews = _reviews(run, label)
        assert 4 <= len(reviews) <= 8
        assert label.end - label.start <= timedelta(hours=12)
        assert all(r.rating == 5 and len(r.text) >= 80 for r in reviews)
        for a, b in combinations([r.text for r in reviews], 2):
            match = SequenceMatcher(None, a, b, autojunk=False)
            assert match.ratio() >= 0.9
            assert match.find_longest_match().size >= 30
    assert {_product(run, lb.product_id).language for lb in run.of("copy_paste_reviews")} == {
        "en",
        "zh",
    }


def test_review_bombing_texts_are_low_rated_and_all_different(run: Run) -> None:
    ratings: Counter[int] = Counter()
    for label in run.of("review_bombing"):
        reviews = _reviews(run, label)
        assert 12 <= len(reviews) <= 40
        assert label.end - label.start <= timedelta(hours=12)
        assert len({r.text for r in reviews}) == len(reviews)
        ratings.update(r.rating for r in reviews)
    assert set(ratings) == {1, 2} and 0.7 < ratings[1] / ratings.total() < 0.9


# --- configuration -----------------------------------------------------------------------------


def test_scenarios_selection_turns_the_others_off_without_moving_them(run: Run) -> None:
    only = _run(injection=InjectionConfig(incidents_per_day=RATE, scenarios=("card_testing",)))
    assert {label.scenario for label in only.labels} == {"card_testing"}
    assert [(lb.incident_id, lb.start) for lb in only.labels] == [
        (lb.incident_id, lb.start) for lb in run.of("card_testing")
    ]
    rates = InjectionConfig(incidents_per_day=0, scenario_rates={"review_bombing": RATE})
    assert {label.scenario for label in _run(injection=rates).labels} == {"review_bombing"}


def test_no_incidents_leaves_the_workload_as_it_was() -> None:
    quiet = _run(injection=InjectionConfig(incidents_per_day=0))
    assert quiet.labels == [] and quiet.events == list(SyntheticWorkload(SMALL).events())


def test_a_kinds_filter_still_sees_the_injected_events(run: Run) -> None:
    workload, injector = anomalous_workload(SMALL, InjectionConfig(incidents_per_day=RATE))
    reviews = list(workload.events(kinds=["review"]))
    assert reviews == [e for e in run.events if isinstance(e, ReviewEvent)]
    assert injector.labels == run.labels
    review_ids = {e.event_id for e in reviews}
    for label in run.labels:
        assert (set(label.event_ids) <= review_ids) == (label.subject == "product")


def test_warmup_delays_the_first_incident() -> None:
    warm = _run(injection=InjectionConfig(incidents_per_day=RATE, warmup_days=5))
    assert min(label.start for label in warm.labels) >= SMALL.start + timedelta(days=5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"incidents_per_day": -1},
        {"incidents_per_day": float("nan")},
        {"scenario_rates": {"review_bombing": float("inf")}},
        {"scenario_rates": {"spam": 1.0}},
        {"scenarios": ("bot_session", "phishing")},
        {"scenarios": "bot_session"},
        {"seed": True},
        {"warmup_days": -0.5},
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        InjectionConfig(**kwargs)  # type: ignore[arg-type]


def test_config_normalises_scenarios_and_resolves_rates() -> None:
    config = InjectionConfig(
        scenarios=("review_bombing", "bot_session", "bot_session"),
        scenario_rates={"bot_session": 2.0},
    )
    assert config.scenarios == ("bot_session", "review_bombing")
    assert config.rate("bot_session") == 2.0
    assert config.rate("review_bombing") == 0.5
    assert config.rate("card_testing") == 0.0


def test_labels_round_trip_through_jsonl(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    assert write_labels(path, run.labels) == len(run.labels)
    assert read_labels(path) == run.labels
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(run.labels)


def test_injector_works_on_a_plain_workload_too() -> None:
    injector = AnomalyInjector(InjectionConfig(scenarios=("bot_session",), incidents_per_day=1))
    workload = SyntheticWorkload(SMALL, injectors=[injector])
    by_kind = defaultdict(int)
    for event in workload.events():
        by_kind[event.type] += 1
    assert injector.labels and all(lb.scenario == "bot_session" for lb in injector.labels)
    assert by_kind["click"] > sum(1 for e in SyntheticWorkload(SMALL).events() if e.type == "click")
