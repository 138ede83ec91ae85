"""The review summarizer the product agent runs, built from the inference stage.

Summaries reuse the stage's encoder and sentiment head, and run on the stage's
thread (one model call at a time, the event loop stays free). A product's
summary is redone every few reviews from its most recent ones, so most
sentences were embedded before: a bounded cache keeps sentence embeddings
(exact, since an embedding is a pure function of its text).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from memberstream.config import Settings
from memberstream.domain.summaries.summarizer import ExtractiveSummarizer, ReviewText, Summary
from memberstream.ml.inference import Encoder, InferenceStage

log = logging.getLogger(__name__)


class Summarizer(Protocol):
    @property
    def version(self) -> str: ...

    def summarize(self, reviews: Sequence[ReviewText]) -> Summary: ...


class CachedEncoder:
    """An encoder with a least-recently-used cache of per-text embeddings."""

    def __init__(self, encoder: Encoder, size: int = 20_000) -> None:
        self.encoder = encoder
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0

    @property
    def version(self) -> str:
        return self.encoder.version

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            for text, row in zip(todo, np.asarray(self.encoder.encode(todo)), strict=True):
                self._cache[text] = row
        rows = []
        for text in texts:
            self._cache.move_to_end(text)
            rows.append(self._cache[text])
        self.hits += len(texts) - len(todo)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def build_summarizer(settings: Settings, stage: InferenceStage | None) -> Summarizer | None:
    """The configured summarizer, or None (summaries off, or no text model)."""
    conf = settings.summary
    if not conf.enabled:
        return None
    if stage is None:
        log.warning("summaries: off, they need the text model (inference.enabled)")
        return None
    sentiment = None
    if stage.sentiment is not None:

        def sentiment(embeddings: np.ndarray, texts: Sequence[str]) -> np.ndarray:
            assert stage.sentiment is not None
            return stage.sentiment.predict_proba(embeddings, texts)  # the live head: swaps

    extractive = ExtractiveSummarizer(CachedEncoder(stage.encoder), sentiment, conf.summarizer)
    if conf.abstractive_model_dir is None:
        log.info("summaries: %s", extractive.version)
        return extractive
    from memberstream.ml.abstractive import Seq2SeqSummarizer

    abstractive = Seq2SeqSummarizer(conf.abstractive_model_dir, extractive=extractive)
    log.info("summaries: %s", abstractive.version)
    return abstractive


def summary_version(summarizer: Summarizer, stage: InferenceStage | None) -> str:
    """What a summary names as its maker: the summarizer (with its encoder) and the
    sentiment head whose split it reports."""
    if stage is None or stage.sentiment is None:
        return summarizer.version
    return f"{summarizer.version}+{stage.sentiment.version}"


def summarize_all(summarizer: Summarizer, inputs: Sequence[list[ReviewText]]) -> list[Summary]:
    """Several products' summaries in one call (run on the stage's thread)."""
    return [summarizer.summarize(reviews) for reviews in inputs]
