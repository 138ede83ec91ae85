"""ROUGE-1, ROUGE-2 and ROUGE-L for review summaries, in English and Chinese, without dependencies.

Generated review summaries are scored against human-written references (see
:mod:`memberstream.ml.training.reference_set`). The scores follow Google's
``rouge-score`` package with ``use_stemmer=False`` for English text:

- Tokens are lowercased runs of letters and digits; everything else (spaces,
  punctuation, symbols, underscores) separates tokens. There is **no stemming**
  and no stop-word removal, so "battery" and "batteries" are different tokens.
  Unlike ``rouge-score``, which keeps only ``[a-z0-9]``, letters outside ASCII
  ("café") are kept whole rather than cut; for ASCII text the tokens are the same.
- Chinese text (any CJK ideograph or kana present, or ``language="zh"``) is
  tokenized by character: each CJK character is one token, and Latin words and
  digit runs inside it ("USB", "30") are one token each. Full-width punctuation
  is dropped. Character-level ROUGE is the usual choice for Chinese because it
  needs no word segmenter and does not depend on one.
- ROUGE-N counts clipped n-gram overlap: ``overlap = sum(min(count_cand(g),
  count_ref(g)))``, ``precision = overlap / #candidate n-grams``, ``recall =
  overlap / #reference n-grams``, and F1 their harmonic mean (0 when both are 0).
- ROUGE-L uses the longest common subsequence of the two token lists (not the
  summary-level "ROUGE-Lsum"): ``precision = LCS / len(candidate)``,
  ``recall = LCS / len(reference)``.
- A candidate or reference with no tokens scores 0 on everything.
- With several references, :func:`rouge_all` keeps, for each metric on its own,
  the reference that gives the highest F1 (``rouge-score``'s ``score_multi``
  does the same), so one metric's best reference need not be another's.

Example:
    >>> tokens("The case feels cheap, but 8-hour battery!")
    ['the', 'case', 'feels', 'cheap', 'but', '8', 'hour', 'battery']
    >>> tokens("续航30小时，USB-C充电")
    ['续', '航', '30', '小', '时', 'usb', 'c', '充', '电']
    >>> s = rouge_n("the cat was found under the bed", "the cat was under the bed", 1)
    >>> round(s.precision, 4), round(s.recall, 4), round(s.f1, 4)
    (0.8571, 1.0, 0.9231)
    >>> round(rouge_n("the cat was found under the bed", "the cat was under the bed", 2).f1, 4)
    0.7273
    >>> round(rouge_l("电池续航很好", "电池续航一般").f1, 4)
    0.6667
    >>> scores = rouge_all("good pan, sticks a bit", ["the pan is good", "good pan but it sticks"])
    >>> sorted(scores), round(scores["rouge1"].f1, 4)
    (['rouge1', 'rouge2', 'rougeL'], 0.6)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["METRICS", "Score", "is_cjk_text", "rouge_all", "rouge_l", "rouge_n", "tokens"]

METRICS: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")
"""The metric names :func:`rouge_all` returns, in order."""

# CJK Unified Ideographs (+ Extension A, compatibility ideographs, Extensions B-F in
# the supplementary planes) and Japanese kana. Hangul is written with spaces between
# words, so it is left to the word rule.
_CJK_CLASS = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf"  # extension A
    "\u4e00-\u9fff"  # unified ideographs
    "\uf900-\ufaff"  # compatibility ideographs
    "\U00020000-\U0002ffff"  # extensions B-F and compatibility supplement
)
_CJK = re.compile(f"[{_CJK_CLASS}]")
# A word is a run of letters/digits (``[^\W_]`` is \w without the underscore).
_WORD = re.compile(r"[^\W_]+")
# In CJK mode: one CJK character, or a run of non-CJK letters/digits.
_CJK_TOKEN = re.compile(f"[{_CJK_CLASS}]|(?:(?![{_CJK_CLASS}])[^\\W_])+")


@dataclass(frozen=True, slots=True)
class Score:
    """Precision, recall and F1 of one ROUGE metric, each in [0, 1]."""

    precision: float
    recall: float
    f1: float

    @classmethod
    def from_counts(cls, overlap: int, candidate_total: int, reference_total: int) -> Score:
        """Build a score from a match count and the candidate's and reference's totals."""
        precision = overlap / candidate_total if candidate_total else 0.0
        recall = overlap / reference_total if reference_total else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1)


def is_cjk_text(text: str) -> bool:
    """True when ``text`` holds at least one CJK ideograph or kana."""
    return _CJK.search(text) is not None


def _cjk_mode(language: str | None, *texts: str) -> bool:
    if language is None:
        return any(is_cjk_text(t) for t in texts)
    return language.lower().split("-")[0].split("_")[0] in {"zh", "ja", "cjk"}


def tokens(text: str, language: str | None = None) -> list[str]:
    """Split ``text`` into lowercased ROUGE tokens.

    ``language=None`` picks the rule from the text: character tokens when it holds
    CJK characters, word tokens otherwise. ``"zh"`` (or ``"zh-CN"``, ``"ja"``) forces
    the character rule; any other language forces the word rule, under which a run
    of CJK characters stays one token. No stemming is done.
    """
    pattern = _CJK_TOKEN if _cjk_mode(language, text) else _WORD
    return [match.group(0).lower() for match in pattern.finditer(text)]


def _ngrams(toks: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence, in O(len(a) * len(b)) time, O(len(b)) space."""
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def _pair_tokens(
    candidate: str, reference: str, language: str | None
) -> tuple[list[str], list[str]]:
    # One rule for both sides, so a Chinese candidate is never compared by words
    # against a reference tokenized by characters.
    mode = "zh" if _cjk_mode(language, candidate, reference) else "en"
    return tokens(candidate, mode), tokens(reference, mode)


def _rouge_n_tokens(cand: Sequence[str], ref: Sequence[str], n: int) -> Score:
    cand_grams, ref_grams = _ngrams(cand, n), _ngrams(ref, n)
    overlap = sum((cand_grams & ref_grams).values())
    return Score.from_counts(overlap, sum(cand_grams.values()), sum(ref_grams.values()))


def _rouge_l_tokens(cand: Sequence[str], ref: Sequence[str]) -> Score:
    return Score.from_counts(_lcs_length(cand, ref), len(cand), len(ref))


def rouge_n(candidate: str, reference: str, n: int, *, language: str | None = None) -> Score:
    """ROUGE-N of ``candidate`` against one ``reference`` (clipped n-gram overlap).

    ``language`` is passed to :func:`tokens`; ``None`` uses character tokens for both
    texts when either holds CJK characters.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    cand, ref = _pair_tokens(candidate, reference, language)
    return _rouge_n_tokens(cand, ref, n)


def rouge_l(candidate: str, reference: str, *, language: str | None = None) -> Score:
    """ROUGE-L of ``candidate`` against one ``reference`` (longest common subsequence)."""
    cand, ref = _pair_tokens(candidate, reference, language)
    return _rouge_l_tokens(cand, ref)


def rouge_all(
    candidate: str, references: Sequence[str], *, language: str | None = None
) -> dict[str, Score]:
    """ROUGE-1, ROUGE-2 and ROUGE-L against the best of several references.

    Returns ``{"rouge1": ..., "rouge2": ..., "rougeL": ...}``; for each metric
    separately, the score is the one of the reference with the highest F1 (ties: the
    first such reference).
    """
    if isinstance(references, str):
        raise TypeError("references must be a sequence of strings, not a single string")
    if not references:
        raise ValueError("rouge_all needs at least one reference")
    best: dict[str, Score] = {}
    for reference in references:
        cand, ref = _pair_tokens(candidate, reference, language)
        scores = {
            "rouge1": _rouge_n_tokens(cand, ref, 1),
            "rouge2": _rouge_n_tokens(cand, ref, 2),
            "rougeL": _rouge_l_tokens(cand, ref),
        }
        for name, score in scores.items():
            if name not in best or score.f1 > best[name].f1:
                best[name] = score
    return {name: best[name] for name in METRICS}
