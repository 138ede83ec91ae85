"""Anomaly flags through the real broker, a real worker process, the real text model and
the trained scorer: injected incidents in, explainable flags out, with ids that survive a
SIGKILL, a replay into fresh topics and analyst feedback."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES
from memberstream.datasets.anomalies import (
    EXPECTED_KINDS,
    SCENARIOS,
    AnomalyInjector,
    AnomalyLabel,
    InjectionConfig,
)
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.domain.anomaly.evaluation import evaluate
from memberstream.domain.anomaly.flags import KINDS
from memberstream.schemas.events import Envelope, Feedback
from memberstream.schemas.outputs import AnomalyFlag
from memberstream.streams.kafka_io import group_lag, read_json
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import produce_records, raw_records, run_until_processed, wait_processed

from .conftest import make_namespace
from .harness import reference_stage

pytestmark = pytest.mark.integration


def anomalous_stream(seed: int = 5) -> tuple[list[Envelope], list[AnomalyLabel]]:
    injector = AnomalyInjector(InjectionConfig(seed=seed, incidents_per_day=0.6, warmup_days=3))
    workload = SyntheticWorkload(WorkloadConfig(seed=seed, members=150, days=20), [injector])
    events = list(workload.events())
    return events, injector.labels


def flag_records(settings: Settings) -> list[dict]:
    return asyncio.run(read_json(settings, settings.topics.member_anomalies))


def by_id(records: list[dict]) -> dict[str, dict]:
    """Flags by id; a repeated id must repeat the payload exactly."""
    out: dict[str, dict] = {}
    for r in records:
        assert out.setdefault(r["flag_id"], r) == r, f"two payloads for flag {r['flag_id']}"
    return out


def offline_flags(settings: Settings, events: list[Envelope]) -> dict[str, dict]:
    run = OfflineRun(settings, reference_stage(settings))
    run.feed(events)
    return by_id(run.outputs[ANOMALIES])


def member_flags(flags: dict[str, dict]) -> dict[str, dict]:
    return {k: f for k, f in flags.items() if f["subject"] == "member"}


def differences(got: dict[str, dict], want: dict[str, dict]) -> list[tuple]:
    """(flag id, field, got, want) for every field that differs; ids on one side only."""
    out: list[tuple] = [(k, "(missing)", None, want[k]["kind"]) for k in set(want) - set(got)]
    out += [(k, "(extra)", got[k]["kind"], None) for k in set(got) - set(want)]
    for k in set(got) & set(want):
        out += [(k, f, got[k][f], want[k][f]) for f in want[k] if got[k].get(f) != want[k][f]]
    return out


def test_injected_anomalies_are_flagged_once_across_a_kill_and_a_replay(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events, labels = anomalous_stream()
    settings = make_namespace(kafka_bootstrap, tmp_path / "run0", store="rocksdb://")
    produce_records(settings, raw_records(settings, events))

    # SIGKILL well into the stream: the worker kills itself once it has written the state
    # of its 6th batch (of about 15 with the product agent's), before that batch's offsets
    # are committed. (A kill timed by the group's lag missed the stream once the worker
    # took it all between two commits.)
    killed_at = {"MEMBERSTREAM_FAILPOINTS": "state_written:6"}
    worker = WorkerProcess(settings, tmp_path / "worker-1.log", env=killed_at).start()
    deadline = time.monotonic() + 120
    while worker.running and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not worker.running, "worker never got into the stream"
    assert worker.proc is not None and worker.proc.returncode == -signal.SIGKILL
    lag = asyncio.run(group_lag(settings, settings.app_id, settings.topics.inputs()))
    assert 0 < lag < len(events), f"killed at lag {lag} of {len(events)}: not mid-stream"
    restarted = WorkerProcess(settings, tmp_path / "worker-2.log").start()
    try:
        wait_processed(settings, restarted, 180)
    finally:
        restarted.stop()

    got = by_id(flag_records(settings))  # repeats after the kill carry the same payload
    want = offline_flags(settings, events)
    assert asyncio.run(read_json(settings, settings.topics.dlq)) == []
    # member flags come from one topic partition per member: identical to the reference
    assert differences(member_flags(got), member_flags(want)) == []
    # product flags: same ids and kinds (evidence may list another subset of the reviews)
    assert {k: f["kind"] for k, f in got.items()} == {k: f["kind"] for k, f in want.items()}
    for flag in got.values():
        assert AnomalyFlag.model_validate(flag).model_dump(mode="json") == flag
        assert flag["evidence"] and flag["score"] >= flag["threshold"]
    found = evaluate(got.values(), labels, len(events)).kinds
    for kind, score in found.items():
        if score.incidents:
            assert score.found >= 1, f"no {kind} incident found: {score}"
    # the default scenarios: no rating_text_mismatch (family a's rating_mismatch is a hard one)
    injected = set().union(*(EXPECTED_KINDS[s] for s in SCENARIOS))
    assert {s.kind for s in found.values() if s.incidents} == injected
    assert injected == set(KINDS) - {"rating_text_mismatch"}

    # replay into fresh topics and a fresh consumer group: the same flag ids
    replay = make_namespace(kafka_bootstrap, tmp_path / "run1")
    produce_records(replay, raw_records(replay, events))
    run_until_processed(replay, tmp_path / "worker-3.log")
    again = by_id(flag_records(replay))
    assert set(again) == set(got)
    assert member_flags(again) == member_flags(got)


def test_rejected_flags_are_not_raised_again_and_normal_traffic_stays_under_budget(
    namespace: Settings, tmp_path: Path
) -> None:
    events, _ = anomalous_stream(seed=6)
    produce_records(namespace, raw_records(namespace, events))
    run_until_processed(namespace, tmp_path / "worker-1.log")
    first = by_id(flag_records(namespace))
    member = next(f for f in first.values() if f["subject"] == "member")
    product = next(f for f in first.values() if f["subject"] == "product")

    def verdict(flag: dict, i: int) -> Feedback:
        return Feedback(
            event_id=f"verdict-{i}",
            member_id=flag["member_id"] or "analyst-7",
            occurred_at=flag["as_of"],
            subject="anomaly_flag",
            ref_id=flag["flag_id"],
            verdict="false_positive",
            product_id=flag["product_id"],
        )

    fb = [verdict(member, 1), verdict(product, 2)]
    records = [
        (
            namespace.topics.feedback,
            (f.product_id or f.member_id).encode(),
            orjson.dumps(f.model_dump(mode="json")),
        )
        for f in fb
    ]
    produce_records(namespace, records)
    run_until_processed(namespace, tmp_path / "worker-2.log")
    before = Counter(f["flag_id"] for f in flag_records(namespace))
    assert before == Counter(first.keys())  # a verdict raises nothing
    # every event that raised a flag produced again (its cause and its evidence):
    # duplicates by event id raise nothing; a bot's events beyond the last 512 it sent
    # are taken as new and may raise their flags again, with the same ids, but never a
    # rejected one. (Not the whole stream: re-reading thousands of duplicates is where
    # Faust's commit stall, see the README's known limits, shows up.)
    flagged = {e for f in first.values() for e in [f["cause_event_id"], *f["evidence"]]}
    again = [e for e in events if e.event_id in flagged]
    assert member["cause_event_id"] in flagged and product["cause_event_id"] in flagged
    produce_records(namespace, raw_records(namespace, again))
    run_until_processed(namespace, tmp_path / "worker-3.log")
    after = Counter(f["flag_id"] for f in flag_records(namespace))
    assert set(after) == set(before)
    assert after[member["flag_id"]] == before[member["flag_id"]] == 1
    assert after[product["flag_id"]] == before[product["flag_id"]] == 1

    # normal traffic alone, through the same worker settings: under the flag budget
    normal = list(SyntheticWorkload(WorkloadConfig(seed=8, members=300, days=20)).events())
    quiet = make_namespace(namespace.kafka_bootstrap_servers, tmp_path / "quiet")
    produce_records(quiet, raw_records(quiet, normal))
    run_until_processed(quiet, tmp_path / "worker-4.log")
    budget = quiet.anomaly.flag_budget_per_10k_events * len(normal) / 10_000
    assert len(by_id(flag_records(quiet))) < budget
