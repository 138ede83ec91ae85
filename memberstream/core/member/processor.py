"""Apply one validated event to a member's state: the logic behind the ingest agent.

Plain code, no Kafka: the agent decodes records and produces what this returns,
tests and replays call it directly. :class:`MemberProcessor` composes one step
per concern: membership tiers (:mod:`.membership_step`), interest
(:mod:`.interest_step`), anomalies (:mod:`.anomaly_step`), the review forwarded to
the product agent (:mod:`.review_forward`) and the profile (:mod:`.profile`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from memberstream.config import Settings
from memberstream.core.member.anomaly_step import AnomalyStep
from memberstream.core.member.interest_step import InterestItem, InterestStep
from memberstream.core.member.membership_step import MembershipStep
from memberstream.core.member.profile import profile_emit
from memberstream.core.member.review_forward import product_review
from memberstream.core.member_state import MemberState
from memberstream.core.positions import Position
from memberstream.core.roles import Emit
from memberstream.domain.anomaly.flags import Candidate
from memberstream.domain.anomaly.order_features import OrderVector
from memberstream.domain.interest import InterestPolicy
from memberstream.domain.membership import MembershipPolicy, TierState
from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.inference import Scored, TextItem
from memberstream.ml.learned_scorer import LearnedScore
from memberstream.schemas.events import (
    ClickEvent,
    Envelope,
    Feedback,
    PurchaseEvent,
    ReviewEvent,
)


@dataclass(frozen=True)
class Applied:
    state: MemberState
    emits: list[Emit]
    duplicate: bool
    """Seen before (a redelivery, or the same event produced twice): no effect, no output;
    the original's outputs were acknowledged before the state that remembers it."""
    order: OrderVector | None = None
    """A paid order for the learned score, which the batch scores in one call."""
    suppressed: int = 0
    """Flags not raised because an analyst rejected them."""


class MemberProcessor:
    """Event → new member state and outputs, under the configured policies."""

    def __init__(
        self,
        settings: Settings,
        taxonomy: Taxonomy | None = None,
        model_version: str | None = None,
        learned_version: str | None = None,
    ) -> None:
        """``model_version`` names the text model whose scores :meth:`apply` is given;
        ``learned_version`` the anomaly scorer that will score the orders :meth:`apply`
        returns (None: no learned score)."""
        self.settings = settings
        self.policy = MembershipPolicy(settings.membership)
        if taxonomy is None:
            taxonomy = Taxonomy.load(settings.inference.taxonomy)
        self.interest = InterestPolicy(settings.interest, taxonomy)
        self.model_version = model_version
        self.anomaly = settings.anomaly
        self.membership_step = MembershipStep(self.policy)
        self.interest_step = InterestStep(self.interest, model_version)
        self.anomaly_step = AnomalyStep(settings.anomaly, learned_version)

    def set_model_version(self, model_version: str | None) -> None:
        """The text models changed (a hot swap, between two batches)."""
        self.model_version = model_version
        self.interest_step.model_version = model_version

    # -- interest inputs --

    def interest_items(self, event: Envelope) -> list[InterestItem]:
        """What ``event`` contributes to interest, before scoring; texts go to the model."""
        return self.interest_step.items(event)

    def texts(self, event: Envelope) -> list[TextItem]:
        """The texts of ``event`` for the model to score, in the order :meth:`apply` wants
        their scores."""
        return self.interest_step.texts(event)

    # -- state --

    def new_state(self, member_id: str, t: float) -> MemberState:
        return MemberState(
            member_id=member_id,
            first_seen=t,
            clock=t,
            order_clock=None,
            tier=TierState(tier=self.policy.base, since=None),
            window=self.policy.new_window(),
            recent_ids=deque(maxlen=self.settings.dedupe_ids_per_member),
        )

    def load(self, raw: bytes | None) -> MemberState | None:
        if raw is None:
            return None
        return MemberState.from_bytes(
            raw,
            self.policy.new_window(),
            self.settings.dedupe_ids_per_member,
            self.anomaly.flags_kept,
            self.anomaly.rejected_kept,
        )

    def apply(
        self,
        state: MemberState | None,
        event: Envelope,
        scores: Sequence[Scored] | None = None,
        at: Position | None = None,
    ) -> Applied:
        """Apply ``event``, read from Kafka at ``at`` (None: not from Kafka); a record
        applied before (by position) or an event seen before (by id) changes nothing.

        ``scores`` are the model's results for ``texts(event)``,
        in that order; None scores no text (interest then comes from categories).
        """
        t = event.occurred_at.timestamp()
        if state is None:
            state = self.new_state(event.member_id, t)
        elif state.applied.covers(at) or state.seen(event.event_id):
            return Applied(state, [], duplicate=True)

        state.remember(event.event_id)
        state.applied.mark(at)
        anomalies = self.anomaly_step
        if isinstance(event, Feedback):
            anomalies.apply_feedback(state, event)
            return Applied(state, [], duplicate=False)
        if state.counts.events == 0:  # state made by feedback alone has no event time yet
            state.first_seen = state.clock = t
        state.counts.events += 1
        state.first_seen = min(state.first_seen, t)
        if (t, event.event_id) > (state.clock, state.last_event_id):
            state.clock, state.last_event_id = t, event.event_id
        emits: list[Emit] = []
        candidates: list[Candidate] = []
        order: OrderVector | None = None
        if isinstance(event, PurchaseEvent):
            decision = self.membership_step.apply_order(state, event, t)
            if decision is not None:
                emits.append(self.membership_step.tier_emit(state, decision, event.event_id))
            candidates = anomalies.on_purchase(state, event)
            order = anomalies.order_vector(state, event, t, scores)
            candidates = anomalies.with_features(candidates, order)
            if event.status == "paid":
                state.note_bought(item.product_id for item in event.items)
        elif isinstance(event, ClickEvent):
            state.counts.clicks += 1
            candidates = anomalies.on_click(state, event)
        elif isinstance(event, ReviewEvent):
            state.counts.reviews += 1
        change = self.interest_step.apply(state, event, t, scores)  # checks the scores first
        if change is not None:
            emits.append(self.interest_step.update_emit(state, change, event))
        if isinstance(event, ReviewEvent):
            candidates = anomalies.review_sentiment(state, event, t, scores)
            verified = event.product_id in state.bought
            emits.append(product_review(event, scores, at, verified))
        flags, suppressed = anomalies.raise_flags(state, candidates, event.event_id, t)
        emits.extend(flags)
        return Applied(state, emits, duplicate=False, order=order, suppressed=suppressed)

    # -- outputs --

    def learned_flag(
        self,
        state: MemberState,
        event: PurchaseEvent,
        score: LearnedScore,
        vector: OrderVector,
    ) -> Emit | None:
        """The flag for an order the learned scorer put at or above the threshold (its
        details carry the order's features from ``vector``)."""
        return self.anomaly_step.learned_flag(state, event, score, vector)

    @property
    def learned_version(self) -> str | None:
        """The learned anomaly scorer that scores orders (None: none)."""
        return self.anomaly_step.learned_version

    def set_learned_version(self, learned_version: str | None) -> None:
        """The learned anomaly scorer changed (a hot swap, between two batches)."""
        self.anomaly_step.set_learned_version(learned_version)

    def profile(self, state: MemberState) -> Emit:
        """The member's current profile (see :func:`~.profile.profile_emit`)."""
        return profile_emit(state, self.interest_step, self.model_version)
