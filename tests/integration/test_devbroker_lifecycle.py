"""Start a second, throwaway development broker on free ports and use it for real.

Needs Java and Maven (the jars are fetched once into the default broker home and
shared through ``jars_home``); config, data, logs and pid file stay in tmp_path,
so the default broker on port 9092 is never touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from .brokers import throwaway_broker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("java") is None or shutil.which("mvn") is None,
        reason="needs java and mvn on PATH",
    ),
]


async def _roundtrip(bootstrap: str, topic: str) -> bytes:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"member-1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id="devbroker-test",
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=20_000, max_records=1)
        records = [r for rs in batches.values() for r in rs]
        assert records, "no message consumed within 20s"
        assert records[0].key == b"member-1"
        return records[0].value
    finally:
        await consumer.stop()


async def test_start_produce_consume_stop(tmp_path: Path) -> None:
    lines: list[str] = []
    dev = throwaway_broker(tmp_path / "broker", lines.append)
    port = dev.settings.port
    try:
        bootstrap = dev.start()
        assert bootstrap == f"127.0.0.1:{port}"
        st = dev.status()
        assert st.running and st.listening and st.pid is not None
        assert dev.start() == bootstrap  # already running: returns at once
        assert any("already running" in line for line in lines)

        assert await _roundtrip(bootstrap, "devbroker.test") == b"hello"
    finally:
        stopped = dev.stop(timeout=30)
    assert stopped
    st = dev.status()
    assert not st.running and st.pid is None
    assert not dev.pid_file.exists()
    assert "Kafka Server started" in dev.log_file.read_text()
