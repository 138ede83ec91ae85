"""Batch scoring and summarizing of texts from JSONL files: the worker's own models, offline.

``memberstream score`` and ``memberstream summarize`` read one JSON object per line
and run the same inference stage and summarizer the worker runs, so a file scored
here gives what the stream would have given. A line that is not a valid object is
an :class:`InputLineError` naming its line number (the CLI writes ``--output``
through a temporary file, so a file that fails leaves no partial output).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memberstream.core.summaries import Summarizer, summarize_all
from memberstream.domain.language import normalize_language
from memberstream.domain.summaries.summarizer import ReviewText, Summary
from memberstream.ml.inference import InferenceStage, TextItem
from memberstream.ml.sentiment import LABELS

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

CHUNK = 256
"""Texts per model call: big enough to batch, small enough to show progress."""


class InputLineError(ValueError):
    """A line of the input file that is not a valid record."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class TextToScore(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | int
    text: str


class ReviewToSummarize(BaseModel):
    model_config = ConfigDict(extra="ignore")

    product_id: str = Field(min_length=1)
    review_id: str = Field(min_length=1)
    text: str
    rating: int | None = Field(None, ge=1, le=5)
    language: str | None = None


def read_jsonl(lines: Iterable[bytes | str], model: type[M]) -> Iterator[M]:
    """Validated records, one per non-blank line; the first bad line raises."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InputLineError(number, f"not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InputLineError(number, f"expected a JSON object, got {type(data).__name__}")
        try:
            yield model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'record'}: {e['msg']}"
                for e in exc.errors()
            )
            raise InputLineError(number, problems) from None


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def scoring_version(stage: InferenceStage) -> str:
    """Encoder, category head and (when loaded) sentiment head."""
    if stage.sentiment is None:
        return stage.model_version
    return f"{stage.model_version}+{stage.sentiment.version}"


def score_texts(
    stage: InferenceStage,
    records: Iterable[TextToScore],
    *,
    top: int = 3,
    on_chunk: Callable[[int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """One result per record, in input order: language, sentiment, top categories."""
    version = scoring_version(stage)
    ids = stage.taxonomy.ids
    for chunk in _chunks(records, CHUNK):
        scored = stage.score_now([TextItem(r.text) for r in chunk])
        for record, s in zip(chunk, scored, strict=True):
            order = sorted(range(len(ids)), key=lambda i: (-float(s.probs[i]), ids[i]))[:top]
            yield {
                "id": record.id,
                "language": normalize_language(None, record.text),
                "sentiment": None
                if s.sentiment is None
                else {
                    label: round(float(p), 6) for label, p in zip(LABELS, s.sentiment, strict=True)
                },
                "categories": [
                    {"id": ids[i], "probability": round(float(s.probs[i]), 6)} for i in order
                ],
                "model_version": version,
            }
        if on_chunk is not None:
            on_chunk(len(chunk))


@dataclass(frozen=True)
class ProductReviews:
    product_id: str
    reviews: list[ReviewText]


def group_reviews(records: Iterable[ReviewToSummarize]) -> list[ProductReviews]:
    """Reviews by product, products in order of first appearance; a review id seen twice
    for one product is kept once (its last line wins)."""
    by_product: dict[str, dict[str, ReviewText]] = {}
    for r in records:
        by_product.setdefault(r.product_id, {})[r.review_id] = ReviewText(
            r.review_id, r.rating, r.text, r.language
        )
    return [ProductReviews(pid, list(reviews.values())) for pid, reviews in by_product.items()]


def summary_record(product_id: str, summary: Summary, version: str) -> dict[str, Any]:
    def points(ps: Iterable[Any]) -> list[dict[str, Any]]:
        return [{"text": p.text, "aspect": p.aspect, "review_ids": list(p.review_ids)} for p in ps]

    return {
        "product_id": product_id,
        "summary": summary.text,
        "pros": points(summary.pros),
        "cons": points(summary.cons),
        "language": summary.language,
        "review_ids": list(summary.review_ids),
        "sentiment": {k: summary.sentiment.get(k, 0) for k in LABELS},
        "model_version": version,
    }


def summarize_products(
    summarizer: Summarizer,
    products: list[ProductReviews],
    *,
    max_reviews: int | None = None,
    on_product: Callable[[int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """One summary record per product, from its last ``max_reviews`` reviews in file order
    when it has more (the worker keeps a product's most recent ones)."""
    for product in products:
        reviews = product.reviews
        if max_reviews is not None and len(reviews) > max_reviews:
            reviews = reviews[-max_reviews:]
        (summary,) = summarize_all(summarizer, [reviews])
        yield summary_record(product.product_id, summary, summarizer.version)
        if on_product is not None:
            on_product(1)


def write_jsonl(records: Iterable[dict[str, Any]], out: IO[bytes]) -> int:
    n = 0
    for record in records:
        out.write(orjson.dumps(record) + b"\n")
        n += 1
    return n
