"""Product review summaries: extractive, aspect-aware, in English or Chinese.

Why extractive: every pro and con is a sentence a reviewer actually wrote, and
each one cites the reviews that say it (the sentence itself, or a near-duplicate
of it), so a summary can never put words in reviewers' mouths, and it needs no
model beyond the sentence encoder the worker already runs.

The method, for a product's reviews:

1. Split each review into sentences
   (:func:`~memberstream.domain.summaries.aspects.split_sentences`), keeping at
   most ``max_sentences_per_review`` of each.
2. Embed the distinct sentences in one encoder call.
3. Give each sentence an aspect (quality, delivery, ...): zero-shot cosine
   similarity to the embedded aspect descriptions (centred over the aspects)
   plus a keyword bonus, ``general`` below a floor.
4. Give each sentence a polarity in [-1, 1]: the review's star rating (4-5
   positive, 1-2 negative, 3 neutral), blended with ``p(pos) - p(neg)`` from a
   sentiment head over the sentence's embedding when one is given
   (``text_weight``). The blend lets the text split a mixed review ("great
   sound, but the case broke") while the stars keep a weak or off-domain text
   model from turning a 1-star complaint into a pro.
5. Score each distinct sentence by *centrality* (mean cosine similarity to the
   other sentences of the same polarity, weighted by how often each occurs:
   points many reviewers make score high) times its mean ``|polarity|``. Group
   near-duplicates (cosine >= ``redundancy`` with the group's best sentence) into
   one point citing the union of their reviews. Pick pros from positive points
   and cons from negative ones: the best point of each aspect first (coverage),
   then the best of the rest.
6. Write a short text in the reviews' main language (the language of most
   sentences) quoting the top points.

Inputs are sorted by review id first and every tie is broken by text, so the
same reviews in any order give the same :class:`Summary`. Similarities are
computed row by row (:func:`~memberstream.domain.vectors.rowwise_dot`) so
they do not depend on how many sentences were embedded together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from memberstream.domain.summaries.aspects import (
    ASPECTS,
    GENERAL,
    aspect_label,
    detect_language,
    is_cjk,
    split_sentences,
)
from memberstream.domain.vectors import Encoder, l2_rows, rowwise_dot

__all__ = [
    "ExtractiveSummarizer",
    "ReviewText",
    "SentimentFn",
    "SummarizerSettings",
    "Summary",
    "SummaryPoint",
    "main_language",
    "rating_sentiment",
]

VERSION = "extractive/v1"
SentimentFn = Callable[[np.ndarray], np.ndarray]
"""Embeddings (n, dim) -> probabilities (n, 3) over (negative, neutral, positive)."""


@dataclass(frozen=True)
class ReviewText:
    review_id: str
    rating: int
    """1-5 stars."""
    text: str
    """Title and body joined with ``"\\n"``."""
    language: str | None = None
    """``"en"``, ``"zh"`` or None (detected: CJK characters present -> ``"zh"``)."""

    def lang(self) -> str:
        return self.language or detect_language(self.text)


@dataclass(frozen=True)
class SummaryPoint:
    text: str
    """A sentence taken verbatim from a review."""
    aspect: str
    """Aspect id (``"quality"``, ... or ``"general"``)."""
    review_ids: tuple[str, ...]
    """Reviews that contain this sentence or a near-duplicate of it, sorted."""


@dataclass(frozen=True)
class Summary:
    text: str
    """A few sentences in the reviews' main language."""
    pros: tuple[SummaryPoint, ...]
    cons: tuple[SummaryPoint, ...]
    language: str
    review_ids: tuple[str, ...]
    """Every review used, sorted."""
    sentiment: dict[str, int] = field(default_factory=dict)
    """``{"negative": n, "neutral": n, "positive": n}`` over the reviews."""


class SummarizerSettings(BaseModel):
    """Knobs of :class:`ExtractiveSummarizer`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pros: int = Field(default=3, ge=0, description="most pros in a summary")
    max_cons: int = Field(default=3, ge=0, description="most cons in a summary")
    max_sentences_per_review: int = Field(
        default=6, ge=1, description="sentences read from each review (the first ones)"
    )
    redundancy: float = Field(
        default=0.85,
        gt=0,
        le=1,
        description="cosine similarity at or above which two sentences count as the same point",
    )
    min_sentence_chars: int = Field(
        default=6, ge=1, description="shorter non-CJK fragments are dropped"
    )
    min_sentence_chars_zh: int = Field(
        default=3, ge=1, description="shorter fragments holding CJK characters are dropped"
    )
    aspect_floor: float = Field(
        default=0.12,
        description="best aspect similarity, centred on the mean over aspects and with the "
        "keyword bonus, below which a sentence is 'general'",
    )
    keyword_bonus: float = Field(
        default=0.25,
        ge=0,
        description="added to an aspect's centred similarity when one of its keywords occurs",
    )
    text_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="weight of the sentiment head against the star rating in a sentence's "
        "polarity (1: text only, 0: stars only)",
    )
    polarity_margin: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="|polarity| at or below which a sentence (or review) counts as neutral",
    )
    text_points: int = Field(
        default=2, ge=0, description="pros (and cons) quoted in the summary text"
    )
    max_quote_chars: int = Field(
        default=80, ge=8, description="quotes in the summary text are cut to this many chars"
    )


@dataclass(frozen=True)
class _Occurrence:
    review: int
    """Index into the sorted reviews."""
    sentence: int
    """Index into the distinct sentences."""
    polarity: float


@dataclass(frozen=True)
class _Point:
    text: str
    aspect: str
    reviews: frozenset[int]
    score: float
    language: str


def rating_sentiment(rating: int) -> float:
    """A star rating as a polarity: 4-5 -> 1, 1-2 -> -1, 3 -> 0."""
    return 1.0 if rating >= 4 else -1.0 if rating <= 2 else 0.0


def main_language(sentences: Sequence[str], fallback: str = "en") -> str:
    """``"zh"`` or ``"en"``, whichever most sentences are in; ties go to ``fallback``."""
    zh = sum(1 for s in sentences if is_cjk(s))
    en = len(sentences) - zh
    return "zh" if zh > en else "en" if en > zh else fallback


class ExtractiveSummarizer:
    """Summarise a product's reviews into quoted pros and cons and a short text."""

    def __init__(
        self,
        encoder: Encoder,
        sentiment: SentimentFn | None = None,
        settings: SummarizerSettings | None = None,
    ) -> None:
        self.encoder = encoder
        self.sentiment = sentiment
        self.settings = settings or SummarizerSettings()
        self.version = f"{VERSION}+{encoder.version}"
        texts = [t for a in ASPECTS for t in a.texts()]
        emb = l2_rows(np.asarray(encoder.encode(texts), dtype=np.float64))
        self._aspect_emb = emb.reshape(len(ASPECTS), 2, -1)

    # --- public ------------------------------------------------------------------------

    def summarize(self, reviews: Sequence[ReviewText]) -> Summary:
        """The summary of ``reviews`` (any order; review ids must be distinct)."""
        ordered = _sorted_reviews(reviews)
        sentences, occurrences = self._sentences(ordered)
        if not occurrences:
            return self._compose(ordered, [], (), (), _rating_counts(ordered))
        emb = l2_rows(np.asarray(self.encoder.encode(sentences), dtype=np.float64))
        occurrences = self._polarities(ordered, occurrences, emb)
        aspects = self._aspects(sentences, emb)
        pros = self._side(+1, sentences, occurrences, emb, aspects, self.settings.max_pros)
        cons = self._side(-1, sentences, occurrences, emb, aspects, self.settings.max_cons)
        counts = self._sentiment_counts(ordered, occurrences)
        return self._compose(ordered, sentences, pros, cons, counts)

    # --- steps -------------------------------------------------------------------------

    def _sentences(self, reviews: Sequence[ReviewText]) -> tuple[list[str], list[_Occurrence]]:
        """Distinct sentences (first-seen order) and where each occurs, rating polarity."""
        s = self.settings
        index: dict[str, int] = {}
        occurrences: list[_Occurrence] = []
        for r, review in enumerate(reviews):
            split = split_sentences(
                review.text, review.lang(), s.min_sentence_chars, s.min_sentence_chars_zh
            )
            for text in dict.fromkeys(split[: s.max_sentences_per_review]):
                i = index.setdefault(text, len(index))
                occurrences.append(_Occurrence(r, i, rating_sentiment(review.rating)))
        return list(index), occurrences

    def _polarities(
        self, reviews: Sequence[ReviewText], occurrences: list[_Occurrence], emb: np.ndarray
    ) -> list[_Occurrence]:
        """Replace rating polarities with the sentiment head's, when there is one."""
        if self.sentiment is None:
            return occurrences
        probs = np.asarray(self.sentiment(emb.astype(np.float32)), dtype=np.float64)
        if probs.shape != (len(emb), 3):
            raise ValueError(
                f"sentiment must return (n, 3) probabilities, got shape {probs.shape} "
                f"for {len(emb)} sentences"
            )
        polarity = probs[:, 2] - probs[:, 0]
        w = self.settings.text_weight
        return [
            _Occurrence(
                o.review, o.sentence, w * float(polarity[o.sentence]) + (1 - w) * o.polarity
            )
            for o in occurrences
        ]

    def _aspects(self, sentences: Sequence[str], emb: np.ndarray) -> list[str]:
        """Each sentence's aspect id: best centred description similarity plus keyword bonus.

        Similarities to one language's descriptions are centred on their mean over the
        aspects: an encoder finds any two texts in the same script somewhat alike (a
        monolingual one, very alike for Chinese), and only the contrast between aspects
        says which one a sentence is about.
        """
        s = self.settings
        k, two, dim = self._aspect_emb.shape
        sims = rowwise_dot(emb, self._aspect_emb.reshape(k * two, dim)).reshape(-1, k, two)
        best = (sims - sims.mean(axis=1, keepdims=True)).max(axis=2)
        for i, text in enumerate(sentences):
            lower = text.lower()
            for j, aspect in enumerate(ASPECTS):
                if any(word in lower for word in aspect.keywords):
                    best[i, j] += s.keyword_bonus
        out: list[str] = []
        for row in best:
            j = int(np.argmax(row))  # first maximum: ties go to the earlier aspect
            out.append(ASPECTS[j].id if row[j] >= s.aspect_floor else GENERAL)
        return out

    def _side(
        self,
        sign: int,
        sentences: Sequence[str],
        occurrences: Sequence[_Occurrence],
        emb: np.ndarray,
        aspects: Sequence[str],
        limit: int,
    ) -> tuple[_Point, ...]:
        """The best ``limit`` points among occurrences of polarity ``sign`` (+1 or -1)."""
        margin = self.settings.polarity_margin
        side = [o for o in occurrences if o.polarity * sign > margin]
        if not side or limit == 0:
            return ()
        ids = sorted({o.sentence for o in side}, key=lambda i: sentences[i])
        count = np.array([sum(1 for o in side if o.sentence == i) for i in ids], dtype=np.float64)
        strength = np.array(
            [np.mean([abs(o.polarity) for o in side if o.sentence == i]) for i in ids]
        )
        sims = np.clip(rowwise_dot(emb[ids], emb[ids]), 0.0, 1.0)
        total = count.sum()
        if total > 1:
            centrality = (sims @ count - np.diag(sims)) / (total - 1)
        else:
            centrality = np.ones(len(ids))
        scores = centrality * strength
        reviews = {i: frozenset(o.review for o in side if o.sentence == i) for i in ids}
        points = self._group(ids, sentences, sims, scores, reviews, aspects)
        return _select(points, limit)

    def _group(
        self,
        ids: Sequence[int],
        sentences: Sequence[str],
        sims: np.ndarray,
        scores: np.ndarray,
        reviews: dict[int, frozenset[int]],
        aspects: Sequence[str],
    ) -> list[_Point]:
        """Near-duplicates join the best-scoring sentence they are similar enough to."""
        order = sorted(range(len(ids)), key=lambda k: (-scores[k], sentences[ids[k]]))
        heads: list[int] = []
        members: dict[int, set[int]] = {}
        for k in order:
            head = next((h for h in heads if sims[h, k] >= self.settings.redundancy), None)
            if head is None:
                heads.append(k)
                members[k] = set(reviews[ids[k]])
            else:
                members[head] |= reviews[ids[k]]
        return [
            _Point(
                text=sentences[ids[h]],
                aspect=aspects[ids[h]],
                reviews=frozenset(members[h]),
                score=float(scores[h]),
                language=detect_language(sentences[ids[h]]),
            )
            for h in heads
        ]

    def _sentiment_counts(
        self, reviews: Sequence[ReviewText], occurrences: Sequence[_Occurrence]
    ) -> dict[str, int]:
        """Per review: its star rating, or with a sentiment head its sentences' mean polarity."""
        if self.sentiment is None:
            return _rating_counts(reviews)
        by_review: dict[int, list[float]] = {}
        for o in occurrences:
            by_review.setdefault(o.review, []).append(o.polarity)
        counts = {"negative": 0, "neutral": 0, "positive": 0}
        for r, review in enumerate(reviews):
            values = by_review.get(r)
            polarity = float(np.mean(values)) if values else rating_sentiment(review.rating)
            counts[_bucket(polarity, self.settings.polarity_margin)] += 1
        return counts

    def _compose(
        self,
        reviews: Sequence[ReviewText],
        sentences: Sequence[str],
        pros: Sequence[_Point],
        cons: Sequence[_Point],
        counts: dict[str, int],
    ) -> Summary:
        ids = [r.review_id for r in reviews]
        fallback = main_language([r.text for r in reviews]) if reviews else "en"
        language = main_language(sentences, fallback)
        text = _text(language, reviews, pros, cons, self.settings)
        return Summary(
            text=text,
            pros=tuple(_public(p, ids) for p in pros),
            cons=tuple(_public(p, ids) for p in cons),
            language=language,
            review_ids=tuple(ids),
            sentiment=counts,
        )


# --- helpers -----------------------------------------------------------------------------


def _sorted_reviews(reviews: Sequence[ReviewText]) -> list[ReviewText]:
    ordered = sorted(reviews, key=lambda r: r.review_id)
    for a, b in pairwise(ordered):
        if a.review_id == b.review_id:
            raise ValueError(f"duplicate review id {a.review_id!r}")
    return ordered


def _bucket(polarity: float, margin: float) -> str:
    return "positive" if polarity > margin else "negative" if polarity < -margin else "neutral"


def _rating_counts(reviews: Sequence[ReviewText]) -> dict[str, int]:
    counts = {"negative": 0, "neutral": 0, "positive": 0}
    for review in reviews:
        counts[_bucket(rating_sentiment(review.rating), 0.5)] += 1
    return counts


def _select(points: Sequence[_Point], limit: int) -> tuple[_Point, ...]:
    """Best point of each aspect first (by score), then the best of the rest."""
    ranked = sorted(points, key=lambda p: (-p.score, p.text))
    chosen: list[_Point] = []
    seen: set[str] = set()
    for p in ranked:
        if len(chosen) < limit and p.aspect not in seen:
            chosen.append(p)
            seen.add(p.aspect)
    for p in ranked:
        if len(chosen) < limit and p not in chosen:
            chosen.append(p)
    return tuple(sorted(chosen, key=lambda p: (-p.score, p.text)))


def _public(point: _Point, ids: Sequence[str]) -> SummaryPoint:
    return SummaryPoint(point.text, point.aspect, tuple(sorted(ids[r] for r in point.reviews)))


def _quoted(points: Sequence[_Point], language: str, settings: SummarizerSettings) -> list[str]:
    """``aspect ("quote")`` for the top points, preferring quotes in ``language``."""
    same = [p for p in points if p.language == language]
    picked = (same + [p for p in points if p.language != language])[: settings.text_points]
    out = []
    for p in picked:
        quote = (
            p.text
            if len(p.text) <= settings.max_quote_chars
            else p.text[: settings.max_quote_chars - 1] + "…"
        )
        label = aspect_label(p.aspect, language)
        out.append(f"{label}（“{quote}”）" if language == "zh" else f'{label} ("{quote}")')
    return out


def _text(
    language: str,
    reviews: Sequence[ReviewText],
    pros: Sequence[_Point],
    cons: Sequence[_Point],
    settings: SummarizerSettings,
) -> str:
    n = len(reviews)
    if n == 0:
        return "暂无评价。" if language == "zh" else "No reviews yet."
    avg = sum(r.rating for r in reviews) / n
    good, bad = _quoted(pros, language, settings), _quoted(cons, language, settings)
    if language == "zh":
        return _text_zh(n, avg, good, bad)
    return _text_en(n, avg, good, bad)


def _text_en(n: int, avg: float, good: list[str], bad: list[str]) -> str:
    head = f"Based on {n} review{'s' if n != 1 else ''} (avg {avg:.1f}/5): "
    parts = []
    if good:
        parts.append("reviewers praise " + " and ".join(good))
    if bad:
        parts.append(("some mention " if good else "reviewers criticise ") + " and ".join(bad))
    body = "; ".join(parts) if parts else "reviewers are mostly neutral"
    return head + body + "."


def _text_zh(n: int, avg: float, good: list[str], bad: list[str]) -> str:
    head = f"基于{n}条评价（平均{avg:.1f}分）："
    parts = []
    if good:
        parts.append("好评集中在" + "和".join(good))
    if bad:
        parts.append("差评提到" + "和".join(bad))
    body = "；".join(parts) if parts else "评价以中性为主"
    return head + body + "。"
