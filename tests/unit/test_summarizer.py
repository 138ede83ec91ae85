"""Review summaries: faithful citations, polarity, determinism, languages, the seq2seq plumbing."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from memberstream.domain.summaries.aspects import ASPECTS, GENERAL, is_cjk, split_sentences
from memberstream.domain.summaries.summarizer import (
    ExtractiveSummarizer,
    ReviewText,
    SummarizerSettings,
    Summary,
)

from .text_doubles import WordHashEncoder

POSITIVE = (
    "Excellent quality for the price.",
    "Works perfectly and arrived early.",
    "My whole family loves it.",
    "Great value, highly recommend this lamp.",
    "Fantastic build quality.",
)
NEGATIVE = (
    "Arrived broken and support was useless.",
    "Complete waste of money.",
    "Fell apart after two days.",
    "Returned it immediately, very poor quality.",
)
ZH_POSITIVE = ("质量很棒，物流也很快。", "性价比超高，家人都很喜欢。", "做工精细，非常满意。")
ZH_NEGATIVE = ("收到就是坏的，客服也不处理。", "完全是浪费钱。", "质量太差，已经退货。")


def _clear_cut() -> list[ReviewText]:
    reviews = []
    for i in range(8):
        body = " ".join(POSITIVE[j % len(POSITIVE)] for j in (i, i + 1))
        reviews.append(ReviewText(f"p{i:02d}", 5, f"Love it\n{body}", "en"))
    for i in range(4):
        body = " ".join(NEGATIVE[j % len(NEGATIVE)] for j in (i, i + 2))
        reviews.append(ReviewText(f"n{i:02d}", 1, f"Terrible\n{body}", None))
    return reviews


def _zh(n_pos: int = 4, n_neg: int = 2) -> list[ReviewText]:
    reviews = [
        ReviewText(
            f"z{i:02d}", 5, f"非常满意\n{ZH_POSITIVE[i % 3]}{ZH_POSITIVE[(i + 1) % 3]}", None
        )
        for i in range(n_pos)
    ]
    reviews += [
        ReviewText(f"y{i:02d}", 1, f"非常差\n{ZH_NEGATIVE[i % 3]}", "zh") for i in range(n_neg)
    ]
    return reviews


@pytest.fixture
def encoder() -> WordHashEncoder:
    return WordHashEncoder()


@pytest.fixture
def summarizer(encoder: WordHashEncoder) -> ExtractiveSummarizer:
    return ExtractiveSummarizer(encoder)


def _supported(summary: Summary, reviews: list[ReviewText], s: ExtractiveSummarizer) -> None:
    """Every point cites only given reviews, each containing the sentence or a near-duplicate."""
    by_id = {r.review_id: r for r in reviews}
    assert set(summary.review_ids) == set(by_id)
    assert list(summary.review_ids) == sorted(summary.review_ids)
    for point in summary.pros + summary.cons:
        assert point.review_ids, point
        assert list(point.review_ids) == sorted(point.review_ids)
        assert set(point.review_ids) <= set(by_id)
        verbatim = [rid for rid in point.review_ids if point.text in by_id[rid].text]
        assert verbatim, f"no cited review contains {point.text!r} verbatim"
        for rid in point.review_ids:
            review = by_id[rid]
            sentences = split_sentences(review.text, review.lang())
            emb = s.encoder.encode([point.text, *sentences])
            assert point.text in sentences or float(np.max(emb[1:] @ emb[0])) >= (
                s.settings.redundancy - 1e-6
            )


# --- sentences and aspects ------------------------------------------------------------------


def test_split_sentences_keeps_verbatim_sentences_and_drops_fragments() -> None:
    text = "Great\nIt is 4.5 inches wide. Love it!! Ok. Would buy again?"
    assert split_sentences(text, "en") == [
        "It is 4.5 inches wide.",
        "Love it!!",
        "Would buy again?",
    ]
    zh = "很好\n质量很棒，物流也很快。价格稍贵！好；不会再买了?"
    assert split_sentences(zh, "zh", min_chars_zh=3) == [
        "质量很棒，物流也很快。",
        "价格稍贵！",
        "不会再买了?",
    ]
    assert split_sentences("   \n ... \n", "en") == []


def test_aspects_are_bilingual_and_distinct() -> None:
    ids = [a.id for a in ASPECTS]
    assert len(set(ids)) == len(ids) and GENERAL not in ids
    for aspect in ASPECTS:
        en, zh = aspect.texts()
        assert not is_cjk(en) and is_cjk(zh)


def test_settings_forbid_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        SummarizerSettings(max_pro=2)  # type: ignore[call-arg]


# --- faithfulness and polarity -----------------------------------------------------------


def test_cites_only_given_reviews_that_support_each_point(
    summarizer: ExtractiveSummarizer,
) -> None:
    reviews = _clear_cut()
    summary = summarizer.summarize(reviews)
    assert summary.pros and summary.cons
    _supported(summary, reviews, summarizer)
    assert summary.sentiment == {"negative": 4, "neutral": 0, "positive": 8}
    assert summarizer.version == "extractive/v1+word-hash@test"


def test_pros_come_from_positive_reviews_and_cons_from_negative(
    summarizer: ExtractiveSummarizer,
) -> None:
    summary = summarizer.summarize(_clear_cut())
    for point in summary.pros:
        assert all(rid.startswith("p") for rid in point.review_ids)
        assert point.aspect in {a.id for a in ASPECTS} | {GENERAL}
    for point in summary.cons:
        assert all(rid.startswith("n") for rid in point.review_ids)
    assert summary.text.startswith("Based on 12 reviews (avg 3.7/5): reviewers praise ")
    assert "some mention" in summary.text


def test_near_duplicates_merge_into_one_point() -> None:
    enc = WordHashEncoder()
    a, b = "Excellent quality for the price.", "Excellent quality for the price overall."
    emb = enc.encode([a, b])
    cos = float(emb[0] @ emb[1])
    assert 0.5 < cos < 0.999
    s = ExtractiveSummarizer(enc, settings=SummarizerSettings(redundancy=cos - 1e-3))
    reviews = [
        ReviewText("r1", 5, a, "en"),
        ReviewText("r2", 5, b, "en"),
        ReviewText("r3", 5, "Completely unrelated sentence here.", "en"),
    ]
    summary = s.summarize(reviews)
    merged = [p for p in summary.pros if p.review_ids == ("r1", "r2")]
    assert len(merged) == 1 and merged[0].text in (a, b)
    assert not any(p.text in (a, b) and p is not merged[0] for p in summary.pros)
    _supported(summary, reviews, s)


def test_input_order_does_not_change_the_summary(summarizer: ExtractiveSummarizer) -> None:
    reviews = _clear_cut() + _zh(2, 1)
    expected = summarizer.summarize(reviews)
    for seed in range(3):
        shuffled = list(reviews)
        random.Random(seed).shuffle(shuffled)
        assert summarizer.summarize(shuffled) == expected


def test_one_encoder_call_per_summary_with_identical_sentences_once(
    encoder: WordHashEncoder, summarizer: ExtractiveSummarizer
) -> None:
    reviews = _clear_cut()
    before = len(encoder.calls)
    summarizer.summarize(reviews)
    assert len(encoder.calls) == before + 1
    call = encoder.calls[-1]
    assert len(call) == len(set(call))
    assert "Love it" in call


def test_duplicate_review_ids_are_rejected(summarizer: ExtractiveSummarizer) -> None:
    with pytest.raises(ValueError, match="duplicate review id 'a'"):
        summarizer.summarize([ReviewText("a", 5, "Nice lamp."), ReviewText("a", 1, "Bad lamp.")])


def test_sentiment_callable_can_override_ratings(encoder: WordHashEncoder) -> None:
    seen: list[tuple[int, ...]] = []

    def all_negative(emb: np.ndarray) -> np.ndarray:
        seen.append(emb.shape)
        return np.tile([0.9, 0.05, 0.05], (len(emb), 1))

    text_only = SummarizerSettings(text_weight=1.0)
    s = ExtractiveSummarizer(encoder, sentiment=all_negative, settings=text_only)
    reviews = _clear_cut()
    summary = s.summarize(reviews)
    assert seen and seen[0][0] > 0
    assert summary.pros == ()
    assert summary.cons
    assert summary.sentiment == {"negative": 12, "neutral": 0, "positive": 0}
    assert "reviewers criticise" in summary.text
    _supported(summary, reviews, s)
    # blended with the stars (the default), a text model cannot make 5-star praise a con
    blended = ExtractiveSummarizer(encoder, sentiment=all_negative).summarize(reviews)
    positive = {r.review_id for r in reviews if r.rating >= 4}
    assert not any(set(p.review_ids) & positive for p in blended.cons)


def test_bad_sentiment_output_is_a_clear_error(encoder: WordHashEncoder) -> None:
    s = ExtractiveSummarizer(encoder, sentiment=lambda emb: np.ones((len(emb), 2)))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        s.summarize(_clear_cut())


@pytest.mark.parametrize(("max_pros", "max_cons"), [(0, 0), (1, 2), (2, 1), (3, 3)])
def test_sizes_are_bounded(encoder: WordHashEncoder, max_pros: int, max_cons: int) -> None:
    s = ExtractiveSummarizer(
        encoder, settings=SummarizerSettings(max_pros=max_pros, max_cons=max_cons)
    )
    summary = s.summarize(_clear_cut())
    assert len(summary.pros) == max_pros and len(summary.cons) == max_cons
    aspects = [p.aspect for p in summary.pros]
    assert len(aspects) == len(set(aspects)) or len(summary.pros) > 1


def test_max_sentences_per_review(encoder: WordHashEncoder) -> None:
    s = ExtractiveSummarizer(encoder, settings=SummarizerSettings(max_sentences_per_review=1))
    summary = s.summarize(_clear_cut())
    for point in summary.pros + summary.cons:
        assert point.text in ("Love it", "Terrible")


# --- languages ---------------------------------------------------------------------------


def test_chinese_reviews_give_a_chinese_summary(summarizer: ExtractiveSummarizer) -> None:
    reviews = _zh()
    summary = summarizer.summarize(reviews)
    assert summary.language == "zh"
    assert summary.text.startswith("基于6条评价（平均3.7分）：好评集中在")
    assert "差评提到" in summary.text
    assert summary.pros and all(is_cjk(p.text) for p in summary.pros + summary.cons)
    _supported(summary, reviews, summarizer)


def test_mixed_reviews_follow_the_majority_language(summarizer: ExtractiveSummarizer) -> None:
    mostly_zh = [*_zh(4, 2), ReviewText("e1", 5, "Excellent quality for the price.", "en")]
    assert summarizer.summarize(mostly_zh).language == "zh"
    mostly_en = _clear_cut() + _zh(1, 0)
    summary = summarizer.summarize(mostly_en)
    assert summary.language == "en" and summary.text.startswith("Based on 13 reviews")


def test_empty_and_single_review(summarizer: ExtractiveSummarizer) -> None:
    empty = summarizer.summarize([])
    assert empty == Summary(
        "No reviews yet.", (), (), "en", (), {"negative": 0, "neutral": 0, "positive": 0}
    )
    one = summarizer.summarize([ReviewText("only", 4, "Good value\nReally good lamp overall.")])
    assert one.review_ids == ("only",) and one.cons == ()
    assert one.pros and all(p.review_ids == ("only",) for p in one.pros)
    assert one.text.startswith("Based on 1 review (avg 4.0/5): reviewers praise ")
    neutral = summarizer.summarize([ReviewText("mid", 3, "It's okay\nNothing special here.")])
    assert neutral.pros == () and neutral.cons == ()
    assert neutral.text == "Based on 1 review (avg 3.0/5): reviewers are mostly neutral."
    blank = summarizer.summarize([ReviewText("zh", 2, "。。", "zh")])
    assert blank.review_ids == ("zh",) and blank.sentiment["negative"] == 1


# --- the abstractive path ----------------------------------------------------------------


def test_abstractive_module_does_not_import_torch() -> None:
    code = (
        "import sys, memberstream.ml.abstractive, memberstream.domain.summaries.summarizer;"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def _tiny_t5(path: Path) -> None:
    """A randomly initialised T5 with a word-level tokenizer, built offline in ``path``."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    trainer = tokenizers.trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"])
    tok.train_from_iterator(["summarize: " + s for s in POSITIVE + NEGATIVE], trainer)
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", 1)]
    )
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    fast.save_pretrained(path)
    config = transformers.T5Config(
        vocab_size=tok.get_vocab_size(),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    model = transformers.T5ForConditionalGeneration(config)
    model.generation_config.suppress_tokens = [0, 2]  # random weights favour <pad> otherwise
    model.save_pretrained(path)


def test_seq2seq_summarizer_plumbing(tmp_path: Path, encoder: WordHashEncoder) -> None:
    from memberstream.ml.abstractive import Seq2SeqSummarizer

    model_dir = tmp_path / "tiny-t5"
    _tiny_t5(model_dir)
    extractive = ExtractiveSummarizer(encoder)
    s = Seq2SeqSummarizer(model_dir, max_input_tokens=64, max_new_tokens=8, extractive=extractive)
    assert s.version == "seq2seq@tiny-t5+extractive/v1+word-hash@test"
    assert s.prefix == "summarize: "
    reviews = _clear_cut()
    summary = s.summarize(reviews)
    again = s.summarize(list(reversed(reviews)))
    assert summary == again
    generated = s.generate(reviews)
    assert generated and summary.text == generated  # gibberish, but the model's own
    base = extractive.summarize(reviews)
    assert (summary.pros, summary.cons, summary.review_ids) == (
        base.pros,
        base.cons,
        base.review_ids,
    )
    _supported(summary, reviews, extractive)
    assert s.summarize([]).review_ids == ()

    plain = Seq2SeqSummarizer.from_objects(s.model, s.tokenizer, "mem", max_new_tokens=4)
    bare = plain.summarize(reviews)
    assert plain.version == "seq2seq@mem"
    assert bare.pros == () and bare.review_ids == base.review_ids
    assert bare.sentiment == base.sentiment


def test_seq2seq_summarizer_rejects_bad_directories(tmp_path: Path) -> None:
    from memberstream.ml.abstractive import Seq2SeqSummarizer

    with pytest.raises(ValueError, match="does not exist"):
        Seq2SeqSummarizer(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"no config\.json"):
        Seq2SeqSummarizer(tmp_path)
    transformers = pytest.importorskip("transformers")
    bert = tmp_path / "bert"
    transformers.BertConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2
    ).save_pretrained(bert)
    with pytest.raises(ValueError, match="not a seq2seq"):
        Seq2SeqSummarizer(bert)
