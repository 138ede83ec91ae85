"""orjson codecs: raw Kafka bytes to validated events, and outputs to bytes.

Decoding never raises past :func:`decode_event`: a bad record comes back as a
:class:`DecodeFailure` that says which field failed and why, ready for the DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from memberstream.schemas.events import EVENT_TYPES, Envelope
from memberstream.schemas.types import MAX_RECORD_BYTES, MAX_TOP_LEVEL_FIELDS

E = TypeVar("E", bound=Envelope)


@dataclass(frozen=True)
class DecodeFailure:
    error_type: str  # "decode" (not JSON / not UTF-8 / too large) or "validation"
    reason: str
    errors: list[dict[str, str]] = field(default_factory=list)


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(record)"


def _validation_failure(exc: ValidationError) -> DecodeFailure:
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        msg = err["msg"].removeprefix("Value error, ")
        errors.append({"field": _field_path(err["loc"]), "message": msg})
    reason = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return DecodeFailure("validation", reason, errors)


def decode_event(raw: bytes | None, event_type: type[E]) -> E | DecodeFailure:
    """Parse and validate one record's value as ``event_type``."""
    if raw is None:
        return DecodeFailure("decode", "empty record (null value)")
    if len(raw) > MAX_RECORD_BYTES:
        return DecodeFailure(
            "decode", f"record is {len(raw)} bytes, over the {MAX_RECORD_BYTES}-byte limit"
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return DecodeFailure("decode", f"invalid JSON: {exc}")
    if not isinstance(data, dict):
        return DecodeFailure("decode", f"expected a JSON object, got {type(data).__name__}")
    if len(data) > MAX_TOP_LEVEL_FIELDS:
        return DecodeFailure(
            "validation",
            f"record has {len(data)} fields; an event has at most {MAX_TOP_LEVEL_FIELDS}",
        )
    declared = data.get("type")
    # isinstance first: an unhashable "type" (a list, an object) must not raise here
    known = EVENT_TYPES.get(declared) if isinstance(declared, str) else None
    if declared is not None and known is not event_type:
        expected = event_type.model_fields["type"].default
        return DecodeFailure(
            "validation",
            f"type: event of type {declared!r} on a topic for {expected!r} events",
            [{"field": "type", "message": f"expected {expected!r}, got {declared!r}"}],
        )
    try:
        return event_type.model_validate(data)
    except ValidationError as exc:
        failure = _validation_failure(exc)
    except Exception as exc:  # a validator's own bug must not stop the partition either
        return DecodeFailure("validation", f"{type(exc).__name__}: {exc}")
    # An unknown version explains every other error: report it alone.
    version_errors = [e for e in failure.errors if e["field"] == "schema_version"]
    if version_errors:
        return DecodeFailure(
            "validation", f"schema_version: {version_errors[0]['message']}", version_errors
        )
    return failure


def parse_any_event(data: dict[str, Any]) -> Envelope:
    """Validate a dict that names its own ``type`` (used for JSONL files)."""
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in EVENT_TYPES:
        known = ", ".join(EVENT_TYPES)
        raise ValueError(f"'type' must be one of {known}; got {kind!r}")
    return EVENT_TYPES[kind].model_validate(data)


def encode(model: BaseModel) -> bytes:
    """Serialize a schema object (event or output) to compact JSON bytes."""
    return orjson.dumps(model.model_dump(mode="json"))


def encode_key(key: str) -> bytes:
    return key.encode("utf-8")
