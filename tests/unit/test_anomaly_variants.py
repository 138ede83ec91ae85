"""The breakdown by variant (recall of incident variants, flagged share of hard-negative
ones, rolled up by a part of the variant) and precision split by a flag detail, on
hand-made labels and flags; and the bench's report of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from bench.anomalies import _breakdown_rows, breakdown
from memberstream.domain.anomaly.evaluation import by_variant, precision_by_detail

KIND = "rating_text_mismatch"


@dataclass(frozen=True)
class Lab:
    incident_id: str
    scenario: str
    kinds: frozenset[str]
    event_ids: tuple[str, ...]
    variant: str = ""


LABELS = [
    Lab("i1", "rating_mismatch", frozenset({KIND}), ("e1",), "obvious/en/top"),
    Lab("i2", "rating_mismatch", frozenset({KIND}), ("e2",), "understated/en/top"),
    Lab("i3", "rating_mismatch", frozenset({KIND}), ("e3",), "understated/zh/low"),
    Lab("i4", "rating_mismatch", frozenset({KIND}), ("e4",), "understated/zh/top"),
    Lab("h1", "hn_honest_mixed_reviews", frozenset(), ("e5",), "mixed_top/zh/5"),
    Lab("h2", "hn_honest_mixed_reviews", frozenset(), ("e6",), "mixed_top/zh/5"),
    Lab("b1", "review_bombing", frozenset({"review_bombing"}), ("e7", "e8")),  # no variant
]


def flag(kind: str, *evidence: str, language: str | None = None) -> dict[str, Any]:
    details = {} if language is None else {"language": language}
    return {"kind": kind, "evidence": list(evidence), "details": details}


FLAGS = [
    flag(KIND, "e1", language="en"),
    flag(KIND, "e3", language="zh"),
    flag(KIND, "e5", language="zh"),  # an honest review: a false alert
    flag(KIND, "bg1", language="en"),  # background: a false alert
    flag("review_bombing", "e2", "e7"),  # another kind on a mismatch: does not find it
]


def test_recall_per_variant_and_flagged_share_of_hard_negatives() -> None:
    got = {(v.scenario, v.variant): (v.cases, v.hits) for v in by_variant(FLAGS, LABELS)}
    assert got == {
        ("hn_honest_mixed_reviews", "mixed_top/zh/5"): (2, 1),
        ("rating_mismatch", "obvious/en/top"): (1, 1),
        ("rating_mismatch", "understated/en/top"): (1, 0),
        ("rating_mismatch", "understated/zh/low"): (1, 1),
        ("rating_mismatch", "understated/zh/top"): (1, 0),
    }
    (hn, *_) = by_variant(FLAGS, LABELS)
    assert hn.hard_negative and hn.share == 0.5 and hn.share_ci is not None


def test_variants_roll_up_on_one_part() -> None:
    tone = {v.variant: (v.cases, v.hits) for v in by_variant(FLAGS, LABELS, part=0)}
    assert tone == {"mixed_top": (2, 1), "obvious": (1, 1), "understated": (3, 1)}
    language = {(v.scenario, v.variant): v.share for v in by_variant(FLAGS, LABELS, part=1)}
    assert language == {
        ("hn_honest_mixed_reviews", "zh"): 0.5,
        ("rating_mismatch", "en"): 0.5,
        ("rating_mismatch", "zh"): 0.5,
    }


def test_precision_splits_by_a_detail_of_the_flags() -> None:
    groups = {g.value: g for g in precision_by_detail(FLAGS, LABELS, KIND, "language")}
    assert {v: (g.true_positives, g.flags) for v, g in groups.items()} == {
        "en": (1, 2),
        "zh": (1, 2),
    }
    assert groups["en"].precision == 0.5
    bombing = precision_by_detail(FLAGS, LABELS, "review_bombing", "language")
    assert [(g.value, g.true_positives, g.flags) for g in bombing] == [("-", 1, 1)]


def test_the_bench_reports_the_breakdown() -> None:
    result = breakdown(FLAGS, LABELS)  # type: ignore[arg-type]
    assert [v["variant"] for v in result["by_part"]["tone"]] == [
        "mixed_top",
        "obvious",
        "understated",
    ]
    groups = result["precision_by"][KIND]["groups"]
    assert [(g["value"], g["precision"]) for g in groups] == [("en", 0.5), ("zh", 0.5)]
    lines = _breakdown_rows(["a"], {"a": {"breakdown": result}})
    assert "| a | rating_mismatch | understated/zh/top | 1 | 0 | 0.000 [0.00, 0.79] |" in lines
    assert any(
        line.startswith("Family a: rating_text_mismatch precision by language") for line in lines
    )
    plain = _breakdown_rows(["b"], {"b": {"breakdown": breakdown(FLAGS, LABELS[-1:])}})
    assert not any(line.startswith("| b |") for line in plain)  # no variants: no table
    assert plain[-1].startswith("Family b: rating_text_mismatch precision by language: en")
    assert _breakdown_rows(["b"], {"b": {"breakdown": breakdown([], LABELS[-1:])}}) == []


@pytest.mark.parametrize("part", [0, 1, 5])
def test_labels_without_a_variant_are_left_out(part: int) -> None:
    assert by_variant(FLAGS, LABELS[-1:], part) == []
