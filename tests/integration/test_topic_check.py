"""Start-up checks against a real Kafka: `topics check`, and a worker that refuses to
start when a topic is missing or has the wrong partition count (it never lets the
broker create a topic)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from click.testing import CliRunner, Result

from memberstream.cli.main import cli
from memberstream.config import CONFIG_ENV, Settings
from memberstream.streams.worker_process import settings_env

pytestmark = pytest.mark.integration


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERSTREAM_")}
    env.update(settings_env(settings))
    env.pop(CONFIG_ENV, None)
    return env


def check(settings: Settings) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MEMBERSTREAM_")}
    env.update(settings_env(settings))
    return CliRunner().invoke(cli, ["topics", "check"], env=env, catch_exceptions=False)


def start_worker(settings: Settings) -> subprocess.CompletedProcess[str]:
    """Run `memberstream worker`; it must exit on its own well within 30 s."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "memberstream", "worker"],
        env=_env(settings),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert time.monotonic() - started < 30
    return proc


async def _topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await admin.list_topics()
    finally:
        await admin.close()


async def _delete(bootstrap: str, name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name])
        deadline = time.monotonic() + 15
        while name in await admin.list_topics():
            assert time.monotonic() < deadline, f"{name} still listed after delete"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _create(bootstrap: str, name: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


def test_topics_check_all_fine(namespace: Settings) -> None:
    result = check(namespace)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 12
    assert all(line.startswith("ok ") for line in lines), lines
    assert f"ok       {namespace.topics.member_profiles} (output, compacted; 3 partitions, " in (
        result.stdout
    )
    assert "retention.ms=-1" in result.stdout


def test_worker_refuses_to_start_when_a_topic_is_missing(namespace: Settings) -> None:
    bootstrap = namespace.kafka_bootstrap_servers
    missing = namespace.topics.product_reviews
    asyncio.run(_delete(bootstrap, missing))

    proc = start_worker(namespace)
    assert proc.returncode == 79, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"error: 1 of 12 topics are missing or not as configured:\n  {missing}: missing" in (
        proc.stderr
    )
    assert "hint: `memberstream topics create` creates the missing topics" in proc.stderr
    assert missing not in asyncio.run(_topics(bootstrap))  # nothing created it

    result = check(namespace)
    assert result.exit_code == 79
    assert f"missing  {missing} (internal)" in result.stdout
    assert "(see above)" in result.stderr


def test_worker_refuses_to_start_on_a_wrong_partition_count(namespace: Settings) -> None:
    bootstrap = namespace.kafka_bootstrap_servers
    clicks = f"{namespace.topics.clicks}.one-partition"
    asyncio.run(_create(bootstrap, clicks, 1))
    settings = namespace.model_copy(
        update={"topics": namespace.topics.model_copy(update={"clicks": clicks})}
    )

    proc = start_worker(settings)
    assert proc.returncode == 79, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"  {clicks}: 1 partitions, the settings say 3" in proc.stderr
    assert f"--delete --topic {clicks}" in proc.stderr

    result = check(settings)
    assert result.exit_code == 79
    assert f"wrong    {clicks} (input; 1 partitions, cleanup.policy=delete)" in result.stdout


def test_consume_of_a_missing_topic_is_a_clear_error(namespace: Settings) -> None:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MEMBERSTREAM_")}
    env.update(settings_env(namespace))
    missing = f"{namespace.topics.clicks}.no-such-topic"
    result = CliRunner().invoke(cli, ["consume", missing], env=env, catch_exceptions=False)
    assert result.exit_code == 79
    assert result.stderr.startswith(f"error: topic {missing} does not exist on Kafka at ")
    assert "Traceback" not in result.output
    assert missing not in asyncio.run(_topics(namespace.kafka_bootstrap_servers))
