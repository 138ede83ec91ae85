"""Per-member state kept in the ``members`` table, and its compact byte form.

Two event-time clocks: ``clock`` (any event) dates the profile; ``order_clock``
(orders and refunds only) drives the RFM window and tier decisions. Kafka keeps
order within one topic partition but not across the click, purchase and review
topics, so tier decisions depend only on the purchase topic's order and a replay
reproduces them exactly whatever the interleaving of the topics.

Interest (category affinity, tiers, taste vector) has its own event-time clock
in :class:`~memberstream.domain.interest.InterestState`; a state written before
interest existed loads with an empty one.

Anomaly detection keeps the detectors' windows and the allowances analysts' verdicts
gave the member (:class:`MemberAnomalyState`,
:mod:`~memberstream.domain.anomaly.adaptive`),
the member's recent flags and the analyst feedback on them (:class:`FlagLedger`)
and, for the learned score, a summary of earlier orders (:class:`PurchaseProfile`).

Every collection here is bounded: recent event ids (for de-duplication of an
event produced twice), orders in the RFM window, and the last applied offset per
input partition (:mod:`memberstream.core.positions`: a redelivered record is
recognised at any distance, and its outputs exist already, since a batch's
outputs are acknowledged before its state is written).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from memberstream.core.positions import AppliedOffsets
from memberstream.domain.anomaly.ledger import FlagLedger
from memberstream.domain.anomaly.member_detectors import MemberAnomalyState
from memberstream.domain.anomaly.order_features import PurchaseProfile
from memberstream.domain.interest import InterestState
from memberstream.domain.membership import Order, OrderWindow, TierState

STATE_VERSION = 1
BOUGHT_KEPT = 64
"""Distinct products bought that a member's state remembers."""


@dataclass
class Counts:
    clicks: int = 0
    orders: int = 0
    refunds: int = 0
    reviews: int = 0
    events: int = 0


@dataclass
class MemberState:
    member_id: str
    first_seen: float
    clock: float  # latest occurred_at of any event of the member
    order_clock: float | None  # latest occurred_at of an order or refund: the tier clock
    tier: TierState
    window: OrderWindow
    recent_ids: deque[str]
    applied: AppliedOffsets = field(default_factory=AppliedOffsets)
    counts: Counts = field(default_factory=Counts)
    last_purchase_at: float | None = None
    last_event_id: str = ""
    interest: InterestState = field(default_factory=InterestState)
    anomaly: MemberAnomalyState = field(default_factory=MemberAnomalyState)
    flags: FlagLedger = field(default_factory=FlagLedger)
    sentiment_sum: float = 0.0
    """Sum over the member's reviews of p(positive) - p(negative)."""
    sentiment_reviews: int = 0
    purchases: PurchaseProfile | None = None
    bought: deque[str] = field(default_factory=lambda: deque(maxlen=BOUGHT_KEPT))
    """Product ids of the member's latest paid line items, most recent last: a review of
    one of them is a verified purchase (review detectors weigh the others)."""
    """Only kept while the learned anomaly score is on."""

    def seen(self, event_id: str) -> bool:
        return event_id in self.recent_ids

    def remember(self, event_id: str) -> None:
        self.recent_ids.append(event_id)

    def note_bought(self, product_ids: Iterable[str]) -> None:
        for pid in product_ids:
            if pid in self.bought:
                self.bought.remove(pid)
            self.bought.append(pid)

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": STATE_VERSION,
                "m": self.member_id,
                "fs": self.first_seen,
                "c": self.clock,
                "oc": self.order_clock,
                "t": [self.tier.tier, self.tier.since, self.tier.downgrade_pending_since],
                "o": list(map(tuple, self.window.orders)),
                "ids": list(self.recent_ids),
                "ap": self.applied.to_dict(),
                "n": [
                    self.counts.clicks,
                    self.counts.orders,
                    self.counts.refunds,
                    self.counts.reviews,
                    self.counts.events,
                ],
                "lp": self.last_purchase_at,
                "le": self.last_event_id,
                "i": self.interest.to_dict(),
                "a": self.anomaly.to_dict(),
                "fl": self.flags.to_dict(),
                "pp": None if self.purchases is None else self.purchases.to_dict(),
                "rs": [self.sentiment_sum, self.sentiment_reviews],
                **({"bp": list(self.bought)} if self.bought else {}),
            }
        )

    @classmethod
    def from_bytes(
        cls,
        raw: bytes,
        window: OrderWindow,
        max_ids: int,
        flags_kept: int = 32,
        rejected_kept: int = 256,
    ) -> MemberState:
        d = orjson.loads(raw)
        if d.get("v") != STATE_VERSION:
            raise ValueError(f"member state version {d.get('v')} is not {STATE_VERSION}")
        window.orders = [Order._make(o) for o in d["o"]]
        tier, since, pending = d["t"]
        return cls(
            member_id=d["m"],
            first_seen=d["fs"],
            clock=d["c"],
            order_clock=d["oc"],
            tier=TierState(tier, since, pending),
            window=window,
            recent_ids=deque(d["ids"], maxlen=max_ids),
            applied=AppliedOffsets(d.get("ap")),
            counts=Counts(*d["n"]),
            last_purchase_at=d["lp"],
            last_event_id=d["le"],
            interest=InterestState.from_dict(d["i"]) if "i" in d else InterestState(),
            anomaly=MemberAnomalyState.from_dict(d["a"]) if "a" in d else MemberAnomalyState(),
            flags=FlagLedger.from_dict(d.get("fl") or {}, flags_kept, rejected_kept),
            purchases=None if d.get("pp") is None else PurchaseProfile.from_dict(d["pp"]),
            sentiment_sum=d.get("rs", [0.0, 0])[0],
            sentiment_reviews=d.get("rs", [0.0, 0])[1],
            bought=deque(d.get("bp", ()), maxlen=BOUGHT_KEPT),
        )
