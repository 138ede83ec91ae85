"""The decoded-state cache: a state is served only while the store holds its bytes, and
a batcher with the cache produces exactly what one without it produces."""

from __future__ import annotations

import asyncio
import itertools
import zlib

import orjson

from memberstream.config import Settings
from memberstream.core.in_memory import DictStore, MemoryItem, MemoryRecord
from memberstream.core.ingest import IngestBatcher
from memberstream.core.member.processor import MemberProcessor
from memberstream.core.roles import Emit
from memberstream.core.state_cache import StateCache
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.schemas.codec import DecodeFailure, encode
from memberstream.schemas.events import ClickEvent, Feedback, PurchaseEvent, ReviewEvent


def test_hit_only_while_the_store_holds_the_cached_bytes() -> None:
    cache: StateCache[str] = StateCache(100)
    cache.put(b"k", b"v1", "state-1")
    assert cache.get(b"k", b"v1") == "state-1"
    assert cache.get(b"k", b"v2") is None  # the store changed behind the cache
    assert cache.get(b"other", b"v1") is None
    cache.drop(b"k")
    assert cache.get(b"k", b"v1") is None
    assert (cache.hits, cache.misses) == (1, 3)


def test_least_recently_used_entries_go_first_to_stay_within_the_stored_bytes() -> None:
    cache: StateCache[int] = StateCache(10)
    cache.put(b"a", b"1111", 1)
    cache.put(b"b", b"2222", 2)
    assert cache.get(b"a", b"1111") == 1  # "a" is now the most recent
    cache.put(b"c", b"333", 3)  # 11 bytes: "b" goes
    assert cache.get(b"b", b"2222") is None
    assert cache.get(b"a", b"1111") == 1 and cache.get(b"c", b"333") == 3
    assert len(cache) == 2 and cache.stored_bytes == 7
    cache.put(b"a", b"11", 1)  # rewritten smaller: counted once, at its new size
    assert cache.stored_bytes == 5
    cache.put(b"big", b"x" * 11, 9)  # larger than the whole cache: not kept
    assert cache.get(b"big", b"x" * 11) is None and cache.stored_bytes == 5
    cache.drop(b"c")
    assert cache.stored_bytes == 2


def test_capacity_zero_caches_nothing() -> None:
    cache: StateCache[int] = StateCache(0)
    cache.put(b"a", b"1", 1)
    assert cache.get(b"a", b"1") is None and len(cache) == 0


# --- the batcher with and without the cache ----------------------------------------------------


class RecordingSink:
    def __init__(self) -> None:
        self.outputs: list[tuple[str, str, bytes]] = []
        self.letters: list[tuple[int, str]] = []

    async def emit(self, emit: Emit) -> None:
        self.outputs.append((emit.role.value, emit.key, orjson.dumps(emit.payload)))

    async def dead_letter(self, message: MemoryRecord, failure: DecodeFailure) -> None:
        self.letters.append((message.offset, failure.error_type))

    async def drain(self) -> None:
        return None


def _records(settings: Settings, n: int) -> list[MemoryItem]:
    topics = {
        "click": settings.topics.clicks,
        "purchase": settings.topics.purchases,
        "review": settings.topics.reviews,
    }
    workload = SyntheticWorkload(WorkloadConfig(seed=3, members=60, days=30.0))
    offsets: dict[tuple[str, int], int] = {}
    items = []
    for event in itertools.islice(workload.events(), n):
        topic = topics[event.type]
        partition = zlib.crc32(event.member_id.encode()) % 4
        offset = offsets.get((topic, partition), 0)
        offsets[topic, partition] = offset + 1
        key = event.member_id.encode()
        items.append(MemoryItem(MemoryRecord(topic, partition, offset, key, encode(event))))
    return items


def _run(settings: Settings, items: list[MemoryItem], cache: int, batch: int = 50) -> tuple:
    types = {
        settings.topics.clicks: ClickEvent,
        settings.topics.purchases: PurchaseEvent,
        settings.topics.reviews: ReviewEvent,
        settings.topics.feedback: Feedback,
    }
    store, sink = DictStore(), RecordingSink()
    batcher = IngestBatcher(store, MemberProcessor(settings), sink, types, state_cache_bytes=cache)

    async def drive() -> None:
        for start in range(0, len(items), batch):
            await batcher.process(items[start : start + batch])

    asyncio.run(drive())
    return sink.outputs, sink.letters, dict(store), batcher.states


def test_cached_states_give_the_same_outputs_and_state_as_decoding_every_batch() -> None:
    settings = Settings()
    items = _records(settings, 3000)
    outputs, letters, state, _ = _run(settings, items, cache=0)
    cached_outputs, cached_letters, cached_state, states = _run(settings, items, cache=2**24)
    assert states.hits > 200  # the cache was used, not bypassed
    assert len(outputs) > 300
    assert cached_outputs == outputs
    assert cached_letters == letters
    assert cached_state == state


def test_an_event_that_fails_half_way_leaves_no_half_applied_state_in_the_cache(
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    """An event whose processing raises goes to the DLQ and the member's state stays as
    it was; the cache must not keep the half-updated object for the next batch."""
    settings = Settings()
    items = _records(settings, 1500)
    reference = _run(settings, items, cache=0)

    def member_seen_before_and_after(at: int) -> bool:
        """In earlier batches (so the state comes from the cache), not earlier in its
        own batch (so nothing else rolls it back), and again later."""
        key, batch_start = items[at].message.key, at - at % 50
        before = any(i.message.key == key for i in items[:batch_start])
        first_in_batch = all(i.message.key != key for i in items[batch_start:at])
        later = any(i.message.key == key for i in items[at + 1 :])
        return before and first_in_batch and later

    target = next(
        items[at]
        for at in range(200, len(items))
        if items[at].message.topic == settings.topics.purchases and member_seen_before_and_after(at)
    )
    original = MemberProcessor.apply
    calls = {"n": 0}

    def failing(self, state, event, scores=None, at=None):  # type: ignore[no-untyped-def]
        here = target.message
        if at is not None and (at.topic, at.partition, at.offset) == (
            here.topic,
            here.partition,
            here.offset,
        ):
            original(self, state, event, scores, at)  # changes the state, then
            calls["n"] += 1
            raise RuntimeError("failed after changing the state")  # fails
        return original(self, state, event, scores, at)

    monkeypatch.setattr(MemberProcessor, "apply", failing)
    for cache in (0, 2**24):
        outputs, letters, state, _ = _run(settings, items, cache=cache)
        assert (target.message.offset, "processing") in letters
        if cache == 0:
            expected = (outputs, state)
        else:
            assert (outputs, state) == expected
    assert calls["n"] == 2
    assert reference[0] != expected[0]  # the failure changed something, the test has teeth
