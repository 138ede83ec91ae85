"""The inference stage: one model call per batch, off the event loop, repeats done once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from memberstream.domain.taxonomy import Taxonomy
from memberstream.ml.category_heads import HEAD_FILE, LinearHead
from memberstream.ml.inference import InferenceStage, ProductCache, Scored, TextItem
from memberstream.ml.sentiment import SentimentHead

from .text_doubles import DIM, WordHashEncoder


@pytest.fixture
def taxonomy() -> Taxonomy:
    return Taxonomy.load()


def test_identical_texts_in_a_batch_are_encoded_once(taxonomy: Taxonomy) -> None:
    enc = WordHashEncoder()
    stage = InferenceStage(enc, taxonomy)
    items = [TextItem("hiking boots"), TextItem("tent"), TextItem("hiking boots")]
    scored = stage.score_now(items)
    assert enc.calls[-1] == ["hiking boots", "tent"]
    assert scored[0] is scored[2]
    assert scored[0].embedding.shape == (DIM,)
    assert scored[0].probs.shape == (len(taxonomy),)
    assert scored[0].probs.sum() == pytest.approx(1.0)


def test_product_titles_are_cached_by_product_id(taxonomy: Taxonomy) -> None:
    enc = WordHashEncoder()
    stage = InferenceStage(enc, taxonomy, cache_size=10)
    first = stage.score_now([TextItem("Trail tent 2p", "p1")])
    assert enc.texts_encoded == 1
    again = stage.score_now([TextItem("Trail tent 2p", "p1"), TextItem("Trail tent 2p", "p1")])
    assert enc.texts_encoded == 1  # no model call at all
    assert again[0] is first[0] and again[1] is first[0]
    assert (stage.cache.hits, stage.cache.misses) == (2, 1)
    renamed = stage.score_now([TextItem("Trail tent 3p", "p1")])
    assert enc.texts_encoded == 2  # a renamed product is scored afresh
    assert not np.array_equal(renamed[0].embedding, first[0].embedding)


def test_cache_is_bounded_and_drops_the_least_recently_used() -> None:
    cache = ProductCache(2)
    s = Scored(np.zeros(2, np.float32), np.ones(2) / 2)
    cache.put("a", "A", s)
    cache.put("b", "B", s)
    assert cache.get("a", "A") is s  # a is now the most recent
    cache.put("c", "C", s)
    assert len(cache) == 2
    assert cache.get("b", "B") is None
    assert cache.get("a", "A") is s and cache.get("c", "C") is s
    off = ProductCache(0)
    off.put("a", "A", s)
    assert len(off) == 0


def test_results_do_not_depend_on_the_batch(taxonomy: Taxonomy) -> None:
    stage = InferenceStage(WordHashEncoder(), taxonomy, cache_size=0)
    alone = stage.score_now([TextItem("wireless earbuds")])[0]
    mixed = stage.score_now([TextItem("novel"), TextItem("wireless earbuds")])[1]
    assert np.array_equal(alone.embedding, mixed.embedding)
    assert np.array_equal(alone.probs, mixed.probs)


async def test_the_model_runs_off_the_event_loop(taxonomy: Taxonomy) -> None:
    """While a slow model computes, other coroutines (consumer fetches, commits,
    heartbeats in the worker) keep running."""
    enc = WordHashEncoder()
    stage = InferenceStage(enc, taxonomy)
    enc.delay_s = 0.4
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        start = time.monotonic()
        scored = await stage.score([TextItem("garden hose"), TextItem("rake")])
        elapsed = time.monotonic() - start
    finally:
        task.cancel()
    assert len(scored) == 2 and elapsed >= 0.4
    assert ticks >= 15, f"the event loop was blocked: {ticks} ticks in {elapsed:.2f}s"
    stage.close()


def test_model_version_names_encoder_and_scorer(taxonomy: Taxonomy, tmp_path: Path) -> None:
    zero = InferenceStage.load(WordHashEncoder(), taxonomy, tmp_path)
    assert zero.model_version.startswith("word-hash@test+zero-shot:")
    rng = np.random.default_rng(0)
    head = LinearHead(rng.normal(size=(len(taxonomy), DIM)), np.zeros(len(taxonomy)), taxonomy.ids)
    head.save(tmp_path / HEAD_FILE)
    tuned = InferenceStage.load(WordHashEncoder(), taxonomy, tmp_path)
    assert tuned.model_version.startswith("word-hash@test+head@")
    item = [TextItem("rose bush")]
    emb = tuned.score_now(item)[0].embedding
    np.testing.assert_allclose(tuned.score_now(item)[0].probs, head.predict_proba(emb))


def _sentiment(dim: int, positive_bias: float, version: str) -> SentimentHead:
    bias = np.zeros(3)
    bias[2] = positive_bias
    return SentimentHead(np.zeros((dim, 3)), bias, version)


def test_a_new_head_never_lands_inside_a_batch(taxonomy: Taxonomy) -> None:
    """offer() while two batches are in flight waits until both have finished; the
    listeners then see the new versions, once."""
    stage = InferenceStage(WordHashEncoder(), taxonomy, sentiment=_sentiment(DIM, 0.0, "s@old"))
    seen: list[str] = []
    stage.on_swap(lambda s: seen.append(s.model_version))
    stage.batch_started()
    stage.batch_started()  # the other agent's batch
    stage.offer("sentiment", _sentiment(DIM, 2.0, "s@new"), "s@new")
    assert stage.sentiment is not None and stage.sentiment.version == "s@old"
    mid = stage.score_now([TextItem("a fine kettle")])[0].sentiment
    stage.batch_finished()
    assert stage.sentiment.version == "s@old"  # one batch is still in flight
    stage.batch_finished()
    assert stage.sentiment.version == "s@new"
    assert stage.model_version.endswith("+s@new") and seen == [stage.model_version]
    after = stage.score_now([TextItem("a fine kettle")])[0].sentiment
    assert mid is not None and after is not None
    assert after[2] > mid[2]  # the new head scores, not a cached score of the old one
    assert [(r.tasks, r.before.endswith("+s@old")) for r in stage.swaps] == [(("sentiment",), True)]


def test_an_offer_between_batches_swaps_at_once_and_unknown_tasks_are_refused(
    taxonomy: Taxonomy,
) -> None:
    stage = InferenceStage(WordHashEncoder(), taxonomy)
    head = LinearHead(np.zeros((len(taxonomy), DIM)), np.zeros(len(taxonomy)), taxonomy.ids)
    stage.offer("interest", head, "interest@x")
    assert stage.head is head and stage.head_version == "interest@x"
    with pytest.raises(ValueError, match="no hot swap"):
        stage.offer("summaries", object(), "s@1")
