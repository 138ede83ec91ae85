"""Which language a review is in: English, Chinese, or other. One function, used by
sentiment, aspects, summaries and the rating/text mismatch flag.

The platform's texts are English and Chinese; the question that matters is which of
the two, and whether a text is neither (Japanese, Korean, Russian, Spanish...), in
which case models tuned on those two are not trusted with it. That is decided by
script and, for Latin-script text, by function words, which is reliable on review
texts of a sentence or more and cheap (a few microseconds), so no detection package
is needed. Short Latin texts with no evidence either way ("Great!!") count as English.

- Chinese: Han characters make up at least a fifth of the letters, and there is
  little kana or hangul (a Japanese sentence also holds Han characters);
- other: mostly kana, hangul, Cyrillic, Greek, Arabic, Hebrew, Thai, Devanagari...;
  Latin text whose function words are clearly not English; a text with no letters;
- English: the rest.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Language = Literal["en", "zh", "other"]
LANGUAGES: tuple[Language, ...] = ("en", "zh", "other")

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")
_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)

_EN = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "this",
        "that",
        "these",
        "those",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "my",
        "your",
        "his",
        "her",
        "our",
        "their",
        "its",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "at",
        "by",
        "from",
        "as",
        "not",
        "no",
        "very",
        "so",
        "too",
        "have",
        "has",
        "had",
        "do",
        "does",
        "did",
        "will",
        "would",
        "can",
        "could",
        "should",
        "just",
        "than",
        "then",
        "there",
        "here",
        "what",
        "which",
        "who",
        "when",
        "where",
        "how",
        "all",
        "after",
        "before",
        "about",
        "because",
        "if",
        "into",
        "out",
        "up",
        "down",
        "only",
        "also",
        "really",
        "great",
        "good",
        "bad",
        "love",
        "like",
        "works",
        "broke",
        "product",
        "item",
    ]
)
# Function words of other Latin-script languages that are not English words.
_OTHER = frozenset(
    [
        "el",
        "la",
        "los",
        "las",
        "un",
        "una",
        "unos",
        "y",
        "o",
        "pero",
        "es",
        "son",
        "fue",
        "muy",
        "con",
        "para",
        "por",
        "del",
        "al",
        "que",
        "se",
        "lo",
        "le",
        "les",
        "des",
        "du",
        "et",
        "ou",
        "mais",
        "est",
        "sont",
        "très",
        "avec",
        "pour",
        "dans",
        "sur",
        "pas",
        "ce",
        "cette",
        "qui",
        "der",
        "die",
        "das",
        "ein",
        "eine",
        "und",
        "oder",
        "aber",
        "ist",
        "sind",
        "war",
        "sehr",
        "mit",
        "für",
        "auf",
        "nicht",
        "ich",
        "sie",
        "es",
        "il",
        "lo",
        "gli",
        "di",
        "da",
        "che",
        "non",
        "è",
        "sono",
        "molto",
        "con",
        "per",
        "una",
        "ma",
        "o",
        "os",
        "as",
        "um",
        "uma",
        "e",
        "mas",
        "é",
        "são",
        "muito",
        "com",
        "para",
        "não",
        "em",
        "do",
        "da",
        "de",
        "het",
        "een",
        "en",
        "maar",
        "zijn",
        "niet",
        "met",
        "voor",
        "op",
        "ik",
    ]
)


def is_cjk(text: str) -> bool:
    """Whether ``text`` holds any CJK character (Han, kana or hangul)."""
    return _CJK.search(text) is not None


def detect_language(text: str) -> Language:
    """``"zh"``, ``"en"`` or ``"other"`` (see the module docstring for the rules)."""
    letters = 0
    han = len(_HAN.findall(text))
    kana_hangul = len(_KANA_HANGUL.findall(text))
    latin = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
            if ch < "\u0250" or "\u1e00" <= ch <= "\u1eff":
                latin += 1
    if letters == 0:
        return "other"
    if han and kana_hangul * 4 < han and han * 5 >= letters:
        return "zh"
    if latin * 2 < letters:  # mostly another script (kana, hangul, Cyrillic, Arabic, ...)
        return "other"
    words = [w.lower() for w in _WORDS.findall(unicodedata.normalize("NFC", text))]
    en = sum(1 for w in words if w in _EN)
    other = sum(1 for w in words if w in _OTHER)
    return "other" if other >= 2 and other > en else "en"


def normalize_language(tag: str | None, text: str) -> Language:
    """A declared language tag (``"zh-CN"``, ``"en"``, ``"fr"``...) mapped onto
    :data:`Language`, or the detected language when the event declares none."""
    if not tag:
        return detect_language(text)
    base = tag.split("-")[0].split("_")[0].lower()
    return base if base in ("en", "zh") else "other"  # type: ignore[return-value]
