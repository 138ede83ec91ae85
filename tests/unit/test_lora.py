"""LoRA fine-tuning of all-MiniLM-L6-v2 on a tiny, easily separable toy set.

One short fine-tune (40 texts, max_length 16) is shared by most tests: only the
adapters and the head train, the base weights are untouched, the adapter is small,
merging the adapters changes no output, and the loss falls. Needs the ``train``
extra plus peft; skipped when torch or peft is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from memberstream.ml.encoder import TextEncoder, l2_normalize  # noqa: E402
from memberstream.ml.onnx_export import default_source_dir  # noqa: E402
from memberstream.ml.sentiment import NEGATIVE, NEUTRAL, POSITIVE  # noqa: E402
from memberstream.ml.training.lora import (  # noqa: E402
    CHECKPOINT_SUBDIR,
    HEAD_FILE,
    ONNX_SUBDIR,
    TARGET_MODULES,
    LoraResult,
    merge_and_export,
    train_lora,
    validation_split,
)

RANK = 4
GOOD = ["great phone", "great battery, love it", "a great case", "great value", "great screen"]
BAD = ["awful phone", "awful battery, hate it", "an awful case", "awful value", "awful screen"]


def _toy() -> tuple[list[str], list[int]]:
    texts, labels = [], []
    for i in range(4):
        for good, bad in zip(GOOD, BAD, strict=True):
            texts += [f"{good} {i}", f"{bad} {i}"]
            labels += [POSITIVE, NEGATIVE]
    return texts, labels


def _train(**kwargs: Any) -> LoraResult:
    texts, labels = _toy()
    options: dict[str, Any] = dict(
        rank=RANK, alpha=2 * RANK, epochs=3, batch_size=8, max_length=16, lr=2e-3, seed=0
    )
    return train_lora(texts, labels, progress=False, threads=2, **(options | kwargs))


@pytest.fixture(scope="module")
def result() -> LoraResult:
    return _train()


def test_only_adapters_train_and_base_weights_are_unchanged(result: LoraResult) -> None:
    from transformers import AutoModel

    trainable = [n for n, p in result.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable} == set(TARGET_MODULES)
    assert result.trainable_params == result.adapter_params + result.head_params

    base = dict(AutoModel.from_pretrained(str(default_source_dir())).named_parameters())
    compared = 0
    for name, p in result.model.named_parameters():
        if "lora_" in name:
            continue
        plain = name.removeprefix("base_model.model.").replace(".base_layer.", ".")
        assert torch.equal(p, base[plain]), name
        compared += 1
    assert compared == len(base)
    # lora_B starts at zero: non-zero means the adapters did learn.
    lora_b = [p for n, p in result.model.named_parameters() if "lora_B" in n]
    assert lora_b and all(bool(p.abs().sum() > 0) for p in lora_b)


def test_adapter_is_small(result: LoraResult) -> None:
    layers, hidden = 6, 384
    assert result.adapter_params == layers * len(TARGET_MODULES) * RANK * 2 * hidden
    assert result.head_params == hidden * 2 + 2
    model_bytes = (default_source_dir() / "model.safetensors").stat().st_size
    assert 0 < result.adapter_bytes < 0.01 * model_bytes
    assert result.adapter_bytes <= result.adapter_dir_bytes
    assert result.trainable_params < 0.01 * result.total_params


def test_merged_model_matches_the_peft_model(result: LoraResult) -> None:
    texts = ["great phone, awful case", "the battery is great", "awful", "a b c d e f g h i j"]
    peft_out = result.pooled(texts)
    merged_out = result.pooled(texts, merged=True)
    assert not any("lora_" in n for n, _ in result.merged().named_parameters())
    assert torch.allclose(peft_out, merged_out, atol=1e-4, rtol=1e-4)
    # Merging worked on a copy: the peft model still has its adapters.
    assert any("lora_" in n for n, _ in result.model.named_parameters())


def test_loss_falls_and_the_toy_set_separates(result: LoraResult) -> None:
    texts, labels = _toy()
    n_train = validation_split(len(texts))
    assert (result.n_train, result.n_val) == (n_train, len(texts) - n_train)
    assert len(result.train_losses) == 3 * -(-n_train // 8)
    assert result.epoch_train_losses[-1] < result.epoch_train_losses[0]
    assert result.val_losses[result.best_epoch - 1] == min(result.val_losses)
    assert result.val_losses[result.best_epoch - 1] < result.val_losses[0]
    probs = result.predict_proba(texts)
    assert probs.shape == (len(texts), 2)
    said_positive = probs[:, 1] > probs[:, 0]
    assert (said_positive == (np.array(labels) == POSITIVE)).mean() >= 0.9


def test_same_seed_same_run(result: LoraResult) -> None:
    again = _train()
    assert again.train_losses == result.train_losses
    assert again.val_losses == result.val_losses


def test_validation_is_the_tail_in_order() -> None:
    assert validation_split(40) == 34
    assert validation_split(100) == 85
    assert validation_split(2) == 1
    assert validation_split(1) == 1
    assert validation_split(10, 0.0) == 10


def test_neutral_labels_are_refused() -> None:
    with pytest.raises(ValueError, match="binary"):
        train_lora(["fine", "ok"], [NEUTRAL, POSITIVE], progress=False)


def test_merge_and_export_gives_an_encoder_directory(result: LoraResult, tmp_path: Path) -> None:
    texts = ["great phone", "awful battery, hate it", "the screen is fine"]
    report = merge_and_export(result, tmp_path, eval_texts=texts)
    assert report.fp32_vs_torch is not None and report.fp32_vs_torch.min > 0.9999
    assert (tmp_path / CHECKPOINT_SUBDIR / HEAD_FILE).is_file()
    encoder = TextEncoder(tmp_path / ONNX_SUBDIR, variant="fp32", providers="cpu")
    assert encoder.metadata.model == "all-MiniLM-L6-v2-lora"
    expected = l2_normalize(result.pooled(texts, merged=True).numpy())
    assert np.allclose(encoder.encode(texts), expected, atol=1e-4)
