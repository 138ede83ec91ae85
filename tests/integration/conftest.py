"""A real Kafka for integration tests, and a fresh namespace of topics per test, from the
testing kit that ships with the package (:mod:`memberstream.testing`, also a pytest
plugin for downstream projects).

Where the broker comes from, first that applies:
1. ``KAFKA_BOOTSTRAP_SERVERS`` (any Kafka you point at);
2. a Docker engine: testcontainers' Kafka module (KRaft);
3. the development broker (``memberstream broker``), started if needed.
No integration test is skipped for want of Kafka: the fixture fails instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from memberstream.config import Settings
from memberstream.testing import Namespace, kafka, new_namespace

pytestmark = pytest.mark.integration


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
    for bootstrap in kafka():
        yield bootstrap
        asyncio.run(_delete_test_topics(bootstrap))


@pytest.fixture
def namespace(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings with topics and a consumer group of their own, topics created."""
    return make_namespace(kafka_bootstrap, tmp_path)


def make_namespace(bootstrap: str, tmp_path: Path, **overrides: object) -> Settings:
    """The kit's namespace (three partitions, a 6 s session timeout, commits every
    0.5 s), remembered so the session deletes its topics."""
    settings = new_namespace(bootstrap, tmp_path, **overrides)
    run = settings.app_id.removeprefix(f"{Namespace.PREFIX}-")
    _CREATED.extend([f"{Namespace.PREFIX}.{run}.", f"{Namespace.PREFIX}-{run}-"])
    return settings
