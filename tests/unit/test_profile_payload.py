"""The hot-path profile dict must be exactly what the MemberProfile schema produces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memberstream.config import Settings
from memberstream.core.member.processor import MemberProcessor
from memberstream.schemas.events import ClickEvent, LineItem, PurchaseEvent
from memberstream.schemas.outputs import MemberProfile

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
