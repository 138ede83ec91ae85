"""`memberstream collect`: the sample collector's consumer loop.

Its own consumer group (``<app_id>-collector``), auto-commit off. Each partition
starts at the later of the group's committed offset and the offset the sample
store's commit records reach (a flush written but not yet committed to Kafka when
the collector died). Offsets are committed only after the flush that covers them is
on disk; on a rebalance the buffer is flushed and committed before the partitions go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client.core import CounterMetricFamily

from memberstream.config import Settings
from memberstream.core.collector import SampleCollector
from memberstream.ml.training.sample_store import SampleStore
from memberstream.streams.kafka_io import _authorized, _partitions_of, _start, connection
from memberstream.streams.metrics import WorkerMetrics
from memberstream.streams.model_updates import latest_updates

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 10.0


def collector_group(settings: Settings) -> str:
    return f"{settings.app_id}-{settings.learning.collector_group_suffix}"


@dataclass
class CollectResult:
    records: int
    samples: dict[str, int]
    duplicates: int
    skipped: int
    flushes: int
    seconds: float


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, run: CollectorRun) -> None:
        self.run = run

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            await self.run.flush_and_commit()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.run.seek_past_stored(assigned)


class CollectorRun:
    """One collector process: consume, derive, flush, commit."""

    def __init__(
        self,
        settings: Settings,
        *,
        until_caught_up: bool = False,
        echo: Callable[[str], None] = log.info,
    ) -> None:
        self.settings = settings
        self.until_caught_up = until_caught_up
        self.echo = echo
        self.store = SampleStore(settings.learning.samples_dir)
        self.store.recover()
        self.collector = SampleCollector(settings, self.store, settings.learning.member_key_bytes())
        self.consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._last_commit = time.monotonic()
        self._reached: dict[TopicPartition, int] = {}
        """Per partition, the offset after the last record read in this run."""

    def stop(self) -> None:
        self._stopping.set()

    async def seek_past_stored(self, assigned: list[TopicPartition]) -> None:
        """Start each partition after what the store already holds."""
        assert self.consumer is not None
        stored = self.store.offsets()
        for tp in assigned:
            reached = stored.get((tp.topic, tp.partition))
            if reached is None:
                continue
            committed = await self.consumer.committed(tp)
            if committed is None or committed < reached:
                log.info(
                    "collector: %s[%d] starts at %d (stored samples reach it; committed %s)",
                    tp.topic,
                    tp.partition,
                    reached,
                    committed,
                )
                self.consumer.seek(tp, reached)

    async def flush_and_commit(self) -> None:
        offsets, _ = await asyncio.to_thread(self.collector.flush)
        if offsets and self.consumer is not None:
            assigned = self.consumer.assignment()
            commit = {
                TopicPartition(t, p): OffsetAndMetadata(o, "")
                for (t, p), o in offsets.items()
                if TopicPartition(t, p) in assigned
            }
            if commit:
                await self.consumer.commit(commit)
        self._last_commit = time.monotonic()

    async def _caught_up(self, ends: dict[TopicPartition, int]) -> bool:
        """Every partition that held records at the start has been read up to there."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        if not assigned:
            log.debug("collector: no partitions assigned yet")
            return False
        for tp, end in ends.items():
            if end <= 0 or tp not in assigned or self._reached.get(tp, -1) >= end:
                continue
            try:  # not read in this run: where the group's position is (committed, sought)
                position = await asyncio.wait_for(self.consumer.position(tp), 1.0)
            except TimeoutError:
                log.debug("collector: no position yet for %s (end %d)", tp, end)
                return False
            if position < end:
                log.debug("collector: %s at %d of %d", tp, position, end)
                return False
            self._reached[tp] = position
        return True

    async def run(self) -> CollectResult:
        started = time.monotonic()
        conn = connection(self.settings)
        latest = await latest_updates(self.settings, idle_timeout_s=1.0)
        for task, update in latest.items():
            self.collector.deriver.versions[task] = update.version
        consumer = AIOKafkaConsumer(
            **conn.client_kwargs(),
            group_id=collector_group(self.settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(self.settings.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, self.settings.session_timeout_s / 3) * 1000),
        )
        self.consumer = consumer
        await _start(consumer, conn)
        try:
            topics = self.collector.topics
            consumer.subscribe(topics, listener=_Rebalance(self))
            ends: dict[TopicPartition, int] = {}
            if self.until_caught_up:
                parts = [tp for t in topics for tp in await _partitions_of(consumer, t, conn)]
                ends = await consumer.end_offsets(parts)
            await self._loop(consumer, ends)
            await self.flush_and_commit()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
        s = self.collector.stats
        self.echo(f"collector: done: {s.line()}")
        return CollectResult(
            s.records,
            dict(s.samples),
            s.duplicates,
            sum(s.skipped.values()),
            s.flushes,
            time.monotonic() - started,
        )

    async def _loop(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        read = "read the collector's topics (READ) as its group"
        last_progress = time.monotonic()
        while not self._stopping.is_set():
            batch = await _authorized(
                self.settings, read, consumer.getmany(timeout_ms=500, max_records=2000)
            )
            for tp, records in batch.items():
                if records:
                    self._reached[tp] = records[-1].offset + 1
                for rec in records:
                    self.collector.add(tp.topic, tp.partition, rec.offset, rec.value)
                    if self.collector.full:  # the bound on buffered samples
                        await self.flush_and_commit()
            if self.collector.should_flush():
                await self.flush_and_commit()
            now = time.monotonic()
            if (
                self.collector.pending
                and not self.collector.buffer
                and now - self._last_commit >= self.settings.batch.commit_interval_s
            ):
                await self.flush_and_commit()  # records without samples: commit them alone
            if now - last_progress >= PROGRESS_EVERY_S:
                last_progress = now
                self.echo(f"collector: {self.collector.stats.line()}")
            if ends and await self._caught_up(ends):
                return


def run_collector(
    settings: Settings, *, until_caught_up: bool = False, metrics: WorkerMetrics | None = None
) -> CollectResult:
    """Run until SIGTERM/SIGINT (or, with ``until_caught_up``, the end offsets at start);
    ``metrics`` (served by the caller) then shows the collector's counters, health and
    readiness (its group has partitions)."""

    async def main() -> CollectResult:
        run = CollectorRun(settings, until_caught_up=until_caught_up)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, run.stop)
        ticking = None
        if metrics is not None:
            metrics.registry.register(_CollectorScraped(run))
            metrics.ready_check = lambda: (
                run.consumer is not None and bool(run.consumer.assignment())
            )
            ticking = asyncio.create_task(_tick(metrics))
        try:
            return await run.run()
        finally:
            if ticking is not None:
                ticking.cancel()

    return asyncio.run(main())


async def _tick(metrics: WorkerMetrics) -> None:
    while True:
        metrics.tick()
        await asyncio.sleep(1.0)


class _CollectorScraped:
    """The collector's counters, read at scrape time."""

    def __init__(self, run: CollectorRun) -> None:
        self.run = run

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        s = self.run.collector.stats
        yield CounterMetricFamily(
            "memberstream_collector_records", "Records the collector read", value=s.records
        )
        samples = CounterMetricFamily(
            "memberstream_collector_samples", "Labeled samples derived, by task", labels=["task"]
        )
        for task, n in sorted(s.samples.items()):
            samples.add_metric([task], n)
        yield samples
        yield CounterMetricFamily(
            "memberstream_collector_duplicates", "Samples dropped as stored", value=s.duplicates
        )
        yield CounterMetricFamily(
            "memberstream_collector_flushes", "Shards flushed and committed", value=s.flushes
        )
