"""The Faust application: topics, the ``members`` table and the ingest agent.

``build_app(settings)`` is the one entry point; the worker command, the demo,
the tests and the benchmark all build their app through it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.types import StreamT, TableT, TopicT

from memberstream.config import Settings
from memberstream.core.batching import BatchStats
from memberstream.core.pipeline import member_batcher, product_batcher
from memberstream.errors import EX_SOFTWARE
from memberstream.ml.inference import InferenceStage, load_taxonomy, stage_from_settings
from memberstream.streams.commit_watchdog import CommitWatchdog
from memberstream.streams.faust_batches import TableStore, held_acks
from memberstream.streams.kafka_io import committed_offset, first_offset_at
from memberstream.streams.metrics import StateSize, WorkerMetrics
from memberstream.streams.model_watch import ModelWatcher
from memberstream.streams.offset_guard import OffsetGuard
from memberstream.streams.outputs import OutputNotDelivered, OutputSink

log = logging.getLogger(__name__)


@dataclass
class Progress(BatchStats):
    """Running totals of both agents' batches, logged periodically by the worker."""

    batches: int = 0
    """Member batches (the product agent's are counted in its own fields)."""
    started: float = field(default_factory=time.monotonic)
    last_batch_at: float = field(default_factory=time.monotonic)
    busy: int = 0
    """Agents in the middle of a batch."""

    def member_batch(self, stats: BatchStats) -> None:
        self.add(stats)
        self.batches += 1
        self.last_batch_at = time.monotonic()

    def product_batch(self, stats: BatchStats) -> None:
        self.add(stats)
        self.last_batch_at = time.monotonic()


def broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip()]


SinkFactory = Callable[[faust.App, Settings], OutputSink]


def make_faust_app(settings: Settings) -> faust.App:
    """A Faust app with memberstream's broker, store, commit and consumer settings."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return faust.App(
        settings.app_id,
        broker=broker_urls(settings.kafka_bootstrap_servers),
        broker_credentials=settings.kafka.faust_credentials(),
        store=settings.store,
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        producer_linger_ms=5,
        web_enabled=False,
        table_standby_replicas=0,
        broker_commit_interval=settings.batch.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        autodiscover=False,
    )


def raw_inputs(app: faust.App, settings: Settings) -> TopicT:
    """The click, purchase, review and feedback topics as one raw-bytes source
    (decoded by us)."""
    return _raw_topic(app, settings, *settings.topics.ingest())


def _raw_topic(app: faust.App, settings: Settings, *names: str) -> TopicT:
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )


def _bytes_table(app: faust.App, settings: Settings, name: str, help_text: str) -> TableT:
    """A table of raw bytes both ways, keyed like the topic that feeds it.

    Faust derives a table's serializers from its types and falls back to "json"
    for bytes, which would hand back dicts from RocksDB and from changelog
    recovery. Set before the store and the changelog topic are created (both
    lazily, on first use).
    """
    table = app.Table(
        name,
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
        help=help_text,
        options=settings.rocksdb.table_options() if settings.store.startswith("rocksdb") else None,
    )
    table.key_serializer = "raw"
    table.value_serializer = "raw"
    return table


class _FromSettings:
    """Marker: build the inference stage from the settings."""


FROM_SETTINGS = _FromSettings()


def build_app(
    settings: Settings,
    sink_factory: SinkFactory = OutputSink,
    stage: InferenceStage | _FromSettings | None = FROM_SETTINGS,
    follow_model_updates: bool = True,
) -> faust.App:
    """A configured Faust app with the ingest agent registered.

    ``sink_factory`` builds what the agent produces through; agent tests pass
    one that records outputs in memory. ``stage`` is the inference stage (by
    default loaded from ``settings.inference``, which raises
    :class:`~memberstream.ml.encoder.EncoderError` when the model cannot be
    loaded; None runs without a text model).
    """
    taxonomy = load_taxonomy(settings)
    if isinstance(stage, _FromSettings):
        stage = stage_from_settings(settings, taxonomy)
    app = make_faust_app(settings)
    topics = settings.topics
    watcher = None
    if stage is not None and follow_model_updates:
        watcher = ModelWatcher(settings, stage)

        @app.task
        async def watch_model_updates() -> None:
            await watcher.run()

    inputs = raw_inputs(app, settings)
    members = _bytes_table(
        app,
        settings,
        "members",
        "per-member state: RFM window, tier, recent event ids, applied offsets",
    )
    products = _bytes_table(
        app,
        settings,
        "products",
        "per-product state: review windows, recent flags, applied offsets",
    )
    progress = Progress()
    app.memberstream_progress = progress  # type: ignore[attr-defined]
    metrics = WorkerMetrics(settings)
    app.memberstream_metrics = metrics  # type: ignore[attr-defined]  # (read by the sink)
    metrics.app = app
    metrics.stage = stage
    metrics.gpu = stage is not None and "CUDAExecutionProvider" in getattr(
        stage.encoder, "providers", ()
    )
    if stage is not None:
        stage.on_compute = metrics.observe_model

    def ready() -> bool:
        recovered = app.tables.recovery.completed.is_set()
        models = watcher is None or watcher.ready.is_set()
        return recovered and models and not app.rebalancing

    metrics.ready_check = ready

    @app.timer(interval=1.0)
    async def heartbeat() -> None:
        metrics.tick()  # /healthz: the event loop runs

    batch = settings.batch

    guards: list[OffsetGuard] = []

    async def first_record_at(tp: Any, offset: int) -> int | None:
        return await first_offset_at(settings, tp.topic, tp.partition, offset)

    async def committed_at(tp: Any) -> int | None:
        return await committed_offset(settings, settings.app_id, tp.topic, tp.partition)

    async def run_batches(
        agent: str,
        stream: StreamT,
        process: Callable[[Any], Awaitable[Any]],
        done: Callable[[Any], None],
    ) -> None:
        guard = OffsetGuard(app.consumer, first_record_at, committed_at)
        guards.append(guard)
        if watcher is not None:  # the announced versions before the first record
            await watcher.ready.wait()
        async for events in stream.take_events(batch.max_batch, within=batch.max_wait_s):
            try:
                progress.busy += 1
                admitted = await guard.admit(events)
                if admitted:
                    if stage is not None:
                        stage.batch_started()  # a new model version never lands mid-batch
                    try:
                        started = time.perf_counter()
                        with held_acks(admitted):
                            stats = await process(admitted)
                        done(stats)
                        metrics.count_events(ev.message.topic for ev in admitted)
                        metrics.observe_batch(
                            agent, len(admitted), time.perf_counter() - started, stats.duplicates
                        )
                    finally:
                        if stage is not None:
                            stage.batch_finished()
                progress.busy -= 1
            except OutputNotDelivered as exc:
                # The broker did not take the batch's outputs (down too long, topic gone,
                # not authorized). Nothing of the batch is committed or written to state;
                # a restarted worker processes it again (at-least-once).
                log.critical("batch failed, exiting without committing it: %s (%s)", exc, exc.hint)
                logging.shutdown()
                os._exit(exc.exit_code)
            except Exception:
                # Bad records never get here (they go to the DLQ); this is a bug or the
                # process failing. Exit at once, as above.
                log.critical("batch failed; exiting without committing it", exc_info=True)
                logging.shutdown()
                os._exit(EX_SOFTWARE)

    @app.on_partitions_assigned.connect
    async def check_offsets_again(sender: Any, assigned: Any, **_: Any) -> None:
        for guard in guards:  # the next records are checked against committed offsets
            guard.forget()

    @app.agent(inputs, name="ingest", concurrency=1)
    async def ingest(stream: StreamT) -> None:
        batcher = member_batcher(
            settings, TableStore(members), sink_factory(app, settings), stage, taxonomy
        )
        await run_batches("ingest", stream, batcher.process, progress.member_batch)

    @app.agent(_raw_topic(app, settings, topics.product_reviews), name="products", concurrency=1)
    async def product_agent(stream: StreamT) -> None:
        batcher = product_batcher(
            settings, TableStore(products), sink_factory(app, settings), stage
        )
        await run_batches("products", stream, batcher.process, progress.product_batch)

    @app.timer(interval=10.0)
    async def report_progress() -> None:
        if progress.batches:
            elapsed = time.monotonic() - progress.started
            log.info(
                "progress: records=%d accepted=%d duplicates=%d dlq=%d tier_changes=%d "
                "interest_changes=%d flags=%d (suppressed %d) product_records=%d summaries=%d "
                "rate=%.0f/s%s",
                progress.records,
                progress.accepted,
                progress.duplicates,
                progress.dead_letters,
                progress.tier_changes,
                progress.interest_changes,
                progress.flags,
                progress.flags_suppressed,
                progress.product_records,
                progress.summaries,
                progress.records / max(elapsed, 1e-9),
                "" if stage is None else _stage_line(stage, elapsed),
            )

    def forget_expected(tps: list[Any]) -> None:
        for guard in guards:
            guard.forget(tps)

    watchdog = CommitWatchdog(
        app, [*topics.ingest(), topics.product_reviews], settings.stall_after_s, forget_expected
    )
    app.memberstream_watchdog = watchdog  # type: ignore[attr-defined]
    metrics.watchdog = watchdog

    @app.timer(interval=max(1.0, settings.stall_after_s / 4))
    async def unstick_commits() -> None:
        if progress.busy:
            return
        stuck = await watchdog.check(time.monotonic() - progress.last_batch_at)
        if stuck:
            progress.last_batch_at = time.monotonic()  # give the re-read time to arrive

    state_size = StateSize(
        metrics,
        {"members": members, "products": products},
        Path(app.conf.tabledir) if settings.store.startswith("rocksdb") else None,
    )

    @app.timer(interval=settings.metrics.state_every_s)
    async def sample_state_size() -> None:
        await state_size.sample()

    app.memberstream_tables = {"members": members, "products": products}  # type: ignore[attr-defined]
    app.memberstream_stage = stage  # type: ignore[attr-defined]
    return app


def _stage_line(stage: InferenceStage, elapsed: float) -> str:
    st, cache = stage.stats, stage.cache
    lookups = cache.hits + cache.misses
    return (
        f" texts_encoded={st.texts_encoded} model_busy={st.model_seconds / max(elapsed, 1e-9):.0%}"
        f" title_cache_hits={cache.hits / lookups if lookups else 0:.0%}"
    )
