"""Settings of the ML runtime: how the worker loads its text encoder
(:class:`EncoderSettings`) and runs the inference stage (:class:`InferenceSettings`).

Plain pydantic, so the settings assembly (:mod:`memberstream.config`) reads them
without loading ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_MODEL_DIR = Path.home() / ".cache" / "memberstream" / "models" / DEFAULT_MODEL_NAME
# int8 is used on the CPU only when it agrees this well with fp32 (cosine per text).
INT8_MIN_COSINE = 0.98
INT8_MEAN_COSINE = 0.99


class EncoderSettings(BaseModel):
    """How the worker loads its text encoder."""

    model_config = ConfigDict(extra="forbid")

    model_dir: Path | None = Field(
        default=None,
        description="exported model directory; None = the default export under "
        "~/.cache/memberstream/models/all-MiniLM-L6-v2",
    )
    variant: Literal["auto", "fp32", "int8"] = Field(
        default="auto",
        description="auto: int8 on the CPU when its recorded agreement with fp32 meets "
        f"min cosine {INT8_MIN_COSINE} and mean {INT8_MEAN_COSINE}, else fp32; fp32 on a GPU",
    )
    max_length: int = Field(default=64, ge=4, le=8192, description="tokens per text (truncated)")
    batch_size: int = Field(default=64, ge=1, description="texts per ONNX Runtime call")
    providers: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = Field(
        default=0,
        ge=0,
        description="intra-op threads (0 = ONNX Runtime's choice); for a per-text variant, "
        "texts run at once (0 = one per CPU)",
    )

    def resolved_model_dir(self) -> Path:
        return self.model_dir if self.model_dir is not None else DEFAULT_MODEL_DIR


class InferenceSettings(BaseModel):
    """The inference stage: text encoder, category scoring and the product-title cache."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description="False: no text model; interest comes from catalog categories alone",
    )
    encoder: EncoderSettings = Field(default_factory=EncoderSettings)
    taxonomy: Path | None = Field(
        None, description="taxonomy file (.json or .toml); None = the packaged default"
    )
    zero_shot_temperature: float = Field(
        0.05, gt=0, description="softmax temperature over cosine similarity to categories"
    )
    product_cache_size: int = Field(
        50_000, ge=0, description="product-title embeddings kept, least recently used dropped"
    )
