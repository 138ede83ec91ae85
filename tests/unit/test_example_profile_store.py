"""The example consumer (examples/profile_store.py): latest profile per member, and a
taste ranking that never compares vectors of different encoders."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest

from examples.profile_store import ProfileStore, encoder_of

USE = "use-multilingual-v3@b8b05b01f086+zero-shot:default@860696e0+sentiment@fbeaffb54c03"
MINILM = "all-MiniLM-L6-v2@0123456789ab+zero-shot:default@860696e0"


def profile(member: str, as_of: str, taste: list[float] | None, version: str = USE) -> dict:
    f16 = None if taste is None else base64.b64encode(np.asarray(taste, "<f2").tobytes()).decode()
    return {"member_id": member, "as_of": as_of, "model_version": version, "taste_f16": f16}


def test_the_newest_profile_wins_whatever_the_reading_order(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "p.sqlite")
    assert store.upsert(profile("m1", "2025-01-02T00:00:00Z", [1, 0]))
    assert not store.upsert(profile("m1", "2025-01-01T00:00:00Z", [0, 1]))  # older: ignored
    assert store.get("m1")["as_of"] == "2025-01-02T00:00:00Z"  # type: ignore[index]
    assert store.load([profile("m1", "2025-01-03T00:00:00Z", [0, 1])]) == 1


def test_the_ranking_is_cosine_among_one_encoder_only(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "p.sqlite")
    t = "2025-01-01T00:00:00Z"
    store.load(
        [
            profile("me", t, [1.0, 0.0, 0.0]),
            profile("close", t, [0.9, 0.1, 0.0]),  # cosine 0.9939
            profile("far", t, [0.0, 1.0, 0.0]),  # cosine 0
            profile("opposite", t, [-1.0, 0.0, 0.0]),
            profile("other-model", t, [1.0, 0.0, 0.0], MINILM),  # identical, but not comparable
            profile("no-taste", t, None),
        ]
    )
    ranking = store.similar("me", k=3)
    assert [n.member_id for n in ranking.neighbours] == ["close", "far", "opposite"]
    assert ranking.neighbours[0].similarity == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-3)
    assert ranking.other_encoder == 1
    with pytest.raises(ValueError, match="no taste"):
        store.similar("no-taste")
    with pytest.raises(KeyError):
        store.similar("nobody")


def test_the_encoder_is_the_first_part_of_model_version() -> None:
    assert encoder_of(USE) == "use-multilingual-v3@b8b05b01f086"
    assert encoder_of(None) is None
