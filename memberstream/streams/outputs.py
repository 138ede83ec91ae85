"""Producing outputs and dead letters through the Faust app's producer.

Records go straight to the app's producer (not through ``Topic.send``, whose
per-message bookkeeping costs more than the work here). The sink keeps the
delivery future of every record it sends, and :meth:`OutputSink.drain` waits
until the broker has acknowledged them all. Batches drain before they write
any state: state that remembers a record implies its outputs exist, which is
what lets a redelivered record be skipped without re-emitting anything
(:mod:`memberstream.core.positions`).

Outputs that cannot be delivered within ``batch.send_timeout_s`` fail the batch
(:class:`OutputNotDelivered`; the worker exits without committing it). A dead
letter that cannot be written is retried with back-off, for as long as it takes,
and each failure is logged with its reason: the record controls nothing that
could make its dead letter fail (its bytes are capped), so a failure is the
broker's or the configuration's, and a restart would meet it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

import faust
import orjson
from aiokafka.errors import TopicAuthorizationFailedError
from faust.types import Message

from memberstream.config import DeadLetterSettings, Settings
from memberstream.core.dead_letters import dead_letter_for, dead_letter_key
from memberstream.core.roles import Emit
from memberstream.errors import TimedOut
from memberstream.schemas.codec import DecodeFailure
from memberstream.schemas.outputs import DeadLetter

log = logging.getLogger(__name__)


class OutputNotDelivered(TimedOut):
    """Outputs of a batch were not acknowledged by the broker in time, or were refused."""

    hint = (
        "check that the broker is up, that every output topic exists "
        "(`memberstream topics check`) and that the worker may write to it; the batch was "
        "not committed and is processed again when the worker restarts"
    )


@dataclass
class _Letter:
    key: bytes | None
    value: bytes
    where: str


def dead_letter_of(
    message: Message, failure: DecodeFailure, settings: DeadLetterSettings
) -> DeadLetter:
    """The DLQ record for a Kafka message, its bytes capped by ``settings``."""
    return dead_letter_for(
        message.topic,
        message.partition,
        message.offset,
        message.timestamp,
        message.key,
        message.value,
        failure,
        settings,
        _headers(message),
    )


def _headers(message: Message) -> list[tuple[str, bytes]]:
    """A message's headers as (name, value) pairs, whatever form the transport gives."""
    headers = getattr(message, "headers", None) or []
    if isinstance(headers, dict):
        return [(str(k), bytes(v or b"")) for k, v in headers.items()]
    return [(str(k), bytes(v or b"")) for k, v in headers]


class OutputSink:
    """Sends emits and dead letters, and waits for their delivery; counts what it sent."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.topics = settings.topics
        self.letters_settings = settings.dead_letters
        self.send_timeout_s = settings.batch.send_timeout_s
        self.sent = 0
        self.dead_letters = 0
        self._pending: list[tuple[str, Awaitable[object]]] = []
        self._letters: list[tuple[_Letter, Awaitable[object]]] = []
        self.metrics = getattr(app, "memberstream_metrics", None)

    async def _send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[object]:
        # The record timestamp is left to the producer (now). Event time is in the
        # payload (as_of); stamping records with it would let time-based retention
        # delete the outputs of a backfill over old history as soon as they land.
        # The producer waits for metadata of a topic it has not sent to yet; a topic
        # that does not exist must not hold the batch for Faust's 20-minute timeout.
        async with asyncio.timeout(self.send_timeout_s):
            return await self.app.producer.send(topic, key, value, None, None, None)

    async def emit(self, emit: Emit) -> None:
        topic = getattr(self.topics, emit.role.value)
        try:
            fut = await self._send(topic, emit.key.encode("utf-8"), orjson.dumps(emit.payload))
        except Exception as exc:
            raise OutputNotDelivered(f"producing to {topic} failed: {_describe(exc)}") from exc
        self._pending.append((topic, fut))
        self.sent += 1
        if self.metrics is not None:
            self.metrics.count_output(topic, emit.payload, emit.role.value)

    async def dead_letter(self, message: Message, failure: DecodeFailure) -> None:
        conf = self.letters_settings
        record = dead_letter_of(message, failure, conf)
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        log.warning(
            "dead letter: %s type=%s reason=%s%s",
            where,
            failure.error_type,
            record.reason[:300],
            f" (value cut to {conf.max_value_bytes} of {record.value_length} bytes)"
            if record.value_truncated
            else "",
        )
        letter = _Letter(
            dead_letter_key(message.key, conf), orjson.dumps(record.model_dump(mode="json")), where
        )
        self._letters.append((letter, await self._send_letter(letter)))
        self.dead_letters += 1
        if self.metrics is not None:
            self.metrics.count_dead_letter(message.topic, failure.error_type)

    async def _send_letter(self, letter: _Letter) -> Awaitable[object]:
        """Send a dead letter, retrying with back-off until the producer takes it."""
        wait = self.letters_settings.retry_initial_s
        while True:
            try:
                return await self._send(self.topics.dlq, letter.key, letter.value)
            except Exception as exc:
                wait = await self._letter_failed(letter, exc, wait)

    async def _letter_failed(self, letter: _Letter, exc: BaseException, wait: float) -> float:
        log.error(
            "writing the dead letter of %s to %s failed (%s); retrying in %.1f s",
            letter.where,
            self.topics.dlq,
            _describe(exc),
            wait,
        )
        await asyncio.sleep(wait)
        return min(wait * 2, self.letters_settings.retry_max_s)

    async def drain(self) -> None:
        """Return once the broker acknowledged everything sent since the last drain.

        Raises :class:`OutputNotDelivered` when an output was refused or not
        acknowledged within ``send_timeout_s``; dead letters are re-sent until they
        are acknowledged.
        """
        pending, self._pending = self._pending, []
        letters, self._letters = self._letters, []
        if pending:
            await self._await_outputs(pending)
        for letter, fut in letters:
            await self._deliver_letter(letter, fut)

    async def _await_outputs(self, pending: list[tuple[str, Awaitable[object]]]) -> None:
        futures = [asyncio.ensure_future(fut) for _, fut in pending]
        _, not_done = await asyncio.wait(futures, timeout=self.send_timeout_s)
        for (topic, _), fut in zip(pending, futures, strict=True):
            if fut in not_done:
                raise OutputNotDelivered(
                    f"{len(not_done)} outputs (e.g. to {topic}) not acknowledged by the broker "
                    f"within {self.send_timeout_s:.0f} s (batch.send_timeout_s)"
                )
            exc = fut.exception()
            if exc is not None:
                raise OutputNotDelivered(f"producing to {topic} failed: {_describe(exc)}") from exc

    async def _deliver_letter(self, letter: _Letter, fut: Awaitable[object]) -> None:
        wait = self.letters_settings.retry_initial_s
        while True:
            try:
                async with asyncio.timeout(self.send_timeout_s):
                    await fut
                return
            except Exception as exc:
                wait = await self._letter_failed(letter, exc, wait)
                fut = await self._send_letter(letter)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    if isinstance(cause, TopicAuthorizationFailedError):
        return f"not authorized: the worker's principal may not write to it ({cause})"
    return f"{type(cause).__name__}: {cause}"
