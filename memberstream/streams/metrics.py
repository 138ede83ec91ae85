"""Prometheus metrics, health and readiness of a worker (or the sample collector).

One :class:`WorkerMetrics` per process holds its own registry. The batch path counts
as it goes (events in per topic, outputs per topic, dead letters by topic and error
type, duplicates, batch sizes and latencies, flags by kind, summaries); the rest is
read at scrape time from what already keeps it (the inference stage's model time and
title cache, the consumer's committed offsets and high watermarks, the commit
watchdog's re-seeks, the live model versions, the process's CPU time and memory).
:class:`StateSize` adds the worker's state size, sampled every ``metrics.state_every_s``.

Cost: CPU-seconds of the process (``time.process_time``: every thread, the model's
included) per 1,000 events in, and in money at ``metrics.core_hour_price``; with a
GPU, the model's seconds count as GPU-seconds at ``metrics.gpu_hour_price``.

:class:`MetricsServer` serves ``/metrics``, ``/healthz`` (the event loop ran within
``metrics.stall_s``) and ``/readyz`` (partitions assigned, tables recovered, the
announced models applied, as evaluated on the event loop at its last tick) from a
thread, so a stuck event loop still answers, and answers "unhealthy".
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.process_collector import ProcessCollector

from memberstream.config import Settings
from memberstream.streams.commit_watchdog import fetched_positions

log = logging.getLogger(__name__)
disable_created_metrics()  # a *_created series per counter doubles the scrape for nothing

BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500)
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class CostMeter:
    """CPU (and GPU) seconds per 1,000 events and the money they cost.

    ``cpu_clock`` gives the process's CPU seconds so far (a test passes a fake one).
    """

    core_hour_price: float
    gpu_hour_price: float
    cpu_clock: Callable[[], float] = time.process_time
    started_cpu: float = field(init=False)

    def __post_init__(self) -> None:
        self.started_cpu = self.cpu_clock()

    def cpu_seconds(self) -> float:
        return self.cpu_clock() - self.started_cpu

    @staticmethod
    def per_1k(seconds: float, events: float) -> float:
        return 1000.0 * seconds / events if events > 0 else 0.0

    def cost_per_million(self, cpu_seconds: float, gpu_seconds: float, events: float) -> float:
        """Money per 1,000,000 events at the configured prices."""
        if events <= 0:
            return 0.0
        per_event = (
            (cpu_seconds * self.core_hour_price + gpu_seconds * self.gpu_hour_price)
            / 3600.0
            / events
        )
        return per_event * 1_000_000


class WorkerMetrics:
    """The process's metrics; the batch path calls the ``count_*``/``observe_*`` methods."""

    def __init__(self, settings: Settings, cpu_clock: Callable[[], float] = time.process_time):
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_in = Counter(
            "memberstream_events_in", "Input records taken, per topic", ["topic"], registry=r
        )
        self.outputs = Counter(
            "memberstream_outputs", "Records produced, per topic", ["topic"], registry=r
        )
        self.dead_letters = Counter(
            "memberstream_dead_letters",
            "Records sent to the dead-letter topic, by source topic and error type",
            ["topic", "error_type"],
            registry=r,
        )
        self.duplicates = Counter(
            "memberstream_duplicates", "Records skipped as already applied", registry=r
        )
        self.flags = Counter(
            "memberstream_flags", "Anomaly flags raised, by kind", ["kind"], registry=r
        )
        self.summaries = Counter("memberstream_summaries", "Review summaries written", registry=r)
        self.batch_records = Histogram(
            "memberstream_batch_records",
            "Records per batch",
            ["agent"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "memberstream_batch_seconds",
            "Time to process a batch, outputs acknowledged and state written",
            ["agent"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_seconds = Histogram(
            "memberstream_model_seconds",
            "Time of one model call of the inference stage, per model version",
            ["model_version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.texts_encoded = Counter(
            "memberstream_texts_encoded",
            "Texts the model encoded (cache misses), per model version",
            ["model_version"],
            registry=r,
        )
        self.cost = CostMeter(
            settings.metrics.core_hour_price, settings.metrics.gpu_hour_price, cpu_clock
        )
        self.gpu = False
        self.stage: Any = None
        self.app: Any = None
        self.watchdog: Any = None
        self.ready_check: Callable[[], bool] = lambda: False
        self.ready_now = False
        self.last_tick = time.monotonic()
        ProcessCollector(registry=r)
        r.register(_Scraped(self))

    # -- the batch path ------------------------------------------------------------------

    def count_events(self, topics: Iterable[str]) -> None:
        """One batch's records by topic (one increment per topic, not per record)."""
        for topic, n in collections.Counter(topics).items():
            self.events_in.labels(topic).inc(n)

    def count_output(self, topic: str, payload: dict[str, Any], role: str) -> None:
        self.outputs.labels(topic).inc()
        if role == "member_anomalies":
            self.flags.labels(str(payload.get("kind", "?"))).inc()
        elif role == "product_review_summaries":
            self.summaries.inc()

    def count_dead_letter(self, topic: str, error_type: str) -> None:
        self.dead_letters.labels(topic, error_type).inc()

    def observe_batch(self, agent: str, records: int, seconds: float, duplicates: int) -> None:
        self.batch_records.labels(agent).observe(records)
        self.batch_seconds.labels(agent).observe(seconds)
        if duplicates:
            self.duplicates.inc(duplicates)

    def observe_model(self, seconds: float, texts: int) -> None:
        version = "none" if self.stage is None else self.stage.model_version
        self.model_seconds.labels(version).observe(seconds)
        self.texts_encoded.labels(version).inc(texts)

    def tick(self) -> None:
        """The event loop is running (called by a timer on it): note the time, and evaluate
        readiness here, on the loop. The endpoint's thread only reads the answer: the
        check touches the app's objects (Faust creates some lazily), and touching them
        from another thread while the worker starts could leave it never subscribing."""
        self.last_tick = time.monotonic()
        try:
            self.ready_now = bool(self.ready_check())
        except Exception:
            self.ready_now = False

    # -- health ----------------------------------------------------------------------------

    def healthy(self) -> bool:
        return time.monotonic() - self.last_tick < self.settings.metrics.stall_s

    def ready(self) -> bool:
        """As of the last tick (see :meth:`tick`)."""
        return self.ready_now

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Scraped:
    """What is read at scrape time (see the module doc)."""

    def __init__(self, metrics: WorkerMetrics) -> None:
        self.m = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        m = self.m
        events = sum(
            s.value
            for metric in m.events_in.collect()
            for s in metric.samples
            if s.name.endswith("_total")
        )
        cpu = m.cost.cpu_seconds()
        gpu = 0.0
        if m.gpu and m.stage is not None:
            gpu = m.stage.stats.model_seconds
        yield CounterMetricFamily(
            "memberstream_cpu_seconds", "CPU seconds of the process since start", value=cpu
        )
        yield GaugeMetricFamily(
            "memberstream_cpu_seconds_per_1k_events",
            "CPU seconds per 1,000 input events, since start",
            value=m.cost.per_1k(cpu, events),
        )
        cost = GaugeMetricFamily(
            "memberstream_cost_per_million_events",
            "CPU (and GPU) cost per 1,000,000 input events at the configured prices",
            labels=["currency"],
        )
        cost.add_metric([m.settings.metrics.currency], m.cost.cost_per_million(cpu, gpu, events))
        yield cost
        yield GaugeMetricFamily("memberstream_ready", "1 when ready", value=float(m.ready()))
        stage = m.stage
        if stage is not None:
            yield CounterMetricFamily(
                "memberstream_title_cache_hits", "Title cache hits", value=stage.cache.hits
            )
            yield CounterMetricFamily(
                "memberstream_title_cache_misses", "Title cache misses", value=stage.cache.misses
            )
            info = GaugeMetricFamily(
                "memberstream_model_info",
                "The model versions in use (value 1)",
                labels=["task", "version"],
            )
            for task, version in _model_versions(stage).items():
                info.add_metric([task, version], 1.0)
            yield info
        if m.watchdog is not None:
            yield CounterMetricFamily(
                "memberstream_watchdog_reseeks",
                "Times the commit watchdog sought partitions back",
                value=m.watchdog.reseeks,
            )
        lag = GaugeMetricFamily(
            "memberstream_consumer_lag",
            "High watermark minus committed offset, per assigned partition",
            labels=["topic", "partition"],
        )
        for topic, partition, value in _lag(m.app, set(m.settings.topics.consumed())):
            lag.add_metric([topic, str(partition)], value)
        yield lag


def _model_versions(stage: Any) -> dict[str, str]:
    versions = {"encoder": str(stage.encoder.version), "interest": str(stage.head_version)}
    if stage.sentiment is not None:
        versions["sentiment"] = str(stage.sentiment.version)
    if stage.scorer is not None:
        versions["anomaly"] = str(stage.scorer.version)
    return versions


def _lag(app: Any, topics: set[str]) -> list[tuple[str, int, float]]:
    """(topic, partition, lag) of the assigned partitions of ``topics`` the consumer has
    fetched from (not the tables' changelogs, which the group never commits)."""
    consumer = None if app is None else getattr(app, "consumer", None)
    if consumer is None:
        return []
    try:
        assignment = list(consumer.assignment())
    except Exception:
        return []
    return [
        (tp.topic, tp.partition, float(max(highwater - (committed or 0), 0)))
        for tp, committed, highwater in fetched_positions(consumer, assignment, topics)
    ]


class StateSize:
    """The worker's state size: entries per table and bytes of the tables' directory,
    sampled by a timer every ``metrics.state_every_s`` (never per record) and served as
    last sampled. The process's resident memory is ``process_resident_memory_bytes``."""

    def __init__(
        self, metrics: WorkerMetrics, tables: Mapping[str, Any], directory: Path | None
    ) -> None:
        self.tables = tables
        self.directory = directory
        self.entries = Gauge(
            "memberstream_state_entries",
            "Entries per table (RocksDB: its estimate), as last sampled",
            ["table"],
            registry=metrics.registry,
        )
        self.bytes = Gauge(
            "memberstream_state_bytes",
            "Bytes of the tables' files on disk, as last sampled",
            registry=metrics.registry,
        )

    async def sample(self) -> None:
        """Entries on the event loop (the stores are opened and closed there), the
        directory walk on a thread."""
        for name, table in self.tables.items():
            entries = table_entries(table)
            if entries is not None:
                self.entries.labels(name).set(entries)
        if self.directory is not None:
            loop = asyncio.get_running_loop()
            self.bytes.set(await loop.run_in_executor(None, directory_bytes, self.directory))


def table_entries(table: Any) -> int | None:
    """A Faust table's entries, cheaply: RocksDB's estimate per partition database
    (counting would read the whole table), or the in-memory store's size; None before
    the store exists."""
    store = getattr(table, "_data", None)  # not table.data, which would create it
    if store is None:
        return None
    dbs = getattr(store, "_dbs", None)
    if dbs is not None:
        return sum(_estimated_keys(db) for db in list(dbs.values()))
    data = getattr(store, "data", None)
    return None if data is None else len(data)


def _estimated_keys(db: Any) -> int:
    if hasattr(db, "property_int_value"):  # rocksdict
        return int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
    return int(db.get_property(b"rocksdb.estimate-num-keys") or 0)  # python-rocksdb


def directory_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist); files that vanish
    meanwhile (a compaction) are skipped."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


class Served(Protocol):
    """What the endpoint asks of a process's metrics (:class:`WorkerMetrics`, the
    learning loop's :class:`~memberstream.streams.training_metrics.TrainerMetrics`)."""

    def render(self) -> bytes: ...

    def healthy(self) -> bool: ...

    def ready(self) -> bool: ...


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on a thread of their own."""

    def __init__(self, metrics: Served, host: str, port: int) -> None:
        handler = _handler(metrics)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, name="memberstream-metrics", daemon=True
        )

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _handler(metrics: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = metrics.healthy()
                self._send(200 if ok else 503, b"ok\n" if ok else b"event loop stalled\n")
            elif path == "/readyz":
                ok = metrics.ready()
                self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes every few seconds would drown the worker's log

    return Handler
