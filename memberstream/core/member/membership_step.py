"""Membership tiers: an order or refund moves the member's order clock, joins the RFM
window and re-evaluates the tier under the membership policy; a tier change becomes a
:class:`~memberstream.schemas.outputs.MemberTierUpdate`."""

from __future__ import annotations

from memberstream.core.member_state import MemberState
from memberstream.core.roles import Emit, OutputRole
from memberstream.domain.membership import MembershipPolicy, Order, TierDecision
from memberstream.domain.rfm import iso, rfm_payload
from memberstream.schemas.events import PurchaseEvent
from memberstream.schemas.outputs import OUTPUT_SCHEMA_VERSION, deterministic_id


class MembershipStep:
    """Order → tier decision → tier update, under ``policy``."""

    def __init__(self, policy: MembershipPolicy) -> None:
        self.policy = policy

    def apply_order(
        self, state: MemberState, event: PurchaseEvent, t: float
    ) -> TierDecision | None:
        """Move the order clock, record the order, and re-evaluate the tier."""
        prev_now = t if state.order_clock is None else state.order_clock
        now = max(prev_now, t)
        state.order_clock = now
        state.window.add(Order(t, event.signed_total, event.event_id), now)
        if event.status == "paid":
            state.counts.orders += 1
            if state.last_purchase_at is None or t > state.last_purchase_at:
                state.last_purchase_at = t
        else:
            state.counts.refunds += 1
        decision = self.policy.evaluate(state.tier, state.window, prev_now, now)
        state.window.prune(now)
        return decision

    def tier_emit(self, state: MemberState, decision: TierDecision, cause: str) -> Emit:
        """The tier update as the output produced: a ``MemberTierUpdate`` as JSON, built
        as a plain dict on the hot path (a unit test holds the two equal)."""
        rfm = decision.rfm
        payload = {
            "output_id": deterministic_id("tier", state.member_id, cause),
            "schema_version": OUTPUT_SCHEMA_VERSION,
            "member_id": state.member_id,
            "tier": decision.tier,
            "previous_tier": decision.previous_tier,
            "direction": decision.direction,
            "reason": decision.reason,
            "rfm": rfm_payload(rfm),
            "cause_event_id": cause,
            "as_of": iso(state.order_clock),  # type: ignore[arg-type]
        }
        return Emit(OutputRole.TIERS, state.member_id, payload)
