"""No input stops the pipeline: records of any size the broker accepts, deep nesting,
thousands of fields, invalid UTF-8 — on the input topics, labels.feedback and the
internal product topic. Each becomes one dead letter (its bytes capped, with length
and sha256 of the whole), the worker stays up, and the good records behind them are
processed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from memberstream.config import Settings
from memberstream.testing import RawRecord, raw_records, read_outputs, run_until_processed

from .harness import assert_same_profiles, expected
from .test_pipeline import workload

pytestmark = pytest.mark.integration

BIG_LIMIT = 8 * 1024 * 1024


async def _raise_size_limit(settings: Settings, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    # AlterConfigs replaces a topic's whole config: keep labels.feedback's retention
    keep = {settings.topics.feedback: {"retention.ms": "-1"}}
    try:
        await admin.alter_configs(
            [
                ConfigResource(
                    ConfigResourceType.TOPIC,
                    t,
                    {"max.message.bytes": str(BIG_LIMIT), **keep.get(t, {})},
                )
                for t in topics
            ]
        )
    finally:
        await admin.close()


async def _produce_big(settings: Settings, records: list[RawRecord]) -> None:
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(),
        acks="all",
        max_request_size=BIG_LIMIT,
        enable_idempotence=True,
    )
    await producer.start()
    try:
        for topic, key, value in records:  # in order: one by one
            await (await producer.send(topic, value, key=key))
    finally:
        await producer.stop()


def poison(settings: Settings) -> list[tuple[str, RawRecord]]:
    t = settings.topics
    many_fields = orjson.dumps(
        {
            "event_id": "p-fields",
            "member_id": "mpoison",
            "occurred_at": "2024-02-01T10:00:00Z",
            "action": "view",
            **{f"k{i}": i for i in range(5000)},
        }
    )
    text = "x" * (1024 * 1024)
    one_mb = orjson.dumps({"event_id": "p-1mb", "member_id": "mpoison", "text": text})
    return [
        ("1 MB", (t.clicks, b"mpoison", one_mb)),
        ("5 MB", (t.reviews, b"mpoison", b"\x00\x01" * (5 * 512 * 1024))),
        ("100,000-deep nesting", (t.clicks, b"mpoison", b"[" * 100_000 + b"]" * 100_000)),
        ("deep nesting under the size limit", (t.purchases, b"mpoison", b"[" * 30_000)),
        ("5,000 fields", (t.clicks, b"mpoison", many_fields)),
        ("invalid UTF-8", (t.clicks, b"mpoison", b'{"event_id": "\xc3\x28\xff"}')),
        ("5,000 fields on feedback", (t.feedback, b"mpoison", many_fields)),
        ("1 MB on feedback", (t.feedback, b"mpoison", one_mb)),
        ("1 MB on the product topic", (t.product_reviews, b"p1", one_mb)),
        ("invalid UTF-8 on the product topic", (t.product_reviews, b"p1", b"\xff\xfe\xfd")),
        ("a 200 kB key", (t.purchases, b"k" * 200_000, b"{}")),
        (  # its UTC time overflows Python's datetime
            "a time outside the UTC range",
            (
                t.clicks,
                b"mpoison",
                b'{"event_id": "p-ts", "member_id": "mpoison", "action": "view", '
                b'"occurred_at": "0001-01-01T00:00:00+05:00"}',
            ),
        ),
    ]


def test_any_bytes_become_one_dead_letter_and_the_worker_goes_on(
    namespace: Settings, tmp_path: Path
) -> None:
    t = namespace.topics
    asyncio.run(_raise_size_limit(namespace, [*t.ingest(), t.product_reviews]))
    events = workload(600, seed=23)
    good = raw_records(namespace, events)
    bad = poison(namespace)
    mixed: list[RawRecord] = list(good)
    step = len(good) // (len(bad) + 1)
    for j, (_, record) in enumerate(bad):  # each bad record has good ones behind it
        mixed.insert((j + 1) * step + j, record)
    asyncio.run(_produce_big(namespace, mixed))
    run_until_processed(namespace, tmp_path / "worker.log")

    out = read_outputs(namespace)
    assert len(out.dead_letters) == len(bad), [d["reason"][:80] for d in out.dead_letters]
    cap = namespace.dead_letters.max_value_bytes
    by_source = {(d["source_topic"], d["value_sha256"]): d for d in out.dead_letters}
    for what, (topic, key, value) in bad:
        letter = by_source.get((topic, hashlib.sha256(value).hexdigest()))
        assert letter is not None, f"no dead letter for {what}"
        assert letter["value_length"] == len(value), what
        kept = base64.b64decode(letter["value_b64"])
        assert kept == value[:cap], what
        assert letter["value_truncated"] == (len(value) > cap), what
        assert letter["key_length"] == len(key), what
        assert letter["key_truncated"] == (len(key) > namespace.dead_letters.max_key_bytes)
        assert letter["offset"] >= 0 and letter["reason"], what
        assert len(orjson.dumps(letter)) < 1024 * 1024 // 2, what
    want = expected(namespace, events)
    assert out.tier_updates == want.tier_updates
    assert_same_profiles(namespace, out.profiles, want.profiles)
