"""LoRA fine-tuning of all-MiniLM-L6-v2 for binary review sentiment, and its ONNX export.

Needs the ``train`` extra plus peft; torch, transformers and peft are imported inside
the functions, so importing this module stays cheap (as :mod:`memberstream.ml.onnx_export`).

The model: the MiniLM encoder with peft LoRA adapters on the self-attention ``query``
and ``value`` projections of every layer (the base weights stay frozen), mean pooling
over real tokens (as the runtime pools, but not L2-normalised: a linear head on unit
vectors needs large weights, which the few steps here do not reach), dropout and a
``Linear(dim, 2)`` head. It is binary (negative / positive) because the figure it
is judged by is binary accuracy on polar texts; only polar texts train it.

Validation is the last :data:`VALIDATION_FRACTION` of the texts in the order given
(no shuffling across the split: for a stream, the newest texts); after every epoch
the adapters and head are scored on it and the epoch with the lowest validation loss
is kept. The held-out test is never seen here.

Determinism: one seed drives initialisation, dropout and the batch order, under
``torch.use_deterministic_algorithms`` (warn-only), inside ``torch.random.fork_rng``
so the caller's global RNG state is left as it was. Same seed, same thread count,
same machine: same loss curve and weights.

:func:`merge_and_export` folds the adapters into the base weights (peft's
``merge_and_unload``), saves a Hugging Face checkpoint and exports it with
:func:`memberstream.ml.onnx_export.export_encoder`, so the worker loads the tuned
encoder like any other (its embeddings are the tuned model's mean-pooled, normalised
vectors; the classification head is saved beside the checkpoint, not in the ONNX
directory).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memberstream.ml.onnx_export import (
    CALIBRATION_TEXTS,
    ExportReport,
    default_source_dir,
    export_encoder,
)
from memberstream.ml.sentiment import NEGATIVE, POSITIVE
from memberstream.ml.settings import MINILM_MODEL_NAME

TARGET_MODULES = ("query", "value")
"""BERT self-attention projections (``encoder.layer.N.attention.self.{query,value}``)."""
VALIDATION_FRACTION = 0.15
CLASSES = ("negative", "positive")
"""Head outputs: index 0 negative, 1 positive."""
CHECKPOINT_SUBDIR = "checkpoint"
ONNX_SUBDIR = "onnx"
HEAD_FILE = "lora_classifier.npz"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "config.json", "README.md")
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Echo = Callable[[str], None]


def _silent(msg: str) -> None:
    pass


def validation_split(n: int, fraction: float = VALIDATION_FRACTION) -> int:
    """How many of ``n`` texts train; the rest (the last ones, in order) validate."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    n_val = round(n * fraction) if fraction > 0 else 0
    if fraction > 0 and n >= 2:
        n_val = max(1, n_val)
    return n - min(n_val, n - 1) if n else 0


def binary_targets(labels: Sequence[int]) -> list[int]:
    """Project labels (NEGATIVE / POSITIVE) as head targets 0 / 1; neutral is refused."""
    out = []
    for label in labels:
        if label == NEGATIVE:
            out.append(0)
        elif label == POSITIVE:
            out.append(1)
        else:
            raise ValueError(
                f"label {label!r}: the LoRA head is binary, pass polar texts only "
                f"(NEGATIVE={NEGATIVE}, POSITIVE={POSITIVE})"
            )
    return out


@dataclass
class LoraResult:
    """A trained adapter + head, and what it cost."""

    model: Any
    """The peft model (base frozen, adapters trained), in eval mode."""
    head: Any
    """``torch.nn.Linear(dim, 2)`` over the mean-pooled (not normalised) output."""
    tokenizer: Any
    source_dir: Path
    max_length: int
    train_seconds: float
    """The epochs (training and validation passes), not model loading."""
    threads: int
    """torch intra-op threads during training."""
    adapter_params: int
    adapter_bytes: int
    """Size of ``adapter_model.safetensors`` as ``save_pretrained`` writes it."""
    adapter_dir_bytes: int
    """Everything ``save_pretrained`` wrote (weights, adapter_config.json, ...)."""
    head_params: int
    trainable_params: int
    total_params: int
    """Base model + adapters + head."""
    train_losses: list[float]
    """Per optimiser step (mean over the batch)."""
    epoch_train_losses: list[float]
    val_losses: list[float]
    val_accuracies: list[float]
    best_epoch: int
    """1-based; the adapters and head are this epoch's (lowest validation loss)."""
    n_train: int
    n_val: int
    config: dict[str, Any] = field(default_factory=dict)
    _merged: Any = field(default=None, repr=False)

    def _batches(self, texts: Sequence[str], batch_size: int) -> Any:
        for start in range(0, len(texts), batch_size):
            yield _tokenize(self.tokenizer, texts[start : start + batch_size], self.max_length)

    def pooled(self, texts: Sequence[str], batch_size: int = 64, merged: bool = False) -> Any:
        """Mean-pooled last hidden states (torch, n x dim), from the peft or merged model."""
        import torch

        model = self.merged() if merged else self.model
        model.eval()
        out = []
        with torch.inference_mode():
            for batch in self._batches(texts, batch_size):
                out.append(_pool(model, batch))
        return torch.cat(out) if out else torch.zeros((0, self.head.in_features))

    def predict_proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(n, 2) probabilities: negative, positive."""
        import torch

        self.head.eval()
        with torch.inference_mode():
            logits = self.head(self.pooled(texts, batch_size))
            return torch.softmax(logits, dim=-1).numpy().astype(np.float64)

    def merged(self) -> Any:
        """The base model with the adapters folded in (a copy; ``model`` stays a peft model)."""
        if self._merged is None:
            self._merged = copy.deepcopy(self.model).merge_and_unload().eval()
        return self._merged

    def summary(self) -> dict[str, Any]:
        """Everything but the models, for a results file."""
        return {
            "train_seconds": round(self.train_seconds, 2),
            "threads": self.threads,
            "adapter_params": self.adapter_params,
            "adapter_bytes": self.adapter_bytes,
            "adapter_dir_bytes": self.adapter_dir_bytes,
            "head_params": self.head_params,
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "n_train": self.n_train,
            "n_val": self.n_val,
            "best_epoch": self.best_epoch,
            "epoch_train_losses": [round(x, 5) for x in self.epoch_train_losses],
            "val_losses": [round(x, 5) for x in self.val_losses],
            "val_accuracies": [round(x, 5) for x in self.val_accuracies],
            "train_losses": [round(x, 5) for x in self.train_losses],
            "config": self.config,
        }


def _tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, Any]:
    batch = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    return {k: batch[k] for k in _INPUTS if k in batch}


def _pool(model: Any, batch: dict[str, Any]) -> Any:
    """Mean of the last hidden state over real tokens (the runtime's pooling, unnormalised)."""
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def train_lora(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    source_dir: Path | None = None,
    rank: int = 8,
    alpha: int = 16,
    dropout: float = 0.1,
    epochs: int = 3,
    lr: float = 2e-3,
    weight_decay: float = 0.01,
    warmup_fraction: float = 0.1,
    batch_size: int = 32,
    max_length: int = 64,
    seed: int = 0,
    validation_fraction: float = VALIDATION_FRACTION,
    threads: int | None = None,
    progress: bool = True,
) -> LoraResult:
    """Fine-tune LoRA adapters and a binary head on polar ``texts``.

    ``labels`` are the project's classes (NEGATIVE / POSITIVE; NEUTRAL is refused).
    One learning rate for adapters and head (AdamW), linear warm-up over
    ``warmup_fraction`` of the steps then linear decay to zero, gradient norm clipped
    at 1. With ``validation_fraction`` 0 nothing is held back and the last epoch is kept.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from tqdm.auto import tqdm
    from transformers import AutoModel, AutoTokenizer

    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
    targets = binary_targets(labels)
    n_train = validation_split(len(texts), validation_fraction)
    if n_train < 1:
        raise ValueError("no training texts")
    train_texts, val_texts = list(texts[:n_train]), list(texts[n_train:])
    train_y, val_y = targets[:n_train], targets[n_train:]
    source = Path(source_dir) if source_dir is not None else default_source_dir()
    if threads:
        torch.set_num_threads(threads)
    config = {
        "source_dir": str(source),
        "target_modules": list(TARGET_MODULES),
        "rank": rank,
        "alpha": alpha,
        "dropout": dropout,
        "epochs": epochs,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_fraction": warmup_fraction,
        "batch_size": batch_size,
        "max_length": max_length,
        "seed": seed,
        "validation_fraction": validation_fraction,
        "head": "binary (negative/positive) Linear over mean-pooled, unnormalised output",
        "selection": "epoch with the lowest validation loss" if val_texts else "last epoch",
    }

    was_deterministic = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(source))
            # Eager attention: what the exporter's torch reference runs (TorchReference).
            base = AutoModel.from_pretrained(str(source), attn_implementation="eager")
            base_params = sum(p.numel() for p in base.parameters())
            lora = LoraConfig(
                r=rank,
                lora_alpha=alpha,
                lora_dropout=dropout,
                target_modules=list(TARGET_MODULES),
                bias="none",
            )
            model = get_peft_model(base, lora)
            head = torch.nn.Linear(model.config.hidden_size, len(CLASSES))
            adapter = [p for p in model.parameters() if p.requires_grad]
            trainable = adapter + list(head.parameters())
            optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
            steps_per_epoch = -(-n_train // batch_size)
            total_steps = steps_per_epoch * epochs
            warmup = max(1, round(warmup_fraction * total_steps)) if warmup_fraction > 0 else 0

            def schedule(step: int) -> float:
                if step < warmup:
                    return (step + 1) / warmup
                return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
            order_rng = torch.Generator().manual_seed(seed)
            y_train = torch.tensor(train_y)

            losses: list[float] = []
            epoch_losses: list[float] = []
            val_losses: list[float] = []
            val_accs: list[float] = []
            best: tuple[float, int, dict[str, Any]] | None = None
            started = time.perf_counter()
            bar = tqdm(total=total_steps, desc="LoRA", unit="step", disable=not progress)
            for epoch in range(1, epochs + 1):
                model.train()
                head.train()
                order = torch.randperm(n_train, generator=order_rng).tolist()
                epoch_sum = 0.0
                for start in range(0, n_train, batch_size):
                    idx = order[start : start + batch_size]
                    batch = _tokenize(tokenizer, [train_texts[i] for i in idx], max_length)
                    pooled = _pool(model, batch)
                    logits = head(torch.nn.functional.dropout(pooled, dropout, training=True))
                    loss = torch.nn.functional.cross_entropy(logits, y_train[idx])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                    optimizer.step()
                    scheduler.step()
                    step_loss = loss.detach().item()
                    losses.append(step_loss)
                    epoch_sum += step_loss * len(idx)
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{step_loss:.3f}")
                epoch_losses.append(epoch_sum / n_train)
                if val_texts:
                    v_loss, v_acc = _evaluate(model, head, tokenizer, val_texts, val_y, max_length)
                    val_losses.append(v_loss)
                    val_accs.append(v_acc)
                    bar.set_postfix(epoch=epoch, val_loss=f"{v_loss:.3f}", val_acc=f"{v_acc:.3f}")
                    if best is None or v_loss < best[0]:
                        best = (v_loss, epoch, _snapshot(model, head))
            bar.close()
            best_epoch = epochs
            if best is not None:
                best_epoch = best[1]
                _restore(model, head, best[2])
            train_seconds = time.perf_counter() - started
        finally:
            torch.use_deterministic_algorithms(was_deterministic, warn_only=was_warn_only)

    model.eval()
    head.eval()
    adapter_params = sum(p.numel() for p in adapter)
    head_params = sum(p.numel() for p in head.parameters())
    with tempfile.TemporaryDirectory(prefix="lora-adapter-") as tmp:
        model.save_pretrained(tmp)
        weights = Path(tmp) / "adapter_model.safetensors"
        adapter_bytes = weights.stat().st_size if weights.is_file() else _dir_bytes(Path(tmp))
        adapter_dir_bytes = _dir_bytes(Path(tmp))
    return LoraResult(
        model=model,
        head=head,
        tokenizer=tokenizer,
        source_dir=source,
        max_length=max_length,
        train_seconds=train_seconds,
        threads=torch.get_num_threads(),
        adapter_params=adapter_params,
        adapter_bytes=adapter_bytes,
        adapter_dir_bytes=adapter_dir_bytes,
        head_params=head_params,
        trainable_params=adapter_params + head_params,
        total_params=base_params + adapter_params + head_params,
        train_losses=losses,
        epoch_train_losses=epoch_losses,
        val_losses=val_losses,
        val_accuracies=val_accs,
        best_epoch=best_epoch,
        n_train=n_train,
        n_val=len(val_texts),
        config=config,
    )


def _evaluate(
    model: Any,
    head: Any,
    tokenizer: Any,
    texts: Sequence[str],
    targets: Sequence[int],
    max_length: int,
    batch_size: int = 64,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy, in eval mode (no dropout)."""
    import torch

    model.eval()
    head.eval()
    loss_sum, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = _tokenize(tokenizer, texts[start : start + batch_size], max_length)
            y = torch.tensor(list(targets[start : start + batch_size]))
            logits = head(_pool(model, batch))
            loss_sum += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == y).sum())
    return loss_sum / len(texts), correct / len(texts)


def _snapshot(model: Any, head: Any) -> dict[str, Any]:
    """Copies of the trained tensors only (adapters and head)."""
    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    heads = {n: p.detach().clone() for n, p in head.state_dict().items()}
    return {"adapters": adapters, "head": heads}


def _restore(model: Any, head: Any, snapshot: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if name in snapshot["adapters"]:
                p.copy_(snapshot["adapters"][name])
    head.load_state_dict(snapshot["head"])


def save_checkpoint(result: LoraResult, checkpoint_dir: Path) -> Path:
    """The merged model as a Hugging Face checkpoint, with the base tokenizer and
    sentence-transformers files (pooling config) copied unchanged, and the head."""
    checkpoint_dir = Path(checkpoint_dir)
    if checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True)
    result.merged().save_pretrained(str(checkpoint_dir))
    # The base tokenizer files byte for byte: the exported tokenizer.json (and its sha256
    # in the manifest) is then the base model's.
    for item in result.source_dir.iterdir():
        if item.name in _WEIGHT_FILES:
            continue
        if item.is_dir():
            shutil.copytree(item, checkpoint_dir / item.name)
        else:
            shutil.copyfile(item, checkpoint_dir / item.name)
    weight = result.head.weight.detach().numpy().astype(np.float32)
    bias = result.head.bias.detach().numpy().astype(np.float32)
    np.savez(
        checkpoint_dir / HEAD_FILE,
        weight=weight,
        bias=bias,
        classes=np.array(CLASSES),
        pooling=np.array("mean over real tokens, not normalised"),
    )
    return checkpoint_dir


def merge_and_export(
    result: LoraResult,
    out_dir: Path,
    *,
    eval_texts: Sequence[str] = CALIBRATION_TEXTS,
    name: str = f"{MINILM_MODEL_NAME}-lora",
    threads: int | None = None,
    echo: Echo = _silent,
) -> ExportReport:
    """Merge the adapters, save ``out_dir/checkpoint`` and export ``out_dir/onnx``.

    ``out_dir/onnx`` is an encoder directory the worker loads like any other
    (``model.onnx``, ``model.int8.onnx``, ``tokenizer.json``, ``encoder.json``). The
    returned report holds the exporter's agreement on ``eval_texts``: ONNX fp32 against
    the merged checkpoint in torch, and int8 against ONNX fp32. The encoder is named
    ``name`` in the manifest, so the base model's calibration (set in MiniLM's
    embedding space) is not copied to it.
    """
    out_dir = Path(out_dir)
    checkpoint = save_checkpoint(result, out_dir / CHECKPOINT_SUBDIR)
    echo(f"merged checkpoint in {checkpoint}")
    return export_encoder(
        checkpoint,
        out_dir / ONNX_SUBDIR,
        eval_texts,
        max_length=result.max_length,
        name=name,
        threads=threads,
        echo=echo,
    )
