"""The human-written reference set that review summaries are evaluated against.

The packaged file ``memberstream/data/review_summaries/references.jsonl`` holds 24
products (14 English, 10 Chinese), each with 8-14 invented but realistic shopper
reviews and two reference summaries written independently by the project; its
README beside it says how it was written and how to use it. Each line is one JSON
object::

    {"product_id": "ref-en-01", "language": "en", "title": "...",
     "reviews": [{"review_id": "ref-en-01-r01", "rating": 5, "text": "..."}, ...],
     "references": ["...", "..."]}

Generated summaries are scored with :func:`memberstream.domain.summaries.rouge.rouge_all`
against ``product.references``.

Example:
    >>> products = load_reference_set()
    >>> len(products), products[0].product_id, products[0].language
    (24, 'ref-en-01', 'en')
    >>> len(products[0].references)
    2
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_REFERENCE_FILE",
    "LANGUAGES",
    "ReferenceProduct",
    "ReferenceReview",
    "ReferenceSetError",
    "load_reference_set",
    "parse_reference_lines",
]

DEFAULT_REFERENCE_FILE = "review_summaries/references.jsonl"
"""The packaged file, relative to the ``memberstream.data`` package."""
LANGUAGES = frozenset({"en", "zh"})
_PRODUCT_KEYS = frozenset({"product_id", "language", "title", "reviews", "references"})
_REVIEW_KEYS = frozenset({"review_id", "rating", "text"})


class ReferenceSetError(ValueError):
    """A reference-set file that cannot be read or has a malformed line."""


@dataclass(frozen=True, slots=True)
class ReferenceReview:
    """One review of a reference product: a 1-5 star rating and its text."""

    review_id: str
    rating: int
    text: str


@dataclass(frozen=True, slots=True)
class ReferenceProduct:
    """A product with its reviews and the human-written reference summaries of them."""

    product_id: str
    language: str
    title: str
    reviews: tuple[ReferenceReview, ...]
    references: tuple[str, ...]

    @property
    def review_texts(self) -> list[str]:
        """The reviews' texts, in file order (what a summarizer is given)."""
        return [review.text for review in self.reviews]


def _nonempty_str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _keys(obj: Any, expected: frozenset[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(obj).__name__}")
    missing, extra = expected - obj.keys(), obj.keys() - expected
    if missing:
        raise ValueError(f"{what} is missing {sorted(missing)}")
    if extra:
        raise ValueError(f"{what} has unknown keys {sorted(extra)}")
    return obj


def _parse_review(obj: Any, index: int) -> ReferenceReview:
    what = f"reviews[{index}]"
    obj = _keys(obj, _REVIEW_KEYS, what)
    rating = obj["rating"]
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ValueError(f"{what}.rating must be an integer from 1 to 5, got {rating!r}")
    return ReferenceReview(
        review_id=_nonempty_str(obj["review_id"], f"{what}.review_id"),
        rating=rating,
        text=_nonempty_str(obj["text"], f"{what}.text"),
    )


def _parse_product(obj: Any) -> ReferenceProduct:
    obj = _keys(obj, _PRODUCT_KEYS, "the product")
    product_id = _nonempty_str(obj["product_id"], "product_id")
    language = obj["language"]
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {sorted(LANGUAGES)}, got {language!r}")
    reviews_raw, references_raw = obj["reviews"], obj["references"]
    if not isinstance(reviews_raw, list) or not reviews_raw:
        raise ValueError("reviews must be a non-empty list")
    if not isinstance(references_raw, list) or not references_raw:
        raise ValueError("references must be a non-empty list")
    reviews = tuple(_parse_review(r, i) for i, r in enumerate(reviews_raw))
    review_ids = [r.review_id for r in reviews]
    if len(set(review_ids)) != len(review_ids):
        raise ValueError("review_id values repeat within the product")
    return ReferenceProduct(
        product_id=product_id,
        language=language,
        title=_nonempty_str(obj["title"], "title"),
        reviews=reviews,
        references=tuple(
            _nonempty_str(ref, f"references[{i}]") for i, ref in enumerate(references_raw)
        ),
    )


def parse_reference_lines(text: str, source: str = "<reference set>") -> list[ReferenceProduct]:
    """Parse JSON Lines text into products; blank lines are skipped.

    Raises :class:`ReferenceSetError` naming ``source`` and the 1-based line number of
    the first bad line, or of a product id or review id seen on an earlier line.
    """
    products: list[ReferenceProduct] = []
    seen_products: dict[str, int] = {}
    seen_reviews: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            product = _parse_product(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ReferenceSetError(f"{source}, line {number}: not valid JSON: {exc}") from None
        except ValueError as exc:
            raise ReferenceSetError(f"{source}, line {number}: {exc}") from None
        if product.product_id in seen_products:
            raise ReferenceSetError(
                f"{source}, line {number}: product_id {product.product_id!r} "
                f"already used on line {seen_products[product.product_id]}"
            )
        seen_products[product.product_id] = number
        for review in product.reviews:
            if review.review_id in seen_reviews:
                raise ReferenceSetError(
                    f"{source}, line {number}: review_id {review.review_id!r} "
                    f"already used on line {seen_reviews[review.review_id]}"
                )
            seen_reviews[review.review_id] = number
        products.append(product)
    if not products:
        raise ReferenceSetError(f"{source}: no products")
    return products


def load_reference_set(path: str | Path | None = None) -> list[ReferenceProduct]:
    """Load a reference set (JSON Lines); ``None`` loads the packaged one, in file order."""
    if path is None:
        ref = resources.files("memberstream.data").joinpath(DEFAULT_REFERENCE_FILE)
        return parse_reference_lines(
            ref.read_text(encoding="utf-8"), source=f"<packaged {DEFAULT_REFERENCE_FILE}>"
        )
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReferenceSetError(f"reference set {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReferenceSetError(f"reference set {path}: cannot read it: {exc}") from None
    return parse_reference_lines(text, source=str(path))
