"""Settings of the learning loop: the sample collector, the trainer's gate, the registry."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from memberstream.errors import ConfigError


class CollectorSettings(BaseModel):
    """How `memberstream collect` buffers and writes labeled samples."""

    model_config = ConfigDict(extra="forbid")

    flush_samples: int = Field(
        5_000, gt=0, description="write a shard set once this many samples are buffered"
    )
    flush_interval_s: float = Field(
        30.0, gt=0, description="...or once the oldest buffered sample is this old"
    )
    max_buffered_samples: int = Field(
        50_000,
        gt=0,
        description="bound on samples held in memory: consumption pauses until a flush",
    )
    dedupe_ids: int = Field(
        1_000_000, gt=0, description="recent sample ids remembered to drop duplicates"
    )
    interest_window_h: float = Field(
        168.0,
        gt=0,
        description="a purchase in a category is an interest label when the member viewed "
        "that category within this many hours before it (event time)",
    )
    members_tracked: int = Field(
        200_000, gt=0, description="members whose recent category views are remembered"
    )
    flags_tracked: int = Field(
        100_000, gt=0, description="recent anomaly flags kept to attach analysts' verdicts"
    )


class GateSettings(BaseModel):
    """When a trained candidate replaces the production version."""

    model_config = ConfigDict(extra="forbid")

    margin: float = Field(
        0.002,
        ge=0,
        description="the candidate must beat production by this much on the validation "
        "window's metric (macro-F1 for sentiment and interest, AUC for anomaly)",
    )
    regression_tolerance: float = Field(
        0.02,
        ge=0,
        description="and may lose at most this much on the fixed regression set (binary "
        "accuracy on 120 mixed reviews for sentiment: 0.02 is between two and three texts)",
    )
    validation_fraction: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="the newest share of the samples (by event time) held out for validation",
    )
    min_samples: int = Field(200, gt=0, description="fewer labeled samples: no training")


class AnomalyLearningSettings(BaseModel):
    """How `memberstream train --task anomaly` refits the learned anomaly score on the
    bootstrap's synthetic stream plus the analysts' verdicts
    (memberstream.ml.training.anomaly_feedback)."""

    model_config = ConfigDict(extra="forbid")

    analyst_weight: float = Field(
        10.0,
        gt=0,
        description="how many synthetic orders one analyst verdict weighs (a real order "
        "judged by a person, against the generator's idea of a takeover)",
    )
    bootstrap_members: int = Field(
        4000, gt=0, description="members of the synthetic stream (as the bootstrap scorer)"
    )
    bootstrap_days: float = Field(
        120.0, gt=8, description="days of the synthetic stream (incidents start on day 8)"
    )
    bootstrap_seed: int = Field(101, description="seed of the synthetic stream")


class LearningSettings(BaseModel):
    """Samples, registry and gate of the learning loop."""

    model_config = ConfigDict(extra="forbid")

    samples_dir: Path = Field(
        Path(".memberstream/samples"), description="where the collector writes Parquet shards"
    )
    registry_dir: Path = Field(
        Path(".memberstream/registry"),
        description="the model registry; workers read promoted versions from here",
    )
    member_key: SecretStr | None = Field(
        None,
        description="secret key of the keyed hash that replaces member ids in samples",
    )
    member_key_file: Path | None = Field(
        None, description="file holding the member key (instead of member_key)"
    )
    collector_group_suffix: str = Field(
        "collector", description="the collector's consumer group is <app_id>-<suffix>"
    )
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    gate: GateSettings = Field(default_factory=GateSettings)
    anomaly: AnomalyLearningSettings = Field(default_factory=AnomalyLearningSettings)

    def member_key_bytes(self) -> bytes:
        """The pseudonymisation key; a clear error when none is configured."""
        if self.member_key is not None and self.member_key.get_secret_value():
            return self.member_key.get_secret_value().encode()
        if self.member_key_file is not None:
            try:
                key = self.member_key_file.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(f"learning.member_key_file: {exc}") from None
            if key:
                return key
        raise ConfigError(
            "no member key: samples replace member ids by a keyed hash",
            hint="set MEMBERSTREAM_LEARNING__MEMBER_KEY (or learning.member_key_file) to a "
            "long random secret, e.g. `openssl rand -hex 32`; keep it stable, or the same "
            "member gets a new pseudonym",
        )
