"""Review aspects and sentence splitting for the review summarizer.

An aspect is what a review sentence talks about (quality, delivery, price ...).
Each aspect carries a short English and a short Chinese description, written like
the sentences shoppers write, because they are *embedded* and compared with
review sentences (zero-shot, like the interest taxonomy): the encoder is the
only model. The English and Chinese texts are embedded separately and a
sentence's similarity to an aspect is the best of the two, so a monolingual
encoder still matches sentences in its own language well. A few keywords per
aspect add a small bonus when they occur literally; they anchor the short,
formulaic sentences of reviews (``物流有点慢``) that a small encoder places poorly.

Sentences are split on end punctuation and newlines (a review's title and body
are joined with ``"\\n"``) and kept *verbatim*, end mark included, so a summary
can quote them exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ASPECTS",
    "GENERAL",
    "Aspect",
    "aspect_label",
    "detect_language",
    "is_cjk",
    "split_sentences",
]

GENERAL = "general"
"""The aspect of sentences that match no aspect well (``"Love it!"``)."""


@dataclass(frozen=True)
class Aspect:
    id: str
    name_en: str
    name_zh: str
    description_en: str
    description_zh: str
    keywords: tuple[str, ...] = ()
    """Lower-case substrings (English or Chinese) that mark a sentence as about this aspect."""

    def texts(self) -> tuple[str, str]:
        """The two texts to embed: English, then Chinese."""
        return (
            f"{self.name_en}: {self.description_en}",
            f"{self.name_zh}：{self.description_zh}",
        )


ASPECTS: tuple[Aspect, ...] = (
    Aspect(
        "quality",
        "quality",
        "质量",
        "good or poor quality, well made, solid build, feels cheap, craftsmanship",
        "质量好或质量差，做工精细，做工粗糙，用料扎实",
        ("quality", "well made", "feels cheap", "质量", "做工", "用料"),
    ),
    Aspect(
        "value",
        "value for money",
        "性价比",
        "worth the price, good value, too expensive, waste of money, cheap price",
        "性价比高，物有所值，价格贵，浪费钱，便宜",
        ("value", "price", "pricey", "expensive", "money", "性价比", "价格", "贵", "浪费钱"),
    ),
    Aspect(
        "delivery",
        "delivery and shipping",
        "物流配送",
        "shipping was fast or slow, arrived early, arrived late, delivery time",
        "物流很快，物流太慢，发货速度，快递配送",
        ("shipping", "delivery", "arrived", "物流", "快递", "发货", "配送"),
    ),
    Aspect(
        "packaging",
        "packaging",
        "包装",
        "the packaging and box, well packed, damaged box, wrapping",
        "包装完好，包装破损，盒子，包装可以改进",
        ("packag", "box", "packed", "包装", "盒子"),
    ),
    Aspect(
        "service",
        "customer service",
        "客服与售后",
        "customer support and seller service, returns and refunds, helpful or useless support",
        "客服态度，售后服务，退货退款，卖家处理问题",
        ("support", "service", "seller", "return", "refund", "客服", "售后", "退货", "退款"),
    ),
    Aspect(
        "ease_of_use",
        "ease of use",
        "易用性",
        "easy to use, simple setup, intuitive, handy, hard to use, confusing",
        "好用，使用方便，上手简单，用着顺手，操作复杂",
        ("easy to use", "setup", "intuitive", "好用", "顺手", "方便", "上手"),
    ),
    Aspect(
        "fit",
        "size and fit",
        "尺寸合身",
        "size and fit, too small, too large, fits well, true to size",
        "尺码合适，偏大，偏小，很合身，尺寸",
        ("size", "fits", "too small", "too large", "尺码", "尺寸", "合身", "偏大", "偏小"),
    ),
    Aspect(
        "durability",
        "durability",
        "耐用性",
        "lasts long, broke after a week, stopped working, fell apart, durable",
        "经久耐用，用了一周就坏了，出问题，容易坏",
        ("durable", "broke", "stopped working", "fell apart", "after a week", "耐用", "坏"),
    ),
    Aspect(
        "design",
        "design and appearance",
        "外观设计",
        "looks beautiful, nice design, color and style, as described in the pictures",
        "外观漂亮，设计好看，颜色款式，和描述一致",
        ("design", "looks", "color", "colour", "style", "described", "外观", "颜色", "描述"),
    ),
    Aspect(
        "performance",
        "performance",
        "性能",
        "works well, works perfectly, does the job, powerful, fast, performs poorly",
        "性能强，效果好，运行流畅，效果差",
        ("works", "performance", "does the job", "性能", "效果", "流畅"),
    ),
)

_LABELS_EN = {a.id: a.name_en for a in ASPECTS} | {GENERAL: "the product overall"}
_LABELS_ZH = {a.id: a.name_zh for a in ASPECTS} | {GENERAL: "整体"}

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_SPLIT_EN = re.compile(r"(?<=[.!?])\s+|\n+")
_SPLIT_ZH = re.compile(r"(?<=[。！？!?；;])|\n+")
_WORD = re.compile(r"\w", re.UNICODE)


def is_cjk(text: str) -> bool:
    """Whether ``text`` holds any CJK character."""
    return _CJK.search(text) is not None


def detect_language(text: str) -> str:
    """``"zh"`` when the text holds CJK characters, else ``"en"``."""
    return "zh" if is_cjk(text) else "en"


def aspect_label(aspect_id: str, language: str) -> str:
    """The aspect's display name in ``language`` (``"zh"`` or anything else for English)."""
    labels = _LABELS_ZH if language == "zh" else _LABELS_EN
    return labels.get(aspect_id, aspect_id)


def split_sentences(
    text: str, language: str, min_chars: int = 6, min_chars_zh: int = 3
) -> list[str]:
    """Verbatim sentences of ``text``, in order, without fragments too short to say anything.

    English splits after ``.!?`` followed by whitespace (so ``4.5`` stays whole) and
    at newlines; Chinese after ``。！？!?；;`` and at newlines. A fragment is dropped
    when it has fewer than ``min_chars`` characters (``min_chars_zh`` when it holds
    CJK characters, which carry more per character) or no letter or digit at all.
    """
    pattern = _SPLIT_ZH if language == "zh" else _SPLIT_EN
    out: list[str] = []
    for part in pattern.split(text):
        sentence = part.strip()
        floor = min_chars_zh if is_cjk(sentence) else min_chars
        if len(sentence) >= floor and _WORD.search(sentence):
            out.append(sentence)
    return out
