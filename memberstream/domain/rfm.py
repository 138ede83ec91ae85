"""Recency, frequency and monetary value over a trailing event-time window.

The window ends at the member's own event-time clock (the latest ``occurred_at``
seen for that member), never at wall-clock time, so a replay gives the same
figures. Late events inside the window count; events older than the window are
ignored.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from memberstream.schemas.outputs import RFM

DAY_S = 86_400.0


def iso(t: float) -> str:
    """Event time (epoch seconds) as pydantic writes it in JSON mode: UTC, ``Z`` suffix."""
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def utc(t: float) -> datetime:
    """Event time (epoch seconds) as an aware UTC datetime."""
    return datetime.fromtimestamp(t, UTC)


class Order(NamedTuple):
    """One paid order (positive amount) or refund (negative amount) at event time ``t``.

    A tuple (ordered by time first) because member state holds and rebuilds up to
    ``max_orders`` of these on every load.
    """

    t: float
    amount: float
    event_id: str

    @property
    def is_refund(self) -> bool:
        # the sign bit, not < 0: a refund of 0.00 is stored as -0.0 and is still a refund
        return math.copysign(1.0, self.amount) < 0


@dataclass
class OrderWindow:
    """Orders within ``window_s`` of the member clock, sorted by time, at most ``max_orders``."""

    window_s: float
    max_orders: int
    orders: list[Order] = field(default_factory=list)

    def add(self, order: Order, now: float) -> bool:
        """Insert an order; False when it is already outside the window at ``now``."""
        if order.t <= now - self.window_s:
            return False
        bisect.insort(self.orders, order)
        if len(self.orders) > self.max_orders:
            del self.orders[0]
        return True

    def prune(self, now: float) -> None:
        """Drop orders that have left the window at ``now``."""
        cut = now - self.window_s
        idx = bisect.bisect_right(self.orders, cut, key=lambda o: o.t)
        if idx:
            del self.orders[:idx]

    def expiries(self, after: float, until: float) -> Iterator[float]:
        """Times in ``(after, until]`` at which an order leaves the window, ascending."""
        for order in self.orders:
            expiry = order.t + self.window_s
            if expiry > until:
                break
            if expiry > after:
                yield expiry

    def rfm(self, now: float) -> RFM:
        """Figures as of ``now`` (orders expired by then are excluded, not removed)."""
        cut = now - self.window_s
        frequency = refunds = 0
        monetary = 0.0
        last_paid: float | None = None
        for order in self.orders:
            if order.t <= cut or order.t > now:
                continue
            monetary += order.amount
            if order.is_refund:
                refunds += 1
            else:
                frequency += 1
                last_paid = order.t
        recency = None if last_paid is None else round((now - last_paid) / DAY_S, 6)
        # built without validation (this runs per order and per profile): every value
        # already has its field's type
        return RFM.model_construct(
            window_days=self.window_s / DAY_S,
            recency_days=recency,
            frequency=frequency,
            monetary=float(round(max(monetary, 0.0), 2)),
            refunds=refunds,
        )


def rfm_payload(rfm: RFM) -> dict[str, float | int | None]:
    """``rfm.model_dump()``, written out for the hot paths that build outputs by hand."""
    return {
        "window_days": rfm.window_days,
        "recency_days": rfm.recency_days,
        "frequency": rfm.frequency,
        "monetary": rfm.monetary,
        "refunds": rfm.refunds,
    }
