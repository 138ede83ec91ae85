"""Member anomalies: the rule detectors on clicks and orders, rating/text mismatch on
reviews, analyst feedback on the member's flags, and the learned score (an order's
feature vector before the batch scores it, its flag after). Flags are raised through
the member's flag ledger (:func:`memberstream.core.flags.raise_flags`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from memberstream.core.flags import raise_flags
from memberstream.core.member_state import MemberState
from memberstream.core.roles import Emit
from memberstream.domain.anomaly.adaptive import ADAPTABLE, adaptable
from memberstream.domain.anomaly.flags import Candidate, detector_version, flag_id
from memberstream.domain.anomaly.member_detectors import MemberDetectors
from memberstream.domain.anomaly.order_features import (
    OrderLine,
    OrderVector,
    PurchaseProfile,
    behaviour_features,
    feature_details,
    observe_order,
    order_embedding,
)
from memberstream.domain.anomaly.rating_mismatch import rating_mismatch
from memberstream.domain.anomaly.settings import AnomalySettings
from memberstream.domain.language import normalize_language
from memberstream.ml.inference import Scored
from memberstream.ml.learned_scorer import LearnedScore
from memberstream.schemas.events import ClickEvent, Feedback, PurchaseEvent, ReviewEvent

_SECTIONS = {
    "click_burst": "click_burst",
    "bot_pattern": "bot_pattern",
    "order_value_outlier": "order_value",
    "order_velocity": "order_velocity",
    "review_duplicate": "review_duplicate",
    "review_bombing": "review_bombing",
    "rating_text_mismatch": "rating_text_mismatch",
}


class AnomalyStep:
    """A member's events → flag candidates and flags, under ``settings``;
    ``learned_version`` names the anomaly scorer that scores the orders (None: no
    learned score)."""

    def __init__(self, settings: AnomalySettings, learned_version: str | None = None) -> None:
        self.settings = settings
        self.detectors = MemberDetectors(settings) if settings.enabled else None
        self.detector_versions = {
            kind: detector_version(kind, getattr(settings, section))
            for kind, section in _SECTIONS.items()
        }
        self.learned_version: str | None = None
        self.set_learned_version(learned_version)

    def set_learned_version(self, learned_version: str | None) -> None:
        """The learned scorer that scores orders from now on (None: none); stays None
        while the learned score is switched off."""
        learned_on = self.settings.enabled and self.settings.learned.enabled
        self.learned_version = learned_version if learned_on else None

    def on_purchase(self, state: MemberState, event: PurchaseEvent) -> list[Candidate]:
        if self.detectors is None:
            return []
        return self.detectors.on_purchase(state.anomaly, event)

    def on_click(self, state: MemberState, event: ClickEvent) -> list[Candidate]:
        if self.detectors is None:
            return []
        return self.detectors.on_click(state.anomaly, event)

    def raise_flags(
        self, state: MemberState, candidates: Sequence[Candidate], cause: str, as_of: float
    ) -> tuple[list[Emit], int]:
        """The flags for ``candidates`` and how many feedback suppressed."""
        self._note_adaptable(state, candidates)
        return raise_flags(state.flags, candidates, self.detector_versions, cause, as_of)

    def _note_adaptable(self, state: MemberState, candidates: Sequence[Candidate]) -> None:
        """Remember what a verdict on these flags could teach the member's baseline; a flag
        already rejected (the verdict was read first) adapts it now."""
        for c in candidates:
            if c.kind not in ADAPTABLE:
                continue
            fid = flag_id(c.kind, c.subject, c.subject_id, c.window_start)
            item = adaptable(c, fid, self.settings)
            if item is not None:
                rejected = state.flags.is_rejected(fid)
                state.anomaly.adaptive.note(item, self.settings, rejected=rejected)

    @staticmethod
    def with_features(
        candidates: Sequence[Candidate], order: OrderVector | None
    ) -> list[Candidate]:
        """Order-value flags carry the order's behaviour features (when the learned score
        computed them), so a verdict on one is a training label for the learned score."""
        ov = "order_value_outlier"
        if order is None or all(c.kind != ov for c in candidates):
            return list(candidates)  # the common case: no features built per order
        features = feature_details(order.behaviour)
        return [
            replace(c, details={**c.details, **features}) if c.kind == ov else c for c in candidates
        ]

    def review_sentiment(
        self, state: MemberState, event: ReviewEvent, t: float, scores: Sequence[Scored] | None
    ) -> list[Candidate]:
        """Count the review's text sentiment in the profile; flag stars that contradict it."""
        sentiment = scores[0].sentiment if scores else None
        if sentiment is None:
            return []
        negative, _, positive = (float(p) for p in sentiment)
        state.sentiment_sum += positive - negative
        state.sentiment_reviews += 1
        conf = self.settings.rating_text_mismatch
        if self.detectors is None or not conf.enabled:
            return []
        language = normalize_language(event.language, event.text)
        if language not in conf.languages:
            return []
        mismatch = rating_mismatch(event.rating, sentiment, language, conf)
        if mismatch is None:
            return []
        return [
            Candidate(
                kind="rating_text_mismatch",
                subject="member",
                subject_id=state.member_id,
                window_start=t,
                window_end=t,
                score=round(mismatch.probability, 6),
                threshold=mismatch.min_probability,
                evidence=(event.event_id,),
                details={
                    "rating": event.rating,
                    "product_id": event.product_id,
                    "language": language,
                    **mismatch.details(),
                },
            )
        ]

    def apply_feedback(self, state: MemberState, feedback: Feedback) -> None:
        """An analyst's verdict on one of this member's flags (interest labels are for the
        learning loop only). A false_positive verdict on an order-value or click-burst flag
        also gives the member an allowance (:mod:`memberstream.domain.anomaly.adaptive`)."""
        state.flags.apply_feedback(feedback.subject, feedback.verdict, feedback.ref_id)
        if feedback.subject == "anomaly_flag" and feedback.verdict == "false_positive":
            state.anomaly.adaptive.reject(feedback.ref_id, self.settings)

    def order_vector(
        self,
        state: MemberState,
        event: PurchaseEvent,
        t: float,
        scores: Sequence[Scored] | None,
    ) -> OrderVector | None:
        """The paid order's features for the learned score, then the order joins the profile.

        Each line item's title is one scored text (see
        :meth:`~memberstream.core.member.interest_step.InterestStep.items`), in order.
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
        self,
        state: MemberState,
        event: PurchaseEvent,
        score: LearnedScore,
        vector: OrderVector,
    ) -> Emit | None:
        """The flag for an order the learned scorer put at or above the threshold; its
        details carry the order's behaviour features (``x:<name>``, from ``vector``) that
        an analyst's verdict turns into a training label."""
        conf = self.settings.learned
        if score.probability < conf.threshold or self.learned_version is None:
            return None
        t = event.occurred_at.timestamp()
        top = sorted(score.contributions.items(), key=lambda kv: (-kv[1], kv[0]))
        details: dict[str, float | int | str] = {"total": event.total}
        for name, push in top[: conf.top_features]:
            details[f"push:{name}"] = round(push, 4)
        details |= feature_details(vector.behaviour)
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
