"""The sample rules of the learning loop (memberstream.domain.samples), without Kafka.

Every expected value is written by hand or computed here independently (the keyed hash
with hmac/hashlib), never produced by the code under test.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from memberstream.domain.samples import SampleDeriver, stars_label
from memberstream.schemas.events import ClickEvent, Feedback, LineItem, PurchaseEvent, ReviewEvent
from memberstream.schemas.outputs import AnomalyFlag

KEY = b"unit-test-key"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def pseudonym(member_id: str, key: bytes = KEY) -> str:
    """The keyed hash a sample must carry instead of the member id, computed here."""
    return "m_" + hmac.new(key, member_id.encode(), hashlib.sha256).hexdigest()[:24]


def review(
    event_id: str = "r1",
    rating: int = 4,
    title: str = "Great kettle",
    text: str = "Boils fast.",
    member_id: str = "member-1",
    language: str | None = None,
) -> ReviewEvent:
    return ReviewEvent(
        event_id=event_id,
        member_id=member_id,
        occurred_at=T0,
        product_id="p-kettle",
        rating=rating,
        title=title,
        text=text,
        language=language,
    )


def click(
    event_id: str,
    at: datetime,
    category: str = "home_kitchen",
    action: str = "view",
    member_id: str = "member-1",
) -> ClickEvent:
    query = "kettle" if action == "search" else None
    return ClickEvent(
        event_id=event_id,
        member_id=member_id,
        occurred_at=at,
        action=action,  # type: ignore[arg-type]
        product_id="p-other",
        category=category,
        title="Some product",
        query=query,
    )


def purchase(
    event_id: str,
    at: datetime,
    category: str = "home_kitchen",
    status: str = "paid",
    member_id: str = "member-1",
) -> PurchaseEvent:
    return PurchaseEvent(
        event_id=event_id,
        member_id=member_id,
        occurred_at=at,
        order_id=f"order-{event_id}",
        items=[
            LineItem(
                product_id="p-kettle",
                title="Electric kettle 1.7L",
                category=category,
                quantity=2,
                unit_price=25.0,
            )
        ],
        total=50.0,
        status=status,  # type: ignore[arg-type]
    )


def flag(flag_id: str = "flag-1") -> AnomalyFlag:
    return AnomalyFlag(
        output_id=flag_id,
        flag_id=flag_id,
        kind="order_velocity",
        subject="member",
        member_id="member-1",
        product_id=None,
        score=7.0,
        threshold=5.0,
        window_start=T0 - timedelta(hours=1),
        window_end=T0,
        evidence=["e-1", "e-2", "e-3"],
        details={"orders": 7, "limit": 5},
        detector_version="velocity-v1",
        cause_event_id="e-3",
        as_of=T0,
    )


# --- stars ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rating", "label"),
    [(1, "negative"), (2, "negative"), (3, "neutral"), (4, "positive"), (5, "positive")],
)
def test_stars_label_table(rating: int, label: str) -> None:
    """The documented rule: 1-2 negative, 3 neutral, 4-5 positive."""
    assert stars_label(rating) == label


@pytest.mark.parametrize("rating", [0, 6, -1])
def test_stars_label_refuses_ratings_outside_1_to_5(rating: int) -> None:
    with pytest.raises(ValueError):
        stars_label(rating)


# --- sentiment --------------------------------------------------------------------------


def test_review_becomes_one_masked_pseudonymized_sentiment_sample() -> None:
    """Title and text joined by a newline, PII masked, member hashed, label from stars."""
    e = review(
        event_id="rev-42",
        rating=2,
        title="Broke in a week",
        text="Email me at john.doe@example.com or call 555-123-4567.",
    )
    samples = list(SampleDeriver(KEY).derive(e))
    assert len(samples) == 1
    s = samples[0]
    assert s.sample_id == "sentiment:rev-42"
    assert s.event_id == "rev-42"
    assert s.kind == "sentiment"
    assert s.label == "negative"
    assert s.label_source == "stars"
    assert s.text == "Broke in a week\nEmail me at <EMAIL> or call <PHONE>."
    assert s.masked == {"email": 1, "phone": 1}
    assert s.member == pseudonym("member-1")
    assert "member-1" not in s.member
    assert s.language == "en"
    assert s.product_id == "p-kettle"
    assert s.event_time == T0
    assert s.source_event_ids == ("rev-42",)
    assert s.details == {"rating": 2}


def test_chinese_review_is_detected_as_zh_and_masked() -> None:
    e = review(
        event_id="rev-zh",
        rating=5,
        title="好用",
        text="有问题打13812345678或者发邮件到 li.ming@qq.com 谢谢",
    )
    (s,) = SampleDeriver(KEY).derive(e)
    assert s.label == "positive"
    assert s.language == "zh"
    assert s.text == "好用\n有问题打<PHONE>或者发邮件到 <EMAIL> 谢谢"


def test_review_with_only_a_title_or_only_a_text_has_no_stray_newline() -> None:
    (a,) = SampleDeriver(KEY).derive(review(event_id="a", title="", text="Fine."))
    (b,) = SampleDeriver(KEY).derive(review(event_id="b", title="Fine.", text=""))
    assert a.text == "Fine."
    assert b.text == "Fine."


@pytest.mark.parametrize(("title", "text"), [("", ""), ("  ", "\n\t ")])
def test_empty_review_gives_no_sample(title: str, text: str) -> None:
    assert list(SampleDeriver(KEY).derive(review(title=title, text=text))) == []


def test_member_hash_depends_on_the_key() -> None:
    (a,) = SampleDeriver(b"key-a").derive(review())
    (b,) = SampleDeriver(b"key-b").derive(review())
    assert a.member == pseudonym("member-1", b"key-a")
    assert b.member == pseudonym("member-1", b"key-b")
    assert a.member != b.member


# --- interest ---------------------------------------------------------------------------


def test_view_then_paid_purchase_in_the_category_is_one_interest_sample() -> None:
    d = SampleDeriver(KEY)
    assert list(d.derive(click("v1", T0))) == []
    samples = list(d.derive(purchase("buy1", T0 + timedelta(hours=1))))
    assert len(samples) == 1
    s = samples[0]
    assert s.sample_id == "interest:order-buy1:0"
    assert s.event_id == "buy1"
    assert s.kind == "interest"
    assert s.label == "home_kitchen"
    assert s.label_source == "behaviour"
    assert s.text == "Electric kettle 1.7L"
    assert s.product_id == "p-kettle"
    assert s.member == pseudonym("member-1")
    assert s.event_time == T0 + timedelta(hours=1)
    assert s.details == {"quantity": 2}


def test_purchase_read_before_the_view_gives_the_same_sample_once() -> None:
    """The two topics arrive in any order: the rule works on event time, and the second
    view of the category does not label the same line item again."""
    in_order = SampleDeriver(KEY)
    list(in_order.derive(click("v1", T0)))
    (want,) = in_order.derive(purchase("buy1", T0 + timedelta(hours=1)))

    reversed_ = SampleDeriver(KEY)
    assert list(reversed_.derive(purchase("buy1", T0 + timedelta(hours=1)))) == []
    got = list(reversed_.derive(click("v1", T0)))
    assert got == [want]
    assert list(reversed_.derive(click("v2", T0 + timedelta(minutes=5)))) == []


def test_add_to_cart_counts_as_interest() -> None:
    d = SampleDeriver(KEY)
    list(d.derive(click("c1", T0, action="add_to_cart")))
    assert len(list(d.derive(purchase("buy1", T0 + timedelta(hours=1))))) == 1


@pytest.mark.parametrize("view_first", [True, False])
def test_purchase_more_than_the_window_after_the_view_gives_none(view_first: bool) -> None:
    d = SampleDeriver(KEY)
    events = [click("v1", T0), purchase("buy1", T0 + timedelta(days=8))]
    got = [s for e in (events if view_first else events[::-1]) for s in d.derive(e)]
    assert got == []


def test_purchase_just_inside_the_window_counts() -> None:
    d = SampleDeriver(KEY)
    list(d.derive(click("v1", T0)))
    assert len(list(d.derive(purchase("buy1", T0 + timedelta(days=7))))) == 1


@pytest.mark.parametrize("view_first", [True, False])
def test_refunded_order_gives_none(view_first: bool) -> None:
    d = SampleDeriver(KEY)
    events = [click("v1", T0), purchase("ref1", T0 + timedelta(hours=1), status="refunded")]
    got = [s for e in (events if view_first else events[::-1]) for s in d.derive(e)]
    assert got == []


@pytest.mark.parametrize("view_first", [True, False])
def test_view_after_the_purchase_event_time_gives_none(view_first: bool) -> None:
    d = SampleDeriver(KEY)
    events = [click("v1", T0 + timedelta(hours=2)), purchase("buy1", T0 + timedelta(hours=1))]
    got = [s for e in (events if view_first else events[::-1]) for s in d.derive(e)]
    assert got == []


def test_search_clicks_do_not_count_as_interest() -> None:
    d = SampleDeriver(KEY)
    assert list(d.derive(click("s1", T0, action="search"))) == []
    assert list(d.derive(purchase("buy1", T0 + timedelta(hours=1)))) == []


def test_view_of_another_category_or_by_another_member_gives_none() -> None:
    d = SampleDeriver(KEY)
    list(d.derive(click("v1", T0, category="books")))
    list(d.derive(click("v2", T0, member_id="member-2")))
    assert list(d.derive(purchase("buy1", T0 + timedelta(hours=1)))) == []


def test_interest_label_does_not_depend_on_which_topic_is_read_first() -> None:
    """The docstring: a purchase is labeled whichever of view and purchase is read first.
    Twenty daily views, a purchase on day 3: only views of days 0-3 qualify."""
    views = [click(f"v{d}", T0 + timedelta(days=d)) for d in range(20)]
    buy = purchase("buy1", T0 + timedelta(days=3, hours=1))
    purchase_first = SampleDeriver(KEY)
    assert len([s for e in [buy, *views] for s in purchase_first.derive(e)]) == 1
    clicks_first = SampleDeriver(KEY)
    assert len([s for e in [*views, buy] for s in clicks_first.derive(e)]) == 1


def test_analyst_interest_correction_labels_the_last_seen_title() -> None:
    d = SampleDeriver(KEY)
    list(d.derive(click("v1", T0)))  # product p-other titled "Some product"

    def correction(event_id: str, product_id: str, verdict: str = "corrected") -> Feedback:
        return Feedback(
            event_id=event_id,
            member_id="member-1",
            occurred_at=T0,
            subject="interest",
            ref_id="books",
            verdict=verdict,  # type: ignore[arg-type]
            product_id=product_id,
        )

    (s,) = d.derive(correction("fb-i1", "p-other"))
    assert (s.sample_id, s.kind, s.label, s.label_source) == (
        "interest:p-other:fb-i1",
        "interest",
        "books",
        "analyst",
    )
    assert s.text == "Some product"
    assert list(d.derive(correction("fb-i2", "p-unknown"))) == []
    assert list(d.derive(correction("fb-i3", "p-other", "false_positive"))) == []


# --- analyst feedback -------------------------------------------------------------------


def test_sentiment_correction_shares_the_review_sample_id() -> None:
    fb = Feedback(
        event_id="fb-1",
        member_id="member-1",
        occurred_at=T0 + timedelta(days=1),
        subject="review_sentiment",
        ref_id="rev-42",
        verdict="corrected",
        label="negative",
    )
    (s,) = SampleDeriver(KEY).derive(fb)
    assert s.sample_id == "sentiment:rev-42"
    assert s.event_id == "fb-1"
    assert s.kind == "sentiment"
    assert s.label == "negative"
    assert s.label_source == "analyst"
    assert s.member == pseudonym("member-1")
    assert s.source_event_ids == ("rev-42", "fb-1")


def test_anomaly_verdict_on_a_seen_flag_carries_what_the_flag_measured() -> None:
    d = SampleDeriver(KEY)
    d.observe_flag(flag("flag-1"))
    fb = Feedback(
        event_id="fb-2",
        member_id="member-1",
        occurred_at=T0,
        subject="anomaly_flag",
        ref_id="flag-1",
        verdict="confirmed",
    )
    (s,) = d.derive(fb)
    assert s.sample_id == "anomaly:flag-1"
    assert s.kind == "anomaly"
    assert s.label == "confirmed"
    assert s.label_source == "analyst"
    assert s.details["flag_seen"] is True
    assert s.details["kind"] == "order_velocity"
    assert s.details["score"] == 7.0
    assert s.details["threshold"] == 5.0
    assert s.details["detector_version"] == "velocity-v1"
    assert s.details["flag_details"] == {"orders": 7, "limit": 5}
    assert s.source_event_ids == ("e-1", "e-2", "e-3", "fb-2")


def test_anomaly_verdict_on_an_unknown_flag_keeps_the_flag_id_only() -> None:
    fb = Feedback(
        event_id="fb-3",
        member_id="member-1",
        occurred_at=T0,
        subject="anomaly_flag",
        ref_id="never-seen",
        verdict="false_positive",
    )
    (s,) = SampleDeriver(KEY).derive(fb)
    assert s.sample_id == "anomaly:never-seen"
    assert s.label == "false_positive"
    assert s.details == {"flag_seen": False}
    assert s.source_event_ids == ("fb-3",)


def test_review_sentiment_feedback_without_label_is_refused() -> None:
    with pytest.raises(ValidationError):
        Feedback(
            event_id="fb-4",
            member_id="member-1",
            occurred_at=T0,
            subject="review_sentiment",
            ref_id="rev-1",
            verdict="corrected",
        )


def test_label_on_anomaly_flag_feedback_is_refused() -> None:
    with pytest.raises(ValidationError):
        Feedback(
            event_id="fb-5",
            member_id="member-1",
            occurred_at=T0,
            subject="anomaly_flag",
            ref_id="flag-1",
            verdict="confirmed",
            label="positive",
        )
