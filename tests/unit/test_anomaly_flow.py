"""Anomaly flags through the processors (no Kafka): the flag record, its id on a
duplicate and a replay, analyst feedback, review spam via the product processor,
and the learned score."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from memberstream.config import Settings
from memberstream.core.member.processor import MemberProcessor
from memberstream.core.offline import OfflineRun
from memberstream.core.positions import Position
from memberstream.core.roles import ANOMALIES, PRODUCT_REVIEWS
from memberstream.domain.anomaly.order_features import BEHAVIOUR_FEATURES, OrderVector
from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.inference import InferenceStage
from memberstream.ml.learned_scorer import LearnedScorer, fit_logistic
from memberstream.schemas.events import (
    ClickEvent,
    Envelope,
    Feedback,
    LineItem,
    PurchaseEvent,
    ReviewEvent,
)
from memberstream.schemas.outputs import AnomalyFlag

from .text_doubles import DIM, WordHashEncoder

T0 = datetime(2024, 3, 4, 12, tzinfo=UTC)


def bot_clicks(member: str = "m1", n: int = 40, gap_s: float = 1.0) -> list[ClickEvent]:
    return [
        ClickEvent(
            event_id=f"{member}-c{i}",
            member_id=member,
            occurred_at=T0 + timedelta(seconds=i * gap_s),
            action="view",
            product_id=f"p{i}",
            category="books",
            title=f"book number {i}",
        )
        for i in range(n)
    ]


def review(i: int, member: str, product: str, rating: int, text: str, hours: float) -> ReviewEvent:
    return ReviewEvent(
        event_id=f"r{i}",
        member_id=member,
        occurred_at=T0 + timedelta(hours=hours),
        product_id=product,
        rating=rating,
        title="",
        text=text,
    )


def feedback(flag_id: str, member: str, product: str | None = None, i: int = 0) -> Feedback:
    return Feedback(
        event_id=f"fb{i}",
        member_id=member,
        occurred_at=T0 + timedelta(days=30),
        subject="anomaly_flag",
        ref_id=flag_id,
        verdict="false_positive",
        product_id=product,
    )


def stage() -> InferenceStage:
    return InferenceStage(WordHashEncoder(), Taxonomy.load(None))


def flags(run: OfflineRun) -> list[dict]:
    return run.outputs[ANOMALIES]


def test_a_bot_session_raises_schema_valid_flags_with_evidence() -> None:
    run = OfflineRun(Settings())
    run.feed(bot_clicks())
    kinds = {f["kind"] for f in flags(run)}
    assert {"click_burst", "bot_pattern"} <= kinds
    for f in flags(run):
        assert AnomalyFlag.model_validate(f).model_dump(mode="json") == f
        assert f["subject"] == "member" and f["member_id"] == "m1" and f["product_id"] is None
        assert f["flag_id"] == f["output_id"]
        assert f["score"] >= f["threshold"]
        assert f["evidence"] and all(e.startswith("m1-c") for e in f["evidence"])
        assert f["detector_version"].startswith(f"{f['kind']}/v1@")
        assert f["window_start"] <= f["window_end"] == f["as_of"]


def test_normal_paced_clicks_raise_nothing() -> None:
    run = OfflineRun(Settings())
    run.feed(bot_clicks(n=60, gap_s=95.0 + 0.0))  # steady but human-slow: one per 95 s
    assert flags(run) == []


def test_a_duplicate_raises_nothing_again_and_a_replay_rebuilds_the_same_id() -> None:
    events = bot_clicks()
    first = OfflineRun(Settings())
    first.feed(events)
    raised = {f["flag_id"]: f for f in flags(first)}
    proc = first.processor
    cause = next(iter(raised.values()))["cause_event_id"]
    again = proc.apply(first.members["m1"], next(e for e in events if e.event_id == cause))
    assert again.duplicate and again.emits == []
    replay = OfflineRun(Settings())
    replay.feed(events)
    assert {f["flag_id"]: f for f in flags(replay)} == raised


def test_a_rejected_flag_is_not_raised_again_for_the_same_evidence() -> None:
    events = bot_clicks()
    first = OfflineRun(Settings())
    first.feed(events)
    rejected = flags(first)[0]
    verdict = feedback(rejected["flag_id"], "m1")

    # after the verdict, redelivered events no longer re-emit the rejected flag
    first.apply(verdict)
    proc, state = first.processor, first.members["m1"]
    cause = next(e for e in events if e.event_id == rejected["cause_event_id"])
    replayed = [e.payload["flag_id"] for e in proc.apply(state, cause).emits]
    assert rejected["flag_id"] not in replayed

    # a replay that reads the verdict before the events does not raise it at all
    replay = OfflineRun(Settings())
    replay.feed([verdict, *events])
    ids = {f["flag_id"] for f in flags(replay)}
    assert rejected["flag_id"] not in ids
    assert ids == {f["flag_id"] for f in flags(first)} - {rejected["flag_id"]}
    assert replay.members["m1"].flags.is_rejected(rejected["flag_id"])


def test_feedback_alone_makes_no_profile() -> None:
    run = OfflineRun(Settings())
    run.apply(feedback("some-flag", "m9"))
    assert run.profiles() == {}
    run.feed(bot_clicks("m9", n=3))
    assert run.profiles()["m9"]["first_seen"] == T0.isoformat().replace("+00:00", "Z")


COPY = "Absolutely the best purchase of my life, everyone should buy this amazing thing today"


def copy_paste(product: str = "p1") -> list[Envelope]:
    return [review(i, f"m{i}", product, 5, COPY, hours=i) for i in range(4)]


def test_copy_paste_reviews_flag_the_product_once() -> None:
    run = OfflineRun(Settings(), stage())
    run.feed(copy_paste())
    (flag,) = flags(run)
    assert flag["kind"] == "review_duplicate"
    assert flag["subject"] == "product" and flag["product_id"] == "p1"
    assert flag["member_id"] is None
    assert set(flag["evidence"]) <= {"r0", "r1", "r2", "r3"} and len(flag["evidence"]) >= 3
    cause = next(e for e in copy_paste() if e.event_id == flag["cause_event_id"])
    assert flag["as_of"] == cause.occurred_at.isoformat().replace("+00:00", "Z")
    assert flag["window_start"] <= flag["as_of"] <= flag["window_end"]  # a fixed window
    assert AnomalyFlag.model_validate(flag).model_dump(mode="json") == flag


def test_one_member_repeating_a_text_is_not_a_copy_paste_ring() -> None:
    run = OfflineRun(Settings(), stage())
    run.feed([review(i, "m1", "p1", 5, COPY, hours=i) for i in range(5)])
    assert flags(run) == []


def test_product_feedback_suppresses_the_flag_on_replay() -> None:
    first = OfflineRun(Settings(), stage())
    first.feed(copy_paste())
    (flag,) = flags(first)
    verdict = feedback(flag["flag_id"], "analyst-1", product="p1")
    replay = OfflineRun(Settings(), stage())
    replay.feed([verdict, *copy_paste()])
    assert flags(replay) == []


def test_every_review_is_forwarded_to_the_product_agent_with_its_embedding() -> None:
    st = stage()
    proc = MemberProcessor(Settings(), None, st.model_version)
    event = copy_paste()[0]
    scores = st.score_now(proc.texts(event))
    applied = proc.apply(None, event, scores)
    (record,) = [e for e in applied.emits if e.role == PRODUCT_REVIEWS]
    assert record.key == "p1" and record.payload["event_id"] == "r0"
    assert record.payload["embedding_f16"]
    assert record.payload["src"] is None  # not read from Kafka
    again = proc.apply(applied.state, event, scores)  # a duplicate is not forwarded again
    assert again.duplicate and again.emits == []
    at = Position("events.reviews", 1, 77)
    read = proc.apply(None, event, scores, at)
    (record,) = [e for e in read.emits if e.role == PRODUCT_REVIEWS]
    assert record.payload["src"] == ["events.reviews", 1, 77]


# --- the learned score ---------------------------------------------------------------------


def order(i: int, member: str, day: float, price: float, qty: int = 1) -> PurchaseEvent:
    return PurchaseEvent(
        event_id=f"{member}-o{i}",
        member_id=member,
        occurred_at=T0 + timedelta(days=day),
        order_id=f"{member}-order{i}",
        items=[
            LineItem(
                product_id=f"p{i}",
                title="paperback mystery novel" if price < 100 else "gaming laptop pro",
                category="books" if price < 100 else "computers",
                quantity=qty,
                unit_price=price,
            )
        ],
        total=round(price * qty, 2),
    )


def toy_scorer() -> LearnedScorer:
    """A scorer fitted on made-up vectors: big totals far above the member's own are bad."""
    rng = np.random.default_rng(3)
    n_b = len(BEHAVIOUR_FEATURES)
    normal = rng.normal(1, 1, size=(400, n_b + DIM))
    bad = rng.normal(1, 1, size=(40, n_b + DIM))
    normal[:, 0], bad[:, 0] = rng.normal(3, 0.7, 400), rng.normal(8, 0.5, 40)  # log_total
    normal[:, 1], bad[:, 1] = rng.normal(0, 1, 400), rng.normal(6, 1, 40)  # z_vs_own_orders
    x = np.vstack([normal, bad])
    y = np.r_[np.zeros(400), np.ones(40)]
    mean, scale, weights, bias = fit_logistic(x, y)
    return LearnedScorer(mean, scale, weights, bias, DIM)


def test_fit_logistic_separates_and_scores_are_batch_independent() -> None:
    scorer = toy_scorer()
    rng = np.random.default_rng(5)
    vectors = [OrderVector(rng.normal(0, 1, len(BEHAVIOUR_FEATURES)), None) for _ in range(20)]
    together = [s.probability for s in scorer.score(vectors)]
    alone = [scorer.score([v])[0].probability for v in vectors]
    assert together == alone
    high = np.zeros(len(BEHAVIOUR_FEATURES))
    high[0], high[1] = 5.0, 7.0
    assert scorer.score([OrderVector(high, None)])[0].probability > 0.9
    assert scorer.score([OrderVector(np.zeros(len(BEHAVIOUR_FEATURES)), None)])[0].probability < 0.5


def test_scorer_file_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    scorer = toy_scorer()
    scorer.save(tmp_path / "s.npz")
    loaded = LearnedScorer.load(tmp_path / "s.npz")
    v = [OrderVector(np.arange(len(BEHAVIOUR_FEATURES), dtype=float), np.ones(DIM) / 4)]
    assert loaded.score(v)[0] == scorer.score(v)[0]
    assert loaded.version.startswith("learned@")


def test_learned_score_flags_a_takeover_order_and_explains_it() -> None:
    st = stage()
    st.scorer = toy_scorer()
    run = OfflineRun(Settings(), st)
    history = [order(i, "m1", day=i * 7, price=12.0 + i) for i in range(6)]
    run.feed(history)
    assert [f for f in flags(run) if f["kind"] == "learned_score"] == []
    run.apply(order(99, "m1", day=50, price=1800.0, qty=3))
    (flag,) = [f for f in flags(run) if f["kind"] == "learned_score"]
    assert flag["evidence"] == ["m1-o99"]
    assert flag["score"] >= flag["threshold"] == Settings().anomaly.learned.threshold
    pushes = {k: v for k, v in flag["details"].items() if k.startswith("push:")}
    assert len(pushes) == Settings().anomaly.learned.top_features
    assert "push:z_vs_own_orders" in pushes
    assert flag["detector_version"].startswith("learned@in-memory+word-hash@test")


def test_switching_a_detector_off_silences_it() -> None:
    settings = Settings()
    settings.anomaly.click_burst.enabled = False
    run = OfflineRun(settings)
    run.feed(bot_clicks())
    assert "click_burst" not in {f["kind"] for f in flags(run)}
    settings = Settings()
    settings.anomaly.enabled = False
    run = OfflineRun(settings)
    run.feed(bot_clicks())
    assert flags(run) == []


@pytest.mark.parametrize("key", ["member", "product"])
def test_feedback_on_a_product_flag_may_be_keyed_by_product(key: str) -> None:
    from memberstream.core.ingest import IngestBatcher

    batcher = IngestBatcher.__new__(IngestBatcher)
    batcher.event_types = {"labels.feedback": Feedback}
    fb = feedback("f", "analyst-1", product="p1")
    raw = fb.model_dump_json().encode()
    k = b"analyst-1" if key == "member" else b"p1"
    assert batcher._decode("labels.feedback", k, raw) == fb
    assert batcher._decode("labels.feedback", b"other", raw).error_type == "validation"  # type: ignore[union-attr]


def test_member_flags_do_not_depend_on_how_clicks_and_orders_interleave() -> None:
    """Kafka orders a member's clicks and a member's orders, not one against the other."""
    clicks = bot_clicks(n=40)
    orders = [order(i, "m1", day=i * 0.0005, price=3.0) for i in range(8)]  # card testing
    runs = []
    for events in ([*clicks, *orders], [*orders, *clicks]):
        run = OfflineRun(Settings())
        run.feed(events)
        runs.append({f["flag_id"]: f for f in flags(run)})
    assert runs[0] == runs[1]
    assert {f["kind"] for f in runs[0].values()} >= {"click_burst", "order_velocity"}


def test_a_review_is_verified_when_the_member_bought_the_product() -> None:
    proc = MemberProcessor(Settings())
    item = LineItem(product_id="p1", title="Kettle", category="home_kitchen", quantity=1,
                    unit_price=30.0)  # fmt: skip
    paid = PurchaseEvent(event_id="o1", member_id="m1", occurred_at=T0, order_id="o1",
                         items=[item], total=30.0)  # fmt: skip
    state = proc.apply(None, paid).state
    bought = review(1, "m1", "p1", 5, "Boils fast, quiet lid.", 24)
    other = review(2, "m1", "p2", 1, "Never arrived, awful.", 25)
    forwarded = {
        e.payload["product_id"]: e.payload["verified"]
        for ev in (bought, other)
        for e in proc.apply(state, ev).emits
        if e.role == PRODUCT_REVIEWS
    }
    assert forwarded == {"p1": True, "p2": False}
    # the memory of products bought survives the state's round trip
    again = proc.load(state.to_bytes())
    assert again is not None and list(again.bought) == ["p1"]
