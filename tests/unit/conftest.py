"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from memberstream.config import Settings
from memberstream.ml.inference import InferenceStage, stage_from_settings
from memberstream.ml.settings import DEFAULT_MODEL_DIR


@pytest.fixture(scope="session")
def default_stage() -> InferenceStage:
    """The worker's inference stage with the default models (``make models``): the
    multilingual encoder and the sentiment head trained on real reviews. Loaded once."""
    if not (DEFAULT_MODEL_DIR / "sentiment_head.npz").is_file():
        pytest.fail(f"{DEFAULT_MODEL_DIR} has no sentiment head: run `make models` first")
    built = stage_from_settings(Settings())
    assert built is not None and built.sentiment is not None
    return built
