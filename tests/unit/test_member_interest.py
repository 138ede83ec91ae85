"""Interest through the member processor: which texts each event contributes, the
InterestTierUpdate it emits, the profile fields, and event-time replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from memberstream.config import Settings
from memberstream.core.member.processor import MemberProcessor
from memberstream.core.member_state import MemberState
from memberstream.core.roles import INTEREST_TIERS
from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.inference import InferenceStage
from memberstream.schemas.events import ClickEvent, Envelope, LineItem, PurchaseEvent, ReviewEvent
from memberstream.schemas.outputs import InterestTierUpdate, MemberProfile

from .text_doubles import WordHashEncoder

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def click(i: int, day: float, category: str | None, title: str, action: str = "view") -> ClickEvent:
    return ClickEvent(
        event_id=f"c{i}",
        member_id="m1",
        occurred_at=T0 + timedelta(days=day),
        action=action,  # type: ignore[arg-type]
        product_id=f"p-{title}",
        category=category,
        title=title,
    )


def purchase(i: int, day: float, category: str, title: str, status: str = "paid") -> PurchaseEvent:
    return PurchaseEvent(
        event_id=f"o{i}",
        member_id="m1",
        occurred_at=T0 + timedelta(days=day),
        order_id=f"order{i}",
        items=[
            LineItem(
                product_id=f"p-{title}", title=title, category=category, quantity=1, unit_price=30.0
            )
        ],
        total=30.0,
        status=status,  # type: ignore[arg-type]
    )


def shift_stream() -> list[Envelope]:
    """Three weeks of books, then six weeks of electronics."""
    events: list[Envelope] = []
    for d in range(21):
        events.append(click(d, d, "books", f"mystery novel volume {d}"))
        if d % 5 == 0:
            events.append(purchase(d, d + 0.5, "books", f"poetry anthology {d}"))
    for d in range(21, 63):
        events.append(click(d, d, "electronics", f"bluetooth speaker model {d}"))
        if d % 5 == 0:
            events.append(purchase(d, d + 0.5, "electronics", f"usb charger {d}"))
    return events


@pytest.fixture
def stage() -> InferenceStage:
    return InferenceStage(WordHashEncoder(), Taxonomy.load())


def run(
    processor: MemberProcessor,
    stage: InferenceStage,
    events: list[Envelope],
    roundtrip: bool = False,
):  # type: ignore[no-untyped-def]
    state: MemberState | None = None
    emits = []
    for e in events:
        scores = stage.score_now(processor.texts(e))
        applied = processor.apply(state, e, scores)
        emits.extend(applied.emits)
        state = applied.state
        if roundtrip:  # as if the worker restarted from the table after every event
            state = processor.load(state.to_bytes())
    return state, emits


def test_texts_each_event_contributes() -> None:
    p = MemberProcessor(Settings())
    search = ClickEvent(
        event_id="s", member_id="m1", occurred_at=T0, action="search", query="running shoes"
    )
    [item] = p.interest_items(search)
    assert (item.text, item.category, item.weight) == ("running shoes", None, 0.5)
    [item] = p.interest_items(click(1, 0, "books", "atlas", action="add_to_cart"))
    assert (item.text, item.category, item.product_id, item.weight) == (
        "atlas",
        "books",
        "p-atlas",
        2.0,
    )
    assert p.interest_items(purchase(1, 0, "books", "atlas", status="refunded")) == []
    [item] = p.interest_items(purchase(2, 0, "books", "atlas"))
    assert (item.text, item.category, item.weight) == ("atlas", "books", 5.0)
    review = ReviewEvent(
        event_id="r",
        member_id="m1",
        occurred_at=T0,
        product_id="p",
        rating=5,
        title="Great",
        text="Loved it",
    )
    [item] = p.interest_items(review)
    assert (item.text, item.category, item.weight) == ("Great\nLoved it", None, 3.0)
    with pytest.raises(ValueError, match="2 scores for 1 texts"):
        p.apply(None, review, [object(), object()])  # type: ignore[list-item]


def test_a_shift_of_interest_emits_tier_updates_naming_model_and_cause(
    stage: InferenceStage,
) -> None:
    p = MemberProcessor(Settings(), None, stage.model_version)
    state, emits = run(p, stage, shift_stream())
    updates = [
        InterestTierUpdate.model_validate(e.payload) for e in emits if e.role == INTEREST_TIERS
    ]
    assert updates, "a shift of interest must change tiers"
    first = updates[0]
    assert first.tiers[0].category == "books" and first.tiers[0].tier == "core"
    assert first.cause_event_id == "c0" and first.cause_event_type == "click"
    assert all(u.model_version == stage.model_version for u in updates)
    moves = [(m.category, m.direction, m.tier) for u in updates for m in u.changes]
    assert ("electronics", "added", "casual") in moves or (
        "electronics",
        "added",
        "active",
    ) in moves
    assert any(c == "electronics" and t == "core" for c, _, t in moves)
    assert any(c == "books" and d == "demoted" for c, d, _ in moves)
    assert updates[-1].tiers[0].category == "electronics" and updates[-1].tiers[0].tier == "core"
    profile = MemberProfile.model_validate(p.profile(state).payload)
    assert profile.interests[0].category == "electronics" and profile.interests[0].tier == "core"
    assert profile.model_version == stage.model_version
    assert profile.taste is not None and len(profile.taste) == 16
    assert sum(x * x for x in profile.taste) == pytest.approx(1.0, abs=1e-3)


def test_a_duplicate_changes_no_interest_and_emits_nothing(stage: InferenceStage) -> None:
    p = MemberProcessor(Settings(), None, stage.model_version)
    events = shift_stream()
    state, emits = run(p, stage, events)
    update = next(e for e in emits if e.role == INTEREST_TIERS)
    cause = next(e for e in events if e.event_id == update.payload["cause_event_id"])
    before = state.to_bytes()
    again = p.apply(state, cause, stage.score_now(p.texts(cause)))
    assert again.duplicate and again.emits == []
    assert again.state.to_bytes() == before


def test_replay_gives_identical_tiers_and_profile(stage: InferenceStage) -> None:
    """Decay is event time: a replay later, with a cold cache, different batches and
    state reloaded from bytes after every event gives the same bytes out."""
    p = MemberProcessor(Settings(), None, stage.model_version)
    events = shift_stream()
    state, emits = run(p, stage, events)
    cold = InferenceStage(WordHashEncoder(), Taxonomy.load(), cache_size=0)
    for e in events[:7]:  # some texts scored in a batch of others first
        cold.score_now([*p.texts(e), *p.texts(events[-1])])
    state2, emits2 = run(p, cold, events, roundtrip=True)
    assert orjson.dumps([e.payload for e in emits]) == orjson.dumps([e.payload for e in emits2])
    assert orjson.dumps(p.profile(state).payload) == orjson.dumps(p.profile(state2).payload)


def test_without_a_text_model_interest_comes_from_catalog_categories() -> None:
    p = MemberProcessor(Settings())
    state, emits = run_plain(p, shift_stream())
    profile = p.profile(state).payload
    assert profile["interests"][0] == {
        "category": "electronics",
        "tier": "core",
        "share": pytest.approx(profile["interests"][0]["share"]),
    }
    assert profile["taste_f16"] is None and profile["model_version"] is None
    updates = [e.payload for e in emits if e.role == INTEREST_TIERS]
    assert updates and {u["model_version"] for u in updates} == {"categories-only"}


def run_plain(processor: MemberProcessor, events: list[Envelope]):  # type: ignore[no-untyped-def]
    state = None
    emits = []
    for e in events:
        applied = processor.apply(state, e)
        state = applied.state
        emits.extend(applied.emits)
    return state, emits
