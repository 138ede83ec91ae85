"""Constrained field types shared by the event and output schemas.

Inputs are validated in pydantic's lax mode (so ISO timestamps parse from JSON
strings) but every field that matters is strict: ids are strings, counts are
integers, amounts are finite non-negative numbers, timestamps carry a zone.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict, StringConstraints

MAX_ID_CHARS = 128
MAX_TITLE_CHARS = 300
MAX_TEXT_CHARS = 5000
MAX_QUERY_CHARS = 500
MAX_LINE_ITEMS = 200
MAX_RECORD_BYTES = 64 * 1024
MAX_TOP_LEVEL_FIELDS = 64
"""An event has about a dozen fields; thousands of unknown ones are not an event."""

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_string_only(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    # pydantic would also read a numeric string ("1700000000") as a Unix time: refuse it
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be an ISO 8601 timestamp string with a timezone")
    return value


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be timezone-aware (e.g. 2024-05-01T12:00:00Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 has no UTC time
        raise ValueError("is outside the range of UTC timestamps") from None


Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, strict=True)]
EventTime = Annotated[datetime, BeforeValidator(_iso_string_only), AfterValidator(_to_utc)]
Money = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Title = Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS, strict=True)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS, strict=True)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$", strict=True)]
