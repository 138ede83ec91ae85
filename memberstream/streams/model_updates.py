"""The model.updates topic: announcing a promoted version, and reading the latest ones.

One record per announcement, keyed by task, on a compacted topic: the newest record of
a task names the version every worker must run. Reading it needs no consumer group.
"""

from __future__ import annotations

import logging

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from memberstream.config import Settings
from memberstream.schemas.codec import encode
from memberstream.schemas.outputs import ModelUpdate
from memberstream.streams.kafka_io import _start, connection, iter_records

log = logging.getLogger(__name__)


async def announce(settings: Settings, update: ModelUpdate) -> None:
    """Publish ``update`` on model.updates (acks=all) and wait until the broker has it."""
    conn = connection(settings)
    producer = AIOKafkaProducer(**conn.client_kwargs(), acks="all", enable_idempotence=True)
    await _start(producer, conn)
    try:
        await producer.send_and_wait(
            settings.topics.model_updates, encode(update), key=update.task.encode()
        )
    finally:
        await producer.stop()
    log.info("model.updates: %s %s -> %s", update.action, update.task, update.version)


def parse_update(value: bytes | None) -> ModelUpdate | None:
    """A record's update; None for a tombstone or a record that is not one (logged)."""
    if value is None:
        return None
    try:
        return ModelUpdate.model_validate(orjson.loads(value))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        log.warning("model.updates: ignoring a record that is not a ModelUpdate: %s", exc)
        return None


async def latest_updates(settings: Settings, idle_timeout_s: float = 2.0) -> dict[str, ModelUpdate]:
    """The newest announcement per task (topic order), read up to the current end."""
    latest: dict[str, ModelUpdate] = {}
    async for rec in iter_records(
        settings, settings.topics.model_updates, idle_timeout_s=idle_timeout_s, to_end=True
    ):
        update = parse_update(rec.value)
        if update is not None:
            latest[update.task] = update
    return latest
