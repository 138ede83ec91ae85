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
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import INTEREST_TIERS, TIERS
from memberstream.ml.inference import InferenceStage, stage_from_settings
from memberstream.schemas.codec import encode
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import read_json, topic_for, wait_caught_up
from memberstream.streams.worker_process import WorkerProcess

Raw = tuple[str, bytes | None, bytes | None]  # topic, key, value


def raw_records(settings: Settings, events: Iterable[Envelope]) -> list[Raw]:
    return [(topic_for(e, settings), e.member_id.encode(), encode(e)) for e in events]


async def _produce(settings: Settings, records: Sequence[Raw]) -> None:
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        futs = [await producer.send(t, v, key=k) for t, k, v in records]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


def produce(settings: Settings, records: Sequence[Raw]) -> None:
    asyncio.run(_produce(settings, records))


def wait_done(settings: Settings, worker: WorkerProcess, timeout_s: float = 180) -> None:
    def check(_lag: int) -> None:
        if not worker.running:
            raise AssertionError(f"worker died:\n{worker.log_tail()}")

    try:
        asyncio.run(
            wait_caught_up(
                settings,
                settings.app_id,
                settings.topics.consumed(),
                timeout_s,
                0.5,
                check,
            )
        )
    except TimeoutError as exc:  # a stall: show what the worker was doing
        raise TimeoutError(f"{exc}\n{worker.diagnosis()}") from exc


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
    interest_updates: dict[str, dict]  # output_id -> payload


def collect(settings: Settings) -> Outputs:
    topics = settings.topics
    updates: dict[str, dict] = {}
    raw_updates = asyncio.run(read_json(settings, topics.member_tiers))
    for u in raw_updates:
        seen = updates.setdefault(u["output_id"], u)
        assert seen == u, f"two different payloads share output_id {u['output_id']}"
    profiles: dict[str, dict] = {}
    for p in asyncio.run(read_json(settings, topics.member_profiles)):
        profiles[p["member_id"]] = p  # one partition per member: topic order is event order
    dlq = asyncio.run(read_json(settings, topics.dlq))
    interest: dict[str, dict] = {}
    for u in asyncio.run(read_json(settings, topics.member_interest_tiers)):
        seen = interest.setdefault(u["output_id"], u)
        assert seen == u, f"two different payloads share output_id {u['output_id']}"
    return Outputs(updates, len(raw_updates), profiles, dlq, interest)


_stages: dict[str, InferenceStage | None] = {}


def reference_stage(settings: Settings) -> InferenceStage | None:
    """The inference stage the worker would load for ``settings`` (loaded once per model)."""
    key = orjson.dumps(settings.inference.model_dump(mode="json")).decode()
    if key not in _stages:
        _stages[key] = stage_from_settings(settings)
    return _stages[key]


def expected(settings: Settings, events: Iterable[Envelope]) -> Outputs:
    """What a worker must produce for ``events`` (valid ones), computed without Kafka,
    applying each member's events in the order given."""
    run = OfflineRun(settings, reference_stage(settings))
    run.feed(events)
    updates = {u["output_id"]: u for u in run.outputs[TIERS]}
    interest = {u["output_id"]: u for u in run.outputs[INTEREST_TIERS]}
    return Outputs(updates, len(updates), run.profiles(), [], interest)


def in_hysteresis_zone(settings: Settings, share: float) -> bool:
    """True when ``share`` lies between some interest tier's leave and enter thresholds,
    where the tier held depends on the path the share took."""
    return any(band.leave <= share < band.enter for band in settings.interest.tiers)


def assert_same_profiles(settings: Settings, got: dict[str, dict], want: dict[str, dict]) -> None:
    """Profiles equal field for field, except interest tiers that sit in a hysteresis zone.

    Kafka orders a member's events within one topic, not across the click, purchase
    and review topics. Affinity, shares and the taste vector are sums and come out
    the same whatever the interleaving (compared exactly here, rounded as published);
    a tier inside a hysteresis band depends on whether the share crossed the band on
    the way, which the interleaving can change. Anything else that differs fails.
    """
    assert set(got) == set(want)
    for mid, w in want.items():
        g = got[mid]
        differ = {k: (g.get(k), w.get(k)) for k in set(g) | set(w) if k != "interests"}
        differ = {k: pair for k, pair in differ.items() if pair[0] != pair[1]}
        assert not differ, (mid, "got, want:", differ)
        gi = {i["category"]: i for i in g["interests"]}
        wi = {i["category"]: i for i in w["interests"]}
        for cid in set(gi) | set(wi):
            a, b = gi.get(cid), wi.get(cid)
            if a is not None and b is not None:
                assert a["share"] == b["share"], (mid, cid, a, b)
            if a != b:
                share = (a or b)["share"]  # type: ignore[index]
                assert in_hysteresis_zone(settings, share), (mid, cid, a, b)
