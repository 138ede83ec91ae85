"""Output roles and emits: what the processors hand the output sink.

A processor does not know topic names: it says which output an emit is (an
:class:`OutputRole`, whose value is the :class:`~memberstream.config.TopicNames`
field that names the topic) and the sink maps it to the configured topic with
``getattr(topics, role.value)``. The roles are a ``StrEnum``: a role compares
equal to (and hashes like) its field name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class OutputRole(StrEnum):
    """An output of the processors; each value is a ``TopicNames`` field name."""

    TIERS = "member_tiers"
    INTEREST_TIERS = "member_interest_tiers"
    PROFILES = "member_profiles"
    ANOMALIES = "member_anomalies"
    PRODUCT_REVIEWS = "product_reviews"
    """internal: reviews and product feedback for the product agent"""
    REVIEW_SUMMARIES = "product_review_summaries"


# The roles by name, for code that reads outputs by role (tests, benchmarks).
TIERS = OutputRole.TIERS
INTEREST_TIERS = OutputRole.INTEREST_TIERS
PROFILES = OutputRole.PROFILES
ANOMALIES = OutputRole.ANOMALIES
PRODUCT_REVIEWS = OutputRole.PRODUCT_REVIEWS
REVIEW_SUMMARIES = OutputRole.REVIEW_SUMMARIES


@dataclass(frozen=True)
class Emit:
    """An output to produce: its role (which topic), key and JSON payload."""

    role: OutputRole
    key: str
    payload: dict[str, Any]

    def __post_init__(self) -> None:
        if type(self.role) is not OutputRole:  # given by name: "member_tiers"
            object.__setattr__(self, "role", OutputRole(self.role))
