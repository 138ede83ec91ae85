"""Per-product anomaly detectors: review bombing and duplicated review texts."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from memberstream.domain.anomaly.flags import Candidate, flag_id
from memberstream.domain.anomaly.product_detectors import (
    SEEN_KEPT,
    ProductAnomalyState,
    ProductDetectors,
    ProductReview,
    quantize,
)
from memberstream.domain.anomaly.settings import (
    DAY_S,
    AnomalySettings,
    ReviewBombingSettings,
    ReviewDuplicateSettings,
)
from memberstream.schemas.events import ReviewEvent

T0 = 19_677 * DAY_S  # 2023-11-16T00:00Z, a day and a week boundary (weeks start on Thursdays)
WEEK = 7 * DAY_S
DIM = 384
PRODUCT = "p1"


def unit(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def near(rng: np.random.Generator, v: np.ndarray, cosine: float = 0.98) -> np.ndarray:
    """A unit vector at about ``cosine`` to ``v``: a light rewording of the same text."""
    noise = rng.standard_normal(v.size)
    noise -= noise.dot(v) * v
    noise /= np.linalg.norm(noise)
    out = cosine * v + np.sqrt(1 - cosine**2) * noise
    return (out / np.linalg.norm(out)).astype(np.float32)


def review(
    eid: str,
    t: float,
    member: str | None = None,
    rating: int = 5,
    emb: np.ndarray | None = None,
    chars: int = 120,
    product: str = PRODUCT,
) -> ProductReview:
    return ProductReview(
        event_id=eid,
        member_id=member or f"m-{eid}",
        product_id=product,
        t=t,
        rating=rating,
        text_chars=chars,
        embedding=emb,
    )


def feed(
    det: ProductDetectors,
    reviews: Iterable[ProductReview],
    states: dict[str, ProductAnomalyState] | None = None,
) -> list[Candidate]:
    states = {} if states is None else states
    out: list[Candidate] = []
    for r in reviews:
        out += det.on_review(states.setdefault(r.product_id, ProductAnomalyState()), r)
    return out


def ids(cands: Iterable[Candidate]) -> set[str]:
    return {flag_id(c.kind, c.subject, c.subject_id, c.window_start) for c in cands}


def with_lateness(reviews: Sequence[ProductReview], seed: int, max_s: float) -> list[ProductReview]:
    """Arrival order of several upstream partitions: each review delayed by up to ``max_s``."""
    rng = random.Random(seed)
    return sorted(reviews, key=lambda r: r.t + rng.uniform(0, max_s))


@pytest.fixture
def det() -> ProductDetectors:
    return ProductDetectors(AnomalySettings())


def background(days: int = 28, per_day: int = 2, low_every: int = 0) -> list[ProductReview]:
    """Ordinary reviews before T0: ``per_day`` a day, every ``low_every``-th one low."""
    out = []
    for d in range(days):
        for k in range(per_day):
            n = d * per_day + k
            low = low_every and n % low_every == 0
            t = T0 - (days - d) * DAY_S + 3600.0 * (k + 1)
            out.append(review(f"bg{n}", t, rating=1 if low else 5))
    return out


# --- state ---------------------------------------------------------------------------------


def test_fresh_state_round_trips() -> None:
    assert ProductAnomalyState().to_dict() == {"v": 1}
    state = ProductAnomalyState.from_dict({"v": 1})
    assert state.recent == [] and state.clock is None
    with pytest.raises(ValueError, match="malformed"):
        ProductAnomalyState.from_dict({"v": 1, "r": [[1.0, "e", "m", "not base64!"]]})


def test_from_event() -> None:
    ev = ReviewEvent(
        event_id="e1",
        member_id="m1",
        occurred_at=datetime(2024, 1, 2, tzinfo=UTC),
        product_id="p9",
        rating=2,
        title="Bad",
        text="Broke in a day",
    )
    r = ProductReview.from_event(ev)
    assert (r.product_id, r.rating, r.text_chars, r.embedding) == ("p9", 2, 18, None)
    assert r.t == datetime(2024, 1, 2, tzinfo=UTC).timestamp()


# --- review_bombing ------------------------------------------------------------------------


def test_review_bombing_fires_once_per_bucket(det: ProductDetectors) -> None:
    states: dict[str, ProductAnomalyState] = {}
    assert feed(det, background(), states) == []
    lows = [review(f"low{i}", T0 + 600.0 * (i + 1), rating=1) for i in range(12)]
    highs = [review(f"hi{i}", T0 + 500.0 * (i + 1), rating=5) for i in range(2)]
    got = [(r.event_id, c) for r in highs + lows for c in feed(det, [r], states)]
    assert [c.kind for _, c in got] == ["review_bombing"]  # once for the bucket
    cause, flag = got[0]
    assert cause == "low7"  # the 8th low rating
    assert flag.subject == "product" and flag.subject_id == PRODUCT
    assert flag.window_start == T0 and flag.window_end == T0 + DAY_S
    assert flag.evidence == tuple(f"low{i}" for i in range(8))
    assert flag.score == 8 and flag.threshold == 8
    assert flag.details["low_share"] == pytest.approx(0.8)
    # the next day is a new bucket and a new flag
    next_day = [review(f"d2-{i}", T0 + DAY_S + 60.0 * i, rating=2) for i in range(8)]
    (again,) = feed(det, next_day, states)
    assert again.window_start == T0 + DAY_S


def test_review_bombing_near_misses(det: ProductDetectors) -> None:
    seven = [review(f"low{i}", T0 + 60.0 * i, rating=1) for i in range(7)]
    assert feed(det, [*background(), *seven]) == []
    # 8 low ratings but only 57% of the day's reviews
    highs = [review(f"hi{i}", T0 + 10.0 * i, rating=4) for i in range(6)]
    eight = [review(f"low{i}", T0 + 60.0 * (i + 1), rating=2) for i in range(8)]
    assert feed(det, [*background(), *highs, *eight]) == []
    # a rating of 3 is not low
    assert feed(det, [review(f"mid{i}", T0 + i, rating=3) for i in range(20)]) == []


def test_review_bombing_against_the_product_baseline(det: ProductDetectors) -> None:
    # three low ratings a day for four weeks: the limit is 4 x 3 = 12, so 13 flag
    base = background(per_day=3, low_every=1)
    twelve = [review(f"low{i}", T0 + 60.0 * i, rating=1) for i in range(12)]
    assert feed(det, [*base, *twelve]) == []
    states: dict[str, ProductAnomalyState] = {}
    thirteen = [*twelve, review("low12", T0 + 900.0, rating=1)]
    flags = feed(det, [*base, *thirteen], states)
    assert [(f.score, f.threshold, f.details["baseline"]) for f in flags] == [(13.0, 13.0, 3.0)]
    assert len(states[PRODUCT].counts) <= 28 + 1


# --- review_duplicate ----------------------------------------------------------------------


def test_review_duplicate_three_members(det: ProductDetectors) -> None:
    rng = np.random.default_rng(1)
    text = unit(rng)
    copies = [
        review("r0", T0 + DAY_S, "a", emb=text),
        review("noise", T0 + DAY_S + 10, "x", emb=unit(rng)),
        review("r1", T0 + 2 * DAY_S, "b", emb=near(rng, text)),
        review("r2", T0 + 3 * DAY_S, "c", emb=near(rng, text)),
    ]
    states: dict[str, ProductAnomalyState] = {}
    assert feed(det, copies[:3], states) == []  # two members are not enough
    (flag,) = feed(det, copies[3:], states)
    assert flag.kind == "review_duplicate" and flag.subject_id == PRODUCT
    assert flag.window_start == T0 and flag.window_end == T0 + WEEK  # the week's bucket
    assert flag.evidence == ("r0", "r1", "r2")
    assert flag.score == 3 and flag.threshold == 3
    assert flag.details["members"] == 3 and flag.details["similarity"] >= 0.95
    # a fourth copy in the same week adds no second flag
    assert feed(det, [review("r3", T0 + 3 * DAY_S + 5, "d", emb=near(rng, text))], states) == []


def test_review_duplicate_near_misses(det: ProductDetectors) -> None:
    rng = np.random.default_rng(2)
    text = unit(rng)
    a = review("r0", T0 + DAY_S, "a", emb=text)
    b = review("r1", T0 + DAY_S + 60, "b", emb=near(rng, text))
    assert feed(det, [a, b, review("r2", T0 + DAY_S + 90, "c", emb=near(rng, text, 0.9))]) == []
    late = review("r2", T0 + DAY_S + 3 * DAY_S + 61, "c", emb=near(rng, text))  # > window_s
    assert feed(det, [a, b, late]) == []
    short = review("r2", T0 + DAY_S + 90, "c", emb=near(rng, text), chars=39)
    assert feed(det, [a, b, short]) == []
    no_model = review("r2", T0 + DAY_S + 90, "c", emb=None)
    assert feed(det, [a, b, no_model]) == []


def test_one_member_posting_the_same_text_does_not_flag(det: ProductDetectors) -> None:
    rng = np.random.default_rng(3)
    text = unit(rng)
    same = [review(f"r{i}", T0 + 3600.0 * i, "spammer", emb=near(rng, text)) for i in range(5)]
    assert feed(det, same) == []
    # one more member makes two: still not three
    assert feed(det, [*same, review("other", T0 + 20_000, "b", emb=text)]) == []


def test_duplicate_review_delivered_twice_changes_nothing(det: ProductDetectors) -> None:
    rng = np.random.default_rng(4)
    text = unit(rng)
    reviews = [
        review(f"r{i}", T0 + 3600.0 * i, f"m{i}", rating=1, emb=near(rng, text)) for i in range(9)
    ]
    state = ProductAnomalyState()
    first = [c for r in reviews for c in det.on_review(state, r)]
    assert {c.kind for c in first} == {"review_duplicate", "review_bombing"}
    before = orjson.dumps(state.to_dict())
    for r in reviews:
        assert det.on_review(state, r) == []
    assert orjson.dumps(state.to_dict()) == before


def test_clusters_across_a_bucket_boundary_and_without_transitivity(det: ProductDetectors) -> None:
    rng = np.random.default_rng(5)
    e1, e2 = unit(rng), unit(rng)
    e2 = e2 - e2.dot(e1) * e1
    e2 /= np.linalg.norm(e2)
    # A ~ B and B ~ C (cosine 0.96) but A !~ C (0.84): B is the centre of a cluster of three
    a = review("a", T0 + DAY_S, "ma", emb=0.96 * e1 + 0.28 * e2)
    b = review("b", T0 + DAY_S + 60, "mb", emb=e1)
    c = review("c", T0 + DAY_S + 120, "mc", emb=0.96 * e1 - 0.28 * e2)
    for order in ([a, b, c], [a, c, b], [c, b, a], [b, a, c]):
        (flag,) = feed(det, order)
        assert flag.evidence == ("a", "b", "c") and flag.details["centre"] == "b"
    # three copies straddling the end of a week: each week holds a qualifying centre
    text = unit(rng)
    straddle = [
        review("s0", T0 + WEEK - 3600, "m0", emb=text),
        review("s1", T0 + WEEK + 3600, "m1", emb=near(rng, text)),
        review("s2", T0 + WEEK + 7200, "m2", emb=near(rng, text)),
    ]
    starts = {f.window_start for f in feed(det, straddle)}
    assert starts == {T0, T0 + WEEK}
    assert {f.window_start for f in feed(det, straddle[::-1])} == starts


# --- arrival order, round trips, bounds ----------------------------------------------------


def _campaign(seed: int) -> list[ProductReview]:
    """Three products over five weeks: ordinary reviews, a bombing day and copy rings."""
    rng = np.random.default_rng(seed)
    out: list[ProductReview] = []
    n = 0
    for p in ("p1", "p2", "p3"):
        for d in range(35):
            for _ in range(int(rng.integers(0, 4))):
                t = T0 + d * DAY_S + float(rng.uniform(0, DAY_S))
                rating = int(rng.choice([1, 3, 4, 5, 5]))
                out.append(review(f"n{n}", t, rating=rating, emb=unit(rng), product=p))
                n += 1
    for i in range(12):  # p1 is bombed on day 30
        t = T0 + 30 * DAY_S + 1800.0 * i
        out.append(review(f"bomb{i}", t, f"bomber{i}", rating=1, product="p1"))
    for p, day, size in (("p2", 10, 4), ("p3", 13.9, 3), ("p3", 20, 2)):  # copy rings
        text = unit(rng)
        for i in range(size):
            t = T0 + day * DAY_S + 5400.0 * i
            out.append(review(f"copy-{p}-{day}-{i}", t, f"ring{i}", emb=near(rng, text), product=p))
    return sorted(out, key=lambda r: r.t)


def test_flags_do_not_depend_on_arrival_order(det: ProductDetectors) -> None:
    reviews = _campaign(seed=6)
    expected = feed(det, reviews)
    assert {c.kind for c in expected} == {"review_bombing", "review_duplicate"}
    p3_weeks = {c.window_start for c in expected if c.subject_id == "p3"}
    assert p3_weeks == {T0 + WEEK, T0 + 2 * WEEK}  # the ring on day 13.9 straddles two weeks
    for seed in range(4):
        shuffled = with_lateness(reviews, seed, max_s=6 * 3600.0)
        assert [r.t for r in shuffled] != [r.t for r in reviews]
        assert ids(feed(det, shuffled)) == ids(expected)


def test_round_trip_after_every_review_gives_identical_candidates(det: ProductDetectors) -> None:
    reviews = with_lateness(_campaign(seed=7), seed=1, max_s=3600.0)
    live: dict[str, ProductAnomalyState] = {}
    stored: dict[str, bytes] = {}
    a: list[Candidate] = []
    b: list[Candidate] = []
    for r in reviews:
        a += det.on_review(live.setdefault(r.product_id, ProductAnomalyState()), r)
        raw = stored.get(r.product_id)
        state = ProductAnomalyState.from_dict(orjson.loads(raw)) if raw else ProductAnomalyState()
        b += det.on_review(state, r)
        stored[r.product_id] = orjson.dumps(state.to_dict())
    assert a and a == b
    for p, state in live.items():
        assert orjson.dumps(state.to_dict()) == stored[p]


def test_quantize_is_unit_float16() -> None:
    rng = np.random.default_rng(8)
    q = quantize(3.0 * unit(rng))
    assert q is not None and q.dtype == np.dtype("<f2")
    assert float(np.linalg.norm(q.astype(np.float64))) == pytest.approx(1.0, abs=1e-3)
    assert quantize(np.zeros(4)) is None and quantize(np.array([np.nan, 1.0])) is None


def test_state_stays_bounded(det: ProductDetectors) -> None:
    rng = np.random.default_rng(9)
    state = ProductAnomalyState()
    for i in range(1500):
        det.on_review(state, review(f"r{i}", T0 + 60.0 * i, emb=unit(rng), rating=1 + i % 5))
    assert len(state.recent) <= 200 and len(state.seen) == SEEN_KEPT
    assert len(state.counts) <= 29 and all(len(v) <= 50 for v in state.low_ids.values())


def test_late_and_disabled(det: ProductDetectors) -> None:
    state = ProductAnomalyState()
    det.on_review(state, review("now", T0 + 60 * DAY_S))
    ancient = review("ancient", T0, rating=1, emb=unit(np.random.default_rng(0)))
    assert det.on_review(state, ancient) == []  # too late for both detectors
    assert list(state.counts) == [19_677 + 60] and state.recent == []
    off = ProductDetectors(
        AnomalySettings(
            review_bombing=ReviewBombingSettings(enabled=False),
            review_duplicate=ReviewDuplicateSettings(enabled=False),
        )
    )
    lows = [review(f"low{i}", T0 + 60.0 * i, rating=1) for i in range(20)]
    assert feed(off, lows) == []
    assert feed(ProductDetectors(AnomalySettings(enabled=False)), lows) == []


# --- evidence from purchases: rings and spread bombing by reviewers who never bought ---------


def unbought(r: ProductReview) -> ProductReview:
    return ProductReview(
        r.event_id, r.member_id, r.product_id, r.t, r.rating, r.text_chars, r.embedding, False
    )


def test_bombing_spread_over_days_by_non_buyers_flags_once() -> None:
    det = ProductDetectors(AnomalySettings())
    hours = [20, 31, 44, 52, 67, 80, 90]  # 7 one-star reviews over 3 days, across midnights
    bombers = [unbought(review(f"b{i}", T0 + h * 3600, rating=1)) for i, h in enumerate(hours)]
    state = ProductAnomalyState()
    flags = [(i, c) for i, r in enumerate(bombers) for c in det.on_review(state, r)]
    # the 6th non-buyer: 0.3^5 = 0.0024 is not improbable enough, 0.3^6 = 0.00073 is
    assert [(i, c.kind) for i, c in flags] == [(5, "review_bombing")]
    ((_, flag),) = flags
    assert flag.details["signal"] == "unverified_low_spread"
    assert flag.evidence == ("b0", "b1", "b2", "b3", "b4", "b5")
    assert flag.window_start == T0  # the day of the first such review: its id is stable
    # a replay through a fresh state, or through the stored state, gives the same flag id
    again = ProductAnomalyState()
    replayed = [c for r in bombers for c in det.on_review(again, r)]
    assert len(ids([flag, *replayed])) == 1
    half = ProductAnomalyState()
    for r in bombers[:3]:
        det.on_review(half, r)
    half = ProductAnomalyState.from_dict(orjson.loads(orjson.dumps(half.to_dict())))
    assert [c.evidence for r in bombers[3:] for c in det.on_review(half, r)] == [flag.evidence]


def test_a_defective_launch_reviewed_by_its_buyers_is_not_bombing() -> None:
    det = ProductDetectors(AnomalySettings())
    buyers = [review(f"d{i}", T0 + i * 5 * 3600, rating=1 + i % 2) for i in range(14)]
    assert feed(det, buyers) == []


def test_a_paraphrasing_ring_of_non_buyers_is_found_friends_who_bought_are_not() -> None:
    rng = np.random.default_rng(7)
    det = ProductDetectors(AnomalySettings())
    base = unit(rng)
    texts = [near(rng, base, 0.9) for _ in range(4)]  # paraphrases: cosine ~0.81 apart
    ring = [unbought(review(f"r{i}", T0 + i * 3600, emb=v)) for i, v in enumerate(texts)]
    flags = feed(det, ring)
    assert [f.kind for f in flags] == ["review_duplicate"]
    assert flags[0].score >= 3
    friends = [review(f"f{i}", T0 + i * 3600, emb=v) for i, v in enumerate(texts)]
    assert feed(det, friends) == []
    low = [unbought(review(f"l{i}", T0 + i * 3600, rating=2, emb=v)) for i, v in enumerate(texts)]
    assert feed(det, low) == []  # not promotional: held to the copy threshold


def test_non_buyers_low_ratings_flag_only_when_improbable_for_the_product() -> None:
    """The spread signal weighs the window's low ratings against the product's own share
    of low ratings among non-buyers (prior 0.3 worth 10 reviews, alpha 0.001)."""
    det = ProductDetectors(AnomalySettings())
    # An episode: one-star reviews from non-buyers every 5 hours, one 4-star among them.
    t1 = T0 + 40 * 86_400
    episode = [unbought(review(f"e{i}", t1 + i * 5 * 3600, rating=1)) for i in range(8)]
    episode.insert(1, unbought(review("e-ok", t1 + 3 * 3600, rating=4)))
    # On a product without history, by hand: 7 low of 8 has P(X >= 7 | 8, 0.3) = 0.00129
    # (no flag), 8 low of 9 has P(X >= 8 | 9, 0.3) = 0.000433 (flag).
    fresh = ProductAnomalyState()
    flags = [(r.event_id, c) for r in episode for c in det.on_review(fresh, r)]
    assert [(eid, c.kind) for eid, c in flags] == [("e7", "review_bombing")]
    flag = flags[0][1]
    assert flag.details["p_value"] == pytest.approx(0.000433026, rel=1e-3)
    assert flag.details["baseline_low_share"] == pytest.approx(0.3)
    assert fresh.unverified_past == []  # the episode's reviews never join the baseline
    # A product whose non-buyers have been half negative for weeks (imported or
    # off-platform reviews, one every 6 hours): no window of them is improbable, and
    # the same episode is not either (P(X >= 8 | 9, ~0.5) is about 0.02).
    mixed = [
        unbought(review(f"m{i}", T0 + i * 6 * 3600, rating=1 if i % 2 else 5)) for i in range(120)
    ]
    state = ProductAnomalyState()
    assert [c for r in mixed for c in det.on_review(state, r)] == []
    n, low, _ = state.unverified_past
    assert 0.45 < low / n < 0.55
    stored = ProductAnomalyState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert stored.unverified_past == state.unverified_past
    assert [c for r in episode for c in det.on_review(state, r)] == []
    # The fresh episode through a state stored and read back half-way: the same flag.
    again = ProductAnomalyState()
    for r in episode[:4]:
        det.on_review(again, r)
    again = ProductAnomalyState.from_dict(orjson.loads(orjson.dumps(again.to_dict())))
    assert again.unverified_other == [episode[1].t]
    (replayed,) = [c for r in episode[4:] for c in det.on_review(again, r)]
    assert (replayed.evidence, replayed.window_start) == (flag.evidence, flag.window_start)
    assert replayed.details == flag.details


def test_a_ring_at_paraphrase_distance_is_found_looser_praise_is_not() -> None:
    """promo_similarity 0.7 (bench/results/paraphrase_rings.md): three non-buyers' top
    ratings pairwise above it form a ring; pairwise around 0.55 they do not."""
    rng = np.random.default_rng(11)
    det = ProductDetectors(AnomalySettings())
    base = unit(rng)
    close = [near(rng, base, 0.87) for _ in range(3)]
    loose = [near(rng, base, 0.74) for _ in range(3)]
    pair = [float(a @ b) for i, a in enumerate(close) for b in close[i + 1 :]]
    assert min(pair) >= 0.7
    assert max(float(a @ b) for i, a in enumerate(loose) for b in loose[i + 1 :]) < 0.7
    ring = [unbought(review(f"c{i}", T0 + i * 3600, emb=v)) for i, v in enumerate(close)]
    assert [f.kind for f in feed(det, ring)] == ["review_duplicate"]
    praise = [unbought(review(f"p{i}", T0 + i * 3600, emb=v)) for i, v in enumerate(loose)]
    assert feed(ProductDetectors(AnomalySettings()), praise) == []
