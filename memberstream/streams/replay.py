"""Replay a time range of the input topics: into a namespace of its own, or by rewinding
the live worker.

``--into NAMESPACE`` (:func:`replay_into`) runs the processing core
(:class:`~memberstream.core.pipeline.ChainedBatches`, the batchers the worker's agents
run) over the range and produces to the namespace's own output topics
(``<namespace>.<topic>``), with its own consumer group (offsets committed for
``memberstream lag``) and its own state (:class:`~memberstream.core.replay_store.ReplayStore`).
The live outputs, state and group are not touched.

- The range: per partition, from the first record whose timestamp is at or after
  ``--from`` (the broker's offsets-for-times) to the first at or after ``--to``, and
  never past the end offsets read when the replay is planned, so a replay is bounded
  even while producers keep writing. The plan is stored; a rerun resumes it.
- Order: the partitions' records are merged by record timestamp (ties by topic,
  partition, offset), each partition in offset order, and cut into batches of
  ``batch.max_batch`` records. Unlike a live consumer, whose interleaving of the
  topics depends on fetch timing, this order is a function of the range alone: the
  same range replayed into two namespaces gives identical outputs.
- Models: the versions announced on ``model.updates`` when the replay was planned
  (what a worker starting then would run); outputs name them.
- Resume: a batch's outputs are acknowledged, then its state and the offsets it
  consumed are committed in one transaction. An interrupted replay reruns at most
  one batch, into the same outputs (same ids).

``--live`` (:func:`rewind_live`) moves the worker group's committed offsets back to
the start of the range, for a worker that is stopped. Every record the live state
already applied is skipped when re-read (state remembers the offsets it applied per
partition), so nothing is counted or published twice; records it never applied
(state restored from an older copy, a lost store) are applied. It does not recompute
outputs with new code or models: that is ``--into`` and a cut-over.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from memberstream.config import Settings, TopicNames
from memberstream.core import failpoints
from memberstream.core.batching import BatchStats
from memberstream.core.in_memory import MemoryItem, MemoryRecord
from memberstream.core.output_diff import KINDS, KindDiff, diff_outputs, in_range
from memberstream.core.pipeline import ChainedBatches
from memberstream.core.replay_store import ReplayStore
from memberstream.errors import EX_USAGE, MemberstreamError
from memberstream.streams.kafka_io import (
    _partitions_of,
    _start,
    connection,
    create_topics,
    iter_records,
)
from memberstream.streams.outputs import OutputSink

log = logging.getLogger(__name__)

NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
OUTPUT_FIELDS = (
    "dlq",
    "member_tiers",
    "member_interest_tiers",
    "member_profiles",
    "member_anomalies",
    "product_review_summaries",
    "product_reviews",
)
"""The topics a replay namespace has of its own; it reads the live inputs and
``model.updates``. (Its product records never reach ``product_reviews``: the core
chains the two batchers in-process.)"""


class ReplayRefused(MemberstreamError):
    """The replay cannot run as asked; the message says why and what to do."""

    exit_code = EX_USAGE


@dataclass(frozen=True)
class Span:
    """One partition's part of the range: offsets ``start`` (inclusive) to ``end``."""

    topic: str
    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)

    def to_json(self) -> list[Any]:
        return [self.topic, self.partition, self.start, self.end]

    @classmethod
    def from_json(cls, raw: Sequence[Any]) -> Span:
        topic, partition, start, end = raw
        return cls(str(topic), int(partition), int(start), int(end))


@dataclass
class Plan:
    """What a replay covers; stored with its state, so a rerun resumes the same range."""

    from_ms: int
    to_ms: int | None
    topics: list[str]
    spans: list[Span]
    models: dict[str, str] = field(default_factory=dict)
    planned_at_ms: int = 0

    @property
    def records(self) -> int:
        """Offsets in the range (an upper bound on records: compaction and transaction
        markers leave gaps)."""
        return sum(s.size for s in self.spans)

    def to_json(self) -> dict[str, Any]:
        return {
            "from_ms": self.from_ms,
            "to_ms": self.to_ms,
            "topics": self.topics,
            "spans": [s.to_json() for s in self.spans],
            "models": self.models,
            "planned_at_ms": self.planned_at_ms,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Plan:
        return cls(
            raw["from_ms"],
            raw["to_ms"],
            list(raw["topics"]),
            [Span.from_json(s) for s in raw["spans"]],
            dict(raw.get("models", {})),
            int(raw.get("planned_at_ms", 0)),
        )

    def same_range(self, from_ms: int, to_ms: int | None, topics: Sequence[str]) -> bool:
        return (self.from_ms, self.to_ms, sorted(self.topics)) == (from_ms, to_ms, sorted(topics))


def namespace_settings(settings: Settings, namespace: str) -> Settings:
    """The settings of a replay namespace: its own output topics, group and state dir."""
    if not NAMESPACE.match(namespace):
        raise ReplayRefused(
            f"namespace {namespace!r}: use letters, digits, '.', '_' and '-' "
            "(it prefixes topic names)"
        )
    names = settings.topics.model_dump()
    for name in OUTPUT_FIELDS:
        names[name] = f"{namespace}.{names[name]}"
    ns = settings.model_copy(deep=True)
    ns.topics = TopicNames(**names)
    ns.app_id = f"{settings.app_id}.replay.{namespace}"
    ns.data_dir = settings.data_dir / "replay" / namespace
    return ns


def store_path(ns: Settings) -> Path:
    return ns.data_dir / "replay.sqlite"


async def plan_range(
    settings: Settings, topics: Sequence[str], from_ms: int, to_ms: int | None
) -> list[Span]:
    """Each partition's offsets for [from, to), capped at the end offsets of now."""
    conn = connection(settings)
    consumer = AIOKafkaConsumer(**conn.client_kwargs(), enable_auto_commit=False, group_id=None)
    await _start(consumer, conn)
    try:
        tps: list[TopicPartition] = []
        for topic in topics:
            found = await _partitions_of(consumer, topic, conn)
            if not found:
                raise ReplayRefused(f"topic {topic} does not exist")
            tps.extend(found)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.offsets_for_times({tp: from_ms for tp in tps})
        stops = await consumer.offsets_for_times({tp: to_ms for tp in tps}) if to_ms else {}
    finally:
        await consumer.stop()
    spans = []
    for tp in tps:
        end = ends[tp]
        start = starts[tp].offset if starts.get(tp) is not None else end
        stop = stops.get(tp)
        if stop is not None:
            end = min(end, stop.offset)
        spans.append(Span(tp.topic, tp.partition, start, max(start, end)))
    return spans


class _ProducerPort:
    """Gives :class:`OutputSink` the ``app.producer.send`` it calls, over aiokafka."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = self
        self._producer = producer

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
    ) -> Any:
        return await self._producer.send(topic, value, key=key)


@dataclass(order=True)
class _Head:
    sort_key: tuple[int, int, int, int]
    tp: TopicPartition = field(compare=False)


class MergedReader:
    """The spans' records in one deterministic order (see the module doc), from the
    offsets given on."""

    def __init__(
        self, consumer: AIOKafkaConsumer, spans: Sequence[Span], at: dict[tuple[str, int], int]
    ) -> None:
        self.consumer = consumer
        self.topic_rank = {t: i for i, t in enumerate(sorted({s.topic for s in spans}))}
        self.end: dict[TopicPartition, int] = {}
        self.next: dict[tuple[str, int], int] = {}
        for s in spans:
            pos = max(s.start, at.get((s.topic, s.partition), s.start))
            self.next[(s.topic, s.partition)] = pos
            if pos < s.end:
                self.end[TopicPartition(s.topic, s.partition)] = s.end
        self.buffers: dict[TopicPartition, list[Any]] = {tp: [] for tp in self.end}
        self.heap: list[_Head] = []

    async def start(self) -> None:
        # every partition of the range is assigned, so the group's commits may name it
        self.consumer.assign([TopicPartition(t, p) for t, p in self.next])
        for tp in self.end:
            self.consumer.seek(tp, self.next[(tp.topic, tp.partition)])
        for tp in self.end:
            await self._push_head(tp)

    async def _fill(self, tp: TopicPartition) -> bool:
        """Refill ``tp``'s buffer; False when the partition has nothing left in range."""
        end = self.end[tp]
        while not self.buffers[tp]:
            if await self.consumer.position(tp) >= end:
                self.next[(tp.topic, tp.partition)] = end
                return False
            batch = await self.consumer.getmany(tp, timeout_ms=1000, max_records=2000)
            records = [r for r in batch.get(tp, []) if r.offset < end]
            records.reverse()  # popped from the end
            self.buffers[tp] = records
        return True

    async def _push_head(self, tp: TopicPartition) -> None:
        if await self._fill(tp):
            rec = self.buffers[tp][-1]
            key = (rec.timestamp, self.topic_rank[tp.topic], tp.partition, rec.offset)
            heapq.heappush(self.heap, _Head(key, tp))

    async def batch(self, size: int) -> list[Any]:
        """Up to ``size`` records in merged order; [] at the end of the range."""
        out = []
        while self.heap and len(out) < size:
            tp = heapq.heappop(self.heap).tp
            rec = self.buffers[tp].pop()
            out.append(rec)
            self.next[(tp.topic, tp.partition)] = rec.offset + 1
            await self._push_head(tp)
        return out


def _item(rec: Any) -> MemoryItem:
    return MemoryItem(
        MemoryRecord(
            rec.topic,
            rec.partition,
            rec.offset,
            rec.key,
            rec.value,
            rec.timestamp / 1000,
            list(rec.headers or []),
        )
    )


def _event_id(value: bytes | None) -> str | None:
    try:
        event_id = orjson.loads(value or b"").get("event_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return event_id if isinstance(event_id, str) else None


@dataclass
class ReplayProgress:
    done: int
    """Offsets of the range behind the replay (earlier runs included)."""
    total: int
    rate: float
    """Records per second of this run."""

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


@dataclass
class ReplayReport:
    namespace: str
    plan: Plan
    stats: BatchStats
    records: int
    """Records processed by this run (a resumed run counts only its own)."""
    resumed_from: int
    """Offsets already done when this run started (0: a fresh replay)."""
    seconds: float
    complete: bool


async def _announced_models(settings: Settings, stage: Any) -> dict[str, str]:
    """Apply the newest announced version per task to ``stage``, as a worker starting
    now would; the versions applied."""
    if stage is None:
        return {}
    from memberstream.streams.model_watch import ModelWatcher

    watcher = ModelWatcher(settings, stage)
    await watcher.apply_current()
    return dict(watcher.applied)


async def prepare(
    settings: Settings,
    namespace: str,
    from_ms: int,
    to_ms: int | None,
    topics: Sequence[str],
) -> tuple[Settings, Plan, bool]:
    """The namespace's settings and its plan: the stored one when this range was started
    before (True), else a new one (not stored yet)."""
    ns = namespace_settings(settings, namespace)
    path = store_path(ns)
    if path.exists():
        store = ReplayStore(path)
        try:
            raw = store.meta("plan")
        finally:
            store.close()
        if raw is not None:
            plan = Plan.from_json(raw)
            if not plan.same_range(from_ms, to_ms, topics):
                raise ReplayRefused(
                    f"namespace {namespace!r} holds a replay of another range "
                    f"({_range_text(plan)}); choose another namespace, or delete {ns.data_dir} "
                    f"and its topics ({namespace}.*) to start it again"
                )
            return ns, plan, True
    spans = await plan_range(settings, topics, from_ms, to_ms)
    return (
        ns,
        Plan(from_ms, to_ms, list(topics), spans, planned_at_ms=int(time.time() * 1000)),
        False,
    )


def _range_text(plan: Plan) -> str:
    from datetime import UTC, datetime

    def iso(ms: int | None) -> str:
        return "now" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).isoformat()

    return f"{iso(plan.from_ms)} to {iso(plan.to_ms)}, topics {', '.join(plan.topics)}"


async def replay_into(
    settings: Settings,
    ns: Settings,
    plan: Plan,
    stage: Any,
    rate: float | None = None,
    on_progress: Callable[[ReplayProgress], None] | None = None,
    progress_every_s: float = 5.0,
) -> ReplayReport:
    """Run (or resume) the replay ``plan`` into the namespace ``ns``."""
    store = ReplayStore(store_path(ns))
    try:
        stored = store.meta("plan")
        if stored is None:
            plan.models = await _announced_models(settings, stage)
            await create_topics(ns, [getattr(ns.topics, f) for f in OUTPUT_FIELDS])
            store.set_meta("plan", plan.to_json())
        else:
            plan = Plan.from_json(stored)
            applied = await _announced_models(settings, stage)
            if applied != plan.models:
                log.warning(
                    "replay: the announced models changed since the replay was planned "
                    "(%s, now %s); outputs name the version that made them",
                    plan.models,
                    applied,
                )
        return await _run(settings, ns, plan, store, stage, rate, on_progress, progress_every_s)
    finally:
        store.close()


async def _run(
    settings: Settings,
    ns: Settings,
    plan: Plan,
    store: ReplayStore,
    stage: Any,
    rate: float | None,
    on_progress: Callable[[ReplayProgress], None] | None,
    progress_every_s: float,
) -> ReplayReport:
    conn = connection(settings)
    at = store.next_offsets()
    resumed_from = _done(plan, at)
    consumer = AIOKafkaConsumer(
        **conn.client_kwargs(), enable_auto_commit=False, group_id=ns.app_id
    )
    producer = AIOKafkaProducer(
        **conn.client_kwargs(), acks="all", linger_ms=5, enable_idempotence=True
    )
    await _start(consumer, conn)
    await _start(producer, conn)
    stats = BatchStats()
    started = time.monotonic()
    processed = 0
    try:
        sink = OutputSink(_ProducerPort(producer), ns)  # type: ignore[arg-type]
        chain = ChainedBatches(ns, sink, store.states("members"), store.states("products"), stage)
        reader = MergedReader(consumer, plan.spans, at)
        await reader.start()
        last_report = started
        while True:
            records = await reader.batch(ns.batch.max_batch)
            if not records:
                break
            stats.add(await chain.process([_item(r) for r in records]))
            failpoints.reached("replay_outputs")
            events = [e for e in (_event_id(r.value) for r in records) if e is not None]
            store.commit(dict(reader.next), events)
            failpoints.reached("replay_committed")
            await _commit_group(consumer, reader.next)
            processed += len(records)
            now = time.monotonic()
            if rate:
                ahead = processed / rate - (now - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if on_progress is not None and now - last_report >= progress_every_s:
                last_report = now
                on_progress(_progress(plan, reader.next, processed, now - started))
        store.set_meta("complete", True)
    finally:
        await consumer.stop()
        await producer.stop()
    seconds = time.monotonic() - started
    if on_progress is not None:
        on_progress(_progress(plan, reader.next, processed, seconds))
    return ReplayReport(ns.app_id, plan, stats, processed, resumed_from, seconds, True)


def _done(plan: Plan, at: dict[tuple[str, int], int]) -> int:
    """Offsets of the range behind ``at``."""
    return sum(
        max(0, min(at.get((s.topic, s.partition), s.start), s.end) - s.start) for s in plan.spans
    )


def _progress(
    plan: Plan, at: dict[tuple[str, int], int], processed: int, elapsed: float
) -> ReplayProgress:
    return ReplayProgress(_done(plan, at), plan.records, processed / elapsed if elapsed else 0.0)


async def _commit_group(consumer: AIOKafkaConsumer, at: dict[tuple[str, int], int]) -> None:
    """Mirror the replay's progress in its consumer group, for ``memberstream lag``; the
    store, not the group, is what a resumed replay starts from."""
    offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "") for (t, p), o in at.items()}
    try:
        await consumer.commit(offsets)
    except Exception as exc:  # visibility only: never stops the replay
        log.warning("replay: committing progress to the group failed: %s", exc)


# -- what differs from the live outputs ------------------------------------------------


async def _read_outputs(settings: Settings, since_ms: int | None = None) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for kind in KINDS:
        topic = getattr(settings.topics, kind)
        values = []
        async for rec in iter_records(settings, topic, idle_timeout_s=5.0, to_end=True):
            if since_ms is not None and rec.timestamp < since_ms:
                continue
            if rec.value:
                values.append(orjson.loads(rec.value))
        out[kind] = values
    return out


async def diff_with_live(
    settings: Settings, ns: Settings, plan: Plan, samples: int = 3
) -> dict[str, KindDiff]:
    """The namespace's outputs against the live outputs the same range caused."""
    store = ReplayStore(store_path(ns))
    try:
        events = store.event_ids()
    finally:
        store.close()
    live = await _read_outputs(settings, since_ms=plan.from_ms)
    replayed = await _read_outputs(ns)
    positions = {(s.topic, s.partition): (s.start, s.end) for s in plan.spans}

    def live_in_range(kind: str, p: dict) -> bool:
        if kind == "dlq":
            span = positions.get((p["source_topic"], p["partition"]))
            return span is not None and span[0] <= p["offset"] < span[1]
        return in_range(kind, p, events)

    return diff_outputs(live, replayed, live_in_range, samples)


# -- --live ----------------------------------------------------------------------------


@dataclass
class Rewind:
    topic: str
    partition: int
    committed: int | None
    to: int


async def rewind_live(settings: Settings, spans: Sequence[Span], dry_run: bool) -> list[Rewind]:
    """Move the worker group's committed offsets back to the spans' starts (never
    forward); refused while the group has members."""
    from aiokafka.admin import AIOKafkaAdminClient

    conn = connection(settings)
    admin = AIOKafkaAdminClient(**conn.client_kwargs())
    await _start(admin, conn)
    try:
        described = await admin.describe_consumer_groups([settings.app_id])
        members = _group_members(described)
        if members:
            raise ReplayRefused(
                f"the worker group {settings.app_id} has {members} live member(s): stop the "
                "workers first (a rewind under running workers would race their commits, and "
                "Kafka refuses offset changes for an active group); then rerun, and start them"
            )
        tps = [TopicPartition(s.topic, s.partition) for s in spans]
        committed = await admin.list_consumer_group_offsets(settings.app_id, partitions=tps)
    finally:
        await admin.close()
    rewinds = []
    for s in spans:
        meta = committed.get(TopicPartition(s.topic, s.partition))
        have = None if meta is None or meta.offset < 0 else int(meta.offset)
        if have is None or have > s.start:
            rewinds.append(Rewind(s.topic, s.partition, have, s.start))
    if rewinds and not dry_run:
        consumer = AIOKafkaConsumer(
            **conn.client_kwargs(), enable_auto_commit=False, group_id=settings.app_id
        )
        await _start(consumer, conn)
        try:
            consumer.assign([TopicPartition(r.topic, r.partition) for r in rewinds])
            await consumer.commit(
                {TopicPartition(r.topic, r.partition): OffsetAndMetadata(r.to, "") for r in rewinds}
            )
        finally:
            await consumer.stop()
    return rewinds


def _group_members(described: Any) -> int:
    """Members of the groups in DescribeGroups responses."""
    return sum(
        len(group["members"]) for response in described for group in response.to_object()["groups"]
    )
