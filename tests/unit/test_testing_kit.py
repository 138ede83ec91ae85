"""The testing kit without Kafka: its fast path (the worker's processors in-process)
and the helpers that need no broker."""

from __future__ import annotations

import pytest

from memberstream import testing
from memberstream.config import Settings
from memberstream.schemas import LineItem, PurchaseEvent
from memberstream.schemas.codec import encode
from memberstream.testing import raw_records, run_offline, wait_processed


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


def test_raw_records_are_what_produce_would_send() -> None:
    settings = Settings(inference={"enabled": False})
    item = LineItem(
        product_id="p1", title="Kettle", category="home_kitchen", quantity=1, unit_price=80.0
    )
    event = PurchaseEvent(
        event_id="e1",
        member_id="m1",
        order_id="o1",
        occurred_at="2025-01-01T10:00:00Z",
        total=80.0,
        items=[item],
    )
    assert raw_records(settings, [event]) == [(settings.topics.purchases, b"m1", encode(event))]


class _StalledWorker:
    running = True

    def diagnosis(self) -> str:
        return "worker log: stuck in batch 7"


def test_wait_processed_fails_at_the_deadline_with_the_workers_diagnosis(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def never_caught_up(*_args: object) -> None:
        raise TimeoutError("lag 12 after 1 s")

    monkeypatch.setattr(testing, "wait_caught_up", never_caught_up)
    with pytest.raises(AssertionError, match=r"(?s)lag 12 after 1 s.*stuck in batch 7"):
        wait_processed(Settings(), _StalledWorker(), timeout_s=1)  # type: ignore[arg-type]
