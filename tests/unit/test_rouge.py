"""ROUGE on known pairs, and the packaged review-summary reference set."""

from __future__ import annotations

import doctest
import json
from pathlib import Path
from statistics import mean

import pytest

from memberstream.domain.summaries import rouge as rouge_module
from memberstream.domain.summaries.rouge import (
    METRICS,
    Score,
    is_cjk_text,
    rouge_all,
    rouge_l,
    rouge_n,
    tokens,
)
from memberstream.ml.training import reference_set as reference_set_module
from memberstream.ml.training.reference_set import (
    ReferenceProduct,
    ReferenceSetError,
    load_reference_set,
)


def assert_score(score: Score, precision: float, recall: float, f1: float) -> None:
    assert score.precision == pytest.approx(precision)
    assert score.recall == pytest.approx(recall)
    assert score.f1 == pytest.approx(f1)


# --- tokens -------------------------------------------------------------------------------


def test_english_tokens_are_lowercased_words_without_stemming() -> None:
    assert tokens("The batteries LAST 8-hours; it's great!") == [
        "the",
        "batteries",
        "last",
        "8",
        "hours",
        "it",
        "s",
        "great",
    ]
    assert tokens("snake_case, e-mail") == ["snake", "case", "e", "mail"]
    assert tokens("   ...  ") == []


def test_chinese_tokens_are_characters_plus_latin_words_and_digit_runs() -> None:
    assert tokens("续航30小时，支持USB-C快充。") == [
        "续",
        "航",
        "30",
        "小",
        "时",
        "支",
        "持",
        "usb",
        "c",
        "快",
        "充",
    ]


def test_language_argument_forces_the_rule() -> None:
    assert tokens("good", language="zh") == ["good"]
    assert tokens("好用 good", language="en") == ["好用", "good"]
    assert tokens("好用", language="zh-CN") == ["好", "用"]
    assert is_cjk_text("价格 ok") and not is_cjk_text("price ok")


# --- ROUGE on known pairs -----------------------------------------------------------------


def test_identical_texts_score_one() -> None:
    text = "Great sound, but the case is bulky."
    for score in (rouge_n(text, text, 1), rouge_n(text, text, 2), rouge_l(text, text)):
        assert_score(score, 1.0, 1.0, 1.0)
    assert all(s.f1 == 1.0 for s in rouge_all(text, [text]).values())


def test_disjoint_and_empty_texts_score_zero() -> None:
    assert_score(rouge_n("fast delivery", "terrible smell", 1), 0.0, 0.0, 0.0)
    assert_score(rouge_l("fast delivery", "terrible smell"), 0.0, 0.0, 0.0)
    assert_score(rouge_n("", "terrible smell", 1), 0.0, 0.0, 0.0)
    assert_score(rouge_n("word", "word", 2), 0.0, 0.0, 0.0)  # no bigrams at all
    with pytest.raises(ValueError):
        rouge_n("a", "a", 0)


def test_hand_computed_english_pair_1() -> None:
    # The numbers rouge-score (use_stemmer=False) gives, worked out by hand:
    # candidate (7 tokens): the cat was found under the bed
    # reference (6 tokens): the cat was under the bed
    cand, ref = "the cat was found under the bed", "the cat was under the bed"
    # unigram overlap 6 (the x2, cat, was, under, bed): P 6/7, R 6/6, F 12/13
    assert_score(rouge_n(cand, ref, 1), 6 / 7, 1.0, 12 / 13)
    # bigrams 6 vs 5, overlap 4 (the cat, cat was, under the, the bed): F 8/11
    assert_score(rouge_n(cand, ref, 2), 4 / 6, 4 / 5, 8 / 11)
    # LCS "the cat was under the bed" = 6
    assert_score(rouge_l(cand, ref), 6 / 7, 1.0, 12 / 13)


def test_hand_computed_english_pair_2_with_case_and_punctuation() -> None:
    cand = "Battery lasts 8 hours, but the case feels cheap."
    ref = "Great battery: 8 hours per charge. The case is cheap."
    # cand 9 tokens, ref 10; overlap battery, 8, hours, the, case, cheap = 6: F 12/19
    assert_score(rouge_n(cand, ref, 1), 6 / 9, 6 / 10, 12 / 19)
    # bigrams 8 vs 9, overlap "8 hours", "the case" = 2: F 4/17
    assert_score(rouge_n(cand, ref, 2), 2 / 8, 2 / 9, 4 / 17)
    # LCS battery 8 hours the case cheap = 6
    assert_score(rouge_l(cand, ref), 6 / 9, 6 / 10, 12 / 19)
    assert rouge_all(cand, [ref])["rouge2"].f1 == pytest.approx(0.235294, abs=1e-6)


def test_rouge_n_clips_repeated_ngrams() -> None:
    # "the" x4 in the candidate matches only the reference's two "the"s.
    assert_score(rouge_n("the the the the", "the cat the mat", 1), 2 / 4, 2 / 4, 0.5)


def test_rouge_l_uses_subsequence_not_substring() -> None:
    # LCS of "a b c d e" and "a x c y e" is "a c e".
    assert_score(rouge_l("a b c d e", "a x c y e"), 3 / 5, 3 / 5, 3 / 5)
    # Word order matters for L but not for ROUGE-1.
    assert rouge_n("pan good", "good pan", 1).f1 == 1.0
    assert rouge_l("pan good", "good pan").f1 == pytest.approx(0.5)


def test_chinese_pair_by_characters() -> None:
    cand, ref = "电池续航很好", "电池续航一般"
    # 6 characters each, 4 shared (电池续航)
    assert_score(rouge_n(cand, ref, 1), 4 / 6, 4 / 6, 4 / 6)
    # bigrams 电池 池续 续航 shared, 5 each
    assert_score(rouge_n(cand, ref, 2), 3 / 5, 3 / 5, 3 / 5)
    assert_score(rouge_l(cand, ref), 4 / 6, 4 / 6, 4 / 6)
    # Punctuation does not count; mixed text tokenizes both sides by character.
    assert rouge_n("电池，续航。", "电池续航", 1).f1 == 1.0
    assert rouge_n("USB充电", "usb 充电 慢", 1).recall == pytest.approx(3 / 4)


def test_multiple_references_take_the_best_per_metric() -> None:
    cand = "good pan, sticks a bit"
    refs = ["the pan is good", "good pan but it sticks"]
    scores = rouge_all(cand, refs)
    assert list(scores) == list(METRICS)
    assert scores["rouge1"] == rouge_n(cand, refs[1], 1)
    assert scores["rouge1"].f1 == pytest.approx(0.6)
    assert scores["rouge2"] == rouge_n(cand, refs[1], 2)
    # Each metric picks its own best reference.
    split = rouge_all("a b c d", ["a b x x x x x x", "d c b a"])
    assert split["rouge2"] == rouge_n("a b c d", "a b x x x x x x", 2)
    assert split["rouge1"] == rouge_n("a b c d", "d c b a", 1)
    # Adding a worse reference never lowers the score.
    assert rouge_all(cand, [*refs, "unrelated words"]) == scores
    with pytest.raises(ValueError):
        rouge_all(cand, [])
    with pytest.raises(TypeError):
        rouge_all(cand, "a single string")  # type: ignore[arg-type]


@pytest.mark.parametrize("module", [rouge_module, reference_set_module])
def test_module_doctests(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0


# --- the packaged reference set -----------------------------------------------------------


@pytest.fixture(scope="module")
def products() -> list[ReferenceProduct]:
    return load_reference_set()


def test_reference_set_size_and_ids(products: list[ReferenceProduct]) -> None:
    assert len(products) == 24
    assert sum(p.language == "en" for p in products) == 14
    assert sum(p.language == "zh" for p in products) == 10
    ids = [p.product_id for p in products]
    assert len(set(ids)) == len(ids)
    review_ids = [r.review_id for p in products for r in p.reviews]
    assert len(set(review_ids)) == len(review_ids)
    for p in products:
        assert p.product_id.startswith(f"ref-{p.language}-")
        assert all(r.review_id.startswith(f"{p.product_id}-r") for r in p.reviews)


def test_reference_set_products_are_well_formed(products: list[ReferenceProduct]) -> None:
    for p in products:
        assert 8 <= len(p.reviews) <= 14, p.product_id
        assert len(p.references) == 2, p.product_id
        assert all(1 <= r.rating <= 5 for r in p.reviews)
        assert p.title.strip() and all(r.text.strip() for r in p.reviews)
        assert len(p.review_texts) == len(p.reviews)
        if p.language == "zh":
            assert is_cjk_text(p.title)
            assert all(is_cjk_text(text) for text in [*p.review_texts, *p.references])
            assert all(40 <= len(tokens(ref, "zh")) <= 100 for ref in p.references)
        else:
            assert not any(is_cjk_text(text) for text in [*p.review_texts, *p.references])
            assert all(30 <= len(ref.split()) <= 70 for ref in p.references)


def test_reference_set_ratings_are_j_shaped(products: list[ReferenceProduct]) -> None:
    ratings = [r.rating for p in products for r in p.reviews]
    share = {star: ratings.count(star) / len(ratings) for star in range(1, 6)}
    assert share[5] > share[4] > share[3]
    assert share[1] > 0 and share[2] > 0
    assert share[1] + share[2] + share[3] < 0.35


def test_references_agree_with_each_other(products: list[ReferenceProduct]) -> None:
    """Sanity baseline: the two independent references overlap (ROUGE-1 F1 > 0.15).

    Observed means (reference A against B): English ROUGE-1/2/L F1 0.322 / 0.055 /
    0.210, Chinese 0.310 / 0.096 / 0.228. This is the human ceiling reported next to
    the summarizer's scores.
    """
    by_language: dict[str, list[dict[str, Score]]] = {"en": [], "zh": []}
    for p in products:
        scores = rouge_all(p.references[0], [p.references[1]])
        assert scores["rouge1"].f1 > 0.15, p.product_id
        by_language[p.language].append(scores)
    for rows in by_language.values():
        assert 0.2 < mean(s["rouge1"].f1 for s in rows) < 0.6


def test_load_reference_set_from_path(tmp_path: Path, products: list[ReferenceProduct]) -> None:
    path = tmp_path / "refs.jsonl"
    lines = [
        json.dumps(
            {
                "product_id": p.product_id,
                "language": p.language,
                "title": p.title,
                "reviews": [
                    {"review_id": r.review_id, "rating": r.rating, "text": r.text}
                    for r in p.reviews
                ],
                "references": list(p.references),
            },
            ensure_ascii=False,
        )
        for p in products[:2]
    ]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    assert load_reference_set(path) == products[:2]


def _line(**overrides: object) -> str:
    obj: dict[str, object] = {
        "product_id": "p1",
        "language": "en",
        "title": "Thing",
        "reviews": [{"review_id": "p1-r01", "rating": 5, "text": "Good."}],
        "references": ["Good thing."],
    }
    obj.update(overrides)
    return json.dumps(obj)


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ("{not json", "line 2: not valid JSON"),
        (_line(product_id="p2", language="fr"), "line 2: language"),
        (
            _line(product_id="p2", reviews=[{"review_id": "x", "rating": 6, "text": "t"}]),
            "line 2: reviews[0].rating",
        ),
        (
            _line(product_id="p2", reviews=[{"review_id": "x", "rating": True, "text": "t"}]),
            "line 2: reviews[0].rating",
        ),
        (_line(product_id="p2", references=[]), "line 2: references"),
        (_line(product_id="p2", references=[" "]), "line 2: references[0]"),
        (_line(product_id="p2", extra=1), "line 2: the product has unknown keys ['extra']"),
        ('{"product_id": "p2"}', "line 2: the product is missing"),
        (_line(), "line 2: product_id 'p1' already used on line 1"),
        (_line(product_id="p2"), "line 2: review_id 'p1-r01' already used on line 1"),
        ("[1, 2]", "line 2: the product must be a JSON object"),
    ],
)
def test_bad_lines_are_named(tmp_path: Path, second_line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(_line() + "\n" + second_line + "\n", encoding="utf-8")
    with pytest.raises(ReferenceSetError, match="line") as info:
        load_reference_set(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ReferenceSetError, match="no such file"):
        load_reference_set(tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ReferenceSetError, match="no products"):
        load_reference_set(empty)
