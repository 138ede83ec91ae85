"""The synthetic workload: deterministic, time-ordered, valid, and statistically plausible."""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from memberstream.datasets import (
    CATEGORIES,
    SyntheticEvent,
    SyntheticWorkload,
    WorkloadConfig,
)
from memberstream.schemas.codec import decode_event, encode
from memberstream.schemas.events import ClickEvent, PurchaseEvent, ReviewEvent

SMALL = WorkloadConfig(members=150, products=200, days=20)
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def workload() -> SyntheticWorkload:
    return SyntheticWorkload(WorkloadConfig())


@pytest.fixture(scope="module")
def events(workload: SyntheticWorkload) -> list[SyntheticEvent]:
    return list(workload.events())


def _clicks(events: list[SyntheticEvent], action: str) -> list[ClickEvent]:
    return [e for e in events if isinstance(e, ClickEvent) and e.action == action]


def _purchases(events: list[SyntheticEvent], status: str) -> list[PurchaseEvent]:
    return [e for e in events if isinstance(e, PurchaseEvent) and e.status == status]


def _reviews(events: list[SyntheticEvent]) -> list[ReviewEvent]:
    return [e for e in events if isinstance(e, ReviewEvent)]


def _digest(config: WorkloadConfig) -> str:
    h = hashlib.sha256()
    for ev in SyntheticWorkload(config).events():
        h.update(encode(ev))
    return h.hexdigest()


# --- determinism and ordering ----------------------------------------------------------------


def test_same_seed_same_events_other_seed_different() -> None:
    first = list(SyntheticWorkload(SMALL).events())
    second = list(SyntheticWorkload(SMALL).events())
    assert len(first) > 1000
    assert first == second
    assert [encode(e) for e in first] == [encode(e) for e in second]
    other = list(
        SyntheticWorkload(WorkloadConfig(members=150, products=200, days=20, seed=8)).events()
    )
    assert other[0].event_id.startswith("syn-8-")
    assert [encode(e)[40:] for e in other[:200]] != [encode(e)[40:] for e in first[:200]]
    assert SyntheticWorkload(SMALL).catalog == SyntheticWorkload(SMALL).catalog


def test_events_can_be_regenerated_from_one_workload() -> None:
    w = SyntheticWorkload(SMALL)
    assert list(w.events()) == list(w.events())


def test_deterministic_across_processes_and_hash_seeds() -> None:
    config = WorkloadConfig(members=40, products=60, days=10)
    code = (
        "import hashlib\n"
        "from memberstream.datasets import SyntheticWorkload, WorkloadConfig\n"
        "from memberstream.schemas.codec import encode\n"
        "h = hashlib.sha256()\n"
        "for ev in SyntheticWorkload(WorkloadConfig(members=40, products=60, days=10)).events():\n"
        "    h.update(encode(ev))\n"
        "print(h.hexdigest())\n"
    )
    root = Path(__file__).resolve().parents[2]
    digests = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}  # `-c` puts cwd (the repo) on sys.path
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        )
        digests.add(out.stdout.strip())
    assert digests == {_digest(config)}


def test_event_time_never_decreases_and_sessions_stay_in_the_period(
    events: list[SyntheticEvent],
) -> None:
    times = [e.occurred_at for e in events]
    assert all(a <= b for a, b in pairwise(times))
    cfg = WorkloadConfig()
    end = cfg.start + timedelta(days=cfg.days)
    clicks = [e for e in events if isinstance(e, ClickEvent)]
    assert cfg.start <= clicks[0].occurred_at and clicks[-1].occurred_at < end
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times[:1000])


def test_ids_unique_and_well_formed(
    workload: SyntheticWorkload, events: list[SyntheticEvent]
) -> None:
    ids = [e.event_id for e in events]
    assert len(set(ids)) == len(ids)
    assert ids[:3] == ["syn-7-0", "syn-7-1", "syn-7-2"]
    assert all(re.fullmatch(r"m\d{6}", e.member_id) for e in events)
    assert {e.source for e in events} == {"synthetic"}
    product_ids = {p.id for p in workload.catalog}
    assert len(product_ids) == len(workload.catalog) == 800
    assert all(re.fullmatch(r"p\d{5}", p) for p in product_ids)
    assert {e.product_id for e in _clicks(events, "view")} <= product_ids
    paid_orders = [e.order_id for e in _purchases(events, "paid")]
    assert len(set(paid_orders)) == len(paid_orders)


def test_every_event_round_trips_through_the_codec(events: list[SyntheticEvent]) -> None:
    for ev in events:
        decoded = decode_event(encode(ev), type(ev))
        assert decoded == ev, (ev, decoded)


# --- catalog and members ---------------------------------------------------------------------


def test_catalog_covers_categories_with_plausible_prices(workload: SyntheticWorkload) -> None:
    assert len(CATEGORIES) >= 20
    by_cat: dict[str, list[float]] = defaultdict(list)
    for p in workload.catalog:
        by_cat[p.category].append(p.price)
        assert 0 < p.price < 10_000 and round(p.price, 2) == p.price
        assert p.title
    assert set(by_cat) == {c.id for c in CATEGORIES}
    median = {c: statistics.median(v) for c, v in by_cat.items()}
    assert 8 <= median["books"] <= 25
    assert 80 <= median["electronics"] <= 300
    assert median["grocery"] < median["home_kitchen"] < median["furniture"]


def test_chinese_share_in_titles_searches_and_reviews(
    workload: SyntheticWorkload, events: list[SyntheticEvent]
) -> None:
    zh_products = [p for p in workload.catalog if p.language == "zh"]
    assert 0.15 <= len(zh_products) / len(workload.catalog) <= 0.25
    assert all(CJK.search(p.title) for p in zh_products)
    assert not any(CJK.search(p.title) for p in workload.catalog if p.language == "en")
    zh_members = {m.id for m in workload.members if m.language == "zh"}
    assert 0.15 <= len(zh_members) / len(workload.members) <= 0.25
    searches = _clicks(events, "search")
    assert all(bool(CJK.search(s.query or "")) == (s.member_id in zh_members) for s in searches)
    reviews = _reviews(events)
    zh_reviews = [r for r in reviews if r.language == "zh"]
    assert 0.1 <= len(zh_reviews) / len(reviews) <= 0.3
    assert all(CJK.search(r.text) and r.member_id in zh_members for r in zh_reviews)


def test_members_have_heavy_tailed_activity_and_favourites(
    workload: SyntheticWorkload, events: list[SyntheticEvent]
) -> None:
    assert all(1 <= len(m.favourites) <= 3 for m in workload.members)
    per_member = sorted(Counter(e.member_id for e in events).values(), reverse=True)
    top_decile = sum(per_member[: len(workload.members) // 10]) / sum(per_member)
    assert top_decile > 0.3  # a uniform population would give about 0.1
    favourites = {m.id: set(m.favourites) for m in workload.members}
    views: dict[str, list[bool]] = defaultdict(list)
    for v in _clicks(events, "view"):
        views[v.member_id].append(v.category in favourites[v.member_id])
    shares = [sum(f) / len(f) for f in views.values() if len(f) >= 50]
    assert len(shares) > 100 and statistics.mean(shares) > 0.7


# --- funnel, refunds, reviews ----------------------------------------------------------------


def test_funnel_views_carts_orders(events: list[SyntheticEvent]) -> None:
    views, carts = _clicks(events, "view"), _clicks(events, "add_to_cart")
    paid = _purchases(events, "paid")
    assert len(views) > 5 * len(carts) > 0
    assert len(carts) > len(paid) > 1000
    carted_products = {(c.member_id, c.product_id) for c in carts}
    for order in paid:
        assert 1 <= len(order.items) <= 4
        assert order.total == round(sum(i.quantity * i.unit_price for i in order.items), 2)
        assert all((order.member_id, i.product_id) in carted_products for i in order.items)
    quantities = Counter(i.quantity for o in paid for i in o.items)
    assert quantities[1] / sum(quantities.values()) > 0.75


def test_refunds_follow_paid_orders_at_the_configured_rate(events: list[SyntheticEvent]) -> None:
    paid = {o.order_id: o for o in _purchases(events, "paid")}
    refunds = _purchases(events, "refunded")
    assert abs(len(refunds) / len(paid) - WorkloadConfig().refund_rate) < 0.015
    for refund in refunds:
        order = paid[refund.order_id]
        assert refund.member_id == order.member_id
        assert refund.occurred_at > order.occurred_at
        assert 0 < refund.total <= order.total
        assert {i.product_id for i in refund.items} <= {i.product_id for i in order.items}


def test_reviews_are_j_shaped_and_match_their_rating(events: list[SyntheticEvent]) -> None:
    reviews = _reviews(events)
    paid = _purchases(events, "paid")
    line_items = sum(len(o.items) for o in paid)
    assert abs(len(reviews) / line_items - WorkloadConfig().review_rate) < 0.03
    bought_at: dict[tuple[str, str], datetime] = {}
    for o in paid:
        for i in o.items:
            bought_at.setdefault((o.member_id, i.product_id), o.occurred_at)
    assert all(r.occurred_at > bought_at[(r.member_id, r.product_id)] for r in reviews)
    share = {k: v / len(reviews) for k, v in Counter(r.rating for r in reviews).items()}
    assert share[5] > 0.4 and share[5] > share[4] > share[3]
    assert share[1] > share[2]
    en = [r for r in reviews if r.language == "en"]
    negative = re.compile(r"terrible|waste|broken|poor|disappoint|worst|cheap|fell apart", re.I)
    positive = re.compile(r"love|excellent|perfect|fantastic|highly recommend|five stars", re.I)
    assert all(r.text and r.title for r in reviews)
    assert not any(negative.search(r.title + " " + r.text) for r in en if r.rating >= 4)
    assert not any(positive.search(r.title + " " + r.text) for r in en if r.rating <= 2)
    zh = [r for r in reviews if r.language == "zh"]
    assert not any(re.search("差|坏|浪费|失望", r.title + r.text) for r in zh if r.rating >= 4)
    praise = re.compile("推荐|非常满意|很棒|超出预期")
    assert not any(praise.search(r.title + r.text) for r in zh if r.rating <= 2)


# --- filtering, injectors, config ------------------------------------------------------------


def test_kinds_filter_keeps_the_same_events() -> None:
    w = SyntheticWorkload(SMALL)
    everything = list(w.events())
    for kinds in ({"purchase"}, {"review"}, {"click", "review"}):
        expected = [e for e in everything if e.type in kinds]
        assert expected and list(w.events(kinds=kinds)) == expected
    with pytest.raises(ValueError, match="unknown event kinds"):
        list(w.events(kinds={"purchases"}))


def test_injectors_rewrite_the_stream_before_filtering() -> None:
    calls: list[SyntheticWorkload] = []

    def drop_refunds(
        stream: Iterator[SyntheticEvent], workload: SyntheticWorkload
    ) -> Iterator[SyntheticEvent]:
        calls.append(workload)
        return (e for e in stream if not (isinstance(e, PurchaseEvent) and e.status == "refunded"))

    plain = list(SyntheticWorkload(SMALL).events(kinds={"purchase"}))
    w = SyntheticWorkload(SMALL, injectors=[drop_refunds])
    injected = list(w.events(kinds={"purchase"}))
    assert calls == [w]
    assert injected == [e for e in plain if e.status == "paid"]
    assert len(injected) < len(plain)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        WorkloadConfig(start=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="refund_rate"):
        WorkloadConfig(refund_rate=1.5)
    with pytest.raises(ValueError, match="products"):
        WorkloadConfig(products=5)
    shifted = WorkloadConfig(start=datetime(2024, 1, 1, 8, tzinfo=UTC).astimezone())
    assert shifted.start.tzinfo is UTC
