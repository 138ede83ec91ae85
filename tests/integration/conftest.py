"""A real Kafka for integration tests, and a fresh namespace of topics per test.

Where the broker comes from, first that applies:
1. ``KAFKA_BOOTSTRAP_SERVERS`` (any Kafka you point at);
2. a Docker engine: testcontainers' Kafka module (KRaft);
3. the development broker (``memberstream broker``), started if needed.
No integration test is skipped for want of Kafka: the fixture fails instead.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from memberstream.config import Settings, TopicNames
from memberstream.streams.kafka_io import create_topics, wait_for_kafka

pytestmark = pytest.mark.integration


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


async def _delete_test_topics(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    # the security settings (MEMBERSTREAM_KAFKA__*) come from the environment
    admin = AIOKafkaAdminClient(**Settings(kafka_bootstrap_servers=bootstrap).kafka_client_kwargs())
    await admin.start()
    try:
        ours = [t for t in await admin.list_topics() if t.startswith(tuple(_CREATED))]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


_CREATED: list[str] = []  # name prefixes of the namespaces this session made


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    for bootstrap in _kafka():
        yield bootstrap
        asyncio.run(_delete_test_topics(bootstrap))


def _kafka() -> Iterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        asyncio.run(wait_for_kafka(Settings(kafka_bootstrap_servers=env), 60))
        yield env
        return
    if _docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from memberstream.cli.devbroker import DevBroker
    from memberstream.config import BrokerSettings

    bootstrap = DevBroker(BrokerSettings()).start()
    asyncio.run(wait_for_kafka(Settings(kafka_bootstrap_servers=bootstrap), 60))
    yield bootstrap


@pytest.fixture
def namespace(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings with topics and a consumer group of their own, topics created."""
    return make_namespace(kafka_bootstrap, tmp_path)


def make_namespace(bootstrap: str, tmp_path: Path, **overrides: object) -> Settings:
    run = uuid.uuid4().hex[:10]
    _CREATED.extend([f"memberstream-test.{run}.", f"memberstream-test-{run}-"])
    names = {k: f"memberstream-test.{run}.{v}" for k, v in TopicNames().model_dump().items()}
    fields: dict[str, object] = {
        "kafka_bootstrap_servers": bootstrap,
        "app_id": f"memberstream-test-{run}",
        "topics": TopicNames(**names),
        "data_dir": tmp_path / f"state-{run}",
        "store": "memory://",
        "partitions": 3,
        "session_timeout_s": 6.0,  # a killed worker's partitions move on quickly
        **overrides,
    }
    settings = Settings(**fields)  # type: ignore[arg-type]
    settings.batch.commit_interval_s = 0.5
    asyncio.run(create_topics(settings))
    return settings
