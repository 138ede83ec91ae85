"""The installed pytest plugin (``memberstream.testing``), used the way a downstream
project uses it: a test file of its own, run by pytest in a subprocess, no conftest."""

from __future__ import annotations

import pytest

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
    from memberstream.config import Settings

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    # pytester gives the subprocess a HOME of its own: name the model directory
    model_dir = Settings().inference.encoder.resolved_model_dir()
    monkeypatch.setenv("MEMBERSTREAM_INFERENCE__ENCODER__MODEL_DIR", str(model_dir))
    pytester.makepyfile(test_downstream=DOWNSTREAM)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=300)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*no record on *member.tiers met the condition within 3 s*"])
