"""The ingest agent under faust's ``test_context``: no broker, in-memory table,
outputs captured by an in-memory sink."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from faust.types import Message

from memberstream.config import Settings
from memberstream.core.roles import Emit
from memberstream.schemas.codec import DecodeFailure, encode
from memberstream.schemas.events import LineItem, PurchaseEvent
from memberstream.streams.app import build_app
from memberstream.streams.outputs import OutputSink, dead_letter_of


class MemorySink(OutputSink):
    """Records what the agent would produce."""

    def __init__(self, app, settings: Settings) -> None:  # type: ignore[no-untyped-def]
        super().__init__(app, settings)
        self.emits: list[Emit] = []
        self.letters: list[dict] = []

    async def emit(self, emit: Emit) -> None:
        self.emits.append(emit)

    async def dead_letter(self, message: Message, failure: DecodeFailure) -> None:
        letter = dead_letter_of(message, failure, self.letters_settings)
        self.letters.append(letter.model_dump(mode="json"))


T0 = datetime(2024, 3, 1, tzinfo=UTC)


def purchase(i: int, member: str, amount: float, days: float) -> PurchaseEvent:
    return PurchaseEvent(
        event_id=f"e{i}",
        member_id=member,
        occurred_at=T0 + timedelta(days=days),
        order_id=f"o{i}",
        items=[
            LineItem(
                product_id="p1",
                title="Tent",
                category="sports_outdoors",
                quantity=1,
                unit_price=amount,
            )
        ],
        total=amount,
    )


@pytest.fixture(params=["memory://", "rocksdb://"])
def app_and_sink(request, tmp_path):  # type: ignore[no-untyped-def]
    sinks: list[MemorySink] = []

    def factory(app, settings):  # type: ignore[no-untyped-def]
        sinks.append(MemorySink(app, settings))
        return sinks[-1]

    settings = Settings(store=request.param, app_id="agent-test", data_dir=tmp_path)
    settings.batch.max_wait_s = 0.01
    app = build_app(settings, sink_factory=factory, follow_model_updates=False)
    app.finalize()
    app.flow_control.resume()
    return app, settings, sinks


async def _put(agent, topic: str, key: bytes, value: bytes, offset: int) -> None:  # type: ignore[no-untyped-def]
    channel = agent.stream().channel
    message = agent.to_message(key, value, offset=offset)
    message.topic = topic
    await channel.put(await channel.decode(message))


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "agent did not get there in time"
        await asyncio.sleep(0.01)


async def test_agent_updates_tiers_profiles_and_table(app_and_sink) -> None:  # type: ignore[no-untyped-def]
    app, settings, sinks = app_and_sink
    agent = app.agents["ingest"]
    async with agent.test_context() as ctx:
        events = [purchase(i, "m1", 90.0, i) for i in range(4)]
        for i, ev in enumerate(events):
            await _put(ctx, settings.topics.purchases, b"m1", encode(ev), i)
        await _until(lambda: app.memberstream_progress.records >= 4)
        sink = sinks[-1]
        tiers = [e.payload for e in sink.emits if e.role == "member_tiers"]
        assert [(u["previous_tier"], u["tier"]) for u in tiers] == [
            ("bronze", "silver"),
            ("silver", "gold"),
        ]
        assert tiers[1]["cause_event_id"] == "e3"
        profiles = [e.payload for e in sink.emits if e.role == "member_profiles"]
        assert profiles[-1]["events"] == 4 and profiles[-1]["tier"] == "gold"
        table = app.memberstream_tables["members"]
        assert table[b"m1"] is not None  # state written back for the member


async def test_agent_dead_letters_bad_records_and_ignores_duplicates(app_and_sink) -> None:  # type: ignore[no-untyped-def]
    app, settings, sinks = app_and_sink
    agent = app.agents["ingest"]
    async with agent.test_context() as ctx:
        ev = purchase(1, "m2", 50.0, 0)
        await _put(ctx, settings.topics.purchases, b"m2", encode(ev), 0)
        await _put(ctx, settings.topics.purchases, b"m2", b"{not json", 1)
        await _put(ctx, settings.topics.purchases, b"m2", encode(ev), 2)  # duplicate
        await _put(ctx, settings.topics.clicks, b"m2", encode(ev), 3)  # purchase on clicks
        await _until(lambda: app.memberstream_progress.records >= 4)
        sink = sinks[-1]
        assert [d["offset"] for d in sink.letters] == [1, 3]
        assert "invalid JSON" in sink.letters[0]["reason"]
        assert sink.letters[0]["value_b64"] == "e25vdCBqc29u"  # the raw bytes, base64
        assert app.memberstream_progress.duplicates == 1
        profiles = [e.payload for e in sink.emits if e.role == "member_profiles"]
        assert profiles[-1]["events"] == 1 and profiles[-1]["orders"] == 1


async def test_state_survives_between_batches(app_and_sink) -> None:  # type: ignore[no-untyped-def]
    """Each event in its own batch: state is read back from the table store every time."""
    app, settings, sinks = app_and_sink
    agent = app.agents["ingest"]
    async with agent.test_context() as ctx:
        for i in range(4):
            ev = purchase(i, "m3", 90.0, i)
            await _put(ctx, settings.topics.purchases, b"m3", encode(ev), i)
            await _until(lambda n=i: app.memberstream_progress.batches >= n + 1)
        sink = sinks[-1]
        assert sink.letters == []
        assert app.memberstream_progress.batches == 4
        profiles = [e.payload for e in sink.emits if e.role == "member_profiles"]
        assert [p["events"] for p in profiles] == [1, 2, 3, 4]
        assert profiles[-1]["tier"] == "gold"
        assert isinstance(app.memberstream_tables["members"].get(b"m3"), bytes)


async def test_a_failing_event_goes_to_dlq_and_the_member_state_rolls_back(
    app_and_sink, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """A bug hit by one event (here: apply raising half-way) costs that event only."""
    from memberstream.core.member.processor import MemberProcessor

    original = MemberProcessor.apply

    def apply(self, state, event, scores=None, at=None):  # type: ignore[no-untyped-def]
        if event.event_id == "e1":
            state.counts.orders += 100  # a half-done change that must not survive
            raise RuntimeError("boom")
        return original(self, state, event, scores, at)

    monkeypatch.setattr(MemberProcessor, "apply", apply)
    app, settings, sinks = app_and_sink
    agent = app.agents["ingest"]
    async with agent.test_context() as ctx:
        for i in range(3):  # one batch: e0, e1 (fails), e2 for the same member
            await _put(ctx, settings.topics.purchases, b"m4", encode(purchase(i, "m4", 60, i)), i)
        await _until(lambda: app.memberstream_progress.records >= 3)
        sink = sinks[-1]
        assert [(d["offset"], d["error_type"]) for d in sink.letters] == [(1, "processing")]
        assert "RuntimeError: boom" in sink.letters[0]["reason"]
        profile = [e.payload for e in sink.emits if e.role == "member_profiles"][-1]
        assert profile["orders"] == 2 and profile["events"] == 2
