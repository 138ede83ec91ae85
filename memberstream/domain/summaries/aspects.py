"""Review aspects and sentence splitting for the review summarizer.

An aspect is what a review sentence talks about (quality, delivery, price ...).
Each aspect carries a few short example sentences in English and in Chinese,
written like the sentences shoppers write, good and bad, because they are
*embedded* and compared with review sentences (zero-shot, like the interest
taxonomy): the encoder is the only model. With a multilingual encoder the two
languages share one space, so every example counts for sentences in either
language; a sentence's similarity to an aspect is that to its closest example
(several examples cover an aspect's different phrasings better than one
description). ``general`` (sentences about no aspect in particular: "Love it!",
"bought it as a gift") is a class with examples of its own, so a sentence is
``general`` because it is closer to those than to any aspect, not only because it
falls under a threshold. A few keywords per aspect add a small bonus when they
occur literally; they anchor the short, formulaic sentences of reviews
(``物流有点慢``).

Sentences are split on end punctuation and newlines (a review's title and body
are joined with ``"\\n"``) and kept *verbatim*, end mark included, so a summary
can quote them exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memberstream.domain.language import is_cjk

__all__ = [
    "ASPECTS",
    "GENERAL",
    "GENERAL_EXAMPLES",
    "Aspect",
    "aspect_label",
    "split_sentences",
    "text_length",
]

GENERAL = "general"
"""The aspect of sentences that match no aspect well (``"Love it!"``)."""


@dataclass(frozen=True)
class Aspect:
    id: str
    name_en: str
    name_zh: str
    examples_en: tuple[str, ...]
    """Short sentences as shoppers write them about this aspect, good and bad."""
    examples_zh: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    """Lower-case substrings (English or Chinese) that mark a sentence as about this aspect."""

    def texts(self) -> tuple[str, ...]:
        """The texts to embed: the English examples, then the Chinese ones."""
        return self.examples_en + self.examples_zh


ASPECTS: tuple[Aspect, ...] = (
    Aspect(
        "quality",
        "quality",
        "质量",
        (
            "Good quality, well made.",
            "Excellent build quality and materials.",
            "Cheaply made, the material is thin.",
            "Poor quality, it feels flimsy.",
            "The workmanship is solid.",
        ),
        (
            "质量很好，做工精细。",
            "用料扎实，品质不错。",
            "做工粗糙，质量很差。",
            "材质很薄，感觉很廉价。",
        ),
        (
            "quality",
            "well made",
            "poorly made",
            "cheaply made",
            "craftsmanship",
            "质量",
            "做工",
            "用料",
            "材质",
        ),
    ),
    Aspect(
        "value",
        "value for money",
        "性价比",
        (
            "Great value for the money.",
            "Good price for what you get.",
            "Too expensive for what it is.",
            "A waste of money.",
            "It was cheap and worth it.",
        ),
        ("性价比很高，物有所值。", "价格便宜，很划算。", "太贵了，不值这个价钱。", "浪费钱。"),
        (
            "value",
            "price",
            "pricey",
            "expensive",
            "money",
            "worth it",
            "性价比",
            "价格",
            "价钱",
            "划算",
            "浪费钱",
        ),
    ),
    Aspect(
        "delivery",
        "delivery and shipping",
        "物流配送",
        (
            "Shipping was fast.",
            "It arrived a day early.",
            "Delivery took weeks.",
            "The order arrived late.",
            "It got here quickly.",
        ),
        ("物流很快，隔天就到了。", "快递太慢了。", "发货速度很快。", "送货上门，配送及时。"),
        (
            "shipping",
            "shipped",
            "delivery",
            "delivered",
            "arrived",
            "物流",
            "快递",
            "发货",
            "配送",
            "送货",
        ),
    ),
    Aspect(
        "packaging",
        "packaging",
        "包装",
        (
            "It was well packaged.",
            "The box was damaged when it arrived.",
            "Nice packaging, great as a gift.",
            "It came poorly packed.",
        ),
        ("包装很好，很严实。", "包装破损了。", "盒子压坏了。", "包装精美，适合送礼。"),
        ("packaging", "packaged", "box", "packed", "wrapping", "包装", "盒子", "外盒"),
    ),
    Aspect(
        "service",
        "customer service",
        "客服与售后",
        (
            "Customer service was very helpful.",
            "The seller never replied.",
            "I returned it and got a refund.",
            "They replaced it quickly.",
            "Support was useless.",
        ),
        ("客服态度很好。", "卖家不理人。", "退货退款很顺利。", "售后服务太差。"),
        (
            "support",
            "customer service",
            "seller",
            "return",
            "refund",
            "replacement",
            "客服",
            "售后",
            "退货",
            "退款",
            "卖家",
            "商家",
        ),
    ),
    Aspect(
        "ease_of_use",
        "ease of use",
        "易用性",
        (
            "Easy to use.",
            "Setup was quick and simple.",
            "Hard to figure out how it works.",
            "Assembly was a pain.",
            "Easy to clean.",
        ),
        ("使用很方便，操作简单。", "安装很容易。", "操作太复杂，不会用。", "清洗方便。"),
        (
            "easy to",
            "setup",
            "set up",
            "intuitive",
            "assemble",
            "instructions",
            "好用",
            "顺手",
            "方便",
            "上手",
            "操作",
            "安装",
        ),
    ),
    Aspect(
        "fit",
        "size and fit",
        "尺寸合身",
        (
            "It fits true to size.",
            "Runs small, order a size up.",
            "Too big for me.",
            "The fit is perfect.",
            "Too narrow for wide feet.",
        ),
        ("尺码标准，很合身。", "偏小一码。", "太大了，不合身。", "穿着大小正好。"),
        (
            "size",
            "fits",
            "fit well",
            "too small",
            "too large",
            "too big",
            "too tight",
            "尺码",
            "尺寸",
            "合身",
            "偏大",
            "偏小",
        ),
    ),
    Aspect(
        "durability",
        "durability",
        "耐用性",
        (
            "It broke after a week.",
            "Stopped working after a month.",
            "Still holding up after a year.",
            "Very durable.",
            "It fell apart quickly.",
        ),
        ("用了一周就坏了。", "很耐用，用了很久。", "没多久就不能用了。", "质量不耐用，容易坏。"),
        (
            "durable",
            "broke",
            "stopped working",
            "fell apart",
            "held up",
            "holds up",
            "lasted",
            "耐用",
            "坏了",
        ),
    ),
    Aspect(
        "design",
        "design and appearance",
        "外观设计",
        (
            "It looks beautiful.",
            "Nice design and color.",
            "The color is different from the photo.",
            "Stylish and cute.",
            "It looks cheap.",
        ),
        ("外观很漂亮。", "颜色好看，款式新颖。", "和图片颜色不一样。", "设计很丑。"),
        (
            "design",
            "looks",
            "color",
            "colour",
            "style",
            "pretty",
            "外观",
            "颜色",
            "款式",
            "好看",
            "颜值",
        ),
    ),
    Aspect(
        "performance",
        "performance",
        "性能",
        (
            "It works well.",
            "Does the job perfectly.",
            "Battery life is great.",
            "The sound is clear.",
            "It doesn't work as well as I hoped.",
        ),
        ("效果很好。", "性能强，运行流畅。", "续航时间长。", "声音太小，效果一般。"),
        ("works", "performance", "does the job", "性能", "效果", "流畅", "运行"),
    ),
)

GENERAL_EXAMPLES: tuple[str, ...] = (
    "Love it!",
    "Great product, highly recommend.",
    "I bought this as a gift.",
    "I would buy it again.",
    "Not what I expected, disappointed.",
    "非常满意。",
    "推荐购买。",
    "买给家人的。",
    "还会再来买。",
)
"""Examples of sentences about no aspect in particular: the ``general`` class."""

_LABELS_EN = {a.id: a.name_en for a in ASPECTS} | {GENERAL: "the product overall"}
_LABELS_ZH = {a.id: a.name_zh for a in ASPECTS} | {GENERAL: "整体"}

_SPLIT_EN = re.compile(r"(?<=[.!?])\s+|\n+")
_SPLIT_ZH = re.compile(r"(?<=[。！？!?；;])|\n+")
_WORD = re.compile(r"\w", re.UNICODE)
# One CJK character, or a run of other letters and digits.
_CHAR_TOKEN = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff]|"
    r"(?:(?![\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff])[^\W_])+"
)


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


def text_length(text: str, language: str) -> int:
    """How long ``text`` reads: words (separated by whitespace) in English; in Chinese,
    characters (each CJK character, and each run of Latin letters or digits, counts one;
    punctuation does not)."""
    if language == "zh":
        return len(_CHAR_TOKEN.findall(text))
    return len(text.split())
