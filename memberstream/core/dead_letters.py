"""Dead letters: the DLQ record for a Kafka message that could not be processed.

A dead letter must always be writable, whatever the bad record looks like: the
record's bytes are kept up to a cap (base64 grows them by a third, so the cap
sits well under the producer's request limit), and a cut value says so, with
the original length and a sha256 of the whole value. Source topic, partition
and offset are always there, so the original can be fetched while the topic
retains it. The reason and the per-field errors are capped too (a record with
thousands of bad fields would otherwise make a dead letter of megabytes).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence

from memberstream.config import DeadLetterSettings
from memberstream.schemas.codec import DecodeFailure
from memberstream.schemas.outputs import DeadLetter, deterministic_id


def _kept(raw: bytes | None, cap: int) -> tuple[str | None, bool]:
    if raw is None:
        return None, False
    cut = len(raw) > cap
    return base64.b64encode(raw[:cap] if cut else raw).decode("ascii"), cut


def capped_failure(failure: DecodeFailure, settings: DeadLetterSettings) -> DecodeFailure:
    """``failure`` with its reason and error list cut to the configured bounds."""
    reason = failure.reason
    if len(reason) > settings.max_reason_chars:
        reason = reason[: settings.max_reason_chars] + f"… ({len(failure.reason)} chars)"
    errors = failure.errors
    if len(errors) > settings.max_errors:
        dropped = len(errors) - settings.max_errors
        errors = [
            *errors[: settings.max_errors],
            {"field": "(more)", "message": f"{dropped} more errors not kept"},
        ]
    errors = [{k: v[: settings.max_reason_chars] for k, v in e.items()} for e in errors]
    return DecodeFailure(failure.error_type, reason, errors)


def dead_letter_for(
    topic: str,
    partition: int,
    offset: int,
    timestamp: float | None,
    key: bytes | None,
    value: bytes | None,
    failure: DecodeFailure,
    settings: DeadLetterSettings,
    headers: Sequence[tuple[str, bytes]] | None = None,
) -> DeadLetter:
    """The DLQ record for the message at ``topic``/``partition``/``offset`` (its
    ``headers`` say whether it was itself redriven from a dead letter)."""
    failure = capped_failure(failure, settings)
    key_b64, key_cut = _kept(key, settings.max_key_bytes)
    value_b64, value_cut = _kept(value, settings.max_value_bytes)
    return DeadLetter(
        output_id=deterministic_id("dlq", topic, partition, offset),
        source_topic=topic,
        partition=partition,
        offset=offset,
        timestamp_ms=None if timestamp is None else int(timestamp * 1000),
        key_b64=key_b64,
        key_truncated=key_cut,
        key_length=None if key is None else len(key),
        value_b64=value_b64,
        value_truncated=value_cut,
        value_length=None if value is None else len(value),
        value_sha256=None if value is None else hashlib.sha256(value).hexdigest(),
        error_type=failure.error_type,  # type: ignore[arg-type]
        reason=failure.reason,
        errors=failure.errors,
        redrive_of=redriven_from(headers),
    )


REDRIVE_HEADER = "memberstream-redrive-of"
"""Set on a record `memberstream dlq redrive` sends back: the dead letter's id."""


def redriven_from(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The dead-letter id in a record's redrive header, if it has one."""
    for name, value in headers or ():
        if name == REDRIVE_HEADER and value:
            return bytes(value).decode("utf-8", "replace")[:200]
    return None


def reason_class(reason: str, width: int = 90) -> str:
    """A dead letter's reason with its particulars (numbers, quoted values) blanked, so
    letters that failed the same way group together."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", reason)
    text = re.sub(r"\d+", "N", text)
    return text if len(text) <= width else text[: width - 1] + "…"


def dead_letter_key(key: bytes | None, settings: DeadLetterSettings) -> bytes | None:
    """The DLQ record's Kafka key: the original key, cut like the kept copy."""
    return None if key is None else key[: settings.max_key_bytes]
