"""Interest: what an event says about a member's interests (items: a text for the model,
a catalog category, or both), applied to the member's interest state under the
interest policy; a change of interest tiers becomes an
:class:`~memberstream.schemas.outputs.InterestTierUpdate`. Also the interest parts of
the profile (tiers with shares, the taste vector)."""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from memberstream.core.member_state import MemberState
from memberstream.core.roles import Emit, OutputRole
from memberstream.domain.interest import InterestChange, InterestPolicy, PreparedItem
from memberstream.domain.rfm import iso
from memberstream.ml.inference import Scored, TextItem
from memberstream.schemas.events import (
    ClickEvent,
    Envelope,
    PurchaseEvent,
    ReviewEvent,
)
from memberstream.schemas.outputs import (
    OUTPUT_SCHEMA_VERSION,
    deterministic_id,
)

SHARE_DECIMALS = 6
ITEMS_KEPT = 8192
"""Prepared product items kept (each holds a unit embedding: ~3 KB at 384 dimensions)."""


def _probs(scored: Scored | None) -> np.ndarray | None:
    return None if scored is None else scored.probs


def _embedding(scored: Scored | None) -> np.ndarray | None:
    return None if scored is None else scored.embedding


@dataclass(frozen=True)
class InterestItem:
    """One thing an event says about a member's interests: an item text, a category, or both."""

    weight: float
    text: str | None
    category: str | None
    product_id: str | None = None

    def text_item(self) -> TextItem | None:
        return None if self.text is None else TextItem(self.text, self.product_id)


class InterestStep:
    """Event → interest items → interest state → interest tier update, under ``policy``;
    ``model_version`` names the text model whose scores :meth:`apply` is given."""

    def __init__(self, policy: InterestPolicy, model_version: str | None = None) -> None:
        self.policy = policy
        self.model_version = model_version
        self._items: OrderedDict[tuple[str, str | None, str | None], tuple[Scored, PreparedItem]]
        self._items = OrderedDict()

    def items(self, event: Envelope) -> list[InterestItem]:
        """What ``event`` contributes to interest, before scoring; texts go to the model."""
        weight = self.policy.settings.event_weight
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
        items = (i.text_item() for i in self.items(event))
        return [t for t in items if t is not None]

    def apply(
        self, state: MemberState, event: Envelope, t: float, scores: Sequence[Scored] | None
    ) -> InterestChange | None:
        """Observe the event's items (``scores``: the model's, for :meth:`texts`, checked
        first) and re-evaluate the member's interest tiers."""
        items = self.items(event)
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
            prepared = self._prepared(item, scored)
            if prepared is not None:
                self.policy.observe_prepared(state.interest, t, item.weight, prepared)
        return self.policy.evaluate(state.interest, now=t)

    def _prepared(self, item: InterestItem, scored: Scored | None) -> PreparedItem | None:
        """The item's prepared contribution, kept for a product's item while the stage
        serves the same scores for it (the stage's title cache hands out one object)."""
        if item.product_id is None or scored is None:
            return self.policy.prepare(item.category, _probs(scored), _embedding(scored))
        key = (item.product_id, item.text, item.category)
        kept = self._items.get(key)
        if kept is not None and kept[0] is scored:
            self._items.move_to_end(key)
            return kept[1]
        prepared = self.policy.prepare(item.category, scored.probs, scored.embedding)
        self._items[key] = (scored, prepared)
        self._items.move_to_end(key)
        if len(self._items) > ITEMS_KEPT:
            self._items.popitem(last=False)
        return prepared

    def update_emit(self, state: MemberState, change: InterestChange, event: Envelope) -> Emit:
        """The interest tier update as the output produced: an ``InterestTierUpdate`` as
        JSON, built as a plain dict on the hot path (a unit test holds the two equal)."""
        payload = {
            "output_id": deterministic_id("interest", state.member_id, event.event_id),
            "schema_version": OUTPUT_SCHEMA_VERSION,
            "member_id": state.member_id,
            "tiers": [
                {"category": cid, "tier": tier, "share": round(change.shares[cid], SHARE_DECIMALS)}
                for cid, tier in change.tiers.items()
            ],
            "changes": [
                {
                    "category": m.category,
                    "previous_tier": m.previous,
                    "tier": m.tier,
                    "direction": m.direction,
                }
                for m in change.moves
            ],
            "model_version": self.model_version or "categories-only",
            "cause_event_id": event.event_id,
            "cause_event_type": event.type,  # type: ignore[attr-defined]
            "as_of": iso(change.as_of),
        }
        return Emit(OutputRole.INTEREST_TIERS, state.member_id, payload)

    def interests(self, state: MemberState) -> list[dict[str, Any]]:
        """The member's interest tiers with their current shares (for the profile)."""
        interest = state.interest
        if not interest.tiers or interest.clock is None:
            return []
        shares = self.policy.shares(interest, interest.clock)
        return [
            {"category": cid, "tier": tier, "share": round(shares.get(cid, 0.0), SHARE_DECIMALS)}
            for cid, tier in interest.tiers.items()
        ]

    def taste_f16(self, state: MemberState) -> str | None:
        """The member's taste vector as base64 of little-endian float16 (for the profile:
        a quarter of the bytes of JSON numbers, at about the precision of 4 decimals)."""
        taste = self.policy.taste(state.interest)
        if taste is None:
            return None
        return base64.b64encode(taste.astype("<f2").tobytes()).decode("ascii")
