"""The inference stage: item texts of a micro-batch in, embeddings and category probabilities out.

One model call per micro-batch, run on a worker thread so the event loop keeps
consuming, committing and heartbeating while it computes (ONNX Runtime releases
the GIL). The agent awaits the call before it takes the next batch, so a slow
model slows consumption instead of growing a queue: at most one batch is in the
model, and Faust pauses fetching once its stream buffer
(``stream_buffer_maxsize``) is full.

Work that repeats is done once: identical texts in a batch share one row, and
product-title results are kept in a bounded LRU cache keyed by product id (and
checked against the title, so a renamed product is scored afresh).

An embedding here is a pure function of the text: on the CPU the fp32 encoder
gives a text the same bits alone or in any batch, and the int8 encoder runs one
text per call (dynamic quantization scales activations over the whole input),
which is what makes a replay reproduce interest state exactly. Category
probabilities are computed row by row for the same reason. The cache only
memoises that function, so a cold cache after a restart changes nothing but
speed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from memberstream.domain.anomaly.order_features import OrderVector
from memberstream.domain.anomaly.settings import AnomalySettings
from memberstream.domain.taxonomy import Taxonomy
from memberstream.domain.vectors import Encoder
from memberstream.ml.category_heads import HEAD_FILE, CategoryHead, ZeroShotHead, load_head
from memberstream.ml.encoder import TextEncoder
from memberstream.ml.learned_scorer import SCORER_FILE, LearnedScore, LearnedScorer
from memberstream.ml.sentiment import SentimentHead, load_sentiment_head
from memberstream.ml.settings import InferenceSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class StageSettings(Protocol):
    """The settings sections the stage is built from (:class:`memberstream.config.Settings`
    has them; the ML runtime sits below the settings assembly and takes no more)."""

    inference: InferenceSettings
    anomaly: AnomalySettings


@dataclass(frozen=True)
class TextItem:
    """A text to score; ``product_id`` makes it a cacheable product title."""

    text: str
    product_id: str | None = None


@dataclass(frozen=True, eq=False)
class Scored:
    embedding: np.ndarray
    """float32 (dim,), unit length."""
    probs: np.ndarray
    """float64 (categories,), taxonomy order, sums to 1."""
    sentiment: np.ndarray | None = None
    """float64 (3,): negative, neutral, positive; None without a sentiment head."""


class ProductCache:
    """Least-recently-used product id → (title, scores); ``size`` 0 disables it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[str, Scored]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, product_id: str, title: str) -> Scored | None:
        entry = self._items.get(product_id)
        if entry is None or entry[0] != title:
            self.misses += 1
            return None
        self._items.move_to_end(product_id)
        self.hits += 1
        return entry[1]

    def put(self, product_id: str, title: str, scored: Scored) -> None:
        if self.size <= 0:
            return
        self._items[product_id] = (title, scored)
        self._items.move_to_end(product_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class SwapRecord:
    tasks: tuple[str, ...]
    before: str
    after: str
    after_batches: int
    """Batches the stage had scored when the swap took effect."""


@dataclass
class StageStats:
    batches: int = 0
    items: int = 0
    texts_encoded: int = 0
    model_seconds: float = 0.0


def head_version(head: CategoryHead, taxonomy: Taxonomy, head_file: Path | None) -> str:
    """A short name for the category scorer: the fine-tuned head's file hash, or zero-shot
    with a hash of the taxonomy descriptions and the temperature it was built with."""
    if not isinstance(head, ZeroShotHead):
        if head_file is None:
            return "head@in-memory"
        return f"head@{hashlib.sha256(head_file.read_bytes()).hexdigest()[:12]}"
    text = "\x1f".join([*taxonomy.descriptions(), f"t={head.temperature!r}"])
    return f"zero-shot:{taxonomy.name}@{hashlib.sha256(text.encode()).hexdigest()[:8]}"


class InferenceStage:
    """Scores item texts in batches, off the event loop, with a product-title cache."""

    def __init__(
        self,
        encoder: Encoder,
        taxonomy: Taxonomy,
        *,
        head: CategoryHead | None = None,
        head_file: Path | None = None,
        temperature: float = 0.05,
        cache_size: int = 50_000,
        scorer: LearnedScorer | None = None,
        sentiment: SentimentHead | None = None,
    ) -> None:
        self.encoder = encoder
        self.sentiment = sentiment
        """The review-sentiment head, when the model directory has one."""
        self.scorer = scorer
        """The learned anomaly scorer, when one is trained and switched on."""
        self.taxonomy = taxonomy
        if head is None:
            categories = encoder.encode(taxonomy.descriptions())
            head = ZeroShotHead(np.asarray(categories, np.float64), temperature, taxonomy.ids)
        self.head = head
        self.head_version = head_version(head, taxonomy, head_file)
        self.cache = ProductCache(cache_size)
        self.stats = StageStats()
        self.on_compute: Callable[[float, int], None] | None = None
        """Told (seconds, texts) after each model call (the worker's metrics)."""
        self._pending: dict[str, tuple[Any, str]] = {}
        self._in_flight = 0
        self._listeners: list[Callable[[InferenceStage], None]] = []
        self.swaps: list[SwapRecord] = []
        # One thread: one model call at a time; ONNX Runtime parallelises inside the call.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    @classmethod
    def load(
        cls,
        encoder: Encoder,
        taxonomy: Taxonomy,
        model_dir: Path | None,
        *,
        temperature: float = 0.05,
        cache_size: int = 50_000,
        learned_score: bool = True,
    ) -> InferenceStage:
        """The stage with the fine-tuned head in ``model_dir`` when there is one, else
        zero-shot; and the learned anomaly scorer when ``model_dir`` holds one."""
        head = load_head(model_dir, taxonomy) if model_dir is not None else None
        head_file = Path(model_dir) / HEAD_FILE if head is not None and model_dir else None
        sentiment = None if model_dir is None else load_sentiment_head(Path(model_dir))
        scorer = None
        scorer_file = None if model_dir is None else Path(model_dir) / SCORER_FILE
        if learned_score and scorer_file is not None and scorer_file.is_file():
            scorer = LearnedScorer.load(scorer_file)
        stage = cls(
            encoder,
            taxonomy,
            head=head,
            head_file=head_file,
            temperature=temperature,
            cache_size=cache_size,
            scorer=scorer,
            sentiment=sentiment,
        )
        log.info(
            "inference: model_version=%s, categories=%d (%s), product cache=%d, "
            "anomaly scorer=%s, sentiment=%s",
            stage.model_version,
            len(taxonomy),
            "fine-tuned head" if head is not None else "zero-shot",
            cache_size,
            "off" if scorer is None else scorer.version,
            "off" if sentiment is None else sentiment.version,
        )
        if scorer is None and learned_score:
            log.warning(
                "inference: no %s in %s; the learned anomaly score is off "
                "(train one with `memberstream models train-anomaly`)",
                SCORER_FILE,
                model_dir,
            )
        return stage

    @property
    def model_version(self) -> str:
        """The text models behind a score: encoder, category head, sentiment head."""
        version = f"{self.encoder.version}+{self.head_version}"
        if self.sentiment is not None:
            version += f"+{self.sentiment.version}"
        return version

    # -- hot swap: new head versions take over between batches, never inside one --

    def on_swap(self, listener: Callable[[InferenceStage], None]) -> None:
        """Call ``listener(stage)`` after each swap (processors re-read the versions)."""
        self._listeners.append(listener)

    def offer(self, task: str, model: Any, version: str) -> None:
        """Queue ``model`` (a loaded head, or for "anomaly" a learned scorer) for ``task``
        ("sentiment", "interest" or "anomaly"); it replaces the current one as soon as no
        batch is in flight."""
        if task not in ("sentiment", "interest", "anomaly"):
            raise ValueError(f"no hot swap for task {task!r}")
        self._pending[task] = (model, version)
        self._maybe_swap()

    def batch_started(self) -> None:
        self._maybe_swap()
        self._in_flight += 1

    def batch_finished(self) -> None:
        self._in_flight -= 1
        self._maybe_swap()

    def _maybe_swap(self) -> None:
        if not self._pending or self._in_flight:
            return
        pending, self._pending = self._pending, {}
        before = self.model_version
        for task, (model, version) in pending.items():
            if task == "sentiment":
                self.sentiment = model
            elif task == "anomaly":
                self.scorer = model
            else:
                self.head = model
                self.head_version = version
        if set(pending) - {"anomaly"}:  # cached text scores came from the old heads
            self.cache = ProductCache(self.cache.size)
        after = self.model_version
        self.swaps.append(SwapRecord(tuple(pending), before, after, self.stats.batches))
        log.info(
            "inference: swapped %s between batches: %s -> %s", ", ".join(pending), before, after
        )
        for listener in self._listeners:
            listener(self)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _plan(self, items: Sequence[TextItem]) -> tuple[list[Scored | None], list[str]]:
        """Cached results in place, and the distinct texts still to compute."""
        out: list[Scored | None] = []
        todo: dict[str, None] = {}
        for item in items:
            hit = None
            if item.product_id is not None:
                hit = self.cache.get(item.product_id, item.text)
            out.append(hit)
            if hit is None:
                todo.setdefault(item.text)
        return out, list(todo)

    def _compute(self, texts: list[str]) -> dict[str, Scored]:
        if not texts:
            return {}
        start = time.perf_counter()
        emb = np.asarray(self.encoder.encode(texts), dtype=np.float32)
        probs = np.asarray(self.head.predict_proba(emb), dtype=np.float64)
        sentiment = None if self.sentiment is None else self.sentiment.predict_proba(emb, texts)
        seconds = time.perf_counter() - start
        self.stats.model_seconds += seconds
        self.stats.texts_encoded += len(texts)
        if self.on_compute is not None:
            self.on_compute(seconds, len(texts))
        return {
            t: Scored(emb[i], probs[i], None if sentiment is None else sentiment[i])
            for i, t in enumerate(texts)
        }

    def _fill(
        self, items: Sequence[TextItem], out: list[Scored | None], computed: dict[str, Scored]
    ) -> list[Scored]:
        for i, item in enumerate(items):
            if out[i] is None:
                scored = computed[item.text]
                out[i] = scored
                if item.product_id is not None:
                    self.cache.put(item.product_id, item.text, scored)
        self.stats.batches += 1
        self.stats.items += len(items)
        return out  # type: ignore[return-value]

    def score_now(self, items: Sequence[TextItem]) -> list[Scored]:
        """Score ``items`` on the calling thread (replays, tests, the reference)."""
        out, texts = self._plan(items)
        return self._fill(items, out, self._compute(texts))

    async def score(self, items: Sequence[TextItem]) -> list[Scored]:
        """Score ``items`` with the model on the stage's thread; the event loop stays free."""
        out, texts = self._plan(items)
        computed: dict[str, Scored] = {}
        if texts:
            loop = asyncio.get_running_loop()
            computed = await loop.run_in_executor(self._executor, self._compute, texts)
        return self._fill(items, out, computed)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run other model work (e.g. summarizing a product's reviews) on the stage's
        thread: one model call at a time, the event loop stays free."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def score_orders(self, vectors: Sequence[OrderVector]) -> list[LearnedScore]:
        """The learned anomaly scores of a batch's orders, in one call on the stage's thread."""
        if self.scorer is None:
            raise RuntimeError("no learned anomaly scorer is loaded")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.scorer.score, list(vectors))


def load_taxonomy(settings: StageSettings) -> Taxonomy:
    return Taxonomy.load(settings.inference.taxonomy)


def stage_from_settings(
    settings: StageSettings, taxonomy: Taxonomy | None = None
) -> InferenceStage | None:
    """The configured stage, or None when ``inference.enabled`` is false.

    Raises :class:`~memberstream.ml.encoder.EncoderError` when the model
    directory is missing or unusable.
    """
    conf = settings.inference
    if not conf.enabled:
        log.warning("inference: disabled; interest comes from catalog categories alone")
        return None
    encoder = TextEncoder.from_settings(conf.encoder)
    return InferenceStage.load(
        encoder,
        taxonomy if taxonomy is not None else load_taxonomy(settings),
        conf.encoder.resolved_model_dir(),
        temperature=conf.zero_shot_temperature,
        cache_size=conf.product_cache_size,
        learned_score=settings.anomaly.enabled and settings.anomaly.learned.enabled,
    )
