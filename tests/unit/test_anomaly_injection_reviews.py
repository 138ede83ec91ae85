"""Family a's one-review scenarios: ``rating_mismatch`` (stars against the text, obvious
or understated, English or Chinese) and the hard negative ``hn_honest_mixed_reviews``
(mixed texts that agree with their stars), labeled with their variant."""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from memberstream.datasets import SyntheticWorkload, WorkloadConfig
from memberstream.datasets.anomalies import (
    EXPECTED_KINDS,
    HARD_SCENARIOS,
    SUBJECTS,
    AnomalyLabel,
    InjectionConfig,
    anomalous_workload,
    read_labels,
    write_labels,
)
from memberstream.datasets.anomaly_texts import (
    _HONEST,
    _MISMATCH,
    HONEST_KINDS,
    MISMATCH_TONES,
    honest_mixed_review,
    mismatch_review,
)
from memberstream.schemas.events import ReviewEvent

SMALL = WorkloadConfig(members=300, products=300, days=20)
RATE = 6.0  # cases per day and scenario: about 120 of each over SMALL's 20 days
SCENARIOS = ("rating_mismatch", "hn_honest_mixed_reviews")
CJK = re.compile(r"[\u4e00-\u9fff]")
VARIANT = re.compile(r"(obvious|understated)/(en|zh)/(top|low)")
HONEST_VARIANT = re.compile(r"(mixed_top|small_complaint|faint_praise)/(en|zh)/([1-5])")


@dataclass
class Run:
    events: list[ReviewEvent]
    labels: list[AnomalyLabel]
    members_before: dict[str, set[str]]

    def review(self, label: AnomalyLabel) -> ReviewEvent:
        (event_id,) = label.event_ids
        return next(e for e in self.events if e.event_id == event_id)

    def of(self, scenario: str) -> list[AnomalyLabel]:
        return [lb for lb in self.labels if lb.scenario == scenario]


def _run(seed: int = 11) -> Run:
    config = InjectionConfig(seed=seed, incidents_per_day=RATE, scenarios=SCENARIOS)
    workload, injector = anomalous_workload(SMALL, config)
    events = list(workload.events())
    labels = list(injector.labels)
    seen: set[str] = set()
    before: dict[str, set[str]] = {}
    starts = {lb.event_ids[0]: lb.incident_id for lb in labels}
    for event in events:
        if event.event_id in starts:
            before[starts[event.event_id]] = set(seen)
        seen.add(event.member_id)
    reviews = [e for e in events if isinstance(e, ReviewEvent)]
    return Run(reviews, labels, before)


@pytest.fixture(scope="module")
def run() -> Run:
    return _run()


def test_the_scenarios_are_enabled_by_name_and_labeled_as_declared(run: Run) -> None:
    assert set(SCENARIOS) <= set(HARD_SCENARIOS)
    assert EXPECTED_KINDS["rating_mismatch"] == frozenset({"rating_text_mismatch"})
    assert EXPECTED_KINDS["hn_honest_mixed_reviews"] == frozenset()
    assert SUBJECTS["rating_mismatch"] == SUBJECTS["hn_honest_mixed_reviews"] == "member"
    counts = Counter(lb.scenario for lb in run.labels)
    assert set(counts) == set(SCENARIOS)
    for scenario in SCENARIOS:
        assert 0.7 * RATE * SMALL.days <= counts[scenario] <= 1.3 * RATE * SMALL.days
    for label in run.labels:
        review = run.review(label)
        assert label.kinds == EXPECTED_KINDS[label.scenario] and label.subject == "member"
        assert label.member_ids == (review.member_id,) and label.product_id is None
        assert label.start == label.end == review.occurred_at
        assert review.member_id in run.members_before[label.incident_id]  # existing member


def test_mismatches_put_top_stars_over_complaints_and_one_star_over_praise(run: Run) -> None:
    variants: Counter[tuple[str, str, str]] = Counter()
    for label in run.of("rating_mismatch"):
        match = VARIANT.fullmatch(label.variant)
        assert match, label.variant
        tone, lang, side = match.groups()
        review = run.review(label)
        assert review.rating == (5 if side == "top" else 1)
        assert review.language == lang
        assert bool(CJK.search(review.text)) == (lang == "zh")
        sentiment = "negative" if side == "top" else "positive"
        _, sentences, _ = _MISMATCH[(tone, sentiment)][lang]
        assert any(_opens_with(review.text, s) for s in sentences), review.text
        variants[(tone, lang, side)] += 1
    n = variants.total()
    tones = Counter(t for t, _, _ in variants.elements())
    langs = Counter(lang for _, lang, _ in variants.elements())
    tops = sum(c for (_, _, side), c in variants.items() if side == "top")
    assert 0.35 <= tones["understated"] / n <= 0.65 and 0.35 <= langs["zh"] / n <= 0.65
    assert 0.55 <= tops / n <= 0.85
    assert len(variants) == 8  # every tone, language and side


def test_honest_mixed_reviews_agree_with_their_stars(run: Run) -> None:
    stars: Counter[tuple[str, int]] = Counter()
    for label in run.of("hn_honest_mixed_reviews"):
        match = HONEST_VARIANT.fullmatch(label.variant)
        assert match, label.variant
        kind, lang, rating = match.group(1), match.group(2), int(match.group(3))
        review = run.review(label)
        assert review.rating == rating and review.language == lang
        assert rating in {"mixed_top": {5}, "small_complaint": {4}, "faint_praise": {1, 2}}[kind]
        _, sentences, _ = _HONEST[kind][lang]
        assert any(_opens_with(review.text, s) for s in sentences), review.text
        stars[(kind, rating)] += 1
    n = stars.total()
    assert 0.3 <= stars[("mixed_top", 5)] / n <= 0.6
    assert 0.1 <= stars[("small_complaint", 4)] / n <= 0.3
    assert stars[("faint_praise", 1)] > stars[("faint_praise", 2)] > 0


def _opens_with(text: str, template: str) -> bool:
    """``text`` starts with ``template`` once its placeholders are filled in."""
    pattern = re.escape(template)
    for name in ("noun", "days", "n", "weeks", "who"):
        pattern = pattern.replace(re.escape("{" + name + "}"), ".+?")
    return re.match(pattern, text) is not None


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_text_fills_its_placeholders(lang: str) -> None:
    rng = random.Random(3)
    for _ in range(300):
        tone, sentiment = rng.choice(MISMATCH_TONES), rng.choice(("negative", "positive"))
        title, text = mismatch_review(rng, tone, sentiment, lang, "kettle")
        assert text and "{" not in text and "}" not in text and "{" not in title
        title, text = honest_mixed_review(rng, rng.choice(HONEST_KINDS), lang, "kettle")
        assert text and "{" not in text and "}" not in text


def test_understated_texts_hold_none_of_the_obvious_words() -> None:
    loud = re.compile(r"terrible|garbage|junk|awful|horrible|scam|worst|waste|disaster", re.I)
    _, sentences, closings = _MISMATCH[("understated", "negative")]["en"]
    assert not [s for s in (*sentences, *closings) if loud.search(s)]
    _, sentences, _ = _MISMATCH[("obvious", "negative")]["en"]
    assert all(loud.search(s) or "broken" in s.lower() or "fake" in s.lower() for s in sentences)


def test_same_seed_same_cases_and_the_variant_round_trips(run: Run, tmp_path: Path) -> None:
    again = _run()
    assert again.labels == run.labels and again.events == run.events
    assert _run(seed=12).labels != run.labels
    path = tmp_path / "labels.jsonl"
    write_labels(path, run.labels)
    assert read_labels(path) == run.labels
    assert all(lb.to_dict()["variant"] == lb.variant for lb in run.labels)
    plain = AnomalyLabel.from_dict(
        {k: v for k, v in run.labels[0].to_dict().items() if k != "variant"}
    )
    assert plain.variant == "" and "variant" not in plain.to_dict()


def test_normal_traffic_is_untouched() -> None:
    workload, _ = anomalous_workload(
        SMALL, InjectionConfig(incidents_per_day=RATE, scenarios=SCENARIOS)
    )
    normal = [e for e in workload.events() if not e.event_id.startswith("syn-11-x")]
    assert normal == list(SyntheticWorkload(SMALL).events())
