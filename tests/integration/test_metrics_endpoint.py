"""The worker's /metrics, /healthz and /readyz through a real worker on the real broker:
counters move with the stream, dead letters are counted by reason, lag falls to zero, and
the worker reports ready once it is assigned, recovered and has its models."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from memberstream.config import Settings
from memberstream.schemas.events import ClickEvent, LineItem, PurchaseEvent
from memberstream.streams.kafka_io import produce_raw
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import produce, wait_processed

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def samples(text: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in (line.rsplit(" ", 1) for line in text.splitlines() if line[:1] != "#")
    }


def until(check, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: not within {timeout_s:g} s (last: {last!r})")


def events(n: int) -> list[ClickEvent | PurchaseEvent]:
    out: list[ClickEvent | PurchaseEvent] = []
    for i in range(n):
        t = f"2025-02-0{1 + i % 5}T1{i % 10}:00:00Z"
        out.append(ClickEvent(event_id=f"c{i}", member_id=f"m{i % 7}", occurred_at=t,
                              action="view", product_id=f"p{i % 11}", title="Desk lamp",
                              category="home_kitchen"))  # fmt: skip
        if i % 4 == 0:
            item = LineItem(product_id=f"p{i % 11}", title="Desk lamp", category="home_kitchen",
                            quantity=1, unit_price=35.0)  # fmt: skip
            out.append(PurchaseEvent(event_id=f"o{i}", member_id=f"m{i % 7}", occurred_at=t,
                                     order_id=f"o{i}", items=[item], total=35.0))  # fmt: skip
    return out


def test_metrics_move_with_the_stream_and_lag_falls_to_zero(
    namespace: Settings, tmp_path: Path
) -> None:
    settings = namespace.model_copy(deep=True)
    settings.metrics.port = free_port()
    base = f"http://127.0.0.1:{settings.metrics.port}"
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        until(lambda: get(base + "/healthz")[0] == 200, 60, "/healthz answers")
        until(lambda: get(base + "/readyz")[0] == 200, 90, "/readyz turns ready")
        stream = events(60)
        produce(settings, stream)
        bad = [(b"m1", b"{not json"), (b"m2", b'{"type": "purchase"}')]
        asyncio.run(produce_raw(settings, settings.topics.purchases, bad))
        wait_processed(settings, worker, 120)
        clicks, purchases = settings.topics.clicks, settings.topics.purchases

        def settled() -> dict[str, float] | None:
            s = samples(get(base + "/metrics")[1])
            lag = sum(v for k, v in s.items() if k.startswith("memberstream_consumer_lag{"))
            done = s.get(f'memberstream_events_in_total{{topic="{purchases}"}}', 0) >= 17
            return s if done and lag == 0 else None

        s = until(settled, 60, "counters caught up and lag zero")
        assert s[f'memberstream_events_in_total{{topic="{clicks}"}}'] == 60
        assert s[f'memberstream_events_in_total{{topic="{purchases}"}}'] == 15 + 2
        letters = {k: v for k, v in s.items() if k.startswith("memberstream_dead_letters_total")}
        assert sum(letters.values()) == 2 and all(purchases in k for k in letters), letters
        profiles = f'memberstream_outputs_total{{topic="{settings.topics.member_profiles}"}}'
        assert s[profiles] >= 7
        assert s['memberstream_batch_records_count{agent="ingest"}'] >= 1
        assert any(k.startswith("memberstream_model_info{") for k in s)
        assert s["memberstream_ready"] == 1.0
        assert s["memberstream_cpu_seconds_per_1k_events"] > 0
        assert s['memberstream_cost_per_million_events{currency="USD"}'] > 0
    finally:
        worker.stop()
