"""Product review summaries: extractive, aspect-aware, in English or Chinese.

Why extractive: the summary text is made of sentences reviewers actually wrote,
and every pro and con is such a sentence citing the reviews that say it (the
sentence itself, or a near-duplicate of it), so a summary can never put words in
reviewers' mouths, and it needs no model beyond the sentence encoder the worker
already runs (a multilingual one: English and Chinese share one space).

The method, for a product's reviews:

1. Split each review into sentences
   (:func:`~memberstream.domain.summaries.aspects.split_sentences`), keeping at
   most ``max_sentences_per_review`` of each.
2. Embed the distinct sentences in one encoder call.
3. **The text.** Score each sentence of the main language (the language of most
   sentences) by its *support*: for each review, the cosine similarity of the
   sentence to the closest sentence of that review, averaged over the reviews
   (a review containing the sentence counts 1). It is a soft count of the
   reviews that make the same point, so a sentence many reviewers would agree
   with scores high, an anecdote only its author tells scores low, and every
   review weighs the same however long it is. Pick sentences by maximal
   marginal relevance (support minus ``diversity`` times the similarity to the
   closest sentence already picked, none as close as ``redundancy``), taking only
   one that brings the length nearer the budget (``summary_words`` words,
   ``summary_chars_zh`` characters in Chinese: about one review). The text is
   those sentences, verbatim, ordered by their place in their reviews (openings
   first), with nothing added but an end mark where a sentence has none: no
   template, no counts, no labels. It does not use ratings or polarity, so
   reviews without either still make a text.
4. Give each sentence an aspect (quality, delivery, ...) or ``general``: the class
   whose example sentences (English and Chinese, one multilingual space) it is
   closest to, ``general`` being a class of its own with examples of sentences
   about nothing in particular ("Love it!"), plus a bonus for an aspect's
   keywords; see :meth:`ExtractiveSummarizer._aspects`.
5. Give each sentence a polarity in [-1, 1]: the review's star rating (4-5
   positive, 1-2 negative, 3 neutral), blended with ``p(pos) - p(neg)`` from a
   sentiment function over the sentence (``text_weight``) when one is given. The
   blend lets the text split a mixed review ("great sound, but the case broke")
   while the stars keep a weak or off-domain text model from turning a 1-star
   complaint into a pro. A review without a rating takes the text's polarity
   alone, or is neutral when there is no sentiment function (then it gives no
   pros or cons, but its sentences still make the text).
6. Pros and cons: score each distinct sentence by *centrality* (mean cosine
   similarity to the other sentences of the same polarity, weighted by how often
   each occurs) times its mean ``|polarity|``. Group near-duplicates (cosine >=
   ``redundancy`` with the group's best sentence) into one point citing the union
   of their reviews. Pick pros from positive points and cons from negative ones:
   the best point of each aspect first (coverage), then the best of the rest.

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

from memberstream.domain.language import detect_language, normalize_language
from memberstream.domain.summaries.aspects import (
    ASPECTS,
    GENERAL,
    GENERAL_EXAMPLES,
    split_sentences,
    text_length,
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

VERSION = "extractive/v2"
SentimentFn = Callable[[np.ndarray, Sequence[str]], np.ndarray]
"""Embeddings (n, dim) and the n texts -> probabilities (n, 3) over (negative, neutral,
positive)."""

_END_MARKS = ".!?…~。！？；;～"


@dataclass(frozen=True)
class ReviewText:
    review_id: str
    rating: int | None
    """1-5 stars, or None when the review has none (its polarity then comes from the text)."""
    text: str
    """Title and body joined with ``"\\n"``."""
    language: str | None = None
    """``"en"``, ``"zh"`` or None (detected: CJK characters present -> ``"zh"``)."""

    def lang(self) -> str:
        return normalize_language(self.language, self.text)


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
    """Review sentences, verbatim, in the reviews' main language (about one review long)."""
    pros: tuple[SummaryPoint, ...]
    cons: tuple[SummaryPoint, ...]
    language: str
    review_ids: tuple[str, ...]
    """Every review used, sorted."""
    sentiment: dict[str, int] = field(default_factory=dict)
    """``{"negative": n, "neutral": n, "positive": n}`` over the reviews."""


class SummarizerSettings(BaseModel):
    """Knobs of :class:`ExtractiveSummarizer`.

    ``redundancy`` and ``aspect_floor`` are cosine thresholds: they depend on the
    encoder's embedding space. The defaults are set for the multilingual Universal
    Sentence Encoder (v3); an encoder's manifest can override them (its calibration).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pros: int = Field(default=3, ge=0, description="most pros in a summary")
    max_cons: int = Field(default=3, ge=0, description="most cons in a summary")
    max_sentences_per_review: int = Field(
        default=8, ge=1, description="sentences read from each review (the first ones)"
    )
    redundancy: float = Field(
        default=0.7,
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
        default=0.0,
        description="a sentence whose best aspect scores under this (cosine similarity to the "
        "aspect's closest example, centred on the mean over the classes, plus the keyword "
        "bonus) is 'general'; 0 leaves it to the general class",
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
        description="weight of the sentiment function against the star rating in a "
        "sentence's polarity (1: text only, 0: stars only)",
    )
    polarity_margin: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="|polarity| at or below which a sentence (or review) counts as neutral",
    )
    diversity: float = Field(
        default=0.5,
        ge=0,
        description="weight of the similarity to sentences already in the summary text "
        "against a sentence's support (maximal marginal relevance)",
    )
    summary_words: int = Field(
        default=60, ge=1, description="length of an English summary text, in words"
    )
    summary_chars_zh: int = Field(
        default=90, ge=1, description="length of a Chinese summary text, in characters"
    )


@dataclass(frozen=True)
class _Occurrence:
    review: int
    """Index into the sorted reviews."""
    sentence: int
    """Index into the distinct sentences."""
    polarity: float
    rated: bool = True
    """Whether the review has a star rating (``polarity`` is then its rating's)."""


@dataclass(frozen=True)
class _Point:
    text: str
    aspect: str
    reviews: frozenset[int]
    score: float
    language: str


def rating_sentiment(rating: int | None) -> float:
    """A star rating as a polarity: 4-5 -> 1, 1-2 -> -1, 3 or none -> 0."""
    if rating is None:
        return 0.0
    return 1.0 if rating >= 4 else -1.0 if rating <= 2 else 0.0


def main_language(sentences: Sequence[str], fallback: str = "en") -> str:
    """``"zh"`` or ``"en"``, whichever most sentences are in; ties go to ``fallback``
    (sentences in other languages do not count)."""
    languages = [detect_language(s) for s in sentences]
    zh, en = languages.count("zh"), languages.count("en")
    return "zh" if zh > en else "en" if en > zh else fallback


class ExtractiveSummarizer:
    """Summarise a product's reviews into a text of their own sentences and quoted pros
    and cons."""

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
        groups = [a.texts() for a in ASPECTS] + [GENERAL_EXAMPLES]
        emb = l2_rows(np.asarray(encoder.encode([t for g in groups for t in g]), dtype=np.float64))
        self._examples = emb
        self._example_class = np.repeat(np.arange(len(groups)), [len(g) for g in groups])

    # --- public ------------------------------------------------------------------------

    def summarize(self, reviews: Sequence[ReviewText]) -> Summary:
        """The summary of ``reviews`` (any order; review ids must be distinct)."""
        ordered = _sorted_reviews(reviews)
        sentences, occurrences = self._sentences(ordered)
        if not occurrences:
            return self._compose(ordered, [], "", (), (), _rating_counts(ordered))
        emb = l2_rows(np.asarray(self.encoder.encode(sentences), dtype=np.float64))
        language = main_language(sentences, main_language([r.text for r in ordered]))
        text = self._text(language, sentences, occurrences, emb, len(ordered))
        occurrences = self._polarities(sentences, occurrences, emb)
        aspects = self._aspects(sentences, emb)
        pros = self._side(+1, sentences, occurrences, emb, aspects, self.settings.max_pros)
        cons = self._side(-1, sentences, occurrences, emb, aspects, self.settings.max_cons)
        counts = self._sentiment_counts(ordered, occurrences)
        return self._compose(ordered, sentences, text, pros, cons, counts)

    def aspects(self, sentences: Sequence[str]) -> list[str]:
        """The aspect id the summarizer gives each sentence (one encoder call)."""
        if not sentences:
            return []
        emb = l2_rows(np.asarray(self.encoder.encode(list(sentences)), dtype=np.float64))
        return self._aspects(sentences, emb)

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
            polarity = rating_sentiment(review.rating)
            for text in dict.fromkeys(split[: s.max_sentences_per_review]):
                i = index.setdefault(text, len(index))
                occurrences.append(_Occurrence(r, i, polarity, review.rating is not None))
        return list(index), occurrences

    def _text(
        self,
        language: str,
        sentences: Sequence[str],
        occurrences: Sequence[_Occurrence],
        emb: np.ndarray,
        n_reviews: int,
    ) -> str:
        """The reviews' most supported sentences in ``language``, about one review long.

        Support: per review, the similarity to its closest sentence, averaged over the
        reviews. Selection is maximal marginal relevance (support minus ``diversity``
        times the similarity to the closest sentence already taken) under the length
        budget; the chosen sentences read in the order of their place in their reviews
        (openings, then middles, then endings), which keeps verdicts first and
        recommendations last.
        """
        s = self.settings
        candidates = sorted(
            {o.sentence for o in occurrences if detect_language(sentences[o.sentence]) == language}
        )
        if not candidates:
            return ""
        by_review: list[list[int]] = [[] for _ in range(n_reviews)]
        for o in occurrences:
            by_review[o.review].append(o.sentence)
        sims = np.clip(rowwise_dot(emb[candidates], emb), 0.0, 1.0)
        support = np.zeros(len(candidates))
        for ids in by_review:
            if ids:
                support += sims[:, ids].max(axis=1)
        support /= sum(1 for ids in by_review if ids)
        budget = s.summary_chars_zh if language == "zh" else s.summary_words
        lengths = [text_length(sentences[i], language) for i in candidates]
        order = sorted(
            range(len(candidates)), key=lambda k: (-support[k], sentences[candidates[k]])
        )
        chosen: list[int] = []
        total = 0
        while True:
            best: tuple[float, int] | None = None
            for k in order:  # best support first: ties keep the earlier (by text)
                if k in chosen or abs(total + lengths[k] - budget) >= abs(total - budget):
                    continue  # taken, or would not bring the text nearer its length
                closest = max((sims[j, candidates[k]] for j in chosen), default=0.0)
                if closest >= s.redundancy:
                    continue
                score = support[k] - s.diversity * closest
                if best is None or score > best[0]:
                    best = (score, k)
            if best is None:
                break
            chosen.append(best[1])
            total += lengths[best[1]]
        if not chosen:  # every sentence is over twice the budget: the best one alone
            chosen = [order[0]]
        place: dict[int, tuple[float, int]] = {}
        for r, ids in enumerate(by_review):
            for position, i in enumerate(ids):
                place.setdefault(i, (position / len(ids), r))
        chosen.sort(key=lambda k: place[candidates[k]])
        return _join([sentences[candidates[k]] for k in chosen], language)

    def _polarities(
        self, sentences: Sequence[str], occurrences: list[_Occurrence], emb: np.ndarray
    ) -> list[_Occurrence]:
        """Blend rating polarities with the sentiment function's, when there is one."""
        if self.sentiment is None:
            return occurrences
        probs = np.asarray(self.sentiment(emb.astype(np.float32), sentences), dtype=np.float64)
        if probs.shape != (len(emb), 3):
            raise ValueError(
                f"sentiment must return (n, 3) probabilities, got shape {probs.shape} "
                f"for {len(emb)} sentences"
            )
        polarity = probs[:, 2] - probs[:, 0]
        w = self.settings.text_weight
        return [
            _Occurrence(
                o.review,
                o.sentence,
                w * float(polarity[o.sentence]) + (1 - w) * o.polarity
                if o.rated
                else float(polarity[o.sentence]),
                o.rated,
            )
            for o in occurrences
        ]

    def _aspects(self, sentences: Sequence[str], emb: np.ndarray) -> list[str]:
        """Each sentence's aspect id: the class (the aspects and ``general``) whose
        examples it is closest to, with a bonus for an aspect's keywords; ``general`` also
        when the best aspect's score, centred on the mean over the classes, is under
        ``aspect_floor``."""
        s = self.settings
        k = len(ASPECTS)
        examples = rowwise_dot(emb, self._examples)
        sims = np.stack(
            [examples[:, self._example_class == c].max(axis=1) for c in range(k + 1)], axis=1
        )
        best = sims - sims.mean(axis=1, keepdims=True)
        for i, text in enumerate(sentences):
            lower = text.lower()
            for j, aspect in enumerate(ASPECTS):
                if any(word in lower for word in aspect.keywords):
                    best[i, j] += s.keyword_bonus
        out: list[str] = []
        for row in best:
            j = int(np.argmax(row))  # first maximum: ties go to the earlier aspect
            out.append(ASPECTS[j].id if j < k and row[j] >= s.aspect_floor else GENERAL)
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
        """Per review: its star rating, or with a sentiment function its sentences' mean
        polarity."""
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
        text: str,
        pros: Sequence[_Point],
        cons: Sequence[_Point],
        counts: dict[str, int],
    ) -> Summary:
        ids = [r.review_id for r in reviews]
        fallback = main_language([r.text for r in reviews]) if reviews else "en"
        language = main_language(sentences, fallback)
        if not reviews:
            text = "暂无评价。" if language == "zh" else "No reviews yet."
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


def _join(sentences: Sequence[str], language: str) -> str:
    """Sentences as one text: an end mark added only where a sentence has none (a title)."""
    mark, sep = ("。", "") if language == "zh" else (".", " ")
    return sep.join(t if t[-1] in _END_MARKS else t + mark for t in sentences)
