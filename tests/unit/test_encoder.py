"""The runtime text encoder on a toy model: tokenizing, pooling, dedupe, providers.

The toy "transformer" is one Gather from a random embedding table, so every
expected embedding can be computed by hand; it is built with onnx.helper and a
WordLevel tokenizer, without torch.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from memberstream.ml import encoder as enc_mod
from memberstream.ml.encoder import (
    CPU,
    CUDA,
    EncoderError,
    EncoderMetadata,
    TextEncoder,
    choose_providers,
    sha256_file,
)
from memberstream.ml.settings import EncoderSettings

WORDS = ["good", "bad", "phone", "case", "battery", "great", "screen", "cheap", "fast", "slow"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
VOCAB = {tok: i for i, tok in enumerate(SPECIAL + WORDS)}
DIM = 8


def _table(seed: int) -> np.ndarray:
    # Row 0 ([PAD]) is far from zero: if padding leaked into the mean, tests would see it.
    table = np.random.default_rng(seed).normal(size=(len(VOCAB), DIM)).astype(np.float32)
    table[0] = 10.0
    return table


def _toy_model(table: np.ndarray, producer: str) -> onnx.ModelProto:
    dims = ["batch", "sequence"]
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, dims)
        for n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, [*dims, table.shape[1]]
    )
    types = np.zeros((2, table.shape[1]), dtype=np.float32)  # token types add nothing
    nodes = [
        helper.make_node("Gather", ["words", "input_ids"], ["w"]),
        helper.make_node("Gather", ["types", "token_type_ids"], ["t"]),
        helper.make_node("Add", ["w", "t"], ["last_hidden_state"]),
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        inputs,
        [output],
        initializer=[
            numpy_helper.from_array(table, "words"),
            numpy_helper.from_array(types, "types"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name=producer
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _toy_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", VOCAB["[CLS]"]), ("[SEP]", VOCAB["[SEP]"])],
    )
    return tok


def make_encoder_dir(
    path: Path,
    *,
    fp32: bool = True,
    int8: bool = False,
    int8_agreement: dict[str, Any] | None = None,
    max_length: int = 64,
) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    table = _table(0)
    if fp32:
        onnx.save(_toy_model(table, "fp32"), str(path / "model.onnx"))
    if int8:  # a stand-in: same numbers, different bytes (so a different version)
        onnx.save(_toy_model(table, "int8"), str(path / "model.int8.onnx"))
    _toy_tokenizer().save(str(path / "tokenizer.json"))
    variants: dict[str, Any] = {}
    if fp32:
        variants["fp32"] = {"file": "model.onnx"}
    if int8:
        variants["int8"] = {"file": "model.int8.onnx"}
        if int8_agreement is not None:
            variants["int8"]["agreement"] = int8_agreement
    meta = {
        "model": "toy",
        "dim": DIM,
        "max_length": max_length,
        "pooling": "mean",
        "normalize": True,
        "inputs": ["input_ids", "attention_mask", "token_type_ids"],
        "variants": variants,
    }
    (path / "encoder.json").write_text(json.dumps(meta))
    return path


def expected(text: str, max_length: int = 64) -> np.ndarray:
    """What the encoder must return: the normalised mean of the tokens' rows."""
    ids = [VOCAB["[CLS]"]]
    ids += [VOCAB.get(w, VOCAB["[UNK]"]) for w in text.split()][: max_length - 2]
    ids += [VOCAB["[SEP]"]]
    v = _table(0)[ids].mean(axis=0)
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    return make_encoder_dir(tmp_path / "toy")


@pytest.fixture
def toy(toy_dir: Path) -> TextEncoder:
    return TextEncoder(toy_dir, providers="cpu")


class CountingSession:
    """Wraps an ONNX Runtime session and counts the texts (rows) it is given."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.rows = 0
        self.calls = 0

    def run(self, output_names: Any, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.rows += feed["input_ids"].shape[0]
        self.calls += 1
        return self.inner.run(output_names, feed)  # type: ignore[no-any-return]


def test_embeddings_are_mask_weighted_means_normalised(toy: TextEncoder) -> None:
    texts = ["good phone", "bad battery slow screen", "unknown words here", ""]
    out = toy.encode(texts)
    assert out.dtype == np.float32
    assert out.shape == (4, DIM)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    for row, text in zip(out, texts, strict=True):
        np.testing.assert_allclose(row, expected(text), atol=1e-6)


def test_padding_does_not_change_a_texts_embedding(toy: TextEncoder) -> None:
    alone = toy.encode(["good phone"])[0]
    batched = toy.encode(["good phone", "great cheap phone case fast battery bad screen"])[0]
    np.testing.assert_allclose(alone, batched, atol=1e-6)


def test_truncates_to_max_length_with_special_tokens(toy_dir: Path) -> None:
    short = TextEncoder(toy_dir, providers="cpu", max_length=4)
    long_text = "good phone bad battery slow"
    np.testing.assert_allclose(short.encode([long_text])[0], expected("good phone"), atol=1e-6)


def test_identical_texts_run_once_and_share_a_row(toy: TextEncoder) -> None:
    counter = CountingSession(toy._session)
    toy._session = counter
    texts = ["good phone", "bad case", "good phone", "good phone", "bad case", "fast"]
    out = toy.encode(texts)
    assert counter.rows == 3
    assert out.shape == (6, DIM)
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[0], out[3])
    np.testing.assert_array_equal(out[1], out[4])
    for row, text in zip(out, texts, strict=True):
        np.testing.assert_allclose(row, expected(text), atol=1e-6)


def test_batches_keep_input_order(toy_dir: Path) -> None:
    small = TextEncoder(toy_dir, providers="cpu", batch_size=2)
    counter = CountingSession(small._session)
    small._session = counter
    texts = ["good phone case battery", "bad", "fast screen", "cheap", "great slow phone"]
    out = small.encode(texts)
    assert counter.calls == 3
    for row, text in zip(out, texts, strict=True):
        np.testing.assert_allclose(row, expected(text), atol=1e-6)


def test_empty_input(toy: TextEncoder) -> None:
    assert toy.encode([]).shape == (0, DIM)
    with pytest.raises(TypeError):
        toy.encode("a single string")  # type: ignore[arg-type]


def test_version_names_model_and_file_hash(toy_dir: Path) -> None:
    a = TextEncoder(toy_dir, providers="cpu")
    b = TextEncoder(toy_dir, providers="cpu")
    assert a.version == b.version == f"toy@{sha256_file(toy_dir / 'model.onnx')[:12]}"


def test_loading_logs_one_info_line(toy_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="memberstream.ml.encoder")
    enc = TextEncoder(toy_dir)  # providers="auto"
    infos = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(infos) == 1
    line = infos[0].getMessage()
    assert line.startswith(f"encoder: providers={CPU}, variant=fp32, model={enc.version}")
    assert enc.providers == [CPU]


def test_cpu_only_here() -> None:
    assert CUDA not in ort.get_available_providers()
    assert choose_providers("auto") == [CPU]
    assert choose_providers("cpu") == [CPU]
    with pytest.raises(EncoderError, match="CUDAExecutionProvider"):
        choose_providers("cuda")


def test_cuda_listed_but_not_starting_falls_back_to_cpu(
    monkeypatch: pytest.MonkeyPatch, toy_dir: Path
) -> None:
    # onnxruntime-gpu on a machine without CUDA libraries lists the provider, but a
    # session silently falls back to the CPU: the probe must notice.
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    assert choose_providers("auto") == [CPU]
    assert choose_providers("auto", probe_model=toy_dir / "model.onnx") == [CPU]
    with pytest.raises(EncoderError, match="failed to start"):
        choose_providers("cuda")


def test_cuda_chosen_when_the_probe_starts_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(enc_mod, "_cuda_works", lambda probe: True)
    assert choose_providers("auto") == [CUDA, CPU]
    assert choose_providers("cpu") == [CPU]


def test_probe_model_is_valid_onnx() -> None:
    model = onnx.load_from_string(enc_mod._probe_model())
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(enc_mod._probe_model(), providers=[CPU])
    assert sess.run(None, {"x": np.ones(1, np.float32)})[0].tolist() == [1.0]


GOOD = {"min": 0.985, "mean": 0.992, "n": 1200}


@pytest.mark.parametrize(
    ("agreement", "requested", "variant"),
    [
        (GOOD, "auto", "int8"),
        ({"min": 0.961, "mean": 0.9897, "n": 1200}, "auto", "fp32"),  # min too low
        ({"min": 0.985, "mean": 0.985, "n": 1200}, "auto", "fp32"),  # mean too low
        (None, "auto", "fp32"),  # not measured
        (None, "int8", "int8"),
        (GOOD, "fp32", "fp32"),
    ],
)
def test_variant_choice(
    tmp_path: Path, agreement: dict[str, Any] | None, requested: str, variant: str
) -> None:
    d = make_encoder_dir(tmp_path / "m", int8=True, int8_agreement=agreement)
    enc = TextEncoder(d, variant=requested, providers="cpu")
    assert enc.variant == variant
    assert enc.model_path.name == {"fp32": "model.onnx", "int8": "model.int8.onnx"}[variant]
    assert enc.version == f"toy@{sha256_file(enc.model_path)[:12]}"
    np.testing.assert_allclose(enc.encode(["good phone"])[0], expected("good phone"), atol=1e-6)


def test_fp32_on_gpu_even_when_int8_agrees(tmp_path: Path) -> None:
    d = make_encoder_dir(tmp_path / "m", int8=True, int8_agreement=GOOD)
    meta = EncoderMetadata.read(d)
    assert enc_mod.resolve_variant("auto", meta, d, on_gpu=True) == "fp32"
    assert enc_mod.resolve_variant("auto", meta, d, on_gpu=False) == "int8"


def test_only_int8_present_is_used(tmp_path: Path) -> None:
    d = make_encoder_dir(tmp_path / "m", fp32=False, int8=True)
    assert TextEncoder(d, providers="cpu").variant == "int8"
    with pytest.raises(EncoderError, match=r"model\.onnx is missing"):
        TextEncoder(d, variant="fp32", providers="cpu")


def test_missing_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="does not exist"):
        TextEncoder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match=r"encoder\.json"):
        TextEncoder(tmp_path / "empty")
    d = make_encoder_dir(tmp_path / "m")
    (d / "tokenizer.json").unlink()
    with pytest.raises(EncoderError, match=r"tokenizer\.json"):
        TextEncoder(d, providers="cpu")


def test_settings(toy_dir: Path) -> None:
    default = EncoderSettings()
    assert default.resolved_model_dir() == enc_mod.DEFAULT_MODEL_DIR
    assert default.max_length == 64
    assert default.batch_size == 64
    assert (default.variant, default.providers, default.threads) == ("auto", "auto", 0)
    settings = EncoderSettings(model_dir=toy_dir, providers="cpu", threads=1, batch_size=2)
    enc = TextEncoder.from_settings(settings)
    assert (enc.model_dir, enc.batch_size, enc.max_length) == (toy_dir, 2, 64)
    with pytest.raises(ValueError):
        EncoderSettings(variant="fp16")  # type: ignore[arg-type]


def test_runtime_needs_neither_torch_nor_transformers(toy_dir: Path) -> None:
    code = (
        "import sys\n"
        "from memberstream.ml.encoder import TextEncoder\n"
        "enc = TextEncoder(sys.argv[1], providers='auto')\n"
        "assert enc.encode(['good phone']).shape == (1, 8)\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(toy_dir)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
