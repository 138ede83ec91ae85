"""The trailing event-time order window behind recency, frequency and monetary value."""

from __future__ import annotations

import pytest

from memberstream.domain.rfm import DAY_S, Order, OrderWindow

T0 = 1_700_000_000.0  # an arbitrary event-time origin (whole seconds)
WINDOW_DAYS = 30
W = WINDOW_DAYS * DAY_S


def at(days: float) -> float:
    return T0 + days * DAY_S


def window(max_orders: int = 1000) -> OrderWindow:
    return OrderWindow(window_s=W, max_orders=max_orders)


def ids(w: OrderWindow) -> list[str]:
    return [o.event_id for o in w.orders]


def test_order_exactly_window_old_is_outside() -> None:
    w = window()
    # rejected by add(): at now == t + window it has already left
    assert w.add(Order(T0, 50.0, "edge"), now=T0 + W) is False
    assert w.orders == []
    # one second younger is still inside
    assert w.add(Order(T0 + 1, 50.0, "inside"), now=T0 + W) is True
    assert ids(w) == ["inside"]


def test_rfm_window_edge() -> None:
    w = window()
    assert w.add(Order(T0, 50.0, "a"), now=T0)
    assert w.rfm(T0 + W - 1).frequency == 1
    assert w.rfm(T0 + W - 1).monetary == 50.0
    at_edge = w.rfm(T0 + W)
    assert at_edge.frequency == 0
    assert at_edge.monetary == 0.0
    assert at_edge.recency_days is None
    # rfm() excludes, it does not remove
    assert ids(w) == ["a"]


def test_prune_drops_exactly_the_expired_orders() -> None:
    w = window()
    for i, d in enumerate([0, 1, 2, 3]):
        assert w.add(Order(at(d), 10.0, f"o{i}"), now=at(3))
    w.prune(at(1) + W)  # o0 and o1 (exactly window-old) leave, o2 stays
    assert ids(w) == ["o2", "o3"]
    w.prune(at(1) + W)  # idempotent
    assert ids(w) == ["o2", "o3"]
    w.prune(at(2) + W - 1)
    assert ids(w) == ["o2", "o3"]
    w.prune(at(10) + W)
    assert w.orders == []


def test_expiries_are_ascending_in_the_half_open_interval() -> None:
    w = window()
    for d in (5, 1, 3):
        w.add(Order(at(d), 10.0, f"d{d}"), now=at(5))
    all_expiries = list(w.expiries(after=-1, until=at(100)))
    assert all_expiries == [at(1) + W, at(3) + W, at(5) + W]
    # (after, until]: an expiry equal to `after` is excluded, equal to `until` included
    assert list(w.expiries(after=at(1) + W, until=at(5) + W)) == [at(3) + W, at(5) + W]
    assert list(w.expiries(after=at(1) + W - 1, until=at(3) + W)) == [at(1) + W, at(3) + W]
    assert list(w.expiries(after=at(3) + W, until=at(5) + W - 1)) == []


def test_refunds_count_negative_and_separately() -> None:
    w = window()
    w.add(Order(at(0), 100.0, "paid-1"), now=at(0))
    w.add(Order(at(1), 40.0, "paid-2"), now=at(1))
    w.add(Order(at(2), -30.0, "refund-1"), now=at(2))
    rfm = w.rfm(at(2))
    assert rfm.frequency == 2
    assert rfm.refunds == 1
    assert rfm.monetary == 110.0
    assert w.orders[-1].is_refund and not w.orders[0].is_refund


def test_monetary_is_never_negative() -> None:
    w = window()
    w.add(Order(at(0), 20.0, "paid"), now=at(0))
    w.add(Order(at(1), -100.0, "refund"), now=at(1))
    rfm = w.rfm(at(1))
    assert rfm.monetary == 0.0
    assert rfm.frequency == 1
    assert rfm.refunds == 1
    only_refund = window()
    only_refund.add(Order(at(0), -5.0, "r"), now=at(0))
    r = only_refund.rfm(at(0))
    assert (r.monetary, r.frequency, r.refunds, r.recency_days) == (0.0, 0, 1, None)


def test_recency_is_days_since_last_paid_order() -> None:
    w = window()
    assert w.rfm(at(0)).recency_days is None
    w.add(Order(at(1), 10.0, "p1"), now=at(1))
    w.add(Order(at(3.5), 10.0, "p2"), now=at(3.5))
    w.add(Order(at(6), -10.0, "refund"), now=at(6))  # a refund is not a purchase
    assert w.rfm(at(8)).recency_days == pytest.approx(4.5)
    assert w.rfm(at(3.5)).recency_days == 0.0
    # before p2 happened, p1 was the last paid order
    assert w.rfm(at(3)).recency_days == pytest.approx(2.0)
    assert w.rfm(at(3)).frequency == 1


def test_rfm_reports_window_days_and_rounds_money() -> None:
    w = window()
    w.add(Order(at(0), 0.1, "a"), now=at(0))
    w.add(Order(at(0.5), 0.2, "b"), now=at(0.5))
    rfm = w.rfm(at(1))
    assert rfm.window_days == WINDOW_DAYS
    assert rfm.monetary == 0.3


def test_late_event_inside_window_counts() -> None:
    w = window()
    w.add(Order(at(20), 10.0, "now"), now=at(20))
    # arrives after the clock reached day 20, but happened on day 2: still inside
    assert w.add(Order(at(2), 25.0, "late"), now=at(20)) is True
    assert ids(w) == ["late", "now"]  # kept in event-time order
    rfm = w.rfm(at(20))
    assert rfm.frequency == 2
    assert rfm.monetary == 35.0
    assert rfm.recency_days == 0.0
    # and it leaves the window when its own time says so
    assert list(w.expiries(at(20), at(50))) == [at(2) + W, at(20) + W]
    assert list(w.expiries(at(20), at(40))) == [at(2) + W]
    assert w.rfm(at(2) + W).frequency == 1


def test_event_older_than_window_is_rejected() -> None:
    w = window()
    w.add(Order(at(40), 10.0, "recent"), now=at(40))
    assert w.add(Order(at(5), 99.0, "ancient"), now=at(40)) is False
    assert ids(w) == ["recent"]
    assert w.rfm(at(40)).monetary == 10.0


def test_max_orders_drops_the_oldest() -> None:
    w = window(max_orders=3)
    for d in range(5):
        assert w.add(Order(at(d), 1.0 + d, f"o{d}"), now=at(d))
        assert len(w.orders) <= 3
    assert ids(w) == ["o2", "o3", "o4"]
    assert w.rfm(at(4)).frequency == 3
    assert w.rfm(at(4)).monetary == 3.0 + 4.0 + 5.0
    # a late order older than everything kept is the oldest, so it is the one dropped
    w.add(Order(at(1.5), 100.0, "late"), now=at(4))
    assert ids(w) == ["o2", "o3", "o4"]
    # a late order newer than the oldest displaces the oldest
    w.add(Order(at(2.5), 100.0, "late2"), now=at(4))
    assert ids(w) == ["late2", "o3", "o4"]


def test_zero_refund_is_a_refund_not_an_order() -> None:
    # PurchaseEvent.signed_total of a 0.00 refund is -0.0
    w = window()
    w.add(Order(at(0), 50.0, "paid"), now=at(0))
    w.add(Order(at(1), -0.0, "refund-zero"), now=at(1))
    assert Order(at(1), -0.0, "r").is_refund
    assert not Order(at(1), 0.0, "p").is_refund
    rfm = w.rfm(at(1))
    assert (rfm.frequency, rfm.refunds, rfm.monetary) == (1, 1, 50.0)
    assert rfm.recency_days == 1.0
