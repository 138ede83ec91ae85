"""Input events: clicks, purchases, reviews and human feedback.

Every event carries the common envelope (:class:`Envelope`). The topic an event
arrives on decides its type; the optional ``type`` field, when present, must
agree (it lets a single JSONL file hold mixed events for ``memberstream produce``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    Strict,
    field_validator,
    model_serializer,
    model_validator,
)

from memberstream.schemas.types import (
    MAX_LINE_ITEMS,
    MAX_QUERY_CHARS,
    Currency,
    EventTime,
    Id,
    Money,
    Text,
    Title,
)

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
PURCHASE_REFS = ("payment_ref", "shipping_ref", "device_ref")
"""Optional opaque references of :class:`PurchaseEvent` (added within version 1: optional,
default None, left out of the serialized event when absent)."""


class Envelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Id = Field(description="unique, producer-assigned; duplicates have no second effect")
    schema_version: Annotated[int, Strict()] = SCHEMA_VERSION
    member_id: Id
    occurred_at: EventTime = Field(description="event time, timezone-aware; stored as UTC")
    source: Annotated[str, Strict(), Field(min_length=1, max_length=64)] = "unknown"

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, version: int) -> int:
        if version not in SUPPORTED_SCHEMA_VERSIONS:
            supported = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
            raise ValueError(f"unsupported schema_version {version} (supported: {supported})")
        return version


class ClickEvent(Envelope):
    """A product view, a search, or an add-to-cart."""

    type: Literal["click"] = "click"
    action: Literal["view", "search", "add_to_cart"]
    product_id: Id | None = None
    category: Id | None = None
    title: Title | None = None
    query: Annotated[str, Strict(), Field(max_length=MAX_QUERY_CHARS)] | None = None
    session_id: Id | None = None

    @model_validator(mode="after")
    def _action_fields(self) -> ClickEvent:
        if self.action == "search" and not self.query:
            raise ValueError("a search click needs a query")
        if self.action != "search" and not self.product_id:
            raise ValueError(f"a {self.action} click needs a product_id")
        return self


class LineItem(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    product_id: Id
    title: Title
    category: Id
    quantity: Annotated[int, Strict(), Field(ge=1, le=10_000)]
    unit_price: Money


class PurchaseEvent(Envelope):
    """An order paid, or (``status="refunded"``) money returned for an earlier order."""

    type: Literal["purchase"] = "purchase"
    order_id: Id
    items: list[LineItem] = Field(min_length=1, max_length=MAX_LINE_ITEMS)
    total: Money = Field(description="amount paid, or amount refunded when status is refunded")
    currency: Currency = "USD"
    status: Literal["paid", "refunded"] = "paid"
    payment_ref: Id | None = Field(
        None,
        description="opaque reference to the payment instrument (card or wallet token) "
        "chosen and hashed by the sender, never the card number itself; the same instrument "
        "must always give the same reference. Optional: without it the detectors judge the "
        "order by its amounts alone",
    )
    shipping_ref: Id | None = Field(
        None,
        description="opaque reference to the normalized shipping address, hashed by the "
        "sender (never the address itself); optional",
    )
    device_ref: Id | None = Field(
        None,
        description="opaque reference to the device or session fingerprint the order came "
        "from, hashed by the sender; optional",
    )

    @model_serializer(mode="wrap")
    def _omit_absent_refs(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An order without references serializes exactly as before they existed."""
        data: dict[str, Any] = handler(self)
        for name in PURCHASE_REFS:
            if data.get(name, "") is None:
                del data[name]
        return data

    @property
    def signed_total(self) -> float:
        """Contribution to net spend: refunds count negative."""
        return self.total if self.status == "paid" else -self.total


class ReviewEvent(Envelope):
    type: Literal["review"] = "review"
    product_id: Id
    rating: Annotated[int, Strict(), Field(ge=1, le=5)]
    title: Title = ""
    text: Text = ""
    language: Annotated[str, Strict(), Field(max_length=16)] | None = None


class Feedback(Envelope):
    """A human label for the learning loop: an anomaly flag confirmed or rejected, an
    interest corrected, or a review's sentiment corrected. ``member_id`` is the member
    the label is about."""

    type: Literal["feedback"] = "feedback"
    subject: Literal["anomaly_flag", "interest", "review_sentiment"]
    ref_id: Id = Field(
        description="the flag id; the category id for interest labels; the review's "
        "event_id for sentiment corrections"
    )
    verdict: Literal["confirmed", "false_positive", "corrected"]
    label: Literal["negative", "neutral", "positive"] | None = Field(
        None, description="review_sentiment only: the sentiment the analyst gives the text"
    )
    product_id: Id | None = None
    labeler: Id | None = None
    note: Annotated[str, Strict(), Field(max_length=1000)] = ""

    @model_validator(mode="after")
    def _sentiment_label(self) -> Feedback:
        if self.subject == "review_sentiment":
            if self.label is None or self.verdict != "corrected":
                raise ValueError("review_sentiment feedback needs verdict corrected and a label")
        elif self.label is not None:
            raise ValueError("label is only for review_sentiment feedback")
        return self


InputEvent = ClickEvent | PurchaseEvent | ReviewEvent | Feedback

EVENT_TYPES: dict[str, type[Envelope]] = {
    "click": ClickEvent,
    "purchase": PurchaseEvent,
    "review": ReviewEvent,
    "feedback": Feedback,
}
