"""Dead letters for operators: read them, group them, send them back.

``redrive`` sends a dead letter's raw key and value back to its source topic with a
header naming the dead letter (:data:`~memberstream.core.dead_letters.REDRIVE_HEADER`).
It is idempotent: the source topics are the ledger. Before sending, the records with
that header written since the oldest letter to send are read, and letters already sent
are skipped. A redriven record that fails again becomes a new dead letter with
``redrive_of`` set; such letters are not redriven unless asked (``again``), so a record
that cannot be processed lands in the DLQ once more, not in a loop. A letter whose
value was cut to the DLQ's cap cannot be sent back whole and is refused. Were the
redriven copy gone from its topic (retention), a second redrive would send it again,
and the worker would drop it as a duplicate event id.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import ValidationError

from memberstream.config import Settings
from memberstream.core.dead_letters import REDRIVE_HEADER, reason_class, redriven_from
from memberstream.schemas.outputs import DeadLetter
from memberstream.streams.kafka_io import _partitions_of, _start, connection, iter_records

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredLetter:
    letter: DeadLetter
    dlq_partition: int
    dlq_offset: int
    written_ms: int
    """When the dead letter was written (the DLQ record's timestamp)."""

    @property
    def id(self) -> str:
        return self.letter.output_id


async def read_dead_letters(
    settings: Settings, since: datetime | None = None, idle_timeout_s: float = 2.0
) -> list[StoredLetter]:
    """Every dead letter on the DLQ topic up to its current end (written at or after
    ``since``), in DLQ order; records that are not dead letters are skipped."""
    since_ms = None if since is None else int(since.timestamp() * 1000)
    out = []
    async for rec in iter_records(
        settings, settings.topics.dlq, idle_timeout_s=idle_timeout_s, to_end=True
    ):
        if since_ms is not None and rec.timestamp < since_ms:
            continue
        try:
            letter = DeadLetter.model_validate(orjson.loads(rec.value or b"null"))
        except (orjson.JSONDecodeError, ValidationError):
            log.warning("dlq: record at %d@%d is not a dead letter", rec.partition, rec.offset)
            continue
        out.append(StoredLetter(letter, rec.partition, rec.offset, rec.timestamp))
    return out


@dataclass
class Group:
    source_topic: str
    error_type: str
    reason: str
    letters: list[StoredLetter] = field(default_factory=list)


def group_letters(letters: Sequence[StoredLetter]) -> list[Group]:
    """By source topic, error type and reason class; largest group first."""
    groups: dict[tuple[str, str, str], Group] = {}
    for s in letters:
        key = (s.letter.source_topic, s.letter.error_type, reason_class(s.letter.reason))
        groups.setdefault(key, Group(*key)).letters.append(s)
    return sorted(groups.values(), key=lambda g: (-len(g.letters), g.source_topic, g.reason))


def find_letter(letters: Sequence[StoredLetter], ident: str) -> StoredLetter:
    """The letter whose id is ``ident`` or starts with it (unique)."""
    hits = [s for s in letters if s.id == ident] or [s for s in letters if s.id.startswith(ident)]
    if not hits:
        raise LookupError(f"no dead letter with id {ident!r}")
    if len({s.id for s in hits}) > 1:
        raise LookupError(f"{len(hits)} dead letters start with {ident!r}; give more of the id")
    return hits[-1]


async def redriven_ids(settings: Settings, topics: Sequence[str], since_ms: int) -> set[str]:
    """Dead-letter ids in the redrive headers of records on ``topics`` since ``since_ms``."""
    conn = connection(settings)
    consumer = AIOKafkaConsumer(**conn.client_kwargs(), enable_auto_commit=False)
    await _start(consumer, conn)
    found: set[str] = set()
    try:
        tps = [tp for t in topics for tp in await _partitions_of(consumer, t, conn)]
        if not tps:
            return found
        consumer.assign(tps)
        starts = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
        ends = await consumer.end_offsets(tps)
        todo = {}
        for tp in tps:
            start = starts.get(tp)
            if start is None or start.offset >= ends[tp]:
                continue
            consumer.seek(tp, start.offset)
            todo[tp] = ends[tp]
        while todo:
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            if not batch:
                break
            for tp, records in batch.items():
                for rec in records:
                    ident = redriven_from([(k, v) for k, v in rec.headers or ()])
                    if ident is not None:
                        found.add(ident)
                    if rec.offset + 1 >= todo.get(tp, 0):
                        todo.pop(tp, None)
    finally:
        await consumer.stop()
    return found


@dataclass
class RedriveReport:
    sent: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed_again: list[str] = field(default_factory=list)
    """Letters of records that had been redriven and failed again (not sent: ``again``)."""
    truncated: list[str] = field(default_factory=list)


async def redrive(
    settings: Settings,
    letters: Sequence[StoredLetter],
    *,
    dry_run: bool = False,
    again: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> RedriveReport:
    """Send ``letters`` back to their source topics, once (see the module docstring)."""
    report = RedriveReport()
    todo = []
    for s in letters:
        if s.letter.redrive_of is not None and not again:
            report.failed_again.append(s.id)
        elif s.letter.value_truncated or s.letter.key_truncated:
            report.truncated.append(s.id)
        else:
            todo.append(s)
    if not todo:
        return report
    since = min(s.written_ms for s in todo)
    done = await redriven_ids(settings, sorted({s.letter.source_topic for s in todo}), since)
    report.already = [s.id for s in todo if s.id in done]
    fresh = [s for s in todo if s.id not in done]
    if dry_run:
        report.sent = [s.id for s in fresh]  # what would be sent
        return report
    if not fresh:
        return report
    conn = connection(settings)
    producer = AIOKafkaProducer(**conn.client_kwargs(), acks="all", enable_idempotence=True)
    await _start(producer, conn)
    try:
        futures = []
        for n, s in enumerate(fresh, 1):
            letter = s.letter
            key = None if letter.key_b64 is None else base64.b64decode(letter.key_b64)
            value = None if letter.value_b64 is None else base64.b64decode(letter.value_b64)
            futures.append(
                await producer.send(
                    letter.source_topic,
                    value,
                    key=key,
                    headers=[(REDRIVE_HEADER, s.id.encode())],
                )
            )
            if on_progress is not None and n % 1000 == 0:
                on_progress(n)
        for future in futures:
            await future
    finally:
        await producer.stop()
    report.sent = [s.id for s in fresh]
    return report
