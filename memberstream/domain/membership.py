"""Membership (value) tier policy: immediate upgrades, downgrades after a grace period.

A member holds the highest tier whose thresholds their trailing-window RFM meets.
Upgrades apply at once. When a member stops qualifying for their tier, the
moment they stopped is recorded (in event time, found exactly even if the
member was silent meanwhile: it is when an order left the window or a refund
landed); the downgrade applies only once the grace period has passed since then
and they still do not qualify.

Example:
    >>> policy = MembershipPolicy(MembershipSettings())
    >>> window = OrderWindow(window_s=365 * DAY_S, max_orders=100)
    >>> for i in range(4):
    ...     _ = window.add(Order(t=i * DAY_S, amount=80.0, event_id=f"o{i}"), now=i * DAY_S)
    >>> state = TierState(tier=policy.base, since=0.0)
    >>> decision = policy.evaluate(state, window, prev_now=0.0, now=3 * DAY_S)
    >>> decision.tier, decision.previous_tier, decision.direction
    ('gold', 'bronze', 'upgrade')
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memberstream.domain.rfm import DAY_S, Order, OrderWindow, iso
from memberstream.schemas.outputs import RFM

__all__ = [
    "DAY_S",
    "MembershipPolicy",
    "MembershipSettings",
    "Order",
    "OrderWindow",
    "TierDecision",
    "TierRule",
    "TierState",
]


class TierRule(BaseModel):
    """A membership tier and what it takes to hold it over the trailing window."""

    model_config = ConfigDict(extra="forbid")

    name: str
    min_monetary: float = Field(ge=0, description="net spend in the window, in currency units")
    min_frequency: int = Field(ge=0, description="paid orders in the window")


def _default_tiers() -> list[TierRule]:
    return [
        TierRule(name="bronze", min_monetary=0, min_frequency=0),
        TierRule(name="silver", min_monetary=100, min_frequency=2),
        TierRule(name="gold", min_monetary=300, min_frequency=4),
        TierRule(name="platinum", min_monetary=1000, min_frequency=8),
    ]


class MembershipSettings(BaseModel):
    """RFM window and tier thresholds of :class:`MembershipPolicy`."""

    model_config = ConfigDict(extra="forbid")

    window_days: float = Field(365.0, gt=0)
    grace_days: float = Field(30.0, ge=0)
    tiers: list[TierRule] = Field(default_factory=_default_tiers)
    max_orders_in_window: int = Field(
        2000, gt=0, description="bound on orders kept per member; oldest dropped first"
    )

    @field_validator("tiers")
    @classmethod
    def _tiers_ascend(cls, tiers: list[TierRule]) -> list[TierRule]:
        if not tiers:
            raise ValueError("at least one tier is required")
        if tiers[0].min_monetary != 0 or tiers[0].min_frequency != 0:
            raise ValueError(f"the first tier ({tiers[0].name}) must have zero thresholds")
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        for low, high in itertools.pairwise(tiers):
            if high.min_monetary < low.min_monetary or high.min_frequency < low.min_frequency:
                raise ValueError(
                    f"tier {high.name} must not need less than {low.name}; list tiers lowest first"
                )
        return tiers


@dataclass
class TierState:
    """What the policy remembers per member."""

    tier: str
    since: float | None  # None: held since the member was first seen
    downgrade_pending_since: float | None = None


@dataclass(frozen=True)
class TierDecision:
    """A tier change, ready to become a MemberTierUpdate."""

    tier: str
    previous_tier: str
    direction: str  # "upgrade" | "downgrade"
    reason: str
    rfm: RFM


class MembershipPolicy:
    """Tier thresholds and grace period from :class:`MembershipSettings`."""

    def __init__(self, settings: MembershipSettings) -> None:
        self.settings = settings
        self.tiers = settings.tiers
        self.rank = {t.name: i for i, t in enumerate(self.tiers)}
        self.grace_s = settings.grace_days * DAY_S
        self.window_s = settings.window_days * DAY_S

    @property
    def base(self) -> str:
        return self.tiers[0].name

    def new_window(self) -> OrderWindow:
        return OrderWindow(window_s=self.window_s, max_orders=self.settings.max_orders_in_window)

    def qualified_rank(self, rfm: RFM) -> int:
        """Index of the highest tier whose thresholds ``rfm`` meets."""
        best = 0
        for i, rule in enumerate(self.tiers):
            if rfm.monetary >= rule.min_monetary and rfm.frequency >= rule.min_frequency:
                best = i
        return best

    def _lost_at(self, window: OrderWindow, rank: int, prev_now: float, now: float) -> float:
        """When, in ``(prev_now, now]``, the member stopped qualifying for ``rank``."""
        for t in window.expiries(prev_now, now):
            if self.qualified_rank(window.rfm(t)) < rank:
                return t
        return now

    def evaluate(
        self, state: TierState, window: OrderWindow, prev_now: float, now: float
    ) -> TierDecision | None:
        """Update ``state`` for the member clock moving from ``prev_now`` to ``now``.

        ``window`` must hold the orders as of ``now`` (not yet pruned past
        ``prev_now``). Returns the change to announce, if any.
        """
        rfm = window.rfm(now)
        current = self.rank.get(state.tier, 0)
        qualified = self.qualified_rank(rfm)
        if qualified > current:
            return self._move(state, qualified, now, rfm, "upgrade", self._why(qualified, rfm))
        if qualified == current:
            state.downgrade_pending_since = None
            return None
        if state.downgrade_pending_since is None:
            state.downgrade_pending_since = self._lost_at(window, current, prev_now, now)
        due = state.downgrade_pending_since + self.grace_s
        if now < due:
            return None
        lost = state.downgrade_pending_since
        reason = (
            f"below {state.tier} thresholds since {iso(lost)}; grace of "
            f"{self.settings.grace_days:g} days ended {iso(due)}; {self._why(qualified, rfm)}"
        )
        return self._move(state, qualified, now, rfm, "downgrade", reason)

    def _move(
        self, state: TierState, rank: int, now: float, rfm: RFM, direction: str, reason: str
    ) -> TierDecision:
        previous = state.tier
        state.tier = self.tiers[rank].name
        state.since = now
        state.downgrade_pending_since = None
        return TierDecision(state.tier, previous, direction, reason, rfm)

    def _why(self, rank: int, rfm: RFM) -> str:
        rule = self.tiers[rank]
        return (
            f"{rfm.frequency} orders and {rfm.monetary:.2f} net spend in "
            f"{rfm.window_days:g} days meet {rule.name} "
            f"(>= {rule.min_frequency} orders, >= {rule.min_monetary:g})"
        )
