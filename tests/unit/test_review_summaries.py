"""Review summaries and review sentiment through the processors (no Kafka): when a
summary falls due, what it cites, replays and redeliveries, Chinese reviews, the
rating/text mismatch flag and the profile's review sentiment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES, REVIEW_SUMMARIES
from memberstream.domain.summaries.review_buffer import KeptReview, ReviewBuffer, SummarySettings
from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.inference import InferenceStage
from memberstream.ml.sentiment import SentimentHead
from memberstream.schemas.events import ReviewEvent
from memberstream.schemas.outputs import MemberProfile, ReviewSummary

from .text_doubles import WordHashEncoder

T0 = datetime(2024, 6, 3, 9, tzinfo=UTC)
GOOD = "great excellent love wonderful"
BAD = "terrible awful broken useless"


def toy_sentiment() -> SentimentHead:
    """Negative along the embedding of BAD words, positive along GOOD ones."""
    enc = WordHashEncoder()
    bad, good = enc.encode([BAD, GOOD])
    weights = np.stack([bad * 12, np.zeros_like(bad), good * 12], axis=1)
    return SentimentHead(weights, np.zeros(3))


def stage() -> InferenceStage:
    return InferenceStage(WordHashEncoder(), Taxonomy.load(None), sentiment=toy_sentiment())


def review(
    i: int, product: str, rating: int, text: str, hours: float = 0.0, member: str | None = None
) -> ReviewEvent:
    return ReviewEvent(
        event_id=f"{product}-r{i:02d}",
        member_id=member or f"m{i}",
        occurred_at=T0 + timedelta(hours=hours + i),
        product_id=product,
        rating=rating,
        title="",
        text=text,
        language="zh" if any("\u4e00" <= c <= "\u9fff" for c in text) else "en",
    )


PRAISE = [
    "Great sound, I love the deep bass. The battery lasts all day.",
    "Excellent build quality. Great value for the price.",
    "Love it, the battery lasts all day and it pairs quickly.",
    "Wonderful earbuds. The case feels cheap though.",
]
COMPLAINTS = ["Terrible, the left earbud stopped working. Broken after a week."]


def earbud_reviews(n: int, product: str = "p1") -> list[ReviewEvent]:
    texts = [*PRAISE, *COMPLAINTS]
    return [
        review(i, product, 1 if texts[i % len(texts)] in COMPLAINTS else 5, texts[i % len(texts)])
        for i in range(n)
    ]


def summaries(run: OfflineRun) -> list[dict]:
    return run.outputs[REVIEW_SUMMARIES]


def test_buffer_is_due_after_k_reviews_or_t_days_and_never_below_the_minimum() -> None:
    conf = SummarySettings(refresh_reviews=3, refresh_after_days=7, min_reviews=2, max_reviews=4)
    buf = ReviewBuffer()
    day = 86_400.0

    def kept(i: int, t: float) -> KeptReview:
        return KeptReview(f"r{i}", t, 5, "fine", "en")

    assert not buf.add(kept(0, 0.0), conf)  # below the minimum
    assert not buf.add(kept(1, 1.0), conf)
    assert buf.add(kept(2, 2.0), conf)  # K = 3
    buf.mark_summarized()
    assert not buf.add(kept(3, 3.0), conf)
    assert buf.add(kept(4, 8 * day), conf)  # newer than T after the last summary
    buf.mark_summarized()
    assert [r.review_id for r in buf.reviews] == ["r1", "r2", "r3", "r4"]  # max_reviews
    assert buf.count == 5 and buf.rating_mean == 5.0
    again = ReviewBuffer.from_dict(buf.to_dict())
    assert again.to_dict() == buf.to_dict()


def test_a_summary_refreshes_after_k_reviews_and_not_before() -> None:
    settings = Settings()
    k = settings.summary.refresh_reviews
    run = OfflineRun(settings, stage())
    events = earbud_reviews(3 * k)
    for n, event in enumerate(events, 1):
        run.apply(event)
        assert len(summaries(run)) == n // k, n
    last = summaries(run)[-1]
    assert last["rating_count"] == 3 * k
    assert last["review_ids"] == sorted(e.event_id for e in events)


def test_a_summary_cites_only_its_product_and_every_point_is_supported() -> None:
    run = OfflineRun(Settings(), stage())
    kettle = "Great kettle, boils water fast."
    other = [review(i, "p2", 5, kettle, member=f"x{i}") for i in range(5)]
    mixed = [e for pair in zip(earbud_reviews(10), [*other, *other], strict=False) for e in pair]
    run.feed(mixed)
    by_product = {s["product_id"]: s for s in summaries(run)}
    texts = {e.event_id: e.text for e in [*earbud_reviews(10), *other]}
    p1 = by_product["p1"]
    assert ReviewSummary.model_validate(p1).model_dump(mode="json") == p1
    assert all(rid.startswith("p1-") for rid in p1["review_ids"])
    assert p1["pros"] and p1["cons"]
    for point in (*p1["pros"], *p1["cons"]):
        assert set(point["review_ids"]) <= set(p1["review_ids"])
        assert any(point["text"] in texts[rid] for rid in point["review_ids"]), point
    assert all(p["text"] not in COMPLAINTS[0] for p in p1["pros"])
    assert any(p["text"] in COMPLAINTS[0] for p in p1["cons"])
    counts = p1["sentiment"]
    assert counts["negative"] == 2 and counts["positive"] >= 6


def test_a_replay_gives_the_same_summaries_and_a_redelivery_changes_nothing() -> None:
    events = earbud_reviews(10)
    first = OfflineRun(Settings(), stage())
    first.feed(events)
    second = OfflineRun(Settings(), stage())
    second.feed(events)
    assert summaries(first) == summaries(second)
    cause = events[4]  # the fifth review made the first summary due
    record = {
        "type": "review",
        "event_id": cause.event_id,
        "product_id": "p1",
        "member_id": cause.member_id,
        "occurred_at": cause.occurred_at.isoformat(),
        "rating": cause.rating,
        "text": cause.text,
    }
    before = first.products["p1"].to_bytes()
    again = first.product_processor.apply(first.products["p1"], record)
    assert again.duplicate and again.emits == [] and again.summary is None
    assert again.state.to_bytes() == before


def test_chinese_reviews_yield_a_chinese_summary() -> None:
    texts = [
        "音质很好，低音很足。",
        "续航很长，非常满意。",
        "做工精细，强烈推荐！",
        "耳机盒有点廉价。",
        "连接很快，好用。",
    ]
    run = OfflineRun(Settings(), stage())
    run.feed([review(i, "p9", 5, t) for i, t in enumerate(texts)])
    (summary,) = summaries(run)
    assert summary["language"] == "zh"
    assert any("\u4e00" <= c <= "\u9fff" for c in summary["summary"])


def test_stars_that_contradict_the_text_raise_a_flag_and_sentiment_reaches_the_profile() -> None:
    run = OfflineRun(Settings(), stage())
    run.apply(review(0, "p1", 5, "Terrible awful broken useless junk", member="m1"))
    run.apply(review(1, "p1", 5, "Great excellent love it", member="m1"))
    run.apply(review(2, "p1", 1, "Great excellent wonderful love", member="m2"))
    flags = [f for f in run.outputs[ANOMALIES] if f["kind"] == "rating_text_mismatch"]
    assert sorted((f["member_id"], f["evidence"][0], f["details"]["text"]) for f in flags) == [
        ("m1", "p1-r00", "negative"),
        ("m2", "p1-r02", "positive"),
    ]
    assert all(f["score"] >= f["threshold"] for f in flags)
    profiles = run.profiles()
    assert MemberProfile.model_validate(profiles["m1"]).review_sentiment is not None
    assert -0.5 < profiles["m1"]["review_sentiment"] < 0.5  # one bad, one good
    assert profiles["m2"]["review_sentiment"] > 0.5


def test_without_a_text_model_there_are_no_summaries() -> None:
    run = OfflineRun(Settings())
    run.feed(earbud_reviews(10))
    assert summaries(run) == []


def test_the_mismatch_flag_only_trusts_the_text_model_on_configured_languages() -> None:
    bad = review(0, "p1", 5, "Terrible awful broken useless junk", member="m1")
    tagged_zh = bad.model_copy(update={"language": "zh-CN"})
    tagged_fr = bad.model_copy(update={"language": "fr", "event_id": "p1-fr"})
    run = OfflineRun(Settings(), stage())
    run.apply(tagged_fr)
    assert run.outputs[ANOMALIES] == []  # default: English and Chinese, not other
    run.apply(tagged_zh)
    assert [f["kind"] for f in run.outputs[ANOMALIES]] == ["rating_text_mismatch"]
    settings = Settings()
    settings.anomaly.rating_text_mismatch.languages = ["en"]
    run = OfflineRun(settings, stage())
    run.apply(tagged_zh)
    assert run.outputs[ANOMALIES] == []
