"""Apply one validated event to a member's state: the logic behind the ingest agent.

Plain code, no Kafka: the agent decodes records and produces what this returns,
tests and replays call it directly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from memberstream.config import Settings
from memberstream.models.interest import InterestChange, InterestPolicy
from memberstream.models.membership import MembershipPolicy, Order, TierDecision, TierState
from memberstream.models.rfm import iso
from memberstream.models.taxonomy import Taxonomy
from memberstream.schemas.events import ClickEvent, Envelope, PurchaseEvent, ReviewEvent
from memberstream.schemas.outputs import (
    OUTPUT_SCHEMA_VERSION,
    InterestMove,
    InterestTier,
    InterestTierUpdate,
    MemberTierUpdate,
    deterministic_id,
)
from memberstream.streams.inference import Scored, TextItem
from memberstream.streams.member_state import MemberState

TIERS = "member_tiers"
INTEREST_TIERS = "member_interest_tiers"
PROFILES = "member_profiles"
TASTE_DECIMALS = 4
SHARE_DECIMALS = 6


@dataclass(frozen=True)
class InterestItem:
    """One thing an event says about a member's interests: an item text, a category, or both."""

    weight: float
    text: str | None
    category: str | None
    product_id: str | None = None

    def text_item(self) -> TextItem | None:
        return None if self.text is None else TextItem(self.text, self.product_id)


@dataclass(frozen=True)
class Emit:
    """An output to produce: the topic role (a TopicNames field), key and JSON payload."""

    role: str
    key: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Applied:
    state: MemberState
    emits: list[Emit]
    duplicate: bool


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class MemberProcessor:
    """Event → new member state and outputs, under the configured policies."""

    def __init__(
        self,
        settings: Settings,
        taxonomy: Taxonomy | None = None,
        model_version: str | None = None,
    ) -> None:
        """``model_version`` names the text model whose scores :meth:`apply` is given."""
        self.settings = settings
        self.policy = MembershipPolicy(settings.membership)
        if taxonomy is None:
            taxonomy = Taxonomy.load(settings.inference.taxonomy)
        self.interest = InterestPolicy(settings.interest, taxonomy)
        self.model_version = model_version

    # -- interest inputs --

    def interest_items(self, event: Envelope) -> list[InterestItem]:
        """What ``event`` contributes to interest, before scoring; texts go to the model."""
        weight = self.interest.settings.event_weight
        if isinstance(event, ClickEvent):
            if event.action == "search":
                return [InterestItem(weight("click", "search"), event.query, None)]
            if event.title is None and event.category is None:
                return []
            return [
                InterestItem(
                    weight("click", event.action), event.title, event.category, event.product_id
                )
            ]
        if isinstance(event, PurchaseEvent):
            if event.status != "paid":
                return []  # a refund takes money back, not interest
            w = weight("purchase")
            return [InterestItem(w, i.title, i.category, i.product_id) for i in event.items]
        if isinstance(event, ReviewEvent):
            text = "\n".join(part for part in (event.title, event.text) if part)
            return [InterestItem(weight("review"), text, None)] if text else []
        return []

    def texts(self, event: Envelope) -> list[TextItem]:
        """The texts of ``event`` for the model to score, in the order :meth:`apply` wants
        their scores."""
        items = (i.text_item() for i in self.interest_items(event))
        return [t for t in items if t is not None]

    def new_state(self, member_id: str, t: float) -> MemberState:
        return MemberState(
            member_id=member_id,
            first_seen=t,
            clock=t,
            order_clock=None,
            tier=TierState(tier=self.policy.base, since=None),
            window=self.policy.new_window(),
            recent_ids=deque(maxlen=self.settings.dedupe_ids_per_member),
            outbox=deque(maxlen=self.settings.outbox_per_member),
        )

    def load(self, raw: bytes | None) -> MemberState | None:
        if raw is None:
            return None
        return MemberState.from_bytes(
            raw,
            self.policy.new_window(),
            self.settings.dedupe_ids_per_member,
            self.settings.outbox_per_member,
        )

    def apply(
        self,
        state: MemberState | None,
        event: Envelope,
        scores: Sequence[Scored] | None = None,
    ) -> Applied:
        """Apply ``event``; a duplicate changes nothing and re-emits what it caused.

        ``scores`` are the model's results for ``texts(event)``,
        in that order; None scores no text (interest then comes from categories).
        """
        t = event.occurred_at.timestamp()
        if state is None:
            state = self.new_state(event.member_id, t)
        elif state.seen(event.event_id):
            replay = [
                Emit(role, state.member_id, payload)
                for role, payload in state.outputs_caused_by(event.event_id)
            ]
            return Applied(state, replay, duplicate=True)

        state.remember(event.event_id)
        state.counts.events += 1
        state.first_seen = min(state.first_seen, t)
        if (t, event.event_id) > (state.clock, state.last_event_id):
            state.clock, state.last_event_id = t, event.event_id
        emits: list[Emit] = []
        if isinstance(event, PurchaseEvent):
            decision = self._apply_order(state, event, t)
            if decision is not None:
                update = self._tier_update(state, decision, event.event_id)
                payload = update.model_dump(mode="json")
                state.outbox.append((event.event_id, TIERS, payload))
                emits.append(Emit(TIERS, state.member_id, payload))
        elif isinstance(event, ClickEvent):
            state.counts.clicks += 1
        elif isinstance(event, ReviewEvent):
            state.counts.reviews += 1
        change = self._apply_interest(state, event, t, scores)
        if change is not None:
            payload = self._interest_update(state, change, event).model_dump(mode="json")
            state.outbox.append((event.event_id, INTEREST_TIERS, payload))
            emits.append(Emit(INTEREST_TIERS, state.member_id, payload))
        return Applied(state, emits, duplicate=False)

    def _apply_interest(
        self, state: MemberState, event: Envelope, t: float, scores: Sequence[Scored] | None
    ) -> InterestChange | None:
        items = self.interest_items(event)
        if not items:
            return None
        pending = None
        if scores is not None:
            n_texts = sum(1 for i in items if i.text is not None)
            if len(scores) != n_texts:
                raise ValueError(f"got {len(scores)} scores for {n_texts} texts of the event")
            pending = iter(scores)
        for item in items:
            scored = next(pending) if pending is not None and item.text is not None else None
            probs = self.interest.category_probs(
                item.category, None if scored is None else scored.probs
            )
            if probs is None:
                continue
            embedding = None if scored is None else scored.embedding
            self.interest.observe(state.interest, t, item.weight, probs, embedding)
        return self.interest.evaluate(state.interest, now=t)

    def _interests(self, state: MemberState) -> list[dict[str, Any]]:
        interest = state.interest
        if not interest.tiers or interest.clock is None:
            return []
        shares = self.interest.shares(interest, interest.clock)
        return [
            {"category": cid, "tier": tier, "share": round(shares.get(cid, 0.0), SHARE_DECIMALS)}
            for cid, tier in interest.tiers.items()
        ]

    def _interest_update(
        self, state: MemberState, change: InterestChange, event: Envelope
    ) -> InterestTierUpdate:
        return InterestTierUpdate(
            output_id=deterministic_id("interest", state.member_id, event.event_id),
            member_id=state.member_id,
            tiers=[
                InterestTier(
                    category=cid, tier=tier, share=round(change.shares[cid], SHARE_DECIMALS)
                )
                for cid, tier in change.tiers.items()
            ],
            changes=[
                InterestMove(
                    category=m.category,
                    previous_tier=m.previous,
                    tier=m.tier,
                    direction=m.direction,
                )
                for m in change.moves
            ],
            model_version=self.model_version or "categories-only",
            cause_event_id=event.event_id,
            cause_event_type=event.type,  # type: ignore[attr-defined]
            as_of=_dt(change.as_of),
        )

    def _taste(self, state: MemberState) -> list[float] | None:
        taste = self.interest.taste(state.interest)
        if taste is None:
            return None
        return np.round(taste, TASTE_DECIMALS).tolist()

    def _apply_order(
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

    def _tier_update(
        self, state: MemberState, decision: TierDecision, cause: str
    ) -> MemberTierUpdate:
        return MemberTierUpdate(
            output_id=deterministic_id("tier", state.member_id, cause),
            member_id=state.member_id,
            tier=decision.tier,
            previous_tier=decision.previous_tier,
            direction=decision.direction,  # type: ignore[arg-type]
            reason=decision.reason,
            rfm=decision.rfm,
            cause_event_id=cause,
            as_of=_dt(state.order_clock),  # type: ignore[arg-type]
        )

    def profile(self, state: MemberState) -> Emit:
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
            "rfm": {
                "window_days": rfm.window_days,
                "recency_days": rfm.recency_days,
                "frequency": rfm.frequency,
                "monetary": rfm.monetary,
                "refunds": rfm.refunds,
            },
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
            "interests": self._interests(state),
            "taste": self._taste(state),
            "model_version": self.model_version,
            "as_of": iso(state.clock),
        }
        return Emit(PROFILES, state.member_id, payload)
