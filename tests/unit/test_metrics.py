"""The worker's metrics: cost arithmetic on a fake clock, what the registry renders, and
the health and readiness endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from memberstream.config import Settings
from memberstream.streams.metrics import CostMeter, MetricsServer, WorkerMetrics


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_cost_per_million_events_from_cpu_and_gpu_seconds() -> None:
    clock = FakeClock()
    meter = CostMeter(core_hour_price=0.04, gpu_hour_price=2.5, cpu_clock=clock)
    clock.t += 36.0  # 36 CPU seconds for 10,000 events
    assert meter.cpu_seconds() == 36.0
    assert meter.per_1k(36.0, 10_000) == pytest.approx(3.6)
    # 36 s x $0.04/h = $0.0004 per 10,000 events -> $0.04 per million
    assert meter.cost_per_million(36.0, 0.0, 10_000) == pytest.approx(0.04)
    # plus 7.2 GPU seconds x $2.5/h = $0.005 per 10,000 -> $0.50 per million
    assert meter.cost_per_million(36.0, 7.2, 10_000) == pytest.approx(0.54)
    assert meter.cost_per_million(36.0, 0.0, 0) == 0.0


def test_the_registry_renders_counters_the_batch_path_moves() -> None:
    clock = FakeClock()
    m = WorkerMetrics(Settings(), cpu_clock=clock)
    m.count_events(["events.clicks", "events.clicks", "events.purchases"])
    m.count_output("member.anomalies", {"kind": "bot_pattern"}, "member_anomalies")
    m.count_output("product.review-summaries", {}, "product_review_summaries")
    m.count_dead_letter("events.clicks", "decode")
    m.observe_batch("ingest", 3, 0.02, duplicates=1)
    clock.t += 0.3
    text = m.render().decode()
    assert 'memberstream_events_in_total{topic="events.clicks"} 2.0' in text
    assert 'memberstream_flags_total{kind="bot_pattern"} 1.0' in text
    assert "memberstream_summaries_total 1.0" in text
    assert 'memberstream_dead_letters_total{error_type="decode",topic="events.clicks"} 1.0' in text
    assert "memberstream_duplicates_total 1.0" in text
    assert 'memberstream_batch_records_count{agent="ingest"} 1.0' in text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")
    assert float(values["memberstream_cpu_seconds_per_1k_events"]) == pytest.approx(100.0)
    assert "memberstream_events_in_created" not in text
    assert "memberstream_ready 0.0" in text
    assert "process_resident_memory_bytes" in text


def test_health_follows_the_event_loop_and_readiness_its_check() -> None:
    settings = Settings()
    settings.metrics.stall_s = 30.0
    m = WorkerMetrics(settings)
    server = MetricsServer(m, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert _get(base + "/healthz") == 200
        assert _get(base + "/readyz") == 503
        m.ready_check = lambda: True
        assert _get(base + "/readyz") == 503  # evaluated on the event loop, at its tick
        m.tick()
        assert _get(base + "/readyz") == 200
        m.last_tick -= 31.0  # the loop has not ticked for 31 s
        assert _get(base + "/healthz") == 503
        m.tick()
        assert _get(base + "/healthz") == 200
        assert _get(base + "/nothing") == 404
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            assert b"memberstream_ready 1.0" in r.read()
    finally:
        server.stop()


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def test_state_size_counts_table_entries_and_bytes_on_disk(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Real tables of the worker's app: RocksDB's key estimate per partition database and
    the files under the tables' directory; the in-memory store's size."""
    from pathlib import Path

    from memberstream.streams.app import build_app
    from memberstream.streams.metrics import StateSize

    settings = Settings(store="rocksdb://", data_dir=tmp_path / "data")
    app = build_app(settings, stage=None)
    tables = app.memberstream_tables  # type: ignore[attr-defined]
    m = WorkerMetrics(settings)
    state = StateSize(m, tables, Path(app.conf.tabledir))
    await state.sample()  # nothing opened yet: no entries, nothing on disk
    assert "memberstream_state_entries{" not in m.render().decode()
    for partition in (0, 1):
        db = tables["members"].data._db_for_partition(partition)
        for i in range(50):
            db[f"member-{partition}-{i}".encode()] = b"x" * 100
    tables["products"].data._db_for_partition(0)
    await state.sample()
    text = m.render().decode()
    assert 'memberstream_state_entries{table="members"} 100.0' in text
    assert 'memberstream_state_entries{table="products"} 0.0' in text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")
    assert float(values["memberstream_state_bytes"]) > 0
    for table in tables.values():
        for db in table.data._dbs.values():
            db.close()

    memory = build_app(Settings(store="memory://", data_dir=tmp_path / "mem"), stage=None)
    members = memory.memberstream_tables["members"]  # type: ignore[attr-defined]
    members.data.data.update({b"a": b"1", b"b": b"2"})
    m = WorkerMetrics(settings)
    await StateSize(m, {"members": members}, None).sample()
    assert 'memberstream_state_entries{table="members"} 2.0' in m.render().decode()
