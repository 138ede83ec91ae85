"""Plain aiokafka helpers: create topics, produce events, read a topic to the end.

Used by the CLI (``topics create``, ``produce``, ``consume``), the demo, the
benchmark and the integration tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from memberstream.config import Settings
from memberstream.schemas.codec import encode
from memberstream.schemas.events import Envelope


class KafkaUnavailable(RuntimeError):
    pass


def topic_for(event: Envelope, settings: Settings) -> str:
    """The input topic an event belongs on, from its type."""
    return {
        "click": settings.topics.clicks,
        "purchase": settings.topics.purchases,
        "review": settings.topics.reviews,
        "feedback": settings.topics.feedback,
    }[event.type]  # type: ignore[attr-defined]


async def wait_for_kafka(bootstrap: str, timeout_s: float = 30.0) -> None:
    """Return once the cluster answers a metadata request; raise KafkaUnavailable otherwise."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (TimeoutError, KafkaConnectionError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()
    raise KafkaUnavailable(
        f"no Kafka at {bootstrap} after {timeout_s:.0f}s ({last}); start one with "
        "`memberstream broker start` or set KAFKA_BOOTSTRAP_SERVERS"
    )


async def create_topics(settings: Settings) -> dict[str, str]:
    """Create every memberstream topic; compacted ones get cleanup.policy=compact, and
    labels.feedback keeps its records forever (the learning loop's labels).

    Returns topic → "created" | "exists".
    """
    await wait_for_kafka(settings.kafka_bootstrap_servers)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    result: dict[str, str] = {}
    try:
        existing = set(await admin.list_topics())
        compacted = settings.topics.compacted()
        for name in settings.topics.all():
            if name in existing:
                result[name] = "exists"
                continue
            configs = {"cleanup.policy": "compact"} if name in compacted else {}
            if name == settings.topics.feedback:
                configs = {"retention.ms": "-1"}
            topic = NewTopic(name, settings.partitions, settings.replication_factor, None, configs)
            result[name] = await _create_one(admin, topic)
    finally:
        await admin.close()
    return result


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Delete topics that exist among ``names`` (used to clean up demo runs)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def _create_one(admin: AIOKafkaAdminClient, topic: NewTopic) -> str:
    """Create one topic; "exists" when the broker says it already does (metadata can lag)."""
    try:
        response = await admin.create_topics([topic])
    except TopicAlreadyExistsError:
        return "exists"
    for _name, code, *rest in response.topic_errors:
        if code == TopicAlreadyExistsError.errno:
            return "exists"
        if code:
            raise KafkaError(f"creating topic {topic.name} failed: error {code} {rest}")
    return "created"


@dataclass
class ProduceReport:
    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else float("inf")


async def produce_events(
    settings: Settings,
    events: Iterable[Envelope],
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
) -> ProduceReport:
    """Send events keyed by member_id to their topics; optionally paced to ``rate``/s."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        linger_ms=10,
        max_batch_size=256 * 1024,
        enable_idempotence=True,
    )
    await producer.start()
    started = time.monotonic()
    sent = 0
    try:
        pending = []
        for event in events:
            fut = await producer.send(
                topic_for(event, settings),
                encode(event),
                key=event.member_id.encode("utf-8"),
            )
            pending.append(fut)
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
            if progress is not None and sent % progress_every == 0:
                progress(sent)
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if pending:
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return ProduceReport(sent, time.monotonic() - started)


async def produce_raw(
    bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> int:
    """Send raw (key, value) byte pairs as they are: for malformed-input tests and replays."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    n = 0
    try:
        futs = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futs)
        n = len(futs)
    finally:
        await producer.stop()
    return n


async def _partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions, refreshing metadata once when the topic is new to the client."""
    partitions = consumer.partitions_for_topic(topic)
    if partitions is None:
        await consumer._client.force_metadata_update()
        partitions = consumer.partitions_for_topic(topic) or set()
    return [TopicPartition(topic, p) for p in sorted(partitions)]


async def iter_records(
    bootstrap: str,
    topic: str,
    from_beginning: bool = True,
    idle_timeout_s: float = 5.0,
    limit: int | None = None,
    to_end: bool = False,
) -> AsyncIterator[ConsumerRecord]:
    """Yield records until ``limit``, no record for ``idle_timeout_s``, or
    (``to_end``) the end offsets as of the start.

    Reads without a consumer group (manual assignment): nothing is committed.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        group_id=None,
    )
    await consumer.start()
    n = 0
    try:
        tps = await _partitions_of(consumer, topic)
        if not tps:
            return
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        ends = await consumer.end_offsets(tps) if to_end else {}
        while limit is None or n < limit:
            if to_end and all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                return
            batch = await consumer.getmany(timeout_ms=int(idle_timeout_s * 1000), max_records=5000)
            if not batch:
                return
            for records in batch.values():
                for rec in records:
                    yield rec
                    n += 1
                    if limit is not None and n >= limit:
                        return
    finally:
        await consumer.stop()


async def iter_topic(
    bootstrap: str,
    topic: str,
    from_beginning: bool = True,
    idle_timeout_s: float = 5.0,
    limit: int | None = None,
    to_end: bool = False,
) -> AsyncIterator[tuple[bytes | None, bytes | None, int, int]]:
    """(key, value, partition, offset) of each record :func:`iter_records` yields."""
    async for rec in iter_records(bootstrap, topic, from_beginning, idle_timeout_s, limit, to_end):
        yield rec.key, rec.value, rec.partition, rec.offset


async def read_json(bootstrap: str, topic: str, idle_timeout_s: float = 10.0) -> list[dict]:
    """Every record now in ``topic``, decoded as JSON (test and report helper)."""
    records = iter_topic(bootstrap, topic, idle_timeout_s=idle_timeout_s, to_end=True)
    return [orjson.loads(value) async for _, value, _, _ in records if value is not None]


class GroupOffsets:
    """A consumer group's committed offsets and lag on some topics.

    One admin client and one consumer serve every poll (``async with``), so
    polling costs a request, not a new connection.
    """

    def __init__(self, bootstrap: str, group_id: str, topics: list[str]) -> None:
        self.group_id = group_id
        self.topics = topics
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.tps: list[TopicPartition] = []

    async def __aenter__(self) -> GroupOffsets:
        await self.admin.start()
        await self.consumer.start()
        for topic in self.topics:
            self.tps += await _partitions_of(self.consumer, topic)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def _committed(self) -> dict[TopicPartition, int]:
        offsets = await self.admin.list_consumer_group_offsets(self.group_id, partitions=self.tps)
        return {tp: max(meta.offset, 0) for tp, meta in offsets.items()}

    async def committed(self) -> int:
        """Records committed so far, summed over the partitions."""
        return sum((await self._committed()).values())

    async def lag(self) -> int:
        """Records not yet committed."""
        ends = await self.consumer.end_offsets(self.tps)
        done = await self._committed()
        return sum(max(end - done.get(tp, 0), 0) for tp, end in ends.items())


async def group_lag(bootstrap: str, group_id: str, topics: list[str]) -> int:
    """Records in ``topics`` not yet committed by consumer group ``group_id``."""
    async with GroupOffsets(bootstrap, group_id, topics) as offsets:
        return await offsets.lag()


async def wait_caught_up(
    bootstrap: str,
    group_id: str,
    topics: list[str],
    timeout_s: float,
    poll_s: float = 0.5,
    on_poll: Callable[[int], None] | None = None,
) -> float:
    """Wait until the group has committed every record in ``topics``; return the time it took."""
    started = time.monotonic()
    async with GroupOffsets(bootstrap, group_id, topics) as offsets:
        while True:
            try:
                lag = await offsets.lag()
            except KafkaError as exc:  # e.g. the group coordinator is still being elected
                if not exc.retriable and not isinstance(exc, KafkaConnectionError):
                    raise
                lag = -1
            if on_poll is not None:
                on_poll(lag)
            if lag == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout_s:
                behind = "unknown" if lag < 0 else str(lag)
                raise TimeoutError(
                    f"group {group_id} still {behind} records behind after {timeout_s}s"
                )
            await asyncio.sleep(poll_s)
