"""`memberstream collect` through a real broker and a real process: every labeled sample
written once, none lost, whether the collector runs clean, kills itself at an exact point
of its flush protocol, or is SIGKILLed from outside mid-stream.

The expected samples are computed here from the events produced (the stars rule, the
masked texts of the hand-made reviews, the keyed hash with hmac), not with the
collector's own code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import random
import re
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from memberstream.config import Settings
from memberstream.config.learning import CollectorSettings, LearningSettings
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.ml.training.sample_store import SampleStore
from memberstream.schemas.events import ClickEvent, Envelope, Feedback, PurchaseEvent, ReviewEvent
from memberstream.streams.collector_runner import collector_group
from memberstream.streams.kafka_io import GroupOffsets
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import RawRecord, produce_records, raw_records

from .conftest import make_namespace

pytestmark = pytest.mark.integration

KEY = "test-key"
STARS = {1: "negative", 2: "negative", 3: "neutral", 4: "positive", 5: "positive"}
INTEREST_WINDOW = timedelta(days=7)
RUN_TIMEOUT_S = 120.0


def pseudonym(member_id: str) -> str:
    return "m_" + hmac.new(KEY.encode(), member_id.encode(), hashlib.sha256).hexdigest()[:24]


@dataclass
class Expected:
    """What the store must hold once the collector has read every record."""

    events: list[Envelope]
    stars: dict[str, str] = field(default_factory=dict)
    """sentiment sample id -> label, for every review with a non-empty title/text"""
    review_member: dict[str, str] = field(default_factory=dict)
    """sentiment sample id -> raw member id"""
    texts: dict[str, tuple[str, str]] = field(default_factory=dict)
    """sentiment sample id -> (masked text, language), for the hand-made reviews"""
    analyst: dict[str, str] = field(default_factory=dict)
    """feedback event id -> the sample id it corrects or labels"""
    interest: dict[str, str] = field(default_factory=dict)
    """interest sample ids the rule allows -> category (a superset of what may be written:
    after a restart the collector's memory of views is empty)"""
    personal: list[str] = field(default_factory=list)
    """raw emails and phone numbers in the texts"""
    members: set[str] = field(default_factory=set)


def hand_made_reviews(n: int) -> Iterator[tuple[ReviewEvent, str | None, list[str]]]:
    """(review, exact masked text or None when it gives no sample, personal data in it)."""
    start = datetime(2024, 2, 1, 9, 0, tzinfo=UTC)
    for i in range(n):
        at = start + timedelta(hours=7 * i)
        member = f"hand-{i % 41:03d}"
        rating = i % 5 + 1
        kind = i % 4
        if kind == 0:
            email, phone = f"buyer{i}@example.com", f"415-555-{i:04d}"
            title, text = f"Review {i}", f"Order {i} arrived. Email {email} or call {phone}."
            want: str | None = f"Review {i}\nOrder {i} arrived. Email <EMAIL> or call <PHONE>."
            personal = [email, phone]
        elif kind == 1:
            phone, email = f"138{i:08d}", f"li{i}@qq.com"
            title, text = "质量很好", f"第{i}次购买，有问题打{phone}或者发邮件到 {email} 谢谢"
            want = f"质量很好\n第{i}次购买，有问题打<PHONE>或者发邮件到 <EMAIL> 谢谢"
            personal = [phone, email]
        elif kind == 2:
            title, text = "", f"Plain English review number {i}, works as described."
            want, personal = text, []
        else:
            title, text = ("", "") if i % 8 == 3 else (f"标题{i}", "")
            want, personal = (title or None), []
        review = ReviewEvent(
            event_id=f"hand-review-{i:04d}",
            member_id=member,
            occurred_at=at,
            product_id=f"hp{i % 13}",
            rating=rating,
            title=title,
            text=text,
        )
        yield review, want, personal


@cache
def expected_workload() -> Expected:
    config = WorkloadConfig(seed=21, members=150, days=120)
    synthetic = list(itertools.islice(SyntheticWorkload(config).events(), 6000))
    hand = list(hand_made_reviews(400))
    feedback: list[Feedback] = []
    reviewed = [r for r, want, _ in hand if want is not None]
    for j, r in enumerate(reviewed[:40]):
        feedback.append(
            Feedback(
                event_id=f"fb-sentiment-{j:03d}",
                member_id=r.member_id,
                occurred_at=r.occurred_at + timedelta(days=1),
                subject="review_sentiment",
                ref_id=r.event_id,
                verdict="corrected",
                label="neutral",
            )
        )
    for j in range(12):
        feedback.append(
            Feedback(
                event_id=f"fb-anomaly-{j:03d}",
                member_id=f"hand-{j:03d}",
                occurred_at=datetime(2024, 3, 1, tzinfo=UTC) + timedelta(hours=j),
                subject="anomaly_flag",
                ref_id=f"flag-never-seen-{j}",
                verdict="confirmed" if j % 2 else "false_positive",
            )
        )
    events: list[Envelope] = [*synthetic, *(r for r, _, _ in hand), *feedback]
    w = Expected(events)
    for e in events:
        w.members.add(e.member_id)
        if isinstance(e, ReviewEvent) and (e.title.strip() or e.text.strip()):
            w.stars[f"sentiment:{e.event_id}"] = STARS[e.rating]
            w.review_member[f"sentiment:{e.event_id}"] = e.member_id
    for r, want, personal in hand:
        if want is not None:
            language = "zh" if re.search(r"[\u4e00-\u9fff]", want) else "en"
            w.texts[f"sentiment:{r.event_id}"] = (want, language)
        w.personal += personal
    for fb in feedback:
        w.analyst[fb.event_id] = (
            f"sentiment:{fb.ref_id}" if fb.subject == "review_sentiment" else f"anomaly:{fb.ref_id}"
        )
    # the interest rule, computed here: a paid line item in C, a view/cart of C by the same
    # member within the window before it (event time)
    views: dict[tuple[str, str], list[datetime]] = {}
    for e in synthetic:
        if isinstance(e, ClickEvent) and e.action != "search" and e.category:
            views.setdefault((e.member_id, e.category), []).append(e.occurred_at)
    for e in synthetic:
        if isinstance(e, PurchaseEvent) and e.status == "paid":
            for i, item in enumerate(e.items):
                seen = views.get((e.member_id, item.category), [])
                if any(e.occurred_at - INTEREST_WINDOW <= t <= e.occurred_at for t in seen):
                    w.interest[f"interest:{e.order_id}:{i}"] = item.category
    assert len(w.stars) > 300 and w.interest and w.personal
    return w


def records(settings: Settings, w: Expected) -> list[RawRecord]:
    """The workload's records (each topic in production order), then two records the
    collector must count and skip."""
    good = raw_records(settings, w.events)
    bad: list[RawRecord] = [
        (settings.topics.reviews, b"x", b"\xff\xfe not json"),
        (settings.topics.reviews, b"x", b'{"event_id": "bad", "rating": "5"}'),
    ]
    return good + bad


def namespace(bootstrap: str, tmp_path: Path) -> Settings:
    settings = make_namespace(bootstrap, tmp_path)
    settings.learning = LearningSettings(
        samples_dir=tmp_path / "samples",
        member_key=SecretStr(KEY),
        # max_buffered_samples too: a fetch of 2000 records holds ~150 samples, and only the
        # bound flushes inside a fetch; without it a run makes too few flushes to crash in
        collector=CollectorSettings(
            flush_samples=50, flush_interval_s=0.5, max_buffered_samples=50
        ),
    )
    return settings


def collector_topics(settings: Settings) -> list[str]:
    t = settings.topics
    return [t.clicks, t.purchases, t.reviews, t.feedback, t.member_anomalies, t.model_updates]


def start_collect(
    settings: Settings, log: Path, *, until_caught_up: bool = True, failpoints: str | None = None
) -> WorkerProcess:
    command = ("collect", "--until-caught-up") if until_caught_up else ("collect",)
    env = {"MEMBERSTREAM_FAILPOINTS": failpoints} if failpoints else None
    return WorkerProcess(settings, log, env=env, command=command).start()


def wait_exit(proc: WorkerProcess, timeout_s: float = RUN_TIMEOUT_S) -> int:
    """The exit status; a run that does not end within the deadline fails the test."""
    assert proc.proc is not None
    try:
        return proc.proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        diagnosis = proc.diagnosis()
        proc.kill()
        raise AssertionError(f"collect still running after {timeout_s} s\n{diagnosis}") from None


def run_clean(settings: Settings, log: Path) -> tuple[WorkerProcess, int]:
    """Run `collect --until-caught-up` to a 0 exit; the process and its duplicates dropped."""
    proc = start_collect(settings, log)
    rc = wait_exit(proc)
    assert rc == 0, f"collect exited {rc}\n{proc.diagnosis()}"
    summary = re.search(r"^collected .* (\d+) duplicates dropped", log.read_text(), re.M)
    assert summary, f"no summary line\n{proc.log_tail()}"
    return proc, int(summary.group(1))


def check_rerun(settings: Settings, w: Expected, crashed: WorkerProcess, log: Path) -> None:
    """The rerun after a kill: complete store, nothing twice, and nothing the store held
    was read again (it started each partition where the commit records end, so its
    dedupe memory had nothing to drop: the workload has no duplicate events)."""
    rerun, duplicates = run_clean(settings, log)
    logs = f"{crashed.diagnosis()}\n{rerun.diagnosis()}"
    check_store(settings, w, logs)
    assert duplicates == 0, f"the rerun re-read {duplicates} stored samples\n{logs}"


def check_store(settings: Settings, w: Expected, log: str = "") -> list[dict[str, Any]]:
    """Nothing lost, nothing twice, labels by the rules, no personal data, no member ids."""
    rows = SampleStore(settings.learning.samples_dir).rows()
    twice = [p for p, n in Counter((r["event_id"], r["sample_id"]) for r in rows).items() if n > 1]
    assert not twice, f"{len(twice)} samples written twice, e.g. {twice[:5]}\n{log}"

    stars = {
        r["sample_id"]: r for r in rows if r["kind"] == "sentiment" and r["label_source"] == "stars"
    }
    missing, extra = set(w.stars) - set(stars), set(stars) - set(w.stars)
    assert not missing, f"{len(missing)} sentiment samples lost, e.g. {sorted(missing)[:5]}\n{log}"
    assert not extra, f"{len(extra)} unexpected sentiment samples: {sorted(extra)[:5]}"
    for sid, row in stars.items():
        assert row["label"] == w.stars[sid], (sid, row["label"])
        assert row["event_id"] == sid.removeprefix("sentiment:")
        assert row["member"] == pseudonym(w.review_member[sid]), sid
        assert row["event_time"].utcoffset() == timedelta(0)
        if sid in w.texts:
            assert (row["text"], row["language"]) == w.texts[sid], sid

    analyst = {r["event_id"]: r["sample_id"] for r in rows if r["label_source"] == "analyst"}
    assert analyst == w.analyst

    interest = [r for r in rows if r["kind"] == "interest"]
    for row in interest:
        assert w.interest.get(row["sample_id"]) == row["label"], row["sample_id"]

    texts = [r["text"] for r in rows if r["text"]]
    leaked = [p for p in w.personal if any(p in t for t in texts)]
    assert not leaked, f"personal data written: {leaked[:5]}"
    members = {r["member"] for r in rows}
    assert not members & w.members, "a raw member id was written"
    assert all(re.fullmatch(r"m_[0-9a-f]{24}", m) for m in members)
    return rows


def commit_records(settings: Settings) -> list[Path]:
    return sorted((settings.learning.samples_dir / "_flushes").glob("*.json"))


def test_clean_run_writes_every_sample_once(kafka_bootstrap: str, tmp_path: Path) -> None:
    """`collect --until-caught-up` exits 0 with exactly the samples the rules give."""
    settings = namespace(kafka_bootstrap, tmp_path)
    w = expected_workload()
    produce_records(settings, records(settings, w))
    started = time.monotonic()
    proc, duplicates = run_clean(settings, tmp_path / "collect.log")
    took = time.monotonic() - started
    rows = check_store(settings, w, proc.diagnosis())
    assert duplicates == 0
    flushes = len(commit_records(settings))
    assert flushes >= 5, f"only {flushes} flushes: the crash points below need more"
    assert any(r["kind"] == "interest" for r in rows), "no interest sample in a clean run"
    print(f"clean run: {len(rows)} samples, {flushes} flushes, {took:.1f} s")
    print(proc.log_tail(3))


@pytest.mark.parametrize("failpoint", ["shard_written:2", "flush_recorded:2", "flush_recorded:5"])
def test_crash_at_a_flush_point_loses_nothing_and_writes_nothing_twice(
    failpoint: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A SIGKILL after a shard file is in place (before its commit record), or after the
    commit record (before the Kafka commit): the rerun resumes where the store ends."""
    settings = namespace(kafka_bootstrap, tmp_path)
    w = expected_workload()
    produce_records(settings, records(settings, w))

    crashed = start_collect(settings, tmp_path / "collect-1.log", failpoints=failpoint)
    rc = wait_exit(crashed)
    assert rc == -9, f"expected the failpoint's SIGKILL, got {rc}\n{crashed.diagnosis()}"
    point, count = failpoint.split(":")
    store = SampleStore(settings.learning.samples_dir)
    named = {f for r in store.flush_records() for f in r.files}
    on_disk = {
        p.relative_to(store.root).as_posix() for p in store.root.glob("kind=*/date=*/*.parquet")
    }
    if point == "flush_recorded":
        assert len(commit_records(settings)) == int(count)
        assert on_disk == named
    else:
        assert on_disk - named, "the crash should leave a shard no commit record names"

    check_rerun(settings, w, crashed, tmp_path / "collect-2.log")


async def _kill_mid_stream(
    settings: Settings, proc: WorkerProcess, flushes: int, deadline_s: float
) -> int:
    """SIGKILL ``proc`` once ``flushes`` commit records exist while the group still has
    records to read; return the lag it was killed at."""
    deadline = time.monotonic() + deadline_s
    async with GroupOffsets(settings, collector_group(settings), collector_topics(settings)) as g:
        while time.monotonic() < deadline:
            assert proc.running, f"collect exited before the kill\n{proc.diagnosis()}"
            if len(commit_records(settings)) >= flushes:
                lag = await g.lag()
                assert lag > 0, f"collect caught up before it could be killed\n{proc.log_tail()}"
                proc.kill()
                return lag
            await asyncio.sleep(0.02)
    raise AssertionError(f"no flush within {deadline_s} s\n{proc.diagnosis()}")


def test_sigkill_from_outside_mid_stream_loses_nothing_and_writes_nothing_twice(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A SIGKILL at no chosen point, after some flushes, before the group caught up."""
    settings = namespace(kafka_bootstrap, tmp_path)
    w = expected_workload()
    produce_records(settings, records(settings, w))

    flushes = random.randint(1, 3)  # a random moment, printed to replay a failure
    first = start_collect(settings, tmp_path / "collect-1.log", until_caught_up=False)
    try:
        lag = asyncio.run(_kill_mid_stream(settings, first, flushes, RUN_TIMEOUT_S))
    finally:
        first.kill()
    assert first.proc is not None and first.proc.returncode == -9
    print(f"killed after {flushes}+ flushes ({len(commit_records(settings))}), lag {lag}")

    check_rerun(settings, w, first, tmp_path / "collect-2.log")
