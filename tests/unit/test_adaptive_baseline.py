"""Adaptive baselines: analysts' false_positive verdicts give a member bounded, expiring
allowances for order values and click bursts; nothing else moves them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES
from memberstream.domain.anomaly.adaptive import AdaptiveBaseline
from memberstream.domain.anomaly.member_detectors import MemberAnomalyState
from memberstream.schemas.events import ClickEvent, Feedback, LineItem, PurchaseEvent

T0 = datetime(2024, 6, 3, 9, tzinfo=UTC)
DEFAULTS = Settings().anomaly
# What the settings say, worked out by hand for a member whose orders are all $100: the
# robust scale is floored at min_scale, so the smallest flagging total is
# max(min_total, 100 * exp(z_threshold * min_scale)) = max(1500, 575) = 1500.
LIMIT_TOTAL = 1500.0
CAP_TOTAL = DEFAULTS.adaptive.max_factor * LIMIT_TOTAL  # 3000


def order(n: int, day: float, total: float, member: str = "m1") -> PurchaseEvent:
    item = LineItem(
        product_id=f"p{n}", title="kitchen thing", category="home", quantity=1, unit_price=total
    )
    return PurchaseEvent(
        event_id=f"{member}-o{n}",
        member_id=member,
        occurred_at=T0 + timedelta(days=day),
        order_id=f"{member}-order{n}",
        items=[item],
        total=total,
    )


def clicks(start_s: float, n: int, tag: str, member: str = "m1") -> list[ClickEvent]:
    """``n`` views one second apart: a scripted rhythm (no cart, no variation)."""
    return [
        ClickEvent(
            event_id=f"{member}-{tag}{i}",
            member_id=member,
            occurred_at=T0 + timedelta(seconds=start_s + i),
            action="view",
            product_id=f"p{i}",
        )
        for i in range(n)
    ]


def verdict(flag_id: str, n: int, verdict: str = "false_positive", member: str = "m1") -> Feedback:
    return Feedback(
        event_id=f"fb-{member}-{n}",
        member_id=member,
        occurred_at=T0 + timedelta(days=60),
        subject="anomaly_flag",
        ref_id=flag_id,
        verdict=verdict,  # type: ignore[arg-type]
    )


def flagged(run: OfflineRun, kind: str) -> list[dict]:
    return [f for f in run.outputs[ANOMALIES] if f["kind"] == kind]


def history(run: OfflineRun, member: str = "m1") -> None:
    run.feed(order(i, day=i, total=100.0, member=member) for i in range(5))


def flag_of(run: OfflineRun, event_id: str, kind: str = "order_value_outlier") -> dict:
    (f,) = [f for f in flagged(run, kind) if f["cause_event_id"] == event_id]
    return f


def new_flags(run: OfflineRun, events: Iterable) -> list[str]:
    """The order-value flags ``events`` raise, by cause event."""
    before = len(flagged(run, "order_value_outlier"))
    run.feed(events)
    return [f["cause_event_id"] for f in flagged(run, "order_value_outlier")[before:]]


def rejected_member(total: float = 2000.0) -> OfflineRun:
    run = OfflineRun(Settings())
    history(run)
    run.apply(order(10, day=10, total=total))
    run.apply(verdict(flag_of(run, "m1-o10")["flag_id"], 1))
    return run


def test_the_flag_says_the_smallest_total_that_flagged() -> None:
    run = OfflineRun(Settings())
    history(run)
    run.apply(order(10, day=10, total=2000.0))
    assert flag_of(run, "m1-o10")["details"]["limit_total"] == LIMIT_TOTAL


def test_a_rejected_order_value_lets_a_similar_order_pass_but_not_one_above_the_cap() -> None:
    run = rejected_member(2000.0)
    (allowance,) = run.members["m1"].anomaly.adaptive.allowances  # (state read back from bytes)
    assert allowance.limit == min(2000.0 * 1.1, CAP_TOTAL) == 2200.0
    assert new_flags(run, [order(11, day=11, total=2100.0)]) == []
    assert new_flags(run, [order(12, day=12, total=2500.0)]) == ["m1-o12"]  # above the margin
    assert new_flags(run, [order(13, day=13, total=CAP_TOTAL + 100)]) == ["m1-o13"]
    assert list(run.members["m1"].anomaly.totals) == [100.0] * 5  # nothing taught the history


def test_an_allowance_never_exceeds_twice_the_detectors_own_limit() -> None:
    run = rejected_member(5000.0)  # far above: the allowance stops at the cap
    assert new_flags(run, [order(11, day=11, total=CAP_TOTAL - 50)]) == []
    assert new_flags(run, [order(12, day=12, total=CAP_TOTAL + 50)]) == ["m1-o12"]
    for n in range(13, 25):  # an analyst rejecting ever larger orders does not ratchet it up
        run.apply(order(n, day=n, total=CAP_TOTAL + 100 * n))
        run.apply(verdict(flag_of(run, f"m1-o{n}")["flag_id"], n))
    adaptive = run.members["m1"].anomaly.adaptive
    assert max(a.limit for a in adaptive.allowances) == CAP_TOTAL
    assert len(adaptive.allowances) <= DEFAULTS.adaptive.max_kept
    assert new_flags(run, [order(40, day=40, total=CAP_TOTAL + 1)]) == ["m1-o40"]


def test_an_unlabelled_members_baseline_never_moves() -> None:
    run = OfflineRun(Settings())
    history(run)
    raised = new_flags(run, [order(n, day=n, total=2000.0 + n) for n in range(10, 20)])
    assert raised == [f"m1-o{n}" for n in range(10, 20)]  # flagged every time, as before
    state = run.members["m1"].anomaly
    assert state.adaptive.allowances == []
    assert "a" not in state.to_dict()["ad"]  # only the flags a verdict could still name
    assert list(state.totals) == [100.0] * 5


def test_a_confirmed_flag_or_another_kind_moves_nothing() -> None:
    run = OfflineRun(Settings())
    history(run)
    run.apply(order(10, day=10, total=2000.0))
    run.apply(verdict(flag_of(run, "m1-o10")["flag_id"], 1, verdict="confirmed"))
    run.apply(verdict("some-other-flag", 2))
    assert not run.members["m1"].anomaly.adaptive.allowances
    assert new_flags(run, [order(11, day=11, total=2100.0)]) == ["m1-o11"]


def test_the_allowance_expires() -> None:
    run = rejected_member(2000.0)
    days = DEFAULTS.adaptive.expire_days  # counted from the rejected order (day 10)
    assert new_flags(run, [order(11, day=10 + days - 1, total=2100.0)]) == []
    assert new_flags(run, [order(12, day=10 + days + 1, total=2100.0)]) == ["m1-o12"]
    assert not run.members["m1"].anomaly.adaptive.allowances


def test_the_verdict_read_before_the_flag_gives_the_same_allowance() -> None:
    live = rejected_member(2000.0)
    flag_id = flag_of(live, "m1-o10")["flag_id"]
    replay = OfflineRun(Settings())
    replay.apply(verdict(flag_id, 1))
    history(replay)
    replay.apply(order(10, day=10, total=2000.0))
    assert flagged(replay, "order_value_outlier") == []  # the ledger holds it back
    assert (
        replay.members["m1"].anomaly.adaptive.allowances
        == live.members["m1"].anomaly.adaptive.allowances
    )


def test_a_rejected_click_burst_raises_that_members_burst_limit_within_bounds() -> None:
    run = OfflineRun(Settings())
    run.feed(clicks(0, 25, "a"))
    (first,) = flagged(run, "click_burst")
    assert first["score"] == first["threshold"] == DEFAULTS.click_burst.min_clicks
    run.apply(verdict(first["flag_id"], 1))
    (allowance,) = run.members["m1"].anomaly.adaptive.allowances
    assert allowance.limit == 20 * 1.1  # under the cap min(2 x 20, hard_cap - 1)
    run.feed(clicks(3600, 22, "b"))  # a burst at the rejected rate passes
    assert len(flagged(run, "click_burst")) == 1
    run.feed(clicks(7200, 40, "c"))  # a faster one is flagged once it passes the allowance
    second = flagged(run, "click_burst")[1]
    assert second["score"] == 23

    unlabelled = OfflineRun(Settings())
    unlabelled.feed([*clicks(0, 25, "a", "m2"), *clicks(3600, 22, "b", "m2")])
    assert len(flagged(unlabelled, "click_burst")) == 2


def test_allowances_round_trip_through_the_stored_state() -> None:
    run = rejected_member(2000.0)
    state = run.members["m1"].anomaly
    again = MemberAnomalyState.from_dict(state.to_dict())
    assert again.adaptive.allowances == state.adaptive.allowances
    assert list(again.adaptive.pending) == list(state.adaptive.pending)
    assert AdaptiveBaseline.from_dict({}).to_dict() == {}
