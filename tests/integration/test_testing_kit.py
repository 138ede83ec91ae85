"""The installed pytest plugin (``memberstream.testing``), used the way a downstream
project uses it: a test file of its own, run by pytest in a subprocess, no conftest;
and the kit's helpers that run a worker to the end and read what it published."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from memberstream.config import Settings
from memberstream.schemas import LineItem, PurchaseEvent
from memberstream.testing import produce_records, raw_records, read_outputs, run_until_processed

pytestmark = pytest.mark.integration

DOWNSTREAM = """
from memberstream.schemas import LineItem, PurchaseEvent
from memberstream.testing import produce, read_until


def order(event_id, day, total):
    kettle = LineItem(product_id="p1", title="Kettle", category="home_kitchen", quantity=1,
                      unit_price=total)
    return PurchaseEvent(event_id=event_id, member_id="m1", order_id=event_id, total=total,
                         occurred_at=f"2025-01-0{day}T10:00:00Z", items=[kettle])


def test_a_second_order_makes_a_member_silver(memberstream_namespace, memberstream_worker):
    s = memberstream_namespace
    memberstream_worker(s)
    produce(s, [order("e1", 1, 80.0), order("e2", 2, 80.0)])
    update = read_until(s, s.topics.member_tiers, lambda r: r["member_id"] == "m1")
    assert (update["tier"], update["cause_event_id"]) == ("silver", "e2")
    profile = read_until(s, s.topics.member_profiles, lambda r: r["orders"] == 2)
    assert profile["member_id"] == "m1"


def test_silence_fails_at_the_deadline(memberstream_namespace, memberstream_worker):
    s = memberstream_namespace
    memberstream_worker(s)
    read_until(s, s.topics.member_tiers, lambda r: r["member_id"] == "nobody", timeout_s=3)
"""


def test_a_downstream_project_uses_the_plugin(
    pytester: pytest.Pytester, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    # pytester gives the subprocess a HOME of its own: name the model directory
    model_dir = Settings().inference.encoder.resolved_model_dir()
    monkeypatch.setenv("MEMBERSTREAM_INFERENCE__ENCODER__MODEL_DIR", str(model_dir))
    pytester.makepyfile(test_downstream=DOWNSTREAM)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*no record on *member.tiers met the condition within 3 s*"])


def test_the_kit_runs_a_worker_to_the_end_and_reads_its_outputs(
    namespace: Settings, tmp_path: Path
) -> None:
    kettle = LineItem(
        product_id="p1", title="Kettle", category="home_kitchen", quantity=1, unit_price=80.0
    )
    orders = [
        PurchaseEvent(
            event_id=f"e{d}",
            member_id="m1",
            order_id=f"o{d}",
            occurred_at=f"2025-01-0{d}T10:00:00Z",
            total=80.0,
            items=[kettle],
        )
        for d in (1, 2)
    ]
    assert produce_records(namespace, raw_records(namespace, orders)) == 2
    run_until_processed(namespace, tmp_path / "worker.log")

    out = read_outputs(namespace)
    assert [(u["tier"], u["cause_event_id"]) for u in out.tier_updates.values()] == [
        ("silver", "e2")
    ]
    assert out.profiles["m1"]["orders"] == 2
    assert out.dead_letters == []

    # a re-emit must repeat its first payload: a different one under the same id fails
    update = next(iter(out.tier_updates.values()))
    forged = orjson.dumps({**update, "tier": "gold"})
    produce_records(namespace, [(namespace.topics.member_tiers, b"m1", forged)])
    with pytest.raises(AssertionError, match="two different payloads share output_id"):
        read_outputs(namespace)
