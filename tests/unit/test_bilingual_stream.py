"""A Chinese and an English review stream through the processors with the default
models (multilingual USE, the sentiment head trained on real reviews): summaries in
each product's language, sentiment of Chinese text, the mismatch flag in both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES, REVIEW_SUMMARIES
from memberstream.domain.language import detect_language
from memberstream.ml.inference import InferenceStage
from memberstream.schemas.events import ReviewEvent

T0 = datetime(2025, 3, 1, 8, tzinfo=UTC)

ZH = [
    (5, "音质很好，低音很足，戴着也很舒服。"),
    (5, "物流很快，第二天就到了，包装完好。音质清晰，非常满意。"),
    (4, "性价比很高，这个价格能买到这样的音质很值。"),
    (5, "电池很耐用，充一次电能用好几天，推荐购买。"),
    (2, "用了一个星期左边耳机就没声音了，质量太差。"),
]
EN = [
    (5, "Great kettle, it boils water really fast and looks lovely on the counter."),
    (5, "Boils quickly and the handle stays cool. Great value for money."),
    (1, "The lid broke after two weeks and the seller never answered my emails."),
    (4, "Works well and is quiet. The cord is a bit short."),
    (5, "Love it. Fast, quiet and easy to clean."),
]


def _reviews(product: str, rows: list[tuple[int, str]], language: str | None) -> list[ReviewEvent]:
    return [
        ReviewEvent(
            event_id=f"{product}-{i}",
            member_id=f"{product}-m{i}",
            occurred_at=T0 + timedelta(hours=i),
            product_id=product,
            rating=rating,
            title="",
            text=text,
            language=language,
        )
        for i, (rating, text) in enumerate(rows)
    ]


def test_each_product_is_summarized_in_its_reviews_language(default_stage: InferenceStage) -> None:
    run = OfflineRun(Settings(), default_stage)
    # No language tag on the English ones: detected.
    run.feed([*_reviews("earbuds", ZH, "zh"), *_reviews("kettle", EN, None)])
    by_product = {s["product_id"]: s for s in run.outputs[REVIEW_SUMMARIES]}
    zh, en = by_product["earbuds"], by_product["kettle"]
    assert zh["language"] == "zh" and detect_language(zh["summary"]) == "zh"
    assert en["language"] == "en" and detect_language(en["summary"]) == "en"
    assert zh["model_version"].startswith("extractive/v2+use-multilingual-v3@")
    # The text model reads Chinese: 4 positive reviews, 1 negative.
    assert zh["sentiment"]["positive"] >= 3 and zh["sentiment"]["negative"] >= 1
    assert any("质量太差" in c["text"] or "没声音" in c["text"] for c in zh["cons"])
    assert en["sentiment"]["negative"] >= 1 and en["sentiment"]["positive"] >= 3


def test_chinese_review_sentiment_reaches_the_profile(default_stage: InferenceStage) -> None:
    run = OfflineRun(Settings(), default_stage)
    angry = "质量太差了，用了两天就坏了，客服也不理人，退货！"
    happy = "非常好用，做工精致，物流也快，五星好评！"
    run.feed(
        [
            *_reviews("a", [(1, angry)], "zh"),
            *_reviews("b", [(5, happy)], "zh"),
        ]
    )
    profiles = run.profiles()
    assert profiles["a-m0"]["review_sentiment"] < -0.5
    assert profiles["b-m0"]["review_sentiment"] > 0.5


def test_the_mismatch_flag_works_in_chinese_and_english(default_stage: InferenceStage) -> None:
    run = OfflineRun(Settings(), default_stage)
    run.feed(
        [
            *_reviews("x", [(5, "质量太差了，用了两天就坏了，非常失望，退货！")], "zh"),
            *_reviews(
                "y", [(5, "Terrible. It broke after one day and support never replied.")], None
            ),
            *_reviews("z", [(5, "音质很好，非常满意")], "zh"),  # consistent: no flag
        ]
    )
    flagged = {
        f["member_id"] for f in run.outputs[ANOMALIES] if f["kind"] == "rating_text_mismatch"
    }
    assert flagged == {"x-m0", "y-m0"}
