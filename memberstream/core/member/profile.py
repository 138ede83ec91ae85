"""The member profile: the member's current state as the payload of a
:class:`~memberstream.schemas.outputs.MemberProfile`, emitted once per member per batch
to a compacted topic."""

from __future__ import annotations

from memberstream.core.member.interest_step import SHARE_DECIMALS, InterestStep
from memberstream.core.member_state import MemberState
from memberstream.core.roles import Emit, OutputRole
from memberstream.domain.rfm import iso, rfm_payload
from memberstream.schemas.outputs import OUTPUT_SCHEMA_VERSION, deterministic_id


def profile_emit(state: MemberState, interest: InterestStep, model_version: str | None) -> Emit:
    """The member's current profile (deterministic id from its event count).

    Built as a plain dict on the hot path (once per member per batch); a unit
    test holds it equal to ``MemberProfile(...).model_dump(mode="json")``.
    """
    tier = state.tier
    rfm = state.window.rfm(state.clock)
    pending = tier.downgrade_pending_since
    payload = {
        "output_id": deterministic_id(
            "profile", state.member_id, state.counts.events, state.last_event_id
        ),
        "schema_version": OUTPUT_SCHEMA_VERSION,
        "member_id": state.member_id,
        "tier": tier.tier,
        "tier_since": iso(state.first_seen if tier.since is None else tier.since),
        "downgrade_pending_since": None if pending is None else iso(pending),
        "rfm": rfm_payload(rfm),
        "first_seen": iso(state.first_seen),
        "last_event_at": iso(state.clock),
        "last_purchase_at": (
            None if state.last_purchase_at is None else iso(state.last_purchase_at)
        ),
        "clicks": state.counts.clicks,
        "orders": state.counts.orders,
        "refunds": state.counts.refunds,
        "reviews": state.counts.reviews,
        "events": state.counts.events,
        "last_event_id": state.last_event_id,
        "interests": interest.interests(state),
        "review_sentiment": (
            round(state.sentiment_sum / state.sentiment_reviews, SHARE_DECIMALS)
            if state.sentiment_reviews
            else None
        ),
        "taste_f16": interest.taste_f16(state),
        "model_version": model_version,
        "as_of": iso(state.clock),
    }
    return Emit(OutputRole.PROFILES, state.member_id, payload)
