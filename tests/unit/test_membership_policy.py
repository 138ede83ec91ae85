"""Membership tiers: the policy on its own, and through MemberProcessor.apply."""

from __future__ import annotations

import doctest
import random
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

import memberstream.domain.membership as membership_module
from memberstream.config import CONFIG_ENV, Settings
from memberstream.core.member.processor import MemberProcessor
from memberstream.core.member_state import MemberState
from memberstream.core.positions import Position
from memberstream.core.roles import TIERS, Emit
from memberstream.domain.membership import (
    DAY_S,
    MembershipPolicy,
    MembershipSettings,
    Order,
    OrderWindow,
    TierRule,
    TierState,
)
from memberstream.schemas.events import ClickEvent, Envelope, LineItem, PurchaseEvent
from memberstream.schemas.outputs import MemberTierUpdate, deterministic_id

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MEMBER = "m-1"


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CONFIG_ENV, raising=False)


def day(d: float) -> datetime:
    return T0 + timedelta(days=d)


def ts(d: float) -> float:
    return day(d).timestamp()


def iso(d: float) -> str:
    return day(d).isoformat().replace("+00:00", "Z")


def buy(
    event_id: str,
    d: float,
    total: float,
    *,
    member: str = MEMBER,
    status: str = "paid",
    order_id: str | None = None,
) -> PurchaseEvent:
    return PurchaseEvent(
        event_id=event_id,
        member_id=member,
        occurred_at=day(d),
        order_id=order_id or f"order-{event_id}",
        items=[
            LineItem(product_id="p-1", title="Thing", category="c-1", quantity=1, unit_price=total)
        ],
        total=total,
        status=status,  # type: ignore[arg-type]
    )


def refund(
    event_id: str, d: float, total: float, order_id: str, *, member: str = MEMBER
) -> PurchaseEvent:
    return buy(event_id, d, total, member=member, status="refunded", order_id=order_id)


def click(event_id: str, d: float, *, member: str = MEMBER) -> ClickEvent:
    return ClickEvent(
        event_id=event_id, member_id=member, occurred_at=day(d), action="view", product_id="p-1"
    )


TIERS_3 = [
    TierRule(name="bronze", min_monetary=0, min_frequency=0),
    TierRule(name="silver", min_monetary=100, min_frequency=1),
    TierRule(name="gold", min_monetary=300, min_frequency=2),
]


def settings(
    *,
    window_days: float = 30,
    grace_days: float = 10,
    tiers: list[TierRule] | None = None,
    **over: Any,
) -> Settings:
    membership = MembershipSettings(
        window_days=window_days,
        grace_days=grace_days,
        tiers=TIERS_3 if tiers is None else tiers,
        **{k: over.pop(k) for k in list(over) if k == "max_orders_in_window"},
    )
    return Settings(store="memory://", membership=membership, **over)


def run(
    proc: MemberProcessor, events: Iterable[Envelope], state: MemberState | None = None
) -> tuple[MemberState, list[Emit]]:
    emits: list[Emit] = []
    for event in events:
        applied = proc.apply(state, event)
        state = applied.state
        emits.extend(applied.emits)
    assert state is not None
    return state, emits


def updates(emits: list[Emit]) -> list[MemberTierUpdate]:
    assert all(e.role == TIERS for e in emits)
    return [MemberTierUpdate.model_validate(e.payload) for e in emits]


def summary(emits: list[Emit]) -> list[tuple[str, str | None, str, str]]:
    return [(u.cause_event_id, u.previous_tier, u.tier, u.direction) for u in updates(emits)]


# --------------------------------------------------------------------------- policy on its own


def test_policy_upgrades_several_tiers_in_one_step() -> None:
    policy = MembershipPolicy(MembershipSettings())  # bronze/silver/gold/platinum defaults
    window = policy.new_window()
    state = TierState(tier=policy.base, since=0.0)
    for i in range(3):  # 3 small orders: silver needs 100 spent, so still bronze
        now = i * DAY_S
        assert window.add(Order(now, 10.0, f"o{i}"), now)
        assert policy.evaluate(state, window, prev_now=max(now - DAY_S, 0.0), now=now) is None
    assert state.tier == "bronze"

    now = 3 * DAY_S
    window.add(Order(now, 1000.0, "big"), now)
    decision = policy.evaluate(state, window, prev_now=2 * DAY_S, now=now)
    assert decision is not None
    # 4 orders, 1030 spent: past silver, meets gold; platinum's spend is met but not its
    # 8 orders, so it is not reached
    assert (decision.previous_tier, decision.tier, decision.direction) == (
        "bronze",
        "gold",
        "upgrade",
    )
    assert decision.rfm.frequency == 4 and decision.rfm.monetary == 1030.0
    assert "4 orders and 1030.00 net spend in 365 days" in decision.reason
    assert "meet gold (>= 4 orders, >= 300)" in decision.reason
    assert (state.tier, state.since, state.downgrade_pending_since) == ("gold", now, None)
    # nothing changes on a second look at the same moment
    assert policy.evaluate(state, window, prev_now=now, now=now) is None
    assert state.tier == "gold"


def test_policy_needs_both_thresholds() -> None:
    policy = MembershipPolicy(MembershipSettings())
    window = policy.new_window()
    state = TierState(tier=policy.base, since=0.0)
    window.add(Order(0.0, 5000.0, "huge"), 0.0)  # spend for platinum, but only one order
    assert policy.evaluate(state, window, 0.0, 0.0) is None
    assert state.tier == "bronze"
    window.add(Order(DAY_S, 1.0, "second"), DAY_S)  # 2 orders: silver, not gold (needs 4)
    decision = policy.evaluate(state, window, 0.0, DAY_S)
    assert decision is not None and decision.tier == "silver"


def test_processor_one_big_order_skips_a_tier() -> None:
    tiers = [
        TierRule(name="bronze", min_monetary=0, min_frequency=0),
        TierRule(name="silver", min_monetary=100, min_frequency=1),
        TierRule(name="gold", min_monetary=500, min_frequency=1),
        TierRule(name="platinum", min_monetary=2000, min_frequency=3),
    ]
    proc = MemberProcessor(settings(tiers=tiers))
    state, emits = run(proc, [click("c1", 0), buy("big", 1, 600.0)])
    assert summary(emits) == [("big", "bronze", "gold", "upgrade")]
    (update,) = updates(emits)
    assert update.member_id == MEMBER
    assert update.as_of == day(1)
    assert update.output_id == deterministic_id("tier", MEMBER, "big")
    assert update.rfm.frequency == 1 and update.rfm.monetary == 600.0
    assert "meet gold (>= 1 orders, >= 500)" in update.reason
    assert (
        emits[0].key == MEMBER
        and emits[0].payload["as_of"] == update.model_dump(mode="json")["as_of"]
    )
    assert state.tier.tier == "gold" and state.tier.since == ts(1)


def test_late_order_inside_window_counts_toward_the_tier() -> None:
    proc = MemberProcessor(settings())
    # the member's order clock is at day 10 when an order from day 2 arrives
    state, emits = run(proc, [buy("o10", 10, 10.0), click("c11", 11), buy("late", 2, 150.0)])
    assert summary(emits) == [("late", "bronze", "silver", "upgrade")]
    (update,) = updates(emits)
    assert update.as_of == day(10)  # announced at the member's order clock
    assert (update.rfm.frequency, update.rfm.monetary) == (2, 160.0)
    assert state.order_clock == ts(10)
    assert state.clock == ts(11)
    # an order from before the window counts for nothing
    state, emits = run(proc, [buy("ancient", -25, 500.0)], state)
    assert emits == []
    assert proc.profile(state).payload["rfm"]["monetary"] == 160.0


# --------------------------------------------------------------------------- downgrades
#
# Tier decisions run on the member's order clock (orders and refunds), so a silent member's
# downgrade is decided at their next order or refund; the moment the loss happened is still
# found exactly. `tiny` is such a next order, too small to requalify for anything.

GOLD_THEN_SILENT = [
    buy("o0", 0, 50.0),  # 50 / 1 order: bronze
    buy("o5", 5, 400.0),  # 450 / 2: gold
    buy("o10", 10, 100.0),  # 550 / 3: gold
]
# o0 leaves on day 30 (500 / 2: still gold); o5 leaves on day 35 (100 / 1: silver only);
# o10 leaves on day 40 (nothing: bronze)


def tiny(event_id: str, d: float) -> PurchaseEvent:
    return buy(event_id, d, 1.0)


def test_clicks_alone_never_move_the_tier() -> None:
    proc = MemberProcessor(settings(window_days=30, grace_days=10))
    state, emits = run(proc, [*GOLD_THEN_SILENT, *(click(f"c{d}", d) for d in range(11, 90))])
    assert summary(emits) == [("o5", "bronze", "gold", "upgrade")]
    assert state.tier.tier == "gold"
    assert state.tier.downgrade_pending_since is None
    assert state.order_clock == ts(10) and state.clock == ts(89)


def test_no_downgrade_before_grace_and_loss_dated_when_order_left() -> None:
    proc = MemberProcessor(settings(window_days=30, grace_days=10))
    state, emits = run(proc, GOLD_THEN_SILENT)
    assert summary(emits) == [("o5", "bronze", "gold", "upgrade")]

    # silent until day 37 (clicks do not count): the loss happened on day 35, when o5
    # left the window; o10 + tiny = 101 / 2 orders still meets silver
    state, emits = run(proc, [click("c20", 20), click("c36", 36), tiny("t37", 37)], state)
    assert emits == []
    assert state.tier.tier == "gold"
    assert state.tier.downgrade_pending_since == ts(35)
    profile = proc.profile(state).payload
    assert profile["tier"] == "gold"
    assert profile["downgrade_pending_since"] == iso(35)

    # still within grace (day 35 + 10 days) a second before it ends
    almost = buy("t45-", 0, 1.0).model_copy(update={"occurred_at": day(45) - timedelta(seconds=1)})
    state, emits = run(proc, [almost], state)
    assert emits == []
    assert state.tier.downgrade_pending_since == ts(35)  # not moved by later orders

    state, emits = run(proc, [tiny("t45", 45)], state)
    assert summary(emits) == [("t45", "gold", "bronze", "downgrade")]
    (update,) = updates(emits)
    assert update.reason.startswith(
        f"below gold thresholds since {iso(35)}; grace of 10 days ended {iso(45)}; "
    )
    assert "3 orders and 3.00 net spend in 30 days meet bronze (>= 0 orders, >= 0)" in (
        update.reason
    )
    assert update.as_of == day(45)
    assert (update.rfm.frequency, update.rfm.monetary) == (3, 3.0)
    assert state.tier.tier == "bronze"
    assert state.tier.since == ts(45)
    assert state.tier.downgrade_pending_since is None


def test_downgrade_when_grace_ended_while_silent() -> None:
    proc = MemberProcessor(settings(window_days=30, grace_days=10))
    state, _ = run(proc, GOLD_THEN_SILENT)
    state, emits = run(proc, [tiny("t38", 38)], state)  # o10 still in: silver qualifies
    assert emits == []
    assert state.tier.downgrade_pending_since == ts(35)
    # grace ended on day 45; next order on day 46, by when o10 has left too
    state, emits = run(proc, [tiny("t46", 46)], state)
    assert summary(emits) == [("t46", "gold", "bronze", "downgrade")]
    assert f"since {iso(35)}; grace of 10 days ended {iso(45)}" in updates(emits)[0].reason


def test_silent_member_loss_time_is_exact_not_next_event_time() -> None:
    proc = MemberProcessor(settings(window_days=30, grace_days=10))
    state, _ = run(proc, GOLD_THEN_SILENT)
    # no order between day 10 and day 60: one step over all three expiries
    state, emits = run(proc, [tiny("t60", 60)], state)
    assert summary(emits) == [("t60", "gold", "bronze", "downgrade")]
    (update,) = updates(emits)
    # not day 30 (o0 left, still gold) and not day 60 (the next order): day 35
    assert f"below gold thresholds since {iso(35)}; grace of 10 days ended {iso(45)};" in (
        update.reason
    )
    assert state.tier.since == ts(60)


def test_grace_zero_downgrades_at_once() -> None:
    proc = MemberProcessor(settings(window_days=30, grace_days=0))
    state, emits = run(proc, [*GOLD_THEN_SILENT, tiny("t36", 36)])
    assert summary(emits)[-1] == ("t36", "gold", "silver", "downgrade")
    assert state.tier.tier == "silver" and state.tier.since == ts(36)
    assert f"since {iso(35)}; grace of 0 days ended {iso(35)}" in updates(emits)[-1].reason


def test_new_qualifying_order_cancels_pending_downgrade() -> None:
    proc = MemberProcessor(settings(window_days=30, grace_days=10))
    state, emits = run(proc, [buy("o0", 0, 150.0)])
    assert summary(emits) == [("o0", "bronze", "silver", "upgrade")]
    state, emits = run(proc, [tiny("t32", 32)], state)
    assert emits == [] and state.tier.downgrade_pending_since == ts(30)

    state, emits = run(proc, [buy("o35", 35, 120.0)], state)  # within grace: qualifies again
    assert emits == []
    assert state.tier.tier == "silver"
    assert state.tier.downgrade_pending_since is None
    assert proc.profile(state).payload["downgrade_pending_since"] is None

    # past the original deadline (day 40): no downgrade
    state, emits = run(proc, [click("c41", 41), tiny("t45", 45), tiny("t60", 60)], state)
    assert emits == []
    assert state.tier.tier == "silver" and state.tier.downgrade_pending_since is None

    # t32 leaves on day 62 (still 122 spent), o35 on day 65: a fresh pending downgrade,
    # dated day 65
    state, emits = run(proc, [tiny("t70", 70)], state)
    assert emits == [] and state.tier.downgrade_pending_since == ts(65)
    state, emits = run(proc, [tiny("t75", 75)], state)
    assert summary(emits) == [("t75", "silver", "bronze", "downgrade")]
    assert f"since {iso(65)}; grace of 10 days ended {iso(75)}" in updates(emits)[0].reason


def test_refund_starts_pending_downgrade_at_refund_time() -> None:
    proc = MemberProcessor(settings(window_days=30, grace_days=10))
    state, emits = run(proc, [buy("o0", 0, 150.0), tiny("t2", 2)])
    assert summary(emits) == [("o0", "bronze", "silver", "upgrade")]

    state, emits = run(proc, [refund("r1", 3.25, 100.0, order_id="order-o0")], state)
    assert emits == []
    assert state.tier.tier == "silver"
    assert state.tier.downgrade_pending_since == ts(3.25)  # not day 2, the previous clock
    rfm = proc.profile(state).payload["rfm"]
    assert rfm["monetary"] == 51.0
    assert rfm["refunds"] == 1
    assert rfm["frequency"] == 2
    assert state.counts.refunds == 1 and state.counts.orders == 2

    state, emits = run(proc, [tiny("t13", 13)], state)
    assert emits == []
    state, emits = run(proc, [tiny("t13b", 13.25)], state)
    assert summary(emits) == [("t13b", "silver", "bronze", "downgrade")]
    (update,) = updates(emits)
    assert f"below silver thresholds since {iso(3.25)}; grace of 10 days ended {iso(13.25)}" in (
        update.reason
    )
    assert (update.rfm.monetary, update.rfm.refunds, update.rfm.frequency) == (53.0, 1, 4)


def test_zero_refund_counts_as_a_refund() -> None:
    proc = MemberProcessor(settings())
    state, _ = run(proc, [buy("o0", 0, 50.0), refund("r0", 1, 0.0, order_id="order-o0")])
    rfm = proc.profile(state).payload["rfm"]
    assert (rfm["frequency"], rfm["refunds"], rfm["monetary"]) == (1, 1, 50.0)
    assert state.counts.refunds == 1 and state.counts.orders == 1


# --------------------------------------------------------------------------- a stream


PROBES = (35, 40, 45)


def fifty_events() -> list[Envelope]:
    # one event a day for 50 days: 60.00 orders on days 0, 5, 10, 15, 20, 1.00 orders on
    # days 35, 40, 45, clicks otherwise
    out: list[Envelope] = []
    for d in range(50):
        if d in (0, 5, 10, 15, 20):
            out.append(buy(f"e{d}", d, 60.0))
        elif d in PROBES:
            out.append(buy(f"e{d}", d, 1.0))
        else:
            out.append(click(f"e{d}", d))
    return out


def test_tier_updates_only_on_change() -> None:
    # default tiers: silver 100 / 2 orders, gold 300 / 4 orders, platinum 1000 / 8
    proc = MemberProcessor(settings(window_days=30, grace_days=5, tiers=MembershipSettings().tiers))
    events = fifty_events()
    assert len(events) == 50
    state, emits = run(proc, events)
    # day 5: 2 orders, 120 -> silver. day 20: 5 orders, 300 -> gold. day 30: the day-0
    # order leaves (4 orders, 240: silver only), so at the day-35 order the grace is over
    assert summary(emits) == [
        ("e5", "bronze", "silver", "upgrade"),
        ("e20", "silver", "gold", "upgrade"),
        ("e35", "gold", "silver", "downgrade"),
    ]
    ups = updates(emits)
    assert [u.as_of for u in ups] == [day(5), day(20), day(35)]
    assert [u.output_id for u in ups] == [
        deterministic_id("tier", MEMBER, e) for e in ("e5", "e20", "e35")
    ]
    assert ups[0].reason == (
        "2 orders and 120.00 net spend in 30 days meet silver (>= 2 orders, >= 100)"
    )
    assert ups[1].reason == (
        "5 orders and 300.00 net spend in 30 days meet gold (>= 4 orders, >= 300)"
    )
    assert ups[2].reason == (
        f"below gold thresholds since {iso(30)}; grace of 5 days ended {iso(35)}; "
        "4 orders and 181.00 net spend in 30 days meet silver (>= 2 orders, >= 100)"
    )
    assert [(u.rfm.frequency, u.rfm.monetary) for u in ups] == [(2, 120.0), (5, 300.0), (4, 181.0)]
    # day 45: the day-15 order leaves, 63 spent: a new pending downgrade, dated then
    assert state.tier.tier == "silver"
    assert state.tier.downgrade_pending_since == ts(45)
    profile = proc.profile(state).payload
    assert (profile["clicks"], profile["orders"], profile["events"]) == (42, 8, 50)
    assert profile["tier_since"] == iso(35)
    assert profile["last_event_id"] == "e49"
    assert profile["last_purchase_at"] == iso(45)


def test_tier_updates_do_not_depend_on_click_interleaving() -> None:
    cfg = settings(window_days=30, grace_days=5, tiers=MembershipSettings().tiers)
    orders = [e for e in fifty_events() if isinstance(e, PurchaseEvent)]
    clicks = [e for e in fifty_events() if isinstance(e, ClickEvent)]
    _, in_time_order = run(MemberProcessor(cfg), fifty_events())
    # all clicks first (their topic ran ahead), then all orders
    _, clicks_first = run(MemberProcessor(cfg), [*clicks, *orders])
    # all orders first, then all clicks (the click topic lagged)
    _, orders_first = run(MemberProcessor(cfg), [*orders, *clicks])
    assert clicks_first == in_time_order
    assert orders_first == in_time_order


# --------------------------------------------------------------------------- determinism


def random_stream(seed: int, n: int = 400) -> list[Envelope]:
    rng = random.Random(seed)
    events: list[Envelope] = []
    clock = 0.0
    paid: dict[str, list[str]] = {}
    for i in range(n):
        member = f"m{rng.randrange(3)}"
        clock += rng.uniform(0, 0.6)
        d = round(clock - rng.choice([0, 0, 0, 0.5, 3, 40]), 4)  # some late, some very late
        r = rng.random()
        if r < 0.45:
            events.append(buy(f"b{i}", d, round(rng.uniform(5, 400), 2), member=member))
            paid.setdefault(member, []).append(f"order-b{i}")
        elif r < 0.55 and paid.get(member):
            events.append(
                refund(
                    f"r{i}",
                    d,
                    round(rng.uniform(5, 300), 2),
                    rng.choice(paid[member]),
                    member=member,
                )
            )
        else:
            events.append(click(f"c{i}", d, member=member))
        if rng.random() < 0.05:  # a redelivered record
            events.append(rng.choice(events))
    return events


def process_all(
    proc: MemberProcessor, events: list[Envelope]
) -> tuple[list[tuple[str, str, dict[str, Any], float, bool]], dict[str, bytes]]:
    states: dict[str, MemberState] = {}
    out = []
    for event in events:
        applied = proc.apply(states.get(event.member_id), event)
        states[event.member_id] = applied.state
        out.extend((e.role, e.key, e.payload, applied.duplicate) for e in applied.emits)
    return out, {m: s.to_bytes() for m, s in sorted(states.items())}


def test_same_events_give_identical_outputs_and_state(monkeypatch: pytest.MonkeyPatch) -> None:
    events = random_stream(seed=7)
    cfg = settings(
        window_days=20,
        grace_days=3,
        tiers=[
            TierRule(name="bronze", min_monetary=0, min_frequency=0),
            TierRule(name="silver", min_monetary=300, min_frequency=2),
            TierRule(name="gold", min_monetary=1500, min_frequency=6),
        ],
    )

    monkeypatch.setattr(time, "time", lambda: 1.0)
    monkeypatch.setattr(time, "time_ns", lambda: 1_000_000_000)
    first_out, first_states = process_all(MemberProcessor(cfg), events)

    monkeypatch.setattr(time, "time", lambda: 4_000_000_000.0)
    monkeypatch.setattr(time, "time_ns", lambda: 4_000_000_000 * 10**9)
    second_out, second_states = process_all(MemberProcessor(cfg), events)

    assert first_out == second_out
    assert first_states == second_states
    assert [o[2]["output_id"] for o in first_out] == [o[2]["output_id"] for o in second_out]
    # the stream is rich enough for this to mean something
    directions = {o[2]["direction"] for o in first_out}
    assert directions == {"upgrade", "downgrade"}
    assert not any(dup for *_, dup in first_out)  # duplicates emit nothing
    assert len({e.event_id for e in events}) < len(events)  # and the stream has some
    assert len(first_states) == 3


def test_wall_clock_is_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> float:
        raise AssertionError("the processor read the wall clock")

    events = random_stream(seed=11, n=150)
    proc = MemberProcessor(settings())
    monkeypatch.setattr(time, "time", boom)
    monkeypatch.setattr(time, "time_ns", boom)
    monkeypatch.setattr(time, "monotonic", boom)
    out, _ = process_all(proc, events)
    assert out  # something was produced without a clock


# --------------------------------------------------------------------------- duplicates


def test_duplicate_changes_nothing_and_emits_nothing() -> None:
    """The original's outputs were acknowledged before the state that remembers it was
    written, so a duplicate has nothing to re-emit."""
    proc = MemberProcessor(settings())
    state, _ = run(proc, [click("c0", 0)])
    upgrade_event = buy("o1", 1, 150.0)
    first = proc.apply(state, upgrade_event)
    assert first.duplicate is False
    assert summary(first.emits) == [("o1", "bronze", "silver", "upgrade")]
    assert first.emits[0].payload["output_id"] == deterministic_id("tier", MEMBER, "o1")
    before = first.state.to_bytes()

    again = proc.apply(first.state, upgrade_event)
    assert again.duplicate is True and again.emits == []
    assert again.state.to_bytes() == before

    # later, after more events, and after a save/load of the state
    state, later = run(proc, [click("c2", 2), buy("o3", 3, 500.0)], again.state)
    assert summary(later) == [("o3", "silver", "gold", "upgrade")]
    snapshot = state.to_bytes()
    loaded = proc.load(snapshot)
    assert loaded is not None
    replay = proc.apply(loaded, upgrade_event)
    assert replay.duplicate is True and replay.emits == []
    assert loaded.to_bytes() == snapshot


def test_a_redelivery_is_recognised_by_position_at_any_distance() -> None:
    """Event ids are remembered for the last N events only; a record's Kafka position
    is recognised however many events the member had since."""
    proc = MemberProcessor(settings(dedupe_ids_per_member=8))
    at = [Position("events.purchases", 2, 100 + i) for i in range(50)]
    state = None
    for i in range(50):
        state = proc.apply(state, buy(f"o{i}", i * 0.01, 20.0), at=at[i]).state
    assert state is not None and state.counts.events == 50
    assert not state.seen("o0")  # long out of the event-id memory
    snapshot = state.to_bytes()
    for i in (0, 7, 49):  # redelivered: skipped by position
        again = proc.apply(state, buy(f"o{i}", i * 0.01, 20.0), at=at[i])
        assert again.duplicate and again.emits == []
    assert state.to_bytes() == snapshot
    # the same offset on another partition or topic is another record
    other = proc.apply(state, buy("x1", 1, 20.0), at=Position("events.purchases", 1, 100))
    assert not other.duplicate
    clicks = proc.apply(other.state, click("x2", 1), at=Position("events.clicks", 2, 100))
    assert not clicks.duplicate and clicks.state.counts.events == 52
    # one entry per partition read, whatever the activity
    assert clicks.state.applied.to_dict() == {
        "events.purchases:2": 149,
        "events.purchases:1": 100,
        "events.clicks:2": 100,
    }


def test_duplicate_refund_is_not_counted_twice() -> None:
    proc = MemberProcessor(settings())
    r = refund("r1", 2, 100.0, order_id="order-o0")
    state, _ = run(proc, [buy("o0", 0, 300.0), r, r, r])
    assert state.counts.refunds == 1
    assert state.counts.events == 2
    assert proc.profile(state).payload["rfm"]["monetary"] == 200.0


# --------------------------------------------------------------------------- state bytes


def test_state_bytes_round_trip_through_load() -> None:
    proc = MemberProcessor(settings(window_days=30, grace_days=10, dedupe_ids_per_member=40))
    state, emits = run(
        proc,
        [
            *GOLD_THEN_SILENT,
            refund("r", 12, 20.0, order_id="order-o10"),
            click("c20", 20),
            tiny("t37", 37),
        ],
    )
    assert emits and state.tier.downgrade_pending_since == ts(35)
    raw = state.to_bytes()
    loaded = proc.load(raw)
    assert loaded is not None
    assert loaded.to_bytes() == raw
    assert loaded.member_id == state.member_id
    assert loaded.first_seen == state.first_seen == ts(0)
    assert loaded.clock == state.clock == ts(37)
    assert loaded.order_clock == state.order_clock == ts(37)
    assert loaded.tier == state.tier
    assert loaded.window.orders == state.window.orders
    assert (loaded.window.window_s, loaded.window.max_orders) == (
        state.window.window_s,
        state.window.max_orders,
    )
    assert list(loaded.recent_ids) == list(state.recent_ids)
    assert loaded.recent_ids.maxlen == 40
    assert loaded.applied.to_dict() == state.applied.to_dict()
    assert loaded.counts == state.counts
    assert loaded.last_purchase_at == state.last_purchase_at == ts(37)
    assert loaded.last_event_id == "t37"
    assert proc.profile(loaded) == proc.profile(state)

    # carrying on from the loaded copy is the same as carrying on from the original
    rest = [click("c44", 44), tiny("t45", 45), buy("o50", 50, 400.0)]
    original_next = run(proc, rest, state)
    loaded_next = run(proc, rest, loaded)
    assert original_next[1] == loaded_next[1]
    assert summary(original_next[1]) == [
        ("t45", "gold", "bronze", "downgrade"),
        ("o50", "bronze", "gold", "upgrade"),
    ]
    assert original_next[0].to_bytes() == loaded_next[0].to_bytes()


def test_load_none_and_unknown_version() -> None:
    proc = MemberProcessor(settings())
    assert proc.load(None) is None
    state, _ = run(proc, [click("c0", 0)])
    bad = state.to_bytes().replace(b'"v":1', b'"v":99')
    with pytest.raises(ValueError, match="version 99"):
        proc.load(bad)


# --------------------------------------------------------------------------- bounds


def test_memory_stays_bounded() -> None:
    cfg = settings(
        window_days=365,
        grace_days=0,
        dedupe_ids_per_member=64,
        max_orders_in_window=100,
    )
    proc = MemberProcessor(cfg)
    state: MemberState | None = None
    n_updates = 0
    minute = 1 / (24 * 60)
    for i in range(5000):
        d = i * minute
        # paid 200, then refunded: silver and back to bronze (grace 0) until the order bound
        event = (
            buy(f"b{i}", d, 200.0)
            if i % 2 == 0
            else refund(f"r{i}", d, 200.0, order_id=f"order-b{i - 1}")
        )
        applied = proc.apply(state, event, at=Position("events.purchases", 0, i))
        state = applied.state
        n_updates += len(applied.emits)
        assert len(state.recent_ids) <= cfg.dedupe_ids_per_member
        assert len(state.applied.to_dict()) == 1
        assert len(state.window.orders) <= cfg.membership.max_orders_in_window
    assert state is not None
    assert state.counts.events == 5000
    assert n_updates > 100
    assert len(state.recent_ids) == 64
    assert list(state.recent_ids)[-1] == "r4999"
    assert len(state.window.orders) == 100
    assert state.window.orders[-1].event_id == "r4999"
    # an id pushed out of the dedupe memory is no longer recognised (the documented bound)
    assert not state.seen("b0") and state.seen("b4998")
    assert len(state.to_bytes()) < 64 * 1024


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([], "at least one tier"),
        ([TierRule(name="bronze", min_monetary=10, min_frequency=0)], "zero thresholds"),
        ([TierRule(name="bronze", min_monetary=0, min_frequency=1)], "zero thresholds"),
        (
            [
                TierRule(name="bronze", min_monetary=0, min_frequency=0),
                TierRule(name="silver", min_monetary=100, min_frequency=1),
                TierRule(name="silver", min_monetary=200, min_frequency=2),
            ],
            "unique",
        ),
        (
            [
                TierRule(name="bronze", min_monetary=0, min_frequency=0),
                TierRule(name="gold", min_monetary=300, min_frequency=2),
                TierRule(name="silver", min_monetary=100, min_frequency=2),
            ],
            "must not need less",
        ),
        (
            [
                TierRule(name="bronze", min_monetary=0, min_frequency=0),
                TierRule(name="gold", min_monetary=300, min_frequency=4),
                TierRule(name="silver", min_monetary=300, min_frequency=2),
            ],
            "must not need less",
        ),
    ],
    ids=[
        "empty",
        "first-monetary",
        "first-frequency",
        "duplicate",
        "descending-money",
        "descending-orders",
    ],
)
def test_invalid_tier_settings_raise(tiers: list[TierRule], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MembershipSettings(tiers=tiers)
    with pytest.raises(ValidationError, match=message):
        Settings(membership={"tiers": [t.model_dump() for t in tiers]})


def test_negative_thresholds_and_bad_window_raise() -> None:
    with pytest.raises(ValidationError):
        TierRule(name="x", min_monetary=-1, min_frequency=0)
    with pytest.raises(ValidationError):
        TierRule(name="x", min_monetary=0, min_frequency=-1)
    with pytest.raises(ValidationError):
        MembershipSettings(window_days=0)
    with pytest.raises(ValidationError):
        MembershipSettings(grace_days=-1)


def test_membership_doctest() -> None:
    result = doctest.testmod(membership_module, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_order_window_type_is_shared() -> None:
    # the state module and the policy agree on the window they pass around
    proc = MemberProcessor(settings())
    assert isinstance(proc.policy.new_window(), OrderWindow)
    assert proc.policy.new_window().window_s == 30 * DAY_S
