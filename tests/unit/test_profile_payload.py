"""The hot-path output dicts (profile, tier and interest updates) must be exactly what
the schemas produce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from memberstream.config import Settings
from memberstream.core.member.processor import MemberProcessor
from memberstream.core.roles import OutputRole
from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.inference import InferenceStage
from memberstream.schemas.events import ClickEvent, LineItem, PurchaseEvent
from memberstream.schemas.outputs import InterestTierUpdate, MemberProfile, MemberTierUpdate
from tests.unit.test_member_interest import shift_stream
from tests.unit.text_doubles import WordHashEncoder

T0 = datetime(2024, 1, 1, 8, 30, 15, 250000, tzinfo=UTC)


def _events() -> list:
    item = LineItem(product_id="p1", title="Lamp", category="home", quantity=2, unit_price=40.0)
    out: list = []
    for i in range(6):
        out.append(
            PurchaseEvent(
                event_id=f"o{i}",
                member_id="m1",
                occurred_at=T0 + timedelta(days=40 * i, microseconds=i),
                order_id=f"order{i}",
                items=[item],
                total=80.0,
                status="refunded" if i == 3 else "paid",
            )
        )
        out.append(
            ClickEvent(
                event_id=f"c{i}",
                member_id="m1",
                occurred_at=T0 + timedelta(days=40 * i, hours=1),
                action="view",
                product_id="p1",
            )
        )
    return out


def test_profile_payload_matches_schema_after_every_event() -> None:
    processor = MemberProcessor(Settings())
    state = None
    for event in _events():
        state = processor.apply(state, event).state
        payload = processor.profile(state).payload
        assert MemberProfile.model_validate(payload).model_dump(mode="json") == payload


def test_tier_update_payload_matches_schema() -> None:
    processor = MemberProcessor(Settings())
    state, payloads = None, []
    for event in _events():
        applied = processor.apply(state, event)
        state = applied.state
        payloads += [e.payload for e in applied.emits if e.role is OutputRole.TIERS]
    assert len(payloads) >= 2  # the orders move the member up and down
    for payload in payloads:
        assert MemberTierUpdate.model_validate(payload).model_dump(mode="json") == payload


def test_interest_update_payload_and_taste_match_schema() -> None:
    stage = InferenceStage(WordHashEncoder(), Taxonomy.load())
    processor = MemberProcessor(Settings(), None, stage.model_version)
    state, payloads = None, []
    for event in shift_stream():
        applied = processor.apply(state, event, stage.score_now(processor.texts(event)))
        state = applied.state
        payloads += [e.payload for e in applied.emits if e.role is OutputRole.INTEREST_TIERS]
    assert len(payloads) >= 3
    for payload in payloads:
        assert InterestTierUpdate.model_validate(payload).model_dump(mode="json") == payload
    profile = processor.profile(state).payload
    assert MemberProfile.model_validate(profile).model_dump(mode="json") == profile
    # taste_f16 decodes to the member's taste vector, at float16 precision
    want = processor.interest.taste(state.interest)
    got = MemberProfile.model_validate(profile).taste
    assert want is not None and got is not None and len(got) == len(want)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
