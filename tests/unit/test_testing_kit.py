"""The testing kit's fast path: the worker's processors in-process, no Kafka."""

from __future__ import annotations

from memberstream.config import Settings
from memberstream.schemas import LineItem, PurchaseEvent
from memberstream.testing import run_offline


def test_run_offline_gives_the_profiles_and_tier_changes_of_the_events() -> None:
    item = LineItem(
        product_id="p1", title="Kettle", category="home_kitchen", quantity=1, unit_price=80.0
    )
    events = [
        PurchaseEvent(
            event_id=f"e{d}",
            member_id="m1",
            order_id=f"o{d}",
            occurred_at=f"2025-01-0{d}T10:00:00Z",
            total=80.0,
            items=[item],
        )
        for d in (1, 2)
    ]
    run = run_offline(Settings(inference={"enabled": False}), events, with_model=False)
    profile = run.profiles()["m1"]
    assert (profile["orders"], profile["tier"]) == (2, "silver")  # 2 orders, $160: silver
