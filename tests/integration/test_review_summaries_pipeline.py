"""Review summaries through the real broker, a real worker process, the real text model
and the trained sentiment head: reviews in, a faithful summary out, the same on a replay."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import REVIEW_SUMMARIES
from memberstream.schemas.events import ReviewEvent
from memberstream.schemas.outputs import ReviewSummary
from memberstream.streams.kafka_io import read_json
from memberstream.testing import produce_records, raw_records, run_until_processed

from .conftest import make_namespace
from .harness import reference_stage

pytestmark = pytest.mark.integration

T0 = datetime(2024, 10, 7, 8, tzinfo=UTC)
KETTLE = [
    (5, "Boils water in under two minutes. The handle stays cool and it looks great."),
    (5, "Fast and quiet kettle. Love the blue light when it is on."),
    (4, "Heats quickly. The lid is a bit stiff to open."),
    (1, "Started leaking after three weeks. Customer service never replied."),
    (5, "Great value for the price, boils fast and looks great on the counter."),
    (2, "The plastic smell did not go away. The lid is stiff."),
    (5, "Quick to boil and easy to clean. Very happy with it."),
    (4, "Good kettle, heats quickly, a little loud."),
    (5, "Boils water in under two minutes, the handle stays cool."),
    (3, "Works, but the lid is hard to open with one hand."),
]
FLASK = [
    (5, "保温效果很好，早上装的热水晚上还是烫的。"),
    (5, "颜色好看，做工精细，很满意。"),
    (4, "保温不错，就是杯盖有点紧。"),
    (1, "用了一周就漏水了，客服也不处理。"),
    (5, "容量刚好，保温效果很好，推荐购买。"),
    (5, "物流很快，包装完好，保温效果很好。"),
]


def reviews(product: str, texts: list[tuple[int, str]], language: str) -> list[ReviewEvent]:
    return [
        ReviewEvent(
            event_id=f"{product}-r{i:02d}",
            member_id=f"{product}-m{i}",
            occurred_at=T0 + timedelta(hours=3 * i),
            product_id=product,
            rating=rating,
            text=text,
            language=language,
        )
        for i, (rating, text) in enumerate(texts)
    ]


def summaries(settings: Settings) -> list[dict]:
    topic = settings.topics.product_review_summaries
    return asyncio.run(read_json(settings, topic))


def test_reviews_in_give_faithful_summaries_out_and_a_replay_gives_the_same(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    events = [*reviews("kettle-1", KETTLE, "en"), *reviews("flask-1", FLASK, "zh")]
    events.sort(key=lambda e: e.occurred_at)
    texts = {e.event_id: e.text for e in events}
    runs = []
    for i in range(2):  # one partition: the product agent sees the reviews in produce order
        settings = make_namespace(kafka_bootstrap, tmp_path / f"run{i}", partitions=1)
        produce_records(settings, raw_records(settings, events))
        run_until_processed(settings, tmp_path / f"worker-{i}.log")
        runs.append(summaries(settings))
    first, replay = runs
    assert first == replay  # ids and payloads
    # ... made by the default multilingual encoder, which the summaries name.
    assert first and all("+use-multilingual-v3@" in s["model_version"] for s in first), first[0]

    k = settings.summary.refresh_reviews
    by_product: dict[str, list[dict]] = {}
    for s in first:
        by_product.setdefault(s["product_id"], []).append(s)
    assert len(by_product["kettle-1"]) == len(KETTLE) // k  # after K reviews, not before
    assert len(by_product["flask-1"]) == len(FLASK) // k
    for s in first:
        assert ReviewSummary.model_validate(s).model_dump(mode="json") == s
        assert all(rid.startswith(s["product_id"]) for rid in s["review_ids"])
        for point in (*s["pros"], *s["cons"]):
            assert set(point["review_ids"]) <= set(s["review_ids"])
            assert any(point["text"] in texts[rid] for rid in point["review_ids"]), point
    kettle = by_product["kettle-1"][-1]
    assert kettle["language"] == "en" and kettle["rating_count"] == len(KETTLE)
    assert kettle["pros"] and kettle["cons"]
    assert by_product["flask-1"][-1]["language"] == "zh"

    offline = OfflineRun(settings, reference_stage(settings))
    offline.feed(events)
    assert offline.outputs[REVIEW_SUMMARIES] == first  # the worker = the in-process reference


def test_bad_records_on_the_product_and_feedback_topics_go_to_the_dlq(
    namespace: Settings, tmp_path: Path
) -> None:
    """The product topic is internal, but a record there that cannot be used (corrupt, or
    keyed by the wrong product) must not stop the product agent nor vanish; nor may a
    malformed verdict on labels.feedback."""
    topics = namespace.topics
    bad = [
        (topics.product_reviews, b"kettle-1", b"{not json"),
        (
            topics.product_reviews,
            b"kettle-1",
            b'{"type": "review", "event_id": "x", "product_id": "flask-1"}',
        ),
        (topics.feedback, b"m1", b'{"event_id": "f1", "member_id": "m1"}'),
    ]
    events = reviews("kettle-1", KETTLE, "en")
    produce_records(namespace, [*bad, *raw_records(namespace, events)])
    run_until_processed(namespace, tmp_path / "worker.log")

    dlq = asyncio.run(read_json(namespace, topics.dlq))
    assert sorted((d["source_topic"], d["error_type"]) for d in dlq) == sorted(
        [
            (topics.feedback, "validation"),
            (topics.product_reviews, "validation"),
            (topics.product_reviews, "validation"),
        ]
    )
    by_value = {base64.b64decode(d["value_b64"]): d for d in dlq}
    assert "invalid JSON" in by_value[b"{not json"]["reason"]
    assert "does not match product_id" in by_value[bad[1][2]]["reason"]
    # the good reviews behind them were processed: one summary per K reviews
    assert len(summaries(namespace)) == len(KETTLE) // namespace.summary.refresh_reviews
