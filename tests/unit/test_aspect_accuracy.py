"""Aspect accuracy of the summarizer with the default encoder, on the hand-labeled sentences
held out from all tuning (``memberstream/data/review_summaries/aspect_labels.jsonl``; the
thresholds were set on ``aspect_dev.jsonl``). The figures are recorded by
``python -m bench.summaries_copycat`` (0.90 English, 0.93 Chinese); the floors leave room
for an encoder or summarizer change to move them a little, not to break them."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from memberstream.config import Settings
from memberstream.domain.summaries.summarizer import ExtractiveSummarizer
from memberstream.ml.inference import InferenceStage

FLOORS = {"en": 0.8, "zh": 0.85}


def _labels(name: str) -> list[dict[str, str]]:
    raw = resources.files("memberstream.data").joinpath("review_summaries", name).read_text("utf-8")
    return [json.loads(line) for line in raw.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def summarizer(default_stage: InferenceStage) -> ExtractiveSummarizer:
    return ExtractiveSummarizer(default_stage.encoder, settings=Settings().summary.summarizer)


@pytest.mark.parametrize("language", sorted(FLOORS))
def test_held_out_aspects_clear_a_floor(summarizer: ExtractiveSummarizer, language: str) -> None:
    rows = [r for r in _labels("aspect_labels.jsonl") if r["language"] == language]
    assert len(rows) >= 30
    predicted = summarizer.aspects([r["text"] for r in rows])
    correct = sum(1 for r, p in zip(rows, predicted, strict=True) if r["aspect"] == p)
    assert correct / len(rows) >= FLOORS[language], list(zip(rows, predicted, strict=True))


def test_the_held_out_sentences_are_not_the_tuning_ones() -> None:
    held_out = {r["text"] for r in _labels("aspect_labels.jsonl")}
    tuning = {r["text"] for r in _labels("aspect_dev.jsonl")}
    assert held_out and tuning and not held_out & tuning
