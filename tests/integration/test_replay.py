"""``memberstream replay`` through the real broker: a range of the live inputs into
namespaces of their own, twice with identical outputs, bounded at the offsets of its
start, resumed after a kill at each point of its batch, compared with the live outputs;
and ``--live``, refused while a worker runs and, once workers are stopped, a rewind the
live state absorbs without publishing anything twice."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from memberstream.config import Settings
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.schemas.events import Envelope
from memberstream.streams.replay import (
    OUTPUT_FIELDS,
    namespace_settings,
    prepare,
    replay_into,
)
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import produce, run_cli, wait_processed
from memberstream.testing import topic_records as read_topic

from .conftest import make_namespace

pytestmark = pytest.mark.integration

OUTPUTS = [f for f in OUTPUT_FIELDS if f != "product_reviews"]


def workload(seed: int, n: int) -> list[Envelope]:
    config = WorkloadConfig(
        seed=seed, members=150, products=60, days=30, add_to_cart_rate=0.2, review_rate=0.5
    )
    events = list(itertools.islice(SyntheticWorkload(config).events(), n))
    assert len(events) == n
    return events


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def now_ms() -> int:
    return int(time.time() * 1000)


def cli(settings: Settings, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli(settings, *args, env=env)


def topic_records(settings: Settings, ns: Settings) -> dict[str, list[tuple[bytes, bytes]]]:
    """Each output topic of the namespace ``ns``: its records in partition and offset order."""
    return {f: read_topic(settings, getattr(ns.topics, f)) for f in OUTPUTS}


def distinct(records: dict[str, list[tuple[bytes, bytes]]]) -> dict[str, set[tuple[bytes, bytes]]]:
    return {f: set(r) for f, r in records.items()}


@pytest.fixture(scope="module")
def live(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A live namespace: 1,200 events before ``mid`` and 800 after, processed by a
    worker (stopped at the end), with a few malformed records in the second part."""
    tmp = tmp_path_factory.mktemp("replay")
    settings = make_namespace(kafka_bootstrap, tmp)
    settings.batch.max_batch = 200
    events = workload(5, 2000)
    before, after = events[:1200], events[1200:]
    produce(settings, before)
    time.sleep(0.05)
    mid = now_ms()
    time.sleep(0.05)
    produce(settings, after)
    from memberstream.streams.kafka_io import produce_raw

    bad = [(b"m-bad", b"{not json"), (b"m-bad", b'{"type": "click"}')]
    asyncio.run(produce_raw(settings, settings.topics.clicks, bad))
    worker = WorkerProcess(settings, tmp / "worker.log").start()
    try:
        wait_processed(settings, worker, 240)
    finally:
        worker.stop()
    return {
        "settings": settings,
        "tmp": tmp,
        "mid": mid,
        "after_ids": {e.event_id for e in after},
        "before_ids": {e.event_id for e in before},
        "prefix": settings.topics.clicks.removesuffix("events.clicks"),
    }


def test_two_replays_of_a_range_give_identical_outputs_and_a_diff_against_live(
    live: dict[str, Any],
) -> None:
    settings, prefix = live["settings"], live["prefix"]
    reports = []
    for name in ("ra", "rb"):
        path = live["tmp"] / f"{name}.json"
        done = cli(
            settings, "replay", "--from", iso(live["mid"]), "--into", prefix + name,
            "--json", str(path),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        reports.append(orjson.loads(path.read_bytes()))
    a = topic_records(settings, namespace_settings(settings, prefix + "ra"))
    b = topic_records(settings, namespace_settings(settings, prefix + "rb"))
    assert a == b, "two replays of one range differ"
    assert sum(len(r) for r in a.values()) > 100

    report = reports[0]
    assert report["records"] == 802  # the 800 events after mid and the 2 malformed ones
    assert report["stats"]["dead_letters"] == 2
    assert len(a["dlq"]) == 2
    # every output of the replay was caused by an event of the range
    causes = {orjson.loads(v).get("cause_event_id") for _, v in a["member_tiers"]}
    assert causes and causes <= live["after_ids"]
    diff = report["diff"]
    # dead letters: the same two records, the same reasons as the live worker gave them
    assert diff["dlq"]["live"] == 2 and diff["dlq"]["same"] == 2
    for kind, d in diff.items():
        assert d["same"] + d["changed"] + d["only_replay"] + d["not_comparable"] == d["replay"]
        assert d["same"] + d["changed"] + d["only_live"] <= d["live"] or kind == "member_profiles"
    # without the history before mid the replay's tiers differ from the live ones
    tiers = diff["member_tiers"]
    assert tiers["only_live"] + tiers["only_replay"] + tiers["changed"] > 0


def test_the_whole_history_replayed_equals_the_live_membership_tiers(live: dict[str, Any]) -> None:
    """From the first record on, the replay starts with the same (empty) state as the live
    worker did: membership tiers, which depend on one topic's order only, are the same
    records."""
    settings, prefix = live["settings"], live["prefix"]
    path = live["tmp"] / "all.json"
    done = cli(settings, "replay", "--from", "-1d", "--into", prefix + "all", "--json", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = orjson.loads(path.read_bytes())
    assert report["records"] == 2002
    tiers = report["diff"]["member_tiers"]
    assert tiers["live"] > 20
    assert tiers["same"] == tiers["live"] == tiers["replay"], tiers
    # and a finished replay, run again, replays nothing and reports the same
    again = cli(settings, "replay", "--from", "-1d", "--into", prefix + "all", "--no-diff")
    assert again.returncode == 2, again.stdout + again.stderr  # -1d is another range now
    assert "holds a replay of another range" in again.stderr


def test_a_replay_stops_at_the_end_offsets_of_its_start(live: dict[str, Any]) -> None:
    settings, prefix = live["settings"], live["prefix"]
    name = prefix + "bounded"
    start = iso(live["mid"])
    ns, plan, resuming = asyncio.run(
        prepare(settings, name, live["mid"], None, settings.topics.ingest())
    )
    assert not resuming and plan.records == 802
    late = workload(77, 150)  # written after the plan, inside its time range
    produce(settings, late)
    report = asyncio.run(replay_into(settings, ns, plan, None))
    assert report.records == 802, start
    records = topic_records(settings, ns)
    late_ids = {e.event_id for e in late}
    causes = {orjson.loads(v).get("cause_event_id") for _, v in records["member_tiers"]}
    assert not causes & late_ids


@pytest.mark.parametrize("point", ["replay_outputs:3", "replay_committed:2"])
def test_an_interrupted_replay_resumes_into_the_same_outputs(
    live: dict[str, Any], point: str
) -> None:
    settings, prefix = live["settings"], live["prefix"]
    settings = settings.model_copy(deep=True)
    settings.batch.max_batch = 100
    name = prefix + "resume-" + point.replace(":", "-").replace("_", "-")
    reference = prefix + "whole-" + point.replace(":", "-").replace("_", "-")
    args = ("replay", "--from", iso(live["mid"]), "--no-diff")
    killed = cli(settings, *args, "--into", name, env={"MEMBERSTREAM_FAILPOINTS": point})
    assert killed.returncode == -9, killed.stdout + killed.stderr  # SIGKILLed itself
    partial = topic_records(settings, namespace_settings(settings, name))
    assert sum(len(r) for r in partial.values()) > 0
    resumed = cli(settings, *args, "--into", name, "--json", str(live["tmp"] / f"{name}.json"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "(resuming)" in resumed.stdout
    report = orjson.loads((live["tmp"] / f"{name}.json").read_bytes())
    batches_before = int(point.split(":")[1]) - (1 if point.startswith("replay_outputs") else 0)
    assert report["resumed_from"] == 100 * batches_before
    whole = cli(settings, *args, "--into", reference)
    assert whole.returncode == 0, whole.stdout + whole.stderr
    got = topic_records(settings, namespace_settings(settings, name))
    want = topic_records(settings, namespace_settings(settings, reference))
    assert distinct(got) == distinct(want)
    # at most the interrupted batch was produced twice, with the same ids and payloads
    doubled = sum(len(got[f]) - len(want[f]) for f in OUTPUTS if f != "member_profiles")
    assert 0 <= doubled <= 100 * 3
    for f in OUTPUTS:
        counts = Counter(got[f])
        assert max(counts.values(), default=1) <= 2, f


def test_live_rewind_is_refused_under_a_running_worker_and_publishes_nothing_twice(
    live: dict[str, Any],
) -> None:
    settings = live["settings"]
    worker = WorkerProcess(settings, live["tmp"] / "rewind.log").start()
    try:
        wait_processed(settings, worker, 120)
        refused = cli(settings, "replay", "--from", iso(live["mid"]), "--live")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "live member" in refused.stderr
    finally:
        worker.stop()
    ends_before = {f: len(r) for f, r in topic_records(settings, settings).items()}
    time.sleep(settings.session_timeout_s)  # the stopped worker leaves the group
    done = cli(settings, "replay", "--from", iso(live["mid"]), "--live")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rewound" in done.stdout
    worker = WorkerProcess(settings, live["tmp"] / "rewind-2.log").start()
    try:
        wait_processed(settings, worker, 180)
    finally:
        worker.stop()
    log = (live["tmp"] / "rewind-2.log").read_text()
    ends_after = {f: len(r) for f, r in topic_records(settings, settings).items()}
    # the two malformed records were never applied to a member: their letters come again
    assert ends_after.pop("dlq") == ends_before.pop("dlq") + 2
    assert ends_after == ends_before, log[-3000:]
