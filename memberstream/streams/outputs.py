"""Producing outputs and dead letters through the Faust app's producer.

Records go straight to the app's producer (not through ``Topic.send``, whose
per-message bookkeeping costs more than the work here). Faust flushes that
producer before it commits offsets, so an input's offset is committed only
after the outputs it caused are acknowledged by the broker.
"""

from __future__ import annotations

import base64
import logging

import faust
import orjson
from faust.types import Message

from memberstream.config import TopicNames
from memberstream.schemas.codec import DecodeFailure
from memberstream.schemas.outputs import DeadLetter, deterministic_id
from memberstream.streams.member_processor import Emit

log = logging.getLogger(__name__)


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode("ascii")


def dead_letter_for(message: Message, failure: DecodeFailure) -> DeadLetter:
    """The DLQ record for a Kafka message, with its raw bytes and the reason."""
    return DeadLetter(
        output_id=deterministic_id("dlq", message.topic, message.partition, message.offset),
        source_topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=None if message.timestamp is None else int(message.timestamp * 1000),
        key_b64=_b64(message.key),
        value_b64=_b64(message.value),
        error_type=failure.error_type,  # type: ignore[arg-type]
        reason=failure.reason,
        errors=failure.errors,
    )


class OutputSink:
    """Sends emits and dead letters; counts what it sent."""

    def __init__(self, app: faust.App, topics: TopicNames) -> None:
        self.app = app
        self.topics = topics
        self.sent = 0
        self.dead_letters = 0

    async def emit(self, emit: Emit) -> None:
        # The record timestamp is left to the producer (now). Event time is in the
        # payload (as_of); stamping records with it would let time-based retention
        # delete the outputs of a backfill over old history as soon as they land.
        topic = getattr(self.topics, emit.role)
        await self.app.producer.send(
            topic, emit.key.encode("utf-8"), orjson.dumps(emit.payload), None, None, None
        )
        self.sent += 1

    async def dead_letter(self, message: Message, failure: DecodeFailure) -> None:
        record = dead_letter_for(message, failure)
        log.warning(
            "dead letter: topic=%s partition=%s offset=%s type=%s reason=%s",
            message.topic,
            message.partition,
            message.offset,
            failure.error_type,
            failure.reason[:300],
        )
        await self.app.producer.send(
            self.topics.dlq,
            message.key,
            orjson.dumps(record.model_dump(mode="json")),
            None,
            None,  # the input's own timestamp is kept in the record (timestamp_ms)
            None,
        )
        self.dead_letters += 1
