"""A kit for integration tests against memberstream, for downstream teams and for ours.

Installed with the package and registered as a pytest plugin (``pytest11`` entry
point ``memberstream``), so a downstream project's tests get these fixtures without
a conftest:

- ``kafka_bootstrap`` (session): a real Kafka. ``KAFKA_BOOTSTRAP_SERVERS`` when set;
  else testcontainers' Kafka module where a Docker engine answers; else the
  development broker (Apache Kafka on the JVM, jars fetched by Maven), started if
  needed. Never a mock; no test is skipped for want of Kafka: the fixture fails.
- ``memberstream_namespace``: settings with topics, consumer groups and a state
  directory of their own, topics created (deleted at the end of the session).
- ``memberstream_worker``: ``start(settings)`` runs ``memberstream worker`` in a
  subprocess, stopped at teardown.

Helpers (plain functions, usable without pytest):

- :func:`produce`: events to their topics, keyed by member.
- :func:`raw_records`: events as raw ``(topic, key, value)`` records, to mix with
  malformed or duplicated ones.
- :func:`produce_records`: raw records as they are, in order (idempotent producer).
- :func:`read_until`: records of a topic until a condition holds, failing at a
  deadline rather than passing on silence.
- :func:`wait_processed`: until the worker's group has committed everything.
- :func:`run_until_processed`: a worker started, run until it has processed
  everything, stopped.
- :func:`read_outputs`: the worker's outputs (:class:`Outputs`), failing when two
  different payloads share an ``output_id``.
- :func:`run_offline`: the same processors in-process, no Kafka: the fast path for
  logic tests.
- :func:`run_cli`: a ``memberstream`` command in a child process with given settings.
- :func:`topic_records`: a topic's ``(key, value)`` records, partition by partition in
  offset order (two topics compare record for record).

A downstream test in ten lines::

    from memberstream.schemas import LineItem, PurchaseEvent
    from memberstream.testing import produce, read_until

    def test_a_second_order_makes_a_member_silver(memberstream_namespace, memberstream_worker):
        s = memberstream_namespace
        memberstream_worker(s)
        item = LineItem(product_id="p1", title="Kettle", category="home_kitchen",
                        quantity=1, unit_price=80.0)
        produce(s, [PurchaseEvent(event_id=f"e{d}", member_id="m1", order_id=f"o{d}",
                                  occurred_at=f"2025-01-0{d}T10:00:00Z", total=80.0,
                                  items=[item]) for d in (1, 2)])
        update = read_until(s, s.topics.member_tiers, lambda r: r["member_id"] == "m1")
        assert update["tier"] == "silver"
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from memberstream.config import Settings, TopicNames
from memberstream.schemas.codec import encode
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import (
    connection,
    create_topics,
    delete_topics,
    produce_events,
    read_json,
    topic_for,
    wait_caught_up,
    wait_for_kafka,
)
from memberstream.streams.worker_process import WorkerProcess

__all__ = [
    "Namespace",
    "Outputs",
    "RawRecord",
    "kafka",
    "new_namespace",
    "produce",
    "produce_records",
    "raw_records",
    "read_outputs",
    "read_until",
    "run_cli",
    "run_offline",
    "run_until_processed",
    "topic_records",
    "wait_processed",
]

RawRecord = tuple[str, bytes | None, bytes | None]
"""A record as sent: topic, key, value (key and value as bytes, or None)."""


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def kafka() -> Iterator[str]:
    """Yield a bootstrap address of a real Kafka (see the module docstring for where from)."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        asyncio.run(wait_for_kafka(Settings(kafka_bootstrap_servers=env), 60))
        yield env
        return
    if _docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from memberstream.cli.devbroker import DevBroker
    from memberstream.config import BrokerSettings

    bootstrap = DevBroker(BrokerSettings()).start()
    asyncio.run(wait_for_kafka(Settings(kafka_bootstrap_servers=bootstrap), 60))
    yield bootstrap


class Namespace:
    """Creates namespaces of topics and remembers them, to delete them at the end."""

    PREFIX = "memberstream-test"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.created: list[Settings] = []

    def new(self, state_dir: Path, **overrides: Any) -> Settings:
        settings = new_namespace(self.bootstrap, state_dir, **overrides)
        self.created.append(settings)
        return settings

    def delete_all(self) -> None:
        for settings in self.created:
            asyncio.run(delete_topics(settings, _all_topics(settings)))
        self.created.clear()


def _all_topics(settings: Settings) -> list[str]:
    internal = ["members-changelog", "products-changelog", "__assignor-__leader"]
    return [*settings.topics.all(), *(f"{settings.app_id}-{t}" for t in internal)]


def new_namespace(bootstrap: str, state_dir: Path, **overrides: Any) -> Settings:
    """Settings whose topics, groups and state are this namespace's own; topics created.

    Three partitions, a 6 s session timeout (a killed worker's partitions move on
    quickly) and commits every 0.5 s; ``overrides`` are Settings fields.
    """
    run = uuid.uuid4().hex[:10]
    names = {k: f"{Namespace.PREFIX}.{run}.{v}" for k, v in TopicNames().model_dump().items()}
    fields: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "app_id": f"{Namespace.PREFIX}-{run}",
        "topics": TopicNames(**names),
        "data_dir": Path(state_dir) / f"state-{run}",
        "store": "memory://",
        "partitions": 3,
        "session_timeout_s": 6.0,
        **overrides,
    }
    settings = Settings(**fields)
    settings.batch.commit_interval_s = 0.5
    asyncio.run(create_topics(settings))
    return settings


def produce(settings: Settings, events: Iterable[Envelope]) -> int:
    """Send events to their topics, keyed by member; the number sent (all acknowledged)."""
    return asyncio.run(produce_events(settings, events)).sent


def raw_records(settings: Settings, events: Iterable[Envelope]) -> list[RawRecord]:
    """``events`` as the records :func:`produce` would send: their topic, the member id
    as key, the encoded event as value."""
    return [(topic_for(e, settings), e.member_id.encode(), encode(e)) for e in events]


def produce_records(settings: Settings, records: Sequence[RawRecord]) -> int:
    """Send raw records as they are, in order, with an idempotent producer (a retry
    never duplicates one); the number sent (all acknowledged)."""
    return asyncio.run(_produce_records(settings, records))


async def _produce_records(settings: Settings, records: Sequence[RawRecord]) -> int:
    from aiokafka import AIOKafkaProducer

    from memberstream.streams.kafka_io import _authorized, _start

    conn = connection(settings)
    producer = AIOKafkaProducer(**conn.client_kwargs(), acks="all", enable_idempotence=True)
    await _start(producer, conn)
    try:
        futs = [
            await _authorized(conn, f"write to topic {t} (WRITE)", producer.send(t, v, key=k))
            for t, k, v in records
        ]
        await _authorized(conn, "write (WRITE)", asyncio.gather(*futs))
    finally:
        await producer.stop()
    return len(futs)


def read_until(
    settings: Settings,
    topic: str,
    condition: Callable[[dict], bool],
    timeout_s: float = 60.0,
) -> dict:
    """The first JSON record of ``topic`` (from the beginning) for which ``condition``
    holds; AssertionError when none has come within ``timeout_s``."""
    return asyncio.run(_read_until(settings, topic, condition, timeout_s))


async def _read_until(
    settings: Settings, topic: str, condition: Callable[[dict], bool], timeout_s: float
) -> dict:
    from aiokafka import AIOKafkaConsumer

    from memberstream.streams.kafka_io import _partitions_of, _start

    conn = connection(settings)
    consumer = AIOKafkaConsumer(**conn.client_kwargs(), enable_auto_commit=False)
    await _start(consumer, conn)
    seen = 0
    try:
        tps = await _partitions_of(consumer, topic, conn)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    seen += 1
                    value = orjson.loads(rec.value) if rec.value else None
                    if isinstance(value, dict) and condition(value):
                        return value
    finally:
        await consumer.stop()
    raise AssertionError(
        f"no record on {topic} met the condition within {timeout_s:g} s ({seen} records read)"
    )


def wait_processed(settings: Settings, worker: WorkerProcess, timeout_s: float = 120.0) -> None:
    """Until the worker's group has committed every record of the topics it consumes;
    fails at the deadline (with the worker's log) or when the worker dies."""

    def check(_lag: int) -> None:
        if not worker.running:
            raise AssertionError(f"worker died:\n{worker.log_tail()}")

    try:
        asyncio.run(
            wait_caught_up(
                settings, settings.app_id, settings.topics.consumed(), timeout_s, 0.5, check
            )
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{worker.diagnosis()}") from exc


def run_until_processed(settings: Settings, log_path: Path, timeout_s: float = 180.0) -> None:
    """Start a worker (its output to ``log_path``), wait until it has processed every
    record of its topics (:func:`wait_processed`), and stop it."""
    worker = WorkerProcess(settings, log_path).start()
    try:
        wait_processed(settings, worker, timeout_s)
    finally:
        worker.stop()


@dataclass
class Outputs:
    """What a worker has published, keyed the way tests compare it."""

    tier_updates: dict[str, dict]
    """Tier changes by ``output_id``."""
    tier_update_records: int
    """Records on the tier topic, re-emits included."""
    profiles: dict[str, dict]
    """The latest profile of each member, by ``member_id``."""
    dead_letters: list[dict]
    """The dead-letter topic's records, in topic order."""
    interest_updates: dict[str, dict]
    """Interest tier changes by ``output_id``."""


def read_outputs(settings: Settings) -> Outputs:
    """Everything now on the output topics of ``settings``; AssertionError when two
    different payloads share an ``output_id`` (a re-emit must repeat the first)."""
    topics = settings.topics
    raw_updates = asyncio.run(read_json(settings, topics.member_tiers))
    profiles: dict[str, dict] = {}
    for p in asyncio.run(read_json(settings, topics.member_profiles)):
        profiles[p["member_id"]] = p  # one partition per member: topic order is event order
    return Outputs(
        tier_updates=_by_output_id(raw_updates),
        tier_update_records=len(raw_updates),
        profiles=profiles,
        dead_letters=asyncio.run(read_json(settings, topics.dlq)),
        interest_updates=_by_output_id(
            asyncio.run(read_json(settings, topics.member_interest_tiers))
        ),
    )


def _by_output_id(records: Iterable[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for r in records:
        if out.setdefault(r["output_id"], r) != r:  # raised, not asserted: kept under -O
            raise AssertionError(f"two different payloads share output_id {r['output_id']}")
    return out


def run_offline(settings: Settings, events: Iterable[Envelope], with_model: bool = True) -> Any:
    """The worker's processors on ``events`` in-process, no Kafka; the
    :class:`~memberstream.core.offline.OfflineRun` with its outputs by topic role."""
    from memberstream.core.offline import OfflineRun
    from memberstream.ml.inference import stage_from_settings

    stage = stage_from_settings(settings) if with_model else None
    run = OfflineRun(settings, stage)
    run.feed(events)
    return run


def run_cli(
    settings: Settings, *args: str, env: dict[str, str] | None = None, timeout_s: float = 300.0
) -> subprocess.CompletedProcess[str]:
    """``memberstream <args>`` in a child process with ``settings`` (as environment
    variables, with ``env`` on top); its exit code and output."""
    import sys

    from memberstream.streams.worker_process import settings_env

    child = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERSTREAM_")}
    child |= settings_env(settings) | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "memberstream", *args],
        env=child,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def topic_records(settings: Settings, topic: str) -> list[tuple[bytes, bytes]]:
    """Every ``(key, value)`` record now in ``topic``, partition by partition in offset
    order: the same records produced in the same order compare equal."""
    from memberstream.streams.kafka_io import iter_topic

    async def read() -> list[tuple[int, int, bytes, bytes]]:
        return [
            (p, o, k or b"", v or b"")
            async for k, v, p, o in iter_topic(settings, topic, idle_timeout_s=3.0, to_end=True)
        ]

    return [(k, v) for _, _, k, v in sorted(asyncio.run(read()))]
