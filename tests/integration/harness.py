"""Helpers for integration tests: produce, run a worker to completion, collect outputs,
and compute the expected outputs in-process with the same processor code."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from memberstream.config import Settings
from memberstream.schemas.codec import encode
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import read_json, topic_for, wait_caught_up
from memberstream.streams.member_processor import PROFILES, TIERS, MemberProcessor
from memberstream.streams.member_state import MemberState
from memberstream.streams.worker_process import WorkerProcess

Raw = tuple[str, bytes | None, bytes | None]  # topic, key, value


def raw_records(settings: Settings, events: Iterable[Envelope]) -> list[Raw]:
    return [(topic_for(e, settings), e.member_id.encode(), encode(e)) for e in events]


async def _produce(bootstrap: str, records: Sequence[Raw]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futs = [await producer.send(t, v, key=k) for t, k, v in records]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


def produce(settings: Settings, records: Sequence[Raw]) -> None:
    asyncio.run(_produce(settings.kafka_bootstrap_servers, records))


def wait_done(settings: Settings, worker: WorkerProcess, timeout_s: float = 180) -> None:
    def check(_lag: int) -> None:
        if not worker.running:
            raise AssertionError(f"worker died:\n{worker.log_tail()}")

    asyncio.run(
        wait_caught_up(
            settings.kafka_bootstrap_servers,
            settings.app_id,
            settings.topics.inputs(),
            timeout_s,
            0.5,
            check,
        )
    )


def run_to_completion(settings: Settings, log: Path, timeout_s: float = 180) -> None:
    worker = WorkerProcess(settings, log).start()
    try:
        wait_done(settings, worker, timeout_s)
    finally:
        worker.stop()


@dataclass
class Outputs:
    tier_updates: dict[str, dict]  # output_id -> payload
    tier_update_records: int
    profiles: dict[str, dict]  # member_id -> latest profile
    dead_letters: list[dict]


def collect(settings: Settings) -> Outputs:
    bootstrap, topics = settings.kafka_bootstrap_servers, settings.topics
    updates: dict[str, dict] = {}
    raw_updates = asyncio.run(read_json(bootstrap, topics.member_tiers))
    for u in raw_updates:
        seen = updates.setdefault(u["output_id"], u)
        assert seen == u, f"two different payloads share output_id {u['output_id']}"
    profiles: dict[str, dict] = {}
    for p in asyncio.run(read_json(bootstrap, topics.member_profiles)):
        profiles[p["member_id"]] = p  # one partition per member: topic order is event order
    dlq = asyncio.run(read_json(bootstrap, topics.dlq))
    return Outputs(updates, len(raw_updates), profiles, dlq)


def expected(settings: Settings, events: Iterable[Envelope]) -> Outputs:
    """What a worker must produce for ``events`` (valid ones), computed without Kafka."""
    processor = MemberProcessor(settings)
    states: dict[str, MemberState] = {}
    updates: dict[str, dict] = {}
    for event in events:
        applied = processor.apply(states.get(event.member_id), event)
        states[event.member_id] = applied.state
        for emit in applied.emits:
            assert emit.role == TIERS
            updates[emit.payload["output_id"]] = emit.payload
    profiles = {}
    for mid, state in states.items():
        emit = processor.profile(state)
        assert emit.role == PROFILES
        profiles[mid] = orjson.loads(orjson.dumps(emit.payload))
    return Outputs(updates, len(updates), profiles, [])
