"""Per-member anomaly detectors: click bursts, bot patterns, order outliers, velocity."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.domain.anomaly.flags import Candidate
from memberstream.domain.anomaly.member_detectors import (
    MAX_RUN,
    MAX_WINDOW_CLICKS,
    MemberAnomalyState,
    MemberDetectors,
)
from memberstream.domain.anomaly.settings import (
    AnomalySettings,
    ClickBurstSettings,
    OrderValueSettings,
)
from memberstream.schemas.events import ClickEvent, LineItem, PurchaseEvent

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MEMBER = "m1"


def click(t: float, n: int | str, product: str | None = "p0", member: str = MEMBER) -> ClickEvent:
    """A view of ``product`` at ``t`` seconds after T0 (a search when product is None)."""
    at = T0 + timedelta(seconds=t)
    if product is None:
        return ClickEvent(
            event_id=f"c-{member}-{n}", member_id=member, occurred_at=at, action="search", query="q"
        )
    return ClickEvent(
        event_id=f"c-{member}-{n}",
        member_id=member,
        occurred_at=at,
        action="view",
        product_id=product,
    )


def order(
    t: float, n: int | str, total: float, status: str = "paid", member: str = MEMBER
) -> PurchaseEvent:
    item = LineItem(product_id="p1", title="Thing", category="books", quantity=1, unit_price=total)
    return PurchaseEvent(
        event_id=f"o-{member}-{n}",
        member_id=member,
        occurred_at=T0 + timedelta(seconds=t),
        order_id=f"order-{n}",
        items=[item],
        total=total,
        status=status,  # type: ignore[arg-type]
    )


def ts(event: ClickEvent | PurchaseEvent) -> float:
    return event.occurred_at.timestamp()


def feed(
    det: MemberDetectors,
    events: Iterable[ClickEvent | PurchaseEvent],
    state: MemberAnomalyState | None = None,
) -> list[Candidate]:
    state = MemberAnomalyState() if state is None else state
    out: list[Candidate] = []
    for ev in events:
        if isinstance(ev, ClickEvent):
            out += det.on_click(state, ev)
        else:
            out += det.on_purchase(state, ev)
    return out


def clicks_with_gaps(
    gaps: Sequence[float], start: float = 0.0, products: Sequence[str] = ("p0", "p1", "p2")
) -> list[ClickEvent]:
    """Clicks at ``start`` and after each gap, cycling over ``products``."""
    out, t = [], start
    for i in range(len(gaps) + 1):
        out.append(click(t, f"{start:.0f}-{i}", products[i % len(products)]))
        if i < len(gaps):
            t += gaps[i]
    return out


def jittered(n: int, lo: float, hi: float, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(lo, hi) for _ in range(n)]


def human(n: int, floor: float, mean_extra: float, seed: int = 1) -> list[float]:
    """Gaps of a human: a floor plus an exponential wait (far from machine-regular)."""
    rng = random.Random(seed)
    return [floor + rng.expovariate(1.0 / mean_extra) for _ in range(n)]


def kinds(cands: Iterable[Candidate]) -> list[str]:
    return [c.kind for c in cands]


@pytest.fixture
def det() -> MemberDetectors:
    return MemberDetectors(AnomalySettings())


# --- state ---------------------------------------------------------------------------------


def test_fresh_state_is_tiny_and_round_trips() -> None:
    state = MemberAnomalyState()
    assert state.to_dict() == {"v": 1}
    again = MemberAnomalyState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert again.to_dict() == {"v": 1}
    with pytest.raises(ValueError, match="version"):
        MemberAnomalyState.from_dict({"v": 99})
    with pytest.raises(ValueError, match="malformed"):
        MemberAnomalyState.from_dict({"v": 1, "w": [[1.0]]})


def test_settings_beyond_state_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="history"):
        MemberDetectors(AnomalySettings(order_value=OrderValueSettings(history=10_000)))


# --- click_burst ---------------------------------------------------------------------------


def test_click_burst_fires_with_window_and_evidence(det: MemberDetectors) -> None:
    events = clicks_with_gaps(jittered(29, 0.9, 1.1))  # a script's steady pace
    state = MemberAnomalyState()
    got = [(i, c) for i, ev in enumerate(events) for c in det.on_click(state, ev)]
    got = [(i, c) for i, c in got if c.kind == "click_burst"]  # (bot_pattern fires too)
    assert [c.kind for _, c in got] == ["click_burst"]  # then the cooldown holds
    i, flag = got[0]
    assert i == 19  # the 20th click reaches min_clicks
    assert flag.subject == "member" and flag.subject_id == MEMBER
    assert flag.window_start == ts(events[0])
    assert flag.window_end == ts(events[19])
    assert flag.evidence == tuple(e.event_id for e in events[:20])
    assert flag.score == 20 and flag.threshold == 20 and flag.score >= flag.threshold
    assert flag.details["clicks"] == 20 and flag.details["window_s"] == 60.0
    assert flag.details["baseline"] < 1.5  # the burst did not teach itself a baseline


def test_click_burst_near_miss_19_per_minute(det: MemberDetectors) -> None:
    # gaps >= 3.2 s: at most 19 clicks in any 60 s window, for ten minutes
    events = clicks_with_gaps(jittered(200, 3.2, 8.0))
    assert feed(det, events) == []


def test_click_burst_cooldown_and_frozen_baseline(det: MemberDetectors) -> None:
    events = clicks_with_gaps(jittered(3000, 0.8, 1.2))  # a bot for about 50 minutes
    state = MemberAnomalyState()
    flags: list[Candidate] = []
    baselines_in_cooldown = []
    for ev in events:
        flags += [c for c in det.on_click(state, ev) if c.kind == "click_burst"]
        if flags and ts(ev) < flags[0].window_end + 1800:
            baselines_in_cooldown.append(state.baseline)
    assert kinds(flags) == ["click_burst", "click_burst"]
    first, second = flags
    assert second.window_end >= first.window_end + 1800
    assert second.window_end - first.window_end < 1802  # re-raised right after the cooldown
    assert second.window_start > first.window_end  # a new episode, a new flag id
    assert len(set(baselines_in_cooldown)) == 1  # not updated during the episode
    assert second.details["baseline"] == first.details["baseline"]


def test_baseline_lets_a_heavy_human_click_faster(det: MemberDetectors) -> None:
    products = [f"p{i}" for i in range(10)]
    steady = clicks_with_gaps(human(1600, 3.0, 1.5, seed=2), products=products)  # ~2 h
    fast = clicks_with_gaps(human(300, 1.0, 1.0, seed=3), ts(steady[-1]) - ts(steady[0]) + 5)
    state = MemberAnomalyState()
    # (this human is steadier than real ones: bot_pattern may fire, so only bursts count)
    bursts = [c for c in feed(det, steady, state) if c.kind == "click_burst"]
    assert bursts == []
    assert state.baseline > 10  # it learned ~13 clicks per minute
    bursts = [c for c in feed(det, fast, state) if c.kind == "click_burst"]
    assert bursts == []  # ~30 per minute is below 5x its baseline
    # so is it from a member with no history: a person's uneven pace is not a burst
    assert [c.kind for c in feed(det, fast) if c.kind == "click_burst"] == []
    # the same volume at a script's steady pace is
    steady_fast = clicks_with_gaps(jittered(300, 1.8, 2.2), ts(fast[-1]) - T0.timestamp() + 5)
    assert [c.kind for c in feed(det, steady_fast) if c.kind == "click_burst"] == ["click_burst"]


def test_click_burst_limit_saturates_at_window_bound(det: MemberDetectors) -> None:
    state = MemberAnomalyState(baseline=1000.0)  # a limit the window could never hold
    events = clicks_with_gaps([0.1] * (MAX_WINDOW_CLICKS + 5), products=["p0"])
    flags = [c for c in feed(det, events, state) if c.kind == "click_burst"]
    assert len(flags) == 1 and flags[0].score == flags[0].threshold == MAX_WINDOW_CLICKS


def test_max_evidence_keeps_the_most_recent_oldest_first() -> None:
    det = MemberDetectors(AnomalySettings(max_evidence=5))
    events = clicks_with_gaps(jittered(19, 0.9, 1.1))
    (flag,) = [c for c in feed(det, events) if c.kind == "click_burst"]
    assert flag.evidence == tuple(e.event_id for e in events[15:20])
    assert flag.window_start == ts(events[0])  # the window, not the evidence, sets it


# --- bot_pattern ---------------------------------------------------------------------------


def test_bot_pattern_regular_intervals(det: MemberDetectors) -> None:
    events = clicks_with_gaps(jittered(20, 4.9, 5.1), products=["p0", "p1"])
    state = MemberAnomalyState()
    got = [(i, c) for i, ev in enumerate(events) for c in det.on_click(state, ev)]
    assert [c.kind for _, c in got] == ["bot_pattern"]
    i, flag = got[0]
    assert i == 15  # 15 intervals need 16 clicks
    assert flag.window_start == ts(events[0])
    assert flag.evidence == tuple(e.event_id for e in events[:16])
    assert flag.details["signal"] == "regular_intervals"
    assert flag.details["cv"] <= 0.12 and flag.score >= flag.threshold
    assert flag.details["intervals"] == 15


def test_bot_pattern_near_misses(det: MemberDetectors) -> None:
    assert feed(det, clicks_with_gaps(jittered(60, 3.0, 7.0))) == []  # irregular
    assert feed(det, clicks_with_gaps([21.0] * 60)) == []  # regular but too slow
    # regular, with one long pause in every 10 clicks: no run of 15 intervals
    gaps = [300.0 if i % 10 == 9 else 5.0 for i in range(60)]
    assert feed(det, clicks_with_gaps(gaps)) == []


def test_bot_pattern_distinct_products_sustained_for_two_minutes(det: MemberDetectors) -> None:
    gaps = jittered(45, 1.6, 3.0)  # uneven enough for the rhythm signal, steady for a walk
    events = clicks_with_gaps(gaps, products=[f"p{i}" for i in range(46)])
    events.insert(3, click(ts(events[2]) - T0.timestamp() + 0.5, "search", product=None))
    state = MemberAnomalyState()
    got = [(i, c) for i, ev in enumerate(events) for c in det.on_click(state, ev)]
    got = [(i, c) for i, c in got if c.kind == "bot_pattern"]  # (20 a minute is a burst too)
    assert len(got) == 1
    i, flag = got[0]
    views = [e for e in events[: i + 1] if e.product_id]
    # gaps under 3 s: 30 views fit in 120 s and 20 in any minute, so the 30th view flags
    assert len(views) == 30 and ts(views[-1]) - ts(views[0]) < 120
    assert flag.evidence == tuple(e.event_id for e in views)
    assert flag.window_start == ts(events[0])
    assert flag.details["signal"] == "distinct_products"
    assert flag.score == 30 and flag.threshold == 30


def test_tabs_opened_at_once_then_read_are_not_a_bot(det: MemberDetectors) -> None:
    """A page of 18 results opened in tabs within 12 s, then read for minutes."""
    rng = random.Random(3)
    opened = sorted(rng.uniform(0, 12) for _ in range(18))
    tabs = [click(t, f"t{i}", f"p{i}") for i, t in enumerate(opened)]
    reading = [click(200.0 + 40 * i, f"r{i}", f"p{i}") for i in range(4)]
    assert feed(det, tabs + reading) == []


def test_a_walker_who_carts_is_shopping(det: MemberDetectors) -> None:
    events = clicks_with_gaps(jittered(45, 1.6, 3.0), products=[f"p{i}" for i in range(46)])
    at = ts(events[20]) - T0.timestamp() + 0.1
    cart = ClickEvent(
        event_id="cart-1",
        member_id=MEMBER,
        occurred_at=T0 + timedelta(seconds=at),
        action="add_to_cart",
        product_id="p20",
    )
    assert "bot_pattern" not in kinds(feed(det, [*events[:21], cart, *events[21:]]))


def test_distinct_products_near_misses(det: MemberDetectors) -> None:
    fourteen = clicks_with_gaps(jittered(15, 1.0, 3.7), products=[f"p{i}" for i in range(14)])
    assert feed(det, fourteen) == []
    spread = clicks_with_gaps(jittered(14, 4.4, 4.7), products=[f"p{i}" for i in range(15)])
    assert ts(spread[-1]) - ts(spread[0]) > 60
    assert feed(det, spread) == []


# --- order_value_outlier -------------------------------------------------------------------


def test_order_value_outlier_against_member_history() -> None:
    """With a $250 floor (the default, 1,500, holds the false-alert target on normal
    traffic; see OrderValueSettings.min_total), a 7x order flags."""
    det = MemberDetectors(AnomalySettings(order_value=OrderValueSettings(min_total=250.0)))
    state = MemberAnomalyState()
    history = [order(i * 86_400.0, i, total) for i, total in enumerate([40, 50, 60, 45, 55])]
    assert feed(det, history, state) == []
    assert feed(det, [order(6 * 86_400.0, "moderate", 200.0)], state) == []  # z = 2.8
    assert feed(det, [order(7 * 86_400.0, "larger", 230.0)], state) == []  # z = 3.1
    before = list(state.totals)
    # a takeover at 7x the median, far below any "big order" floor
    spike = order(8 * 86_400.0, "spike", 400.0)
    (flag,) = det.on_purchase(state, spike)
    assert flag.kind == "order_value_outlier"
    assert flag.window_start == flag.window_end == ts(spike)
    assert flag.evidence == (spike.event_id,)
    assert flag.details["reason"] == "member_baseline"
    assert (
        flag.score == flag.details["z"]
        and flag.score >= flag.threshold == det.settings.order_value.z_threshold
    )
    assert flag.details["median_total"] == pytest.approx(55.0)  # 40 45 50 55 60 200 230
    assert flag.score == pytest.approx(math.log(400 / 55) / 0.5)  # scale floored at 0.5
    assert flag.details["history"] == 7
    assert list(state.totals) == before  # the outlier does not shift the baseline
    # a second spike inside the cooldown is not raised, and not learned either
    assert det.on_purchase(state, order(8 * 86_400.0 + 60, "spike2", 2500.0)) == []
    assert list(state.totals) == before
    # below min_total nothing flags: $60 after $10 orders is 6x, and not worth an alert
    small = MemberAnomalyState()
    assert feed(det, [order(i * 86_400.0, f"s{i}", 10.0) for i in range(5)], small) == []
    assert feed(det, [order(6 * 86_400.0, "s-spike", 60.0)], small) == []
    # and under the default floor the $400 takeover passes unflagged
    default = MemberDetectors(AnomalySettings())
    quiet = MemberAnomalyState()
    assert feed(default, [*history, order(8 * 86_400.0, "spike", 400.0)], quiet) == []


def test_order_value_population_cap_without_history(det: MemberDetectors) -> None:
    assert feed(det, [order(0, 1, 2900.0)]) == []  # a new member's large first order
    (flag,) = feed(det, [order(0, 1, 3200.0)])
    assert flag.details["reason"] == "population_cap"
    assert flag.score == 3200.0 and flag.threshold == 3000.0
    # refunds are not orders: no value check
    assert feed(det, [order(0, 2, 9000.0, status="refunded")]) == []


# --- order_velocity ------------------------------------------------------------------------


def test_order_velocity_counts_tiny_orders_and_refunds(det: MemberDetectors) -> None:
    events = [order(i * 120.0, i, 12.0, status="refunded" if i % 2 else "paid") for i in range(8)]
    state = MemberAnomalyState()
    got = [(i, c) for i, ev in enumerate(events) for c in det.on_purchase(state, ev)]
    assert [c.kind for _, c in got] == ["order_velocity"]
    i, flag = got[0]
    assert i == 2  # three within 4 minutes
    assert flag.window_start == ts(events[0])
    assert flag.evidence == tuple(e.event_id for e in events[:3])
    assert flag.score == 3 and flag.threshold == 3


def test_ordinary_orders_at_a_sale_are_not_card_testing(det: MemberDetectors) -> None:
    family = [order(i * 90.0, i, 45.0 + 10 * i) for i in range(6)]  # six orders in 8 minutes
    assert feed(det, family) == []
    # two tiny ones among them do not reach three
    mixed = [order(i * 90.0, i, [9.0, 55.0, 14.0, 80.0][i]) for i in range(4)]
    assert feed(det, mixed) == []


def test_order_velocity_near_misses_and_cooldown(det: MemberDetectors) -> None:
    assert feed(det, [order(i * 400.0, i, 10.0) for i in range(2)]) == []  # 2 in 10 min
    assert feed(det, [order(i * 301.0, i, 10.0) for i in range(12)]) == []  # 3 span > 10 min
    flags = feed(det, [order(i * 60.0, i, 10.0) for i in range(130)])  # one a minute, 2h10
    assert kinds(flags) == ["order_velocity"] * 3
    assert [f.window_end - flags[0].window_end for f in flags] == [0.0, 3600.0, 7200.0]


# --- switches, duplicates, late events -----------------------------------------------------


def test_disabled_detectors() -> None:
    burst = clicks_with_gaps(jittered(29, 0.5, 1.5))
    off = MemberDetectors(AnomalySettings(click_burst=ClickBurstSettings(enabled=False)))
    assert feed(off, burst) == []
    nothing = MemberDetectors(AnomalySettings(enabled=False))
    state = MemberAnomalyState()
    assert feed(nothing, [*burst, order(0, 1, 9000.0)], state) == []
    assert state.to_dict() == {"v": 1}


def test_redelivered_events_count_once(det: MemberDetectors) -> None:
    events = clicks_with_gaps(jittered(18, 0.5, 1.5))
    state = MemberAnomalyState()
    assert feed(det, events + events, state) == []  # 19 distinct clicks, not 38
    assert len(state.clicks) == 19
    orders = [order(i * 60.0, i, 10.0) for i in range(2)]
    assert feed(det, orders + orders, state) == []  # two tiny orders, not four
    assert len(state.orders) == 2


def test_late_events(det: MemberDetectors) -> None:
    events = clicks_with_gaps(jittered(18, 1.0, 2.0))  # 19 clicks, ~28 s
    state = MemberAnomalyState()
    assert feed(det, events, state) == []
    stale = click(ts(events[-1]) - T0.timestamp() - 120, "stale")
    assert det.on_click(state, stale) == []
    assert "c-m1-stale" not in {c[1] for c in state.clicks}
    late = click(5.5, "late")  # inside the current window: the 20th click
    (flag,) = det.on_click(state, late)
    assert flag.kind == "click_burst" and flag.window_start == ts(events[0])
    assert "c-m1-late" in flag.evidence
    assert state.clock == ts(events[-1])
    # a shuffled stream with lateness never crashes and the windows stay sorted
    rng = random.Random(5)
    mixed = clicks_with_gaps(jittered(500, 0.2, 4.0), start=1000.0) + [
        order(1000.0 + i * 30, i, 20.0 + i) for i in range(40)
    ]
    mixed.sort(key=lambda e: ts(e) + rng.uniform(0, 90))
    state = MemberAnomalyState()
    feed(det, mixed, state)
    times = [c[0] for c in state.clicks]
    assert times == sorted(times)


def test_state_stays_bounded_in_a_long_bot_session(det: MemberDetectors) -> None:
    state = MemberAnomalyState()
    rng = random.Random(9)
    t = 0.0
    for i in range(50_000):  # ten clicks a second for 80 minutes, over 50 products
        det.on_click(state, click(t, i, f"p{i % 50}"))
        t += rng.uniform(0.05, 0.15)
    assert len(state.clicks) <= MAX_WINDOW_CLICKS and len(state.run) <= MAX_RUN
    assert len(orjson.dumps(state.to_dict())) < 20_000


# --- determinism ---------------------------------------------------------------------------


def _stream() -> list[ClickEvent | PurchaseEvent]:
    """A few synthetic members plus a bot, a card tester and a spender."""
    evs: list[ClickEvent | PurchaseEvent] = [
        e
        for e in SyntheticWorkload(WorkloadConfig(members=60, days=10)).events(
            kinds=("click", "purchase")
        )
        if isinstance(e, ClickEvent | PurchaseEvent)
    ]
    start = ts(evs[0]) - T0.timestamp()
    bot = clicks_with_gaps(jittered(400, 4.95, 5.05), start=start + 3600)
    burst = clicks_with_gaps(jittered(300, 0.5, 1.5), start=start + 7200)
    cards = [order(start + 5000 + 60 * i, f"card{i}", 1.0 + i) for i in range(20)]
    spends = [order(start + 86_400 * i, f"s{i}", 30.0 + i) for i in range(5)]
    spends.append(order(start + 86_400 * 6, "big", 5000.0))
    evs += bot + burst + cards + spends
    rng = random.Random(3)
    evs.sort(key=lambda e: ts(e) + rng.uniform(0, 2))  # slightly out of order
    return evs


def test_round_trip_after_every_event_gives_identical_candidates(det: MemberDetectors) -> None:
    events = _stream()
    live: dict[str, MemberAnomalyState] = defaultdict(MemberAnomalyState)
    stored: dict[str, bytes] = {}
    a: list[Candidate] = []
    b: list[Candidate] = []
    for ev in events:
        state = live[ev.member_id]
        a += det.on_click(state, ev) if isinstance(ev, ClickEvent) else det.on_purchase(state, ev)
        raw = stored.get(ev.member_id)
        again = MemberAnomalyState.from_dict(orjson.loads(raw)) if raw else MemberAnomalyState()
        b += det.on_click(again, ev) if isinstance(ev, ClickEvent) else det.on_purchase(again, ev)
        stored[ev.member_id] = orjson.dumps(again.to_dict())
    assert {"bot_pattern", "click_burst", "order_velocity", "order_value_outlier"} <= set(kinds(a))
    assert a == b
    for member, state in live.items():
        assert orjson.dumps(state.to_dict()) == stored[member]


# --- normal traffic ------------------------------------------------------------------------


def test_normal_synthetic_traffic_raises_very_few_flags(det: MemberDetectors) -> None:
    states: dict[str, MemberAnomalyState] = defaultdict(MemberAnomalyState)
    flags: Counter[str] = Counter()
    n = 0
    for ev in SyntheticWorkload(WorkloadConfig(members=2000)).events():
        n += 1
        if isinstance(ev, ClickEvent):
            flags.update(kinds(det.on_click(states[ev.member_id], ev)))
        elif isinstance(ev, PurchaseEvent):
            flags.update(kinds(det.on_purchase(states[ev.member_id], ev)))
    assert n > 100_000
    # observed: no flag of any kind on the default workload (seed 7)
    for kind in ("click_burst", "bot_pattern", "order_value_outlier", "order_velocity"):
        assert flags[kind] * 10_000 / n < 2.0, (kind, flags[kind], n)
    sizes = sorted(len(orjson.dumps(s.to_dict())) for s in states.values())
    assert sizes[len(sizes) // 2] < 400  # median stored bytes per member


def test_a_fast_shopper_is_not_a_click_burst(det: MemberDetectors) -> None:
    """25 clicks in a minute: at a person's irregular pace, or carting, is shopping; the
    same volume at a steady pace with no cart is a burst, and past hard_cap so is anything."""
    irregular = clicks_with_gaps(human(24, 0.3, 2.0, seed=4), products=[f"p{i}" for i in range(9)])
    assert ts(irregular[-1]) - ts(irregular[0]) < 60
    assert "click_burst" not in kinds(feed(det, irregular))
    steady = clicks_with_gaps(jittered(24, 1.5, 2.2), products=[f"p{i}" for i in range(9)])
    assert "click_burst" in kinds(feed(det, steady))
    carting = [*steady[:5], cart_click(ts(steady[4]) - T0.timestamp() + 0.2), *steady[5:]]
    assert "click_burst" not in kinds(feed(det, carting))
    frantic = clicks_with_gaps([0.6] * 94, products=[f"p{i}" for i in range(9)])
    frantic.insert(3, cart_click(1.9))
    flags = [f for f in feed(det, frantic) if f.kind == "click_burst"]
    assert flags and flags[0].score == 90 and flags[0].details["add_to_cart"] == 1


def cart_click(t: float) -> ClickEvent:
    return ClickEvent(
        event_id=f"cart-{t}",
        member_id=MEMBER,
        occurred_at=T0 + timedelta(seconds=t),
        action="add_to_cart",
        product_id="p1",
    )


def test_a_person_browsing_many_products_at_an_uneven_pace_is_not_walking(
    det: MemberDetectors,
) -> None:
    uneven = clicks_with_gaps(human(60, 0.4, 1.6, seed=9), products=[f"p{i}" for i in range(61)])
    assert ts(uneven[-1]) - ts(uneven[0]) < 140  # 60 products in about two minutes
    flags = [c for c in feed(det, uneven) if c.kind == "bot_pattern"]
    assert flags == []
