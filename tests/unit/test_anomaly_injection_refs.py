"""Payment, shipping and device references in the synthetic workload and the tuning
family's incidents, and the hard negative ``hn_new_card`` (a member adding a new card)."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from dataclasses import dataclass, replace

import pytest

from memberstream.datasets.anomalies import (
    ATO_NEW_REFS_SHARE,
    EXPECTED_KINDS,
    HARD_SCENARIOS,
    SUBJECTS,
    AnomalyLabel,
    InjectionConfig,
    anomalous_workload,
)
from memberstream.datasets.synthetic import SyntheticEvent, SyntheticWorkload, WorkloadConfig
from memberstream.schemas.events import PurchaseEvent

SMALL = WorkloadConfig(members=300, products=300, days=20)
REFS = replace(SMALL, instrument_refs=True)
SCENARIOS = (
    "card_testing",
    "small_card_testing",
    "account_takeover",
    "mid_takeover",
    "hn_sale_family",
    "hn_big_spender",
    "hn_new_card",
)
RATE = 4.0  # cases per day and scenario: about 60 of each after the warm-up
VARIANT = re.compile(r"(ordinary|large)/(own|new)_device")
NO_REFS = {"payment_ref": None, "shipping_ref": None, "device_ref": None}


def refs(event: PurchaseEvent) -> tuple[str | None, str | None, str | None]:
    return (event.payment_ref, event.shipping_ref, event.device_ref)


@dataclass
class Run:
    events: list[SyntheticEvent]
    labels: list[AnomalyLabel]
    by_id: dict[str, SyntheticEvent]
    before: dict[str, list[PurchaseEvent]]
    """Per incident: its member's paid orders in the normal stream before it started."""

    def of(self, scenario: str) -> list[AnomalyLabel]:
        return [lb for lb in self.labels if lb.scenario == scenario]

    def orders(self, label: AnomalyLabel) -> list[PurchaseEvent]:
        return [e for i in label.event_ids if isinstance(e := self.by_id[i], PurchaseEvent)]


def _run(workload: WorkloadConfig) -> Run:
    config = InjectionConfig(incidents_per_day=RATE, scenarios=SCENARIOS, warmup_days=5)
    stream, injector = anomalous_workload(workload, config)
    events = list(stream.events())
    labels = list(injector.labels)
    injected = {i: lb for lb in labels for i in lb.event_ids}
    paid: dict[str, list[PurchaseEvent]] = {}
    before: dict[str, list[PurchaseEvent]] = {}
    for e in events:
        label = injected.get(e.event_id)
        if label is not None and e.event_id == label.event_ids[0]:
            before[label.incident_id] = list(paid.get(label.member_ids[0], ()))
        if label is None and isinstance(e, PurchaseEvent) and e.status == "paid":
            paid.setdefault(e.member_id, []).append(e)
    return Run(events, labels, {e.event_id: e for e in events}, before)


@pytest.fixture(scope="module")
def run() -> Run:
    return _run(REFS)


@pytest.fixture(scope="module")
def plain() -> Run:
    return _run(SMALL)


# --- the workload ----------------------------------------------------------------------------


def test_references_change_nothing_else_in_the_workload() -> None:
    off = list(SyntheticWorkload(SMALL).events())
    on = list(SyntheticWorkload(REFS).events())
    assert len(on) == len(off)
    for a, b in zip(off, on, strict=True):
        if isinstance(b, PurchaseEvent):
            assert all(refs(b)) and not any(refs(a))  # type: ignore[arg-type]
            assert b.model_copy(update=NO_REFS) == a
        else:
            assert b == a
    assert on == list(SyntheticWorkload(REFS).events())  # seeded: the same references


def test_members_keep_a_few_cards_addresses_and_devices() -> None:
    orders = [e for e in SyntheticWorkload(REFS).events(kinds={"purchase"})]
    paid = [e for e in orders if e.status == "paid"]
    by_order = {e.order_id: e for e in paid}
    for refund in (e for e in orders if e.status == "refunded"):
        assert refs(refund) == refs(by_order[refund.order_id])  # back to the order's card
    used: dict[str, dict[int, Counter[str]]] = {}
    for e in paid:
        member = used.setdefault(e.member_id, {0: Counter(), 1: Counter(), 2: Counter()})
        for k, ref in enumerate(refs(e)):
            member[k][ref] += 1  # type: ignore[index]
    # each member's first card pays for most of its orders, and cards are the member's own
    members = list(used.values())
    assert statistics.median(m[0].most_common(1)[0][1] / m[0].total() for m in members) >= 0.7
    owners: dict[str, set[str]] = {}
    for e in paid:
        owners.setdefault(e.payment_ref, set()).add(e.member_id)  # type: ignore[arg-type]
    assert all(len(o) == 1 for o in owners.values())
    assert {r[:4] for r in owners} == {"pay-"} and all(len(r) == 20 for r in owners)
    # new cards after the first order: the 2.5% rate plus first uses of a second card
    seen: dict[str, set[str]] = {}
    new = 0
    for e in paid:
        mine = seen.setdefault(e.member_id, set())
        new += bool(mine) and e.payment_ref not in mine
        mine.add(e.payment_ref)  # type: ignore[arg-type]
    assert 0.02 < new / len(paid) < 0.12, new / len(paid)


def test_rates_are_checked() -> None:
    with pytest.raises(ValueError, match="new_card_rate"):
        WorkloadConfig(new_card_rate=1.5)


# --- incidents -------------------------------------------------------------------------------


def test_without_references_the_incidents_are_the_same_and_carry_none(run: Run, plain: Run) -> None:
    assert run.labels == plain.labels
    for a, b in zip(plain.events, run.events, strict=True):
        if isinstance(b, PurchaseEvent):
            assert not any(refs(a))  # type: ignore[arg-type]
            assert b.model_copy(update=NO_REFS) == a
        else:
            assert a == b


def test_card_testing_uses_a_new_card_per_order(run: Run) -> None:
    for scenario in ("card_testing", "small_card_testing"):
        assert run.of(scenario)
        for label in run.of(scenario):
            orders = run.orders(label)
            paid = [o for o in orders if o.status == "paid"]
            own = {o.payment_ref for o in run.before[label.incident_id]}
            cards = [o.payment_ref for o in paid]
            assert len(set(cards)) == len(cards) and not own & set(cards)
            assert len({(o.shipping_ref, o.device_ref) for o in orders}) == 1
            by_order = {o.order_id: o.payment_ref for o in paid}
            assert all(o.payment_ref == by_order[o.order_id] for o in orders)


def test_takeovers_mostly_come_on_a_new_card_to_a_new_address(run: Run) -> None:
    shares = []
    for scenario in ("account_takeover", "mid_takeover"):
        for label in run.of(scenario):
            (order,) = run.orders(label)
            before = run.before[label.incident_id]
            if not before:
                continue  # a new account: everything it has is new
            cards = {o.payment_ref for o in before}
            assert order.shipping_ref not in {o.shipping_ref for o in before}
            assert order.device_ref not in {o.device_ref for o in before}
            if order.payment_ref in cards:  # the saved card: the latest one it used
                assert order.payment_ref == before[-1].payment_ref
            shares.append(order.payment_ref not in cards)
    assert len(shares) > 60
    assert abs(sum(shares) / len(shares) - ATO_NEW_REFS_SHARE) < 0.12


def test_hard_negatives_pay_with_their_own_references(run: Run) -> None:
    for label in run.of("hn_sale_family"):
        before = run.before[label.incident_id]
        expected = refs(before[-1]) if before else None
        got = {refs(o) for o in run.orders(label)}
        assert len(got) == 1
        if expected is not None:
            assert got == {expected}
    for label in run.of("hn_big_spender"):
        assert len({refs(o) for o in run.orders(label)}) == 1  # the account's own throughout


def test_hn_new_card_is_a_hard_negative_labeled_with_its_variant(run: Run) -> None:
    assert "hn_new_card" in HARD_SCENARIOS
    assert EXPECTED_KINDS["hn_new_card"] == frozenset()
    assert SUBJECTS["hn_new_card"] == "member"
    labels = run.of("hn_new_card")
    assert len(labels) > 40
    variants = Counter()
    for label in labels:
        match = VARIANT.fullmatch(label.variant)
        assert match, label.variant
        variants[match.groups()] += 1
        assert label.kinds == frozenset() and len(label.event_ids) == 1
    n = len(labels)
    large = sum(v for (size, _), v in variants.items() if size == "large")
    new_device = sum(v for (_, device), v in variants.items() if device == "new")
    assert 0.15 < large / n < 0.45 and 0.15 < new_device / n < 0.45


def test_hn_new_card_orders_an_ordinary_or_usual_large_size_on_a_new_card(run: Run) -> None:
    checked = 0
    for label in run.of("hn_new_card"):
        before = run.before[label.incident_id]
        if len(before) < 3:
            continue  # no member had 3 orders yet: a new account
        checked += 1
        (order,) = run.orders(label)
        assert order.status == "paid" and order.member_id == before[0].member_id
        totals = [o.total for o in before]
        size, device = VARIANT.fullmatch(label.variant).groups()  # type: ignore[union-attr]
        if size == "ordinary":  # 0.5-2x the median, to within the nearest products' prices
            assert 0.4 <= order.total / statistics.median(totals) <= 2.5
        else:  # 0.9-1.1x the largest
            assert 0.8 <= order.total / max(totals) <= 1.35
        assert order.payment_ref not in {o.payment_ref for o in before}
        assert order.shipping_ref == before[-1].shipping_ref
        if device == "own":
            assert order.device_ref == before[-1].device_ref
        else:
            assert order.device_ref not in {o.device_ref for o in before}
    assert checked > 30
