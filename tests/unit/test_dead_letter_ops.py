"""Grouping and finding dead letters, and the redrive header (no Kafka)."""

from __future__ import annotations

import pytest

from memberstream.config import DeadLetterSettings
from memberstream.core.dead_letters import (
    REDRIVE_HEADER,
    dead_letter_for,
    reason_class,
    redriven_from,
)
from memberstream.schemas.codec import DecodeFailure
from memberstream.streams.dead_letter_ops import StoredLetter, find_letter, group_letters


@pytest.mark.parametrize(
    ("reason", "cls"),
    [
        ("invalid JSON: unexpected end of data: line 1 column 40 (char 39)",
         "invalid JSON: unexpected end of data: line N column N (char N)"),
        ("type: event of type 'review' on a topic for 'click' events",
         "type: event of type '…' on a topic for '…' events"),
        ('rating: Input should be less than or equal to 5 (got "9")',
         "rating: Input should be less than or equal to N (got '…')"),
    ],
)  # fmt: skip
def test_reason_class_blanks_the_particulars(reason: str, cls: str) -> None:
    assert reason_class(reason) == cls


def test_reason_class_is_capped() -> None:
    assert reason_class("x" * 500, width=20) == "x" * 19 + "…"


def _letter(topic: str, offset: int, reason: str, headers: list | None = None) -> StoredLetter:
    letter = dead_letter_for(
        topic, 0, offset, 1.0, b"k", b"v", DecodeFailure("decode", reason), DeadLetterSettings(),
        headers,
    )  # fmt: skip
    return StoredLetter(letter, 0, offset, 1000 + offset)


def test_the_redrive_header_is_kept_on_the_letter() -> None:
    assert redriven_from([("other", b"x"), (REDRIVE_HEADER, b"abc")]) == "abc"
    assert redriven_from(None) is None and redriven_from([(REDRIVE_HEADER, b"")]) is None
    assert _letter("t", 1, "bad", [(REDRIVE_HEADER, b"abc")]).letter.redrive_of == "abc"
    assert _letter("t", 1, "bad").letter.redrive_of is None


def test_groups_by_topic_type_and_reason_class_largest_first() -> None:
    letters = [
        _letter("clicks", 1, "invalid JSON at char 3"),
        _letter("clicks", 2, "invalid JSON at char 17"),
        _letter("reviews", 3, "invalid JSON at char 3"),
    ]
    groups = group_letters(letters)
    assert [(g.source_topic, len(g.letters)) for g in groups] == [("clicks", 2), ("reviews", 1)]


def test_find_by_id_or_unique_prefix() -> None:
    a, b = _letter("t", 1, "x"), _letter("t", 2, "x")
    assert find_letter([a, b], a.id) is a
    assert a.id[:12] != b.id[:12] and find_letter([a, b], a.id[:12]) is a
    with pytest.raises(LookupError, match="no dead letter"):
        find_letter([a, b], "zzzz")
    with pytest.raises(LookupError, match="give more"):
        find_letter([a, b], "")
