"""Redelivery at any scale, through the real broker and a real worker process.

A hot member (2,000 events) and a hot product (1,000 reviews) sit in one long
uncommitted window (commits every 15 s). The worker kills itself at ten exact
points of the batch protocol (before anything, with outputs sent but not
acknowledged, with outputs acknowledged but no state written, with state
written but offsets not committed) and is restarted each time; then the whole
stream is re-read from offset 0 with the state in place. Outputs must equal the
in-process reference: none missing, none doubled (by output id), every event
counted once. With event-id de-duplication alone (512 ids per member) the hot
member's clicks were counted twice.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.records_to_delete import RecordsToDelete

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.schemas.events import ClickEvent, Envelope, LineItem, PurchaseEvent, ReviewEvent
from memberstream.streams.kafka_io import first_offset_at, iter_topic, produce_raw, read_json
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import produce_records, raw_records, read_outputs, wait_processed

from .conftest import make_namespace
from .harness import assert_same_profiles, expected, reference_stage

pytestmark = pytest.mark.integration

T0 = datetime(2024, 3, 4, 9, tzinfo=UTC)
HOT_MEMBER = "hot-member"
HOT_PRODUCT = "hot-product"
PRAISE = [
    "Sturdy and light, the straps are comfortable on long walks.",
    "Holds a laptop and lunch easily, zips feel solid.",
    "Great colour, water rolled right off in the rain.",
    "Pockets are well placed and the back panel breathes.",
    "Good value; after a month of daily use it still looks new.",
]

# (point, pass): the worker SIGKILLs itself the n-th time a batch passes the point
KILLS = [
    ("state_written", 3),
    ("outputs_sent", 2),
    ("drained", 4),
    ("batch_start", 5),
    ("state_written", 9),
    ("outputs_sent", 6),
    ("drained", 1),
    ("state_written", 1),
    ("outputs_sent", 11),
    ("drained", 7),
]


def hot_member_events() -> list[Envelope]:
    """2,000 events of one member within a morning: browsing, orders, a few reviews."""
    events: list[Envelope] = []
    for i in range(2000):
        t = T0 + timedelta(seconds=7 * i)
        eid = f"hm-{i:04d}"
        if i % 40 == 39:
            price = 25.0 + (i % 7)
            item = LineItem(
                product_id=f"p{i % 13}",
                title="trail running shoes",
                category="sports_outdoors",
                quantity=1,
                unit_price=price,
            )
            events.append(
                PurchaseEvent(
                    event_id=eid,
                    member_id=HOT_MEMBER,
                    occurred_at=t,
                    order_id=f"hm-order-{i}",
                    items=[item],
                    total=price,
                )
            )
        elif i % 250 == 100:
            events.append(
                ReviewEvent(
                    event_id=eid,
                    member_id=HOT_MEMBER,
                    occurred_at=t,
                    product_id=f"p{i % 13}",
                    rating=4,
                    text="Comfortable from the first run, good grip on wet paths.",
                )
            )
        else:
            events.append(
                ClickEvent(
                    event_id=eid,
                    member_id=HOT_MEMBER,
                    occurred_at=t,
                    action="view",
                    product_id=f"p{i % 29}",
                    title="trail running shoes",
                    category="sports_outdoors",
                )
            )
    return events


def hot_product_reviews() -> list[Envelope]:
    """1,000 reviews of one product by 1,000 members within two days."""
    return [
        ReviewEvent(
            event_id=f"hp-{i:04d}",
            member_id=f"hp-m{i}",
            occurred_at=T0 + timedelta(minutes=2.5 * i),
            product_id=HOT_PRODUCT,
            rating=4 + i % 2,
            text=f"{PRAISE[i % len(PRAISE)]} Bought it for trip number {i}.",
        )
        for i in range(1000)
    ]


def stream() -> list[Envelope]:
    background = list(
        itertools.islice(
            SyntheticWorkload(WorkloadConfig(seed=31, members=120, days=30)).events(), 1500
        )
    )
    return [*background, *hot_member_events(), *hot_product_reviews()]


def read(settings: Settings, topic: str) -> list[dict]:
    return asyncio.run(read_json(settings, topic))


def output_counts(settings: Settings) -> dict[str, int]:
    t = settings.topics
    names = [t.member_tiers, t.member_interest_tiers, t.member_anomalies, t.member_profiles]
    return {name: len(read(settings, name)) for name in [*names, t.product_review_summaries]}


def run_until_killed(settings: Settings, log: Path, failpoint: str, timeout_s: float) -> bool:
    """Run a worker armed to kill itself; True if it did, False if it caught up first."""
    worker = WorkerProcess(settings, log, env={"MEMBERSTREAM_FAILPOINTS": failpoint}).start()
    try:
        wait_processed(settings, worker, timeout_s)
    except AssertionError:
        if worker.running:  # a stall, not the kill: fail with the worker's diagnosis
            raise
        assert worker.proc is not None and worker.proc.returncode == -9, worker.log_tail()
        return True
    finally:
        worker.stop()
    return False


async def _rewind_group(settings: Settings) -> None:
    """Commit offset 0 on every partition the worker's group reads: the next worker
    re-reads the whole stream (what the commit watchdog's re-seek does, at full span)."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(),
        group_id=settings.app_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in settings.topics.consumed()
            for p in range(settings.partitions)
        ]
        consumer.assign(tps)
        await consumer.commit({tp: 0 for tp in tps})
    finally:
        await consumer.stop()


def test_kills_at_ten_points_and_a_full_reread_leave_every_output_once(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = make_namespace(
        kafka_bootstrap, tmp_path, store="rocksdb://", batch={"max_batch": 50}
    )
    settings.batch.commit_interval_s = 15.0  # one long uncommitted window
    events = stream()
    produce_records(settings, raw_records(settings, events))

    kills = 0
    for n, (point, count) in enumerate(KILLS):
        if run_until_killed(settings, tmp_path / f"worker-{n}.log", f"{point}:{count}", 120):
            kills += 1
    assert kills >= 8, "the failpoints should stop most runs before the stream is done"

    final = WorkerProcess(settings, tmp_path / "worker-final.log").start()
    try:
        wait_processed(settings, final, 240)
    finally:
        final.stop()

    out = read_outputs(settings)
    want = expected(settings, events)
    assert out.dead_letters == []
    assert out.tier_updates == want.tier_updates  # none lost, none different
    assert_same_profiles(settings, out.profiles, want.profiles)
    assert out.profiles[HOT_MEMBER]["events"] == 2000  # counted once each
    assert out.profiles[HOT_MEMBER]["reviews"] == 8

    # product side: every review counted once, summaries at every fifth review exactly
    topic = settings.topics.product_review_summaries
    summaries = {s["output_id"]: s for s in read(settings, topic) if s["product_id"] == HOT_PRODUCT}
    counts = Counter(s["rating_count"] for s in summaries.values())
    assert sorted(counts) == list(range(5, 1001, 5)), "a review was lost or counted twice"
    assert set(counts.values()) == {1}, "two different summaries for the same review count"
    reference = OfflineRun(settings, reference_stage(settings))
    reference.feed(events)
    want_flags = {f["flag_id"] for f in reference.outputs[ANOMALIES]}
    got_flags = {f["flag_id"] for f in read(settings, settings.topics.member_anomalies)}
    assert got_flags == want_flags

    # the whole stream again, state in place: nothing new is produced
    before = output_counts(settings)
    asyncio.run(_rewind_group(settings))
    again = WorkerProcess(settings, tmp_path / "worker-reread.log").start()
    try:
        wait_processed(settings, again, 240)
    finally:
        again.stop()
    assert output_counts(settings) == before
    assert read_outputs(settings).profiles[HOT_MEMBER]["events"] == 2000


def test_the_broker_probe_finds_the_first_record_at_or_after_an_offset(
    namespace: Settings,
) -> None:
    """What the offset guard asks on a hole: deleted records and the log end count as
    nothing there."""
    topic = namespace.topics.clicks

    async def run() -> tuple[int | None, ...]:
        await produce_raw(namespace, topic, [(b"k", b"%d" % i) for i in range(6)])
        part = next(iter({p async for _, _, p, _ in iter_topic(namespace, topic, to_end=True)}))
        admin = AIOKafkaAdminClient(**namespace.kafka_client_kwargs())
        await admin.start()
        try:
            await admin.delete_records({TopicPartition(topic, part): RecordsToDelete(3)}, 10_000)
        finally:
            await admin.close()
        return (
            await first_offset_at(namespace, topic, part, 4),
            await first_offset_at(namespace, topic, part, 0),  # 0-2 deleted
            await first_offset_at(namespace, topic, part, 6, timeout_s=1),  # the end
        )

    assert asyncio.run(run()) == (4, 3, None)
