"""The guarantees of DESIGN.md, through a real broker and a real worker process:
nothing lost (DLQ), no duplicate effects, crash safety, event-time replay."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from pathlib import Path

import orjson
import pytest

from memberstream.config import Settings
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import group_lag
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import (
    RawRecord,
    produce_records,
    raw_records,
    read_outputs,
    run_until_processed,
    wait_processed,
)

from .conftest import make_namespace
from .harness import assert_same_profiles, expected

pytestmark = pytest.mark.integration


def workload(n: int, seed: int = 11) -> list[Envelope]:
    config = WorkloadConfig(seed=seed, members=150, days=120)
    return list(itertools.islice(SyntheticWorkload(config).events(), n))


def malformed(settings: Settings) -> list[tuple[str, RawRecord]]:
    """(what is wrong, record) for each kind of bad input, each value unique."""
    t = settings.topics
    good_purchase = {
        "event_id": "bad-base",
        "member_id": "mbad",
        "occurred_at": "2024-02-01T10:00:00Z",
        "order_id": "o-bad",
        "items": [
            {
                "product_id": "p1",
                "title": "Kettle",
                "category": "home_kitchen",
                "quantity": 1,
                "unit_price": 20.0,
            }
        ],
        "total": 20.0,
    }

    def purchase(**changes: object) -> bytes:
        return orjson.dumps({**good_purchase, **changes})

    review = {
        "event_id": "bad-review",
        "member_id": "mbad",
        "occurred_at": "2024-02-01T10:00:00Z",
        "product_id": "p1",
        "rating": 4,
        "title": "ok",
        "text": "fine",
    }
    missing = dict(good_purchase)
    del missing["order_id"]
    return [
        ("bad JSON", (t.purchases, b"mbad", b'{"event_id": "x1", "member_id": ')),
        ("not an object", (t.purchases, b"mbad", b'["a", "b"]')),
        ("invalid UTF-8", (t.purchases, b"mbad", b'{"event_id": "\xff\xfe"}')),
        ("wrong type", (t.reviews, b"mbad", orjson.dumps({**review, "rating": "5"}))),
        ("missing field", (t.purchases, b"mbad", orjson.dumps(missing))),
        (
            "naive timestamp",
            (t.purchases, b"mbad", purchase(event_id="x2", occurred_at="2024-02-01T10:00:00")),
        ),
        ("negative total", (t.purchases, b"mbad", purchase(event_id="x3", total=-5.0))),
        ("oversized text", (t.reviews, b"mbad", orjson.dumps({**review, "text": "a" * 6000}))),
        (
            "unknown schema version",
            (t.purchases, b"mbad", purchase(event_id="x4", schema_version=9)),
        ),
        ("key mismatch", (t.purchases, b"someone-else", purchase(event_id="x5"))),
        ("null value", (t.clicks, b"mbad", None)),
        ("wrong event type", (t.clicks, b"mbad", purchase(event_id="x6", type="purchase"))),
    ]


EXPECTED_REASON = {
    "bad JSON": "invalid JSON",
    "not an object": "expected a JSON object",
    "invalid UTF-8": "UTF-8",
    "wrong type": "rating",
    "missing field": "order_id",
    "naive timestamp": "timezone-aware",
    "negative total": "total",
    "oversized text": "text",
    "unknown schema version": "schema_version",
    "key mismatch": "does not match member_id",
    "null value": "null value",
    "wrong event type": "type",
}


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def test_malformed_records_go_to_dlq_once_and_good_ones_are_processed(
    namespace: Settings, tmp_path: Path
) -> None:
    events = workload(1500)
    good = raw_records(namespace, events)
    bad = malformed(namespace)
    step = len(good) // (len(bad) + 1)  # spread the bad records through the stream
    mixed: list[RawRecord] = list(good)
    for j, (_, record) in enumerate(bad):
        mixed.insert((j + 1) * step + j, record)
    produce_records(namespace, mixed)
    run_until_processed(namespace, tmp_path / "worker.log")

    out = read_outputs(namespace)
    want = expected(namespace, events)
    # exactly one dead letter per bad record, carrying its bytes and the reason
    assert len(out.dead_letters) == len(bad)
    by_value = {(d["source_topic"], d["value_b64"]): d for d in out.dead_letters}
    assert len(by_value) == len(bad)
    for what, (topic, key, value) in bad:
        letter = by_value.get((topic, _b64(value)))
        assert letter is not None, f"no dead letter for {what}"
        assert letter["key_b64"] == _b64(key)
        assert EXPECTED_REASON[what] in letter["reason"], (what, letter["reason"])
        assert letter["offset"] >= 0 and letter["partition"] >= 0
    # every good event had its effect
    assert want.tier_updates, "the workload should cause tier changes"
    assert out.tier_updates == want.tier_updates
    assert_same_profiles(namespace, out.profiles, want.profiles)
    assert sum(p["events"] for p in out.profiles.values()) == len(events)


def test_every_event_twice_changes_no_profile(namespace: Settings, tmp_path: Path) -> None:
    events = workload(1200, seed=12)
    records = raw_records(namespace, events)
    # each event sent twice: once in order, and again after the next few events
    doubled: list[RawRecord] = []
    for i, record in enumerate(records):
        doubled.append(record)
        if i >= 3:
            doubled.append(records[i - 3])
    doubled += records[-3:]
    produce_records(namespace, doubled)
    run_until_processed(namespace, tmp_path / "worker.log")

    out = read_outputs(namespace)
    want = expected(namespace, events)
    assert out.dead_letters == []
    assert_same_profiles(namespace, out.profiles, want.profiles)
    assert out.tier_updates == want.tier_updates  # re-emits carry the same id and payload


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_stopping_the_worker_mid_stream_loses_nothing_and_double_counts_nothing(
    how: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """SIGKILL: no chance to flush or commit. SIGTERM: faust cancels the agent mid-batch
    and commits on the way out; an interrupted batch must not be committed."""
    settings = make_namespace(kafka_bootstrap, tmp_path, store="rocksdb://")
    events = workload(12_000, seed=13)
    produce_records(settings, raw_records(settings, events))
    total = len(events)

    worker = WorkerProcess(settings, tmp_path / "worker-1.log").start()
    deadline = time.monotonic() + 120
    killed_at_lag = None
    while time.monotonic() < deadline:  # kill once it is well into the stream
        lag = asyncio.run(group_lag(settings, settings.app_id, settings.topics.inputs()))
        if 0 < lag < total * 0.7:
            if how == "SIGKILL":
                worker.kill()
            else:
                worker.stop()
            killed_at_lag = lag
            break
        assert worker.running, worker.log_tail()
        time.sleep(0.2)
    assert killed_at_lag is not None, "worker never got into the stream"

    restarted = WorkerProcess(settings, tmp_path / "worker-2.log").start()
    try:
        wait_processed(settings, restarted, 180)
    finally:
        restarted.stop()

    out = read_outputs(settings)
    want = expected(settings, events)
    assert out.dead_letters == []
    assert out.tier_updates == want.tier_updates  # none lost, none different
    assert_same_profiles(settings, out.profiles, want.profiles)  # nothing counted twice


def test_replay_into_fresh_topics_gives_identical_outputs(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = workload(2000, seed=14)
    runs = []
    for i in range(2):
        settings = make_namespace(kafka_bootstrap, tmp_path / f"run{i}")
        produce_records(settings, raw_records(settings, events))
        run_until_processed(settings, tmp_path / f"worker-{i}.log")
        runs.append(read_outputs(settings))
    first, second = runs
    assert first.tier_updates and first.profiles
    assert first.tier_updates == second.tier_updates
    assert_same_profiles(settings, first.profiles, second.profiles)
