"""Event and output schemas (pydantic v2), orjson codecs and JSON Schema export."""

from memberstream.schemas.codec import DecodeFailure, decode_event, encode, parse_any_event
from memberstream.schemas.events import (
    SCHEMA_VERSION,
    ClickEvent,
    Envelope,
    Feedback,
    LineItem,
    PurchaseEvent,
    ReviewEvent,
)
from memberstream.schemas.outputs import (
    RFM,
    AnomalyFlag,
    DeadLetter,
    InterestTier,
    InterestTierUpdate,
    MemberProfile,
    MemberTierUpdate,
    deterministic_id,
)

__all__ = [
    "RFM",
    "SCHEMA_VERSION",
    "AnomalyFlag",
    "ClickEvent",
    "DeadLetter",
    "DecodeFailure",
    "Envelope",
    "Feedback",
    "InterestTier",
    "InterestTierUpdate",
    "LineItem",
    "MemberProfile",
    "MemberTierUpdate",
    "PurchaseEvent",
    "ReviewEvent",
    "decode_event",
    "deterministic_id",
    "encode",
    "parse_any_event",
]
