"""Operator commands against a real broker: `lag`, `topics describe`, `config show`."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from memberstream.config import Settings
from memberstream.streams.kafka_io import produce_raw

from .test_cli import invoke, json_lines

pytestmark = pytest.mark.integration


def _commit(settings: Settings, group: str, topic: str, offsets: dict[int, int]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    async def go() -> None:
        consumer = AIOKafkaConsumer(
            **settings.kafka_client_kwargs(), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            tps = {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in offsets.items()}
            consumer.assign(list(tps))  # a manual assignment commits without joining
            await consumer.commit(tps)
        finally:
            await consumer.stop()

    asyncio.run(go())


def test_lag_per_partition_and_in_total(namespace: Settings) -> None:
    clicks = namespace.topics.clicks
    records = [(f"k{i}".encode(), b"{}") for i in range(30)]
    asyncio.run(produce_raw(namespace, clicks, records))
    ends = {}
    rows = json_lines(invoke(namespace, ["lag", "--json"]).stdout)
    for r in rows:
        if r["topic"] == clicks:
            ends[r["partition"]] = r["end"]
    assert sum(ends.values()) == 30 and len(ends) == 3  # three partitions, 30 records
    worker = [r for r in rows if r["group"] == namespace.app_id and r["topic"] == clicks]
    assert all(r["committed"] is None and r["lag"] == r["end"] for r in worker)

    partition = max(ends, key=ends.__getitem__)
    _commit(namespace, namespace.app_id, clicks, {partition: ends[partition] - 2})
    result = invoke(namespace, ["lag", "--group", namespace.app_id])
    assert result.exit_code == 0, result.output
    # only the partition the group committed on, 2 behind
    assert result.stdout.splitlines() == [
        f"group {namespace.app_id}: 2 records behind",
        f"  {clicks}[{partition}]  committed {ends[partition] - 2:,}  end {ends[partition]:,}"
        "  lag 2",
    ]


def test_topics_describe_shows_configs_and_drift(namespace: Settings) -> None:
    result = invoke(namespace, ["topics", "describe", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["topic"]: r for r in json_lines(result.stdout)}
    assert set(rows) == set(namespace.topics.all())
    profiles = rows[namespace.topics.member_profiles]
    assert profiles["partitions"] == 3 and profiles["drift"] == []
    assert profiles["configs"]["cleanup.policy"] == "compact"
    assert profiles["configs"]["replication"] == "1"
    assert rows[namespace.topics.feedback]["configs"]["retention.ms"] == "-1"

    async def uncompact() -> None:  # someone changes a topic by hand
        admin = AIOKafkaAdminClient(**namespace.kafka_client_kwargs())
        await admin.start()
        try:
            resource = ConfigResource(
                ConfigResourceType.TOPIC,
                namespace.topics.member_profiles,
                {"cleanup.policy": "delete"},
            )
            await admin.alter_configs([resource])
        finally:
            await admin.close()

    asyncio.run(uncompact())
    result = invoke(namespace, ["topics", "describe"])
    assert result.exit_code == 79
    assert f"{namespace.topics.member_profiles}  (output, compacted)" in result.stdout
    assert "    drift: cleanup.policy=delete, must be compact" in result.stdout


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def test_config_show_prints_what_the_process_resolves_and_loads_back(
    namespace: Settings, tmp_path: Path
) -> None:
    result = invoke(
        namespace,
        ["config", "show"],
        MEMBERSTREAM_BATCH__MAX_BATCH="123",
        MEMBERSTREAM_LEARNING__MEMBER_KEY="top-secret-key",
    )
    assert result.exit_code == 0, result.output
    assert "top-secret-key" not in result.stdout
    parsed = tomllib.loads(result.stdout)
    assert parsed["batch"]["max_batch"] == 123
    assert parsed["learning"]["member_key"] == "**********"
    assert parsed["topics"]["clicks"] == namespace.topics.clicks
    # everything but the masked secret loads back as the same settings
    del parsed["learning"]["member_key"]
    path = tmp_path / "shown.toml"
    path.write_text(result.stdout.replace('member_key = "**********"', ""))
    again = invoke(None, ["--config", str(path), "config", "show", "--json"])
    assert again.exit_code == 0, again.output
    assert _without_none(orjson.loads(again.stdout)) == parsed


def test_the_example_consumer_syncs_profiles_from_the_topic(
    namespace: Settings, tmp_path: Path
) -> None:
    """examples/profile_store.py reads member.profiles from the beginning: the latest
    profile of each member is kept, an older copy read later changes nothing."""
    import base64

    import numpy as np

    from examples.profile_store import ProfileStore, sync

    def record(member: str, as_of: str, taste: list[float]) -> tuple[bytes, bytes]:
        f16 = base64.b64encode(np.asarray(taste, "<f2").tobytes()).decode()
        body = {"member_id": member, "as_of": as_of, "model_version": "enc@1", "taste_f16": f16}
        return member.encode(), orjson.dumps(body)

    records = [
        record("m1", "2025-01-01T00:00:00Z", [1, 0]),
        record("m2", "2025-01-01T00:00:00Z", [1, 1]),
        record("m1", "2025-01-02T00:00:00Z", [0, 1]),
    ]
    asyncio.run(produce_raw(namespace, namespace.topics.member_profiles, records))
    store = ProfileStore(tmp_path / "profiles.sqlite")
    assert sync(store, namespace) == (3, 3)
    assert store.get("m1")["as_of"] == "2025-01-02T00:00:00Z"  # type: ignore[index]
    assert [n.member_id for n in store.similar("m1").neighbours] == ["m2"]
    assert sync(store, namespace) == (3, 0)  # read again: nothing newer
