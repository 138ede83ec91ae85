"""Apply one validated event to a member's state: the logic behind the ingest agent.

Plain code, no Kafka: the agent decodes records and produces what this returns,
tests and replays call it directly.
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from memberstream.config import Settings
from memberstream.models.anomaly.flags import Candidate, detector_version, flag_id
from memberstream.models.anomaly.learned import (
    LearnedScore,
    OrderLine,
    OrderVector,
    PurchaseProfile,
    behaviour_features,
    observe_order,
    order_embedding,
)
from memberstream.models.anomaly.ledger import FlagLedger
from memberstream.models.anomaly.member_detectors import MemberDetectors
from memberstream.models.interest import InterestChange, InterestPolicy
from memberstream.models.membership import MembershipPolicy, Order, TierDecision, TierState
from memberstream.models.rfm import iso
from memberstream.models.taxonomy import Taxonomy
from memberstream.schemas.events import (
    ClickEvent,
    Envelope,
    Feedback,
    PurchaseEvent,
    ReviewEvent,
)
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
from memberstream.streams.positions import Position

TIERS = "member_tiers"
INTEREST_TIERS = "member_interest_tiers"
PROFILES = "member_profiles"
ANOMALIES = "member_anomalies"
PRODUCT_REVIEWS = "product_reviews"
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
    """Seen before (a redelivery, or the same event produced twice): no effect, no output;
    the original's outputs were acknowledged before the state that remembers it."""
    order: OrderVector | None = None
    """A paid order for the learned score, which the batch scores in one call."""
    suppressed: int = 0
    """Flags not raised because an analyst rejected them."""


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


_SECTIONS = {
    "click_burst": "click_burst",
    "bot_pattern": "bot_pattern",
    "order_value_outlier": "order_value",
    "order_velocity": "order_velocity",
    "review_duplicate": "review_duplicate",
    "review_bombing": "review_bombing",
    "rating_text_mismatch": "rating_text_mismatch",
}


def raise_flags(
    ledger: FlagLedger,
    candidates: Sequence[Candidate],
    versions: Mapping[str, str],
    cause_event_id: str,
    as_of: float,
) -> tuple[list[Emit], int]:
    """Flag records for ``candidates`` (member or product), recorded in the ledger; and
    how many feedback suppressed."""
    emits: list[Emit] = []
    suppressed = 0
    for c in candidates:
        fid = flag_id(c.kind, c.subject, c.subject_id, c.window_start)
        if ledger.suppressed(fid, c.evidence):
            suppressed += 1
            continue
        ledger.record(fid, c.evidence)
        payload = flag_payload(fid, c, versions[c.kind], cause_event_id, as_of)
        emits.append(Emit(ANOMALIES, c.subject_id, payload))
    return emits, suppressed


def flag_payload(
    fid: str, candidate: Candidate, version: str, cause_event_id: str, as_of: float
) -> dict[str, Any]:
    """An :class:`~memberstream.schemas.outputs.AnomalyFlag` as the JSON dict produced.

    Built by hand on the hot path; a unit test holds it equal to the schema's dump.
    """
    member = candidate.subject == "member"
    return {
        "output_id": fid,
        "schema_version": OUTPUT_SCHEMA_VERSION,
        "flag_id": fid,
        "kind": candidate.kind,
        "subject": candidate.subject,
        "member_id": candidate.subject_id if member else None,
        "product_id": None if member else candidate.subject_id,
        "score": candidate.score,
        "threshold": candidate.threshold,
        "window_start": iso(candidate.window_start),
        "window_end": iso(candidate.window_end),
        "evidence": list(candidate.evidence),
        "details": dict(candidate.details),
        "detector_version": version,
        "cause_event_id": cause_event_id,
        "as_of": iso(as_of),
    }


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
        anomaly = settings.anomaly
        self.anomaly = anomaly
        self.detectors = MemberDetectors(anomaly) if anomaly.enabled else None
        self.detector_versions = {
            kind: detector_version(kind, getattr(anomaly, section))
            for kind, section in _SECTIONS.items()
        }
        learned_on = anomaly.enabled and anomaly.learned.enabled
        self.learned_version = learned_version if learned_on else None

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
        if isinstance(event, Feedback):
            self._apply_feedback(state, event)
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
            decision = self._apply_order(state, event, t)
            if decision is not None:
                update = self._tier_update(state, decision, event.event_id)
                payload = update.model_dump(mode="json")
                emits.append(Emit(TIERS, state.member_id, payload))
            if self.detectors is not None:
                candidates = self.detectors.on_purchase(state.anomaly, event)
            order = self._order_vector(state, event, t, scores)
        elif isinstance(event, ClickEvent):
            state.counts.clicks += 1
            if self.detectors is not None:
                candidates = self.detectors.on_click(state.anomaly, event)
        elif isinstance(event, ReviewEvent):
            state.counts.reviews += 1
        change = self._apply_interest(state, event, t, scores)  # checks the scores first
        if change is not None:
            payload = self._interest_update(state, change, event).model_dump(mode="json")
            emits.append(Emit(INTEREST_TIERS, state.member_id, payload))
        if isinstance(event, ReviewEvent):
            candidates = self._review_sentiment(state, event, t, scores)
            emits.append(self._product_review(event, scores, at))
        flags, suppressed = raise_flags(
            state.flags, candidates, self.detector_versions, event.event_id, t
        )
        emits.extend(flags)
        return Applied(state, emits, duplicate=False, order=order, suppressed=suppressed)

    # -- anomalies --

    def _review_sentiment(
        self, state: MemberState, event: ReviewEvent, t: float, scores: Sequence[Scored] | None
    ) -> list[Candidate]:
        """Count the review's text sentiment in the profile; flag stars that contradict it."""
        sentiment = scores[0].sentiment if scores else None
        if sentiment is None:
            return []
        negative, _, positive = (float(p) for p in sentiment)
        state.sentiment_sum += positive - negative
        state.sentiment_reviews += 1
        conf = self.anomaly.rating_text_mismatch
        if self.detectors is None or not conf.enabled:
            return []
        language = event.language or (
            "zh" if any("\u4e00" <= c <= "\u9fff" for c in event.text) else "en"
        )
        if language.split("-")[0] not in conf.languages:
            return []
        if event.rating >= conf.high_rating and negative >= conf.min_probability:
            p, against = negative, "negative"
        elif event.rating <= conf.low_rating and positive >= conf.min_probability:
            p, against = positive, "positive"
        else:
            return []
        return [
            Candidate(
                kind="rating_text_mismatch",
                subject="member",
                subject_id=state.member_id,
                window_start=t,
                window_end=t,
                score=round(p, 6),
                threshold=conf.min_probability,
                evidence=(event.event_id,),
                details={"rating": event.rating, "text": against, "product_id": event.product_id},
            )
        ]

    def _apply_feedback(self, state: MemberState, feedback: Feedback) -> None:
        """An analyst's verdict on one of this member's flags (interest labels are for the
        learning loop only)."""
        state.flags.apply_feedback(feedback.subject, feedback.verdict, feedback.ref_id)

    def _order_vector(
        self,
        state: MemberState,
        event: PurchaseEvent,
        t: float,
        scores: Sequence[Scored] | None,
    ) -> OrderVector | None:
        """The paid order's features for the learned score, then the order joins the profile.

        Each line item's title is one scored text (see :meth:`interest_items`), in order.
        """
        if self.learned_version is None or event.status != "paid" or scores is None:
            return None
        if state.purchases is None:
            state.purchases = PurchaseProfile()
        lines = [OrderLine(i.category, i.quantity, i.unit_price) for i in event.items]
        embeddings = [s.embedding for s in scores]
        mean = order_embedding(embeddings)
        features = behaviour_features(state.purchases, t, event.total, lines, mean)
        observe_order(state.purchases, t, event.total, lines, embeddings)
        return OrderVector(features, mean)

    def learned_flag(
        self, state: MemberState, event: PurchaseEvent, score: LearnedScore
    ) -> Emit | None:
        """The flag for an order the learned scorer put at or above the threshold."""
        conf = self.anomaly.learned
        if score.probability < conf.threshold or self.learned_version is None:
            return None
        t = event.occurred_at.timestamp()
        top = sorted(score.contributions.items(), key=lambda kv: (-kv[1], kv[0]))
        details: dict[str, float | int | str] = {"total": event.total}
        for name, push in top[: conf.top_features]:
            details[f"push:{name}"] = round(push, 4)
        candidate = Candidate(
            kind="learned_score",
            subject="member",
            subject_id=state.member_id,
            window_start=t,
            window_end=t,
            score=round(score.probability, 6),
            threshold=conf.threshold,
            evidence=(event.event_id,),
            details=details,
        )
        versions = {"learned_score": self.learned_version}
        flags, _ = raise_flags(state.flags, [candidate], versions, event.event_id, t)
        return flags[0] if flags else None

    def _product_review(
        self, event: ReviewEvent, scores: Sequence[Scored] | None, at: Position | None
    ) -> Emit:
        """The review for the product agent (keyed by product_id), with its embedding and
        its position on the reviews topic (``src``: how the product agent recognises a
        review forwarded again after a crash)."""
        embedding = None
        if scores:  # the review's one text: title and body (see interest_items)
            embedding = base64.b64encode(
                np.asarray(scores[0].embedding, dtype="<f2").tobytes()
            ).decode("ascii")
        payload = {
            "type": "review",
            "event_id": event.event_id,
            "member_id": event.member_id,
            "product_id": event.product_id,
            "occurred_at": iso(event.occurred_at.timestamp()),
            "rating": event.rating,
            "title": event.title,
            "text": event.text,
            "language": event.language,
            "embedding_f16": embedding,
            "sentiment": (
                None
                if not scores or scores[0].sentiment is None
                else [round(float(p), 6) for p in scores[0].sentiment]
            ),
            "src": None if at is None else at.to_list(),
        }
        return Emit(PRODUCT_REVIEWS, event.product_id, payload)

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
            "review_sentiment": (
                round(state.sentiment_sum / state.sentiment_reviews, SHARE_DECIMALS)
                if state.sentiment_reviews
                else None
            ),
            "taste": self._taste(state),
            "model_version": self.model_version,
            "as_of": iso(state.clock),
        }
        return Emit(PROFILES, state.member_id, payload)
