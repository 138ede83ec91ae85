"""Labeled samples derived from the stream: the rules of the learning loop.

Three kinds, each with a documented label rule:

- **sentiment**: a review's text (title and body, as the worker scores it) labeled by
  its stars: 1-2 negative, 3 neutral, 4-5 positive (``label_source="stars"``). An
  analyst's correction (:class:`Feedback` with ``subject="review_sentiment"``) is a
  sample of its own with the same ``sample_id`` and ``label_source="analyst"``; the
  trainer lets it win over the stars, whichever arrived first.
- **interest**: a paid order's line item in category C is an interest label for C
  (text: the item's title) when the same member viewed or carted a product of C within
  ``interest_window`` of event time before the order, whichever of the two the
  collector reads first (clicks and purchases are separate topics). A purchase without
  such a view says little about interest (gifts, re-orders), so it yields no sample. An analyst's
  interest correction (``subject="interest"``, ``ref_id`` the category) labels the
  product's last seen title with that category.
- **anomaly**: an analyst's verdict on a flag (``confirmed`` or ``false_positive``),
  with what the flag measured (kind, score, threshold, details) when the collector saw
  the flag on ``member.anomalies``; verdicts on flags it never saw keep the flag id only.
  A learned_score or order_value_outlier flag carries the order's behaviour features;
  the sample keeps them as ``details["features"]`` (name -> value), which the trainer
  fits the learned score on (confirmed = 1, false_positive = 0).

Before a sample leaves this module its text is masked (:mod:`memberstream.domain.pii`)
and the member id is replaced by a keyed hash. Memory is bounded: recent views per
member and recent flags are kept in LRU maps of configured size. They are not
persisted: after a collector restart, a purchase read after the restart whose
qualifying view was read before it gets no interest label, and a verdict on a flag
seen before the restart carries the flag id only (a label is never wrong, some are
missing). Sentiment samples do not depend on memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson

from memberstream.domain.anomaly.order_features import BEHAVIOUR_FEATURES, features_from_details
from memberstream.domain.language import normalize_language
from memberstream.domain.pii import mask_text, pseudonymize
from memberstream.schemas.events import (
    ClickEvent,
    Feedback,
    LineItem,
    PurchaseEvent,
    ReviewEvent,
)
from memberstream.schemas.outputs import AnomalyFlag

SampleKind = Literal["sentiment", "interest", "anomaly"]
KINDS: tuple[SampleKind, ...] = ("sentiment", "interest", "anomaly")
SENTIMENT_LABELS = ("negative", "neutral", "positive")


def stars_label(rating: int) -> str:
    """The sentiment label of a star rating: 1-2 negative, 3 neutral, 4-5 positive."""
    if not 1 <= rating <= 5:
        raise ValueError(f"rating must be 1..5, got {rating}")
    return "negative" if rating <= 2 else "neutral" if rating == 3 else "positive"


@dataclass(frozen=True)
class Sample:
    """One labeled example, as written to a shard (one row)."""

    sample_id: str
    """What the label is about: ``sentiment:<review id>``, ``interest:<order>:<item>``,
    ``anomaly:<flag id>``. Corrections share the id of what they correct."""
    event_id: str
    """The event that produced this sample (duplicates of it are dropped)."""
    kind: SampleKind
    label: str
    label_source: Literal["stars", "analyst", "behaviour"]
    event_time: datetime
    member: str
    """The keyed hash of the member id, never the id itself."""
    text: str | None = None
    language: str | None = None
    product_id: str | None = None
    source_event_ids: tuple[str, ...] = ()
    model_version: str | None = None
    """The version of the task's model that was live when the sample was collected."""
    details: dict[str, Any] = field(default_factory=dict)
    masked: dict[str, int] = field(default_factory=dict)
    """Personal-data spans masked in ``text``, by kind."""

    @property
    def dedupe_key(self) -> str:
        return f"{self.event_id}\x1f{self.sample_id}"

    @property
    def event_date(self) -> str:
        return self.event_time.date().isoformat()

    def details_json(self) -> str:
        return orjson.dumps(self.details, option=orjson.OPT_SORT_KEYS).decode()


class _Lru(OrderedDict[str, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def touch(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass
class DerivationSettings:
    interest_window: timedelta = timedelta(days=7)
    members_tracked: int = 200_000
    flags_tracked: int = 100_000
    products_tracked: int = 200_000
    categories_per_member: int = 64
    views_per_category: int = 16
    """Spans of views (see :class:`_MemberMemory`) kept per member and category."""
    purchases_per_member: int = 32


@dataclass
class _Bought:
    member_id: str
    event_id: str
    order_id: str
    index: int
    item: LineItem
    at: datetime
    labeled: bool = False


@dataclass
class _MemberMemory:
    """A member's recent category views and paid line items, for the interest rule in
    whichever order the two topics deliver them."""

    views: dict[str, list[tuple[datetime, datetime]]] = field(default_factory=dict)
    """category -> disjoint spans [first view, last view + window], oldest first: a paid
    item at time P is an interest label when P falls in one. A few spans hold any
    number of views, so the bound rarely drops one that still matters."""
    purchases: list[_Bought] = field(default_factory=list)


def _add_span(spans: list[tuple[datetime, datetime]], viewed: datetime, window: timedelta) -> None:
    """Merge the span a view at ``viewed`` opens, [viewed, viewed + window], into
    ``spans`` (disjoint, sorted)."""
    start, end = viewed, viewed + window
    kept = []
    for s0, s1 in spans:
        if s1 < start or s0 > end:
            kept.append((s0, s1))
        else:
            start, end = min(start, s0), max(end, s1)
    kept.append((start, end))
    kept.sort()
    spans[:] = kept


class SampleDeriver:
    """Turns decoded events, flags and feedback into samples (see the module docstring)."""

    def __init__(self, key: bytes, settings: DerivationSettings | None = None) -> None:
        self.key = key
        self.settings = settings or DerivationSettings()
        s = self.settings
        self._members = _Lru(s.members_tracked)
        """member id -> _MemberMemory"""
        self._flags = _Lru(s.flags_tracked)
        self._titles = _Lru(s.products_tracked)
        """product id -> last seen title (for interest corrections)"""
        self.versions: dict[str, str] = {}
        """task -> the version announced last on model.updates."""

    def _member(self, member_id: str) -> str:
        return pseudonymize(member_id, self.key)

    def observe_flag(self, flag: AnomalyFlag) -> None:
        self._flags.touch(flag.flag_id, flag)

    def derive(self, event: Any) -> Iterator[Sample]:
        if isinstance(event, ReviewEvent):
            yield from self._review(event)
        elif isinstance(event, ClickEvent):
            yield from self._click(event)
        elif isinstance(event, PurchaseEvent):
            yield from self._purchase(event)
        elif isinstance(event, Feedback):
            yield from self._feedback(event)

    def _review(self, e: ReviewEvent) -> Iterator[Sample]:
        raw = "\n".join(part for part in (e.title, e.text) if part)
        if not raw.strip():
            return
        masked = mask_text(raw)
        yield Sample(
            sample_id=f"sentiment:{e.event_id}",
            event_id=e.event_id,
            kind="sentiment",
            label=stars_label(e.rating),
            label_source="stars",
            event_time=e.occurred_at,
            member=self._member(e.member_id),
            text=masked.text,
            language=normalize_language(e.language, raw),
            product_id=e.product_id,
            source_event_ids=(e.event_id,),
            model_version=self.versions.get("sentiment"),
            details={"rating": e.rating},
            masked=masked.counts,
        )

    def _click(self, e: ClickEvent) -> Iterator[Sample]:
        if e.product_id and e.title:
            self._titles.touch(e.product_id, (e.title, e.category))
        if e.action == "search" or not e.category:
            return
        memory = self._memory(e.member_id)
        spans = memory.views.setdefault(e.category, [])
        _add_span(spans, e.occurred_at, self.settings.interest_window)
        del spans[: -self.settings.views_per_category]  # the oldest spans go first
        if len(memory.views) > self.settings.categories_per_member:
            stalest = min(memory.views, key=lambda c: memory.views[c][-1][1])
            del memory.views[stalest]
        for bought in memory.purchases:  # the order was read before this view
            if (
                not bought.labeled
                and bought.item.category == e.category
                and self._in_window(e.occurred_at, bought)
            ):
                yield self._interest(bought)

    def _memory(self, member_id: str) -> _MemberMemory:
        memory = self._members.get(member_id)
        if memory is None:
            memory = _MemberMemory()
        self._members.touch(member_id, memory)
        return memory

    def _in_window(self, viewed: datetime, bought: _Bought) -> bool:
        return bought.at - self.settings.interest_window <= viewed <= bought.at

    def _purchase(self, e: PurchaseEvent) -> Iterator[Sample]:
        for item in e.items:
            self._titles.touch(item.product_id, (item.title, item.category))
        if e.status != "paid":
            return
        memory = self._memory(e.member_id)
        for i, item in enumerate(e.items):
            bought = _Bought(e.member_id, e.event_id, e.order_id, i, item, e.occurred_at)
            memory.purchases.append(bought)
            spans = memory.views.get(item.category, ())
            if any(start <= bought.at <= end for start, end in spans):
                yield self._interest(bought)
        del memory.purchases[: -self.settings.purchases_per_member]

    def _interest(self, bought: _Bought) -> Sample:
        bought.labeled = True
        masked = mask_text(bought.item.title)
        return Sample(
            sample_id=f"interest:{bought.order_id}:{bought.index}",
            event_id=bought.event_id,
            kind="interest",
            label=bought.item.category,
            label_source="behaviour",
            event_time=bought.at,
            member=self._member(bought.member_id),
            text=masked.text,
            language=normalize_language(None, bought.item.title),
            product_id=bought.item.product_id,
            source_event_ids=(bought.event_id,),
            model_version=self.versions.get("interest"),
            details={"quantity": bought.item.quantity},
            masked=masked.counts,
        )

    def _feedback(self, e: Feedback) -> Iterator[Sample]:
        member = self._member(e.member_id)
        if e.subject == "review_sentiment":
            assert e.label is not None  # the schema requires it
            yield Sample(
                sample_id=f"sentiment:{e.ref_id}",
                event_id=e.event_id,
                kind="sentiment",
                label=e.label,
                label_source="analyst",
                event_time=e.occurred_at,
                member=member,
                product_id=e.product_id,
                source_event_ids=(e.ref_id, e.event_id),
                model_version=self.versions.get("sentiment"),
            )
        elif e.subject == "anomaly_flag" and e.verdict in ("confirmed", "false_positive"):
            flag: AnomalyFlag | None = self._flags.get(e.ref_id)
            details: dict[str, Any] = {"flag_seen": flag is not None}
            evidence: tuple[str, ...] = ()
            if flag is not None:
                details.update(
                    kind=flag.kind,
                    score=flag.score,
                    threshold=flag.threshold,
                    detector_version=flag.detector_version,
                    flag_details=dict(flag.details),
                )
                features = features_from_details(flag.details)
                if features is not None:
                    details["features"] = dict(zip(BEHAVIOUR_FEATURES, features, strict=True))
                evidence = tuple(flag.evidence)
            yield Sample(
                sample_id=f"anomaly:{e.ref_id}",
                event_id=e.event_id,
                kind="anomaly",
                label=e.verdict,
                label_source="analyst",
                event_time=e.occurred_at,
                member=member,
                product_id=e.product_id or (flag.product_id if flag else None),
                source_event_ids=(*evidence, e.event_id),
                model_version=self.versions.get("anomaly"),
                details=details,
            )
        elif e.subject == "interest" and e.product_id and e.verdict != "false_positive":
            known = self._titles.get(e.product_id)
            if known is None:
                return
            masked = mask_text(known[0])
            yield Sample(
                sample_id=f"interest:{e.product_id}:{e.event_id}",
                event_id=e.event_id,
                kind="interest",
                label=e.ref_id,
                label_source="analyst",
                event_time=e.occurred_at,
                member=member,
                text=masked.text,
                language=normalize_language(None, known[0]),
                product_id=e.product_id,
                source_event_ids=(e.event_id,),
                model_version=self.versions.get("interest"),
                masked=masked.counts,
            )
