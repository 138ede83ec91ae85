"""Settings of the ML runtime: how the worker loads its text encoder
(:class:`EncoderSettings`) and runs the inference stage (:class:`InferenceSettings`).

Plain pydantic, so the settings assembly (:mod:`memberstream.config`) reads them
without loading ONNX Runtime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MODELS_HOME = Path.home() / ".cache" / "memberstream" / "models"
DEFAULT_MODEL_NAME = "use-multilingual-v3"
DEFAULT_MODEL_DIR = MODELS_HOME / DEFAULT_MODEL_NAME
METADATA_FILE = "encoder.json"
# English-only, with PyTorch weights: the encoder LoRA fine-tuning starts from.
MINILM_MODEL_NAME = "all-MiniLM-L6-v2"
MINILM_MODEL_DIR = MODELS_HOME / MINILM_MODEL_NAME
# int8 is used on the CPU only when it agrees this well with fp32 (cosine per text).
INT8_MIN_COSINE = 0.98
INT8_MEAN_COSINE = 0.99


class EncoderSettings(BaseModel):
    """How the worker loads its text encoder."""

    model_config = ConfigDict(extra="forbid")

    model_dir: Path | None = Field(
        default=None,
        description="encoder model directory (a manifest encoder.json and its files); "
        "None = ~/.cache/memberstream/models/use-multilingual-v3, made by `make models`",
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
        0.05,
        gt=0,
        description="softmax temperature over cosine similarity to categories (unless set, "
        "the encoder manifest's calibrated value)",
    )
    product_cache_size: int = Field(
        50_000, ge=0, description="product-title embeddings kept, least recently used dropped"
    )


class EncoderCalibration(BaseModel):
    """Thresholds that depend on the embedding space, set per encoder on development data
    and recorded in its manifest (``calibration`` in ``encoder.json``).

    Cosine similarities are not comparable across encoders (two unrelated texts sit near
    0.1 in one space and 0.4 in another), so a threshold tuned for one would misfire on
    another. Unless a setting is given explicitly, the settings take these values
    (:func:`memberstream.config.settings.Settings`).
    """

    model_config = ConfigDict(extra="forbid")

    zero_shot_temperature: float | None = Field(None, gt=0)
    review_duplicate_similarity: float | None = Field(None, gt=0, le=1)
    review_promo_similarity: float | None = Field(None, gt=0, le=1)
    summary_redundancy: float | None = Field(None, gt=0, le=1)
    summary_aspect_floor: float | None = None
    notes: str | None = Field(None, description="how the values were set, on what data")

    def setting_paths(self) -> dict[tuple[str, ...], float]:
        """Settings path -> calibrated value, for the values present."""
        paths = {
            "zero_shot_temperature": ("inference", "zero_shot_temperature"),
            "review_duplicate_similarity": ("anomaly", "review_duplicate", "similarity"),
            "review_promo_similarity": ("anomaly", "review_duplicate", "promo_similarity"),
            "summary_redundancy": ("summary", "summarizer", "redundancy"),
            "summary_aspect_floor": ("summary", "summarizer", "aspect_floor"),
        }
        return {
            path: value
            for name, path in paths.items()
            if (value := getattr(self, name)) is not None
        }


def read_manifest_fields(model_dir: Path) -> dict[str, Any] | None:
    """The raw manifest of the encoder in ``model_dir``, or None when it has none.

    JSON only, no ONNX Runtime: the settings read the calibration and the dimension
    from here before any model is loaded. Validation happens when the encoder loads.
    """
    path = model_dir / METADATA_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
