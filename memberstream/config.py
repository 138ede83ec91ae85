"""One settings object for the whole tool.

Precedence, highest first: keyword arguments, environment variables
(``MEMBERSTREAM_`` prefix, nested fields with ``__``; the bootstrap servers also
as bare ``KAFKA_BOOTSTRAP_SERVERS``, which wins over the prefixed name), a TOML
file named by ``--config`` or ``MEMBERSTREAM_CONFIG``, then the defaults below.
"""

from __future__ import annotations

import itertools
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from memberstream.models.anomaly.settings import AnomalySettings
from memberstream.models.encoder import EncoderSettings
from memberstream.models.interest import InterestSettings
from memberstream.models.review_buffer import SummarySettings
from memberstream.streams.kafka_security import KafkaSecuritySettings

CONFIG_ENV = "MEMBERSTREAM_CONFIG"


class TopicNames(BaseModel):
    """Kafka topic names. Defaults follow the design document."""

    clicks: str = "events.clicks"
    purchases: str = "events.purchases"
    reviews: str = "events.reviews"
    feedback: str = "labels.feedback"
    dlq: str = "memberstream.dlq"
    member_tiers: str = "member.tiers"
    member_interest_tiers: str = "member.interest-tiers"
    member_profiles: str = "member.profiles"
    member_anomalies: str = "member.anomalies"
    product_review_summaries: str = "product.review-summaries"
    product_reviews: str = Field(
        "memberstream.product-reviews",
        description="internal: reviews (with their embeddings) and product feedback, "
        "repartitioned by product_id for the product agent",
    )

    def inputs(self) -> list[str]:
        """The event topics producers write (clicks, purchases, reviews)."""
        return [self.clicks, self.purchases, self.reviews]

    def ingest(self) -> list[str]:
        """Topics the ingest agent reads, all keyed by member_id: events and feedback."""
        return [*self.inputs(), self.feedback]

    def consumed(self) -> list[str]:
        """Every topic the worker's consumer group reads: a caught-up group is done."""
        return [*self.ingest(), self.product_reviews]

    def compacted(self) -> set[str]:
        return {self.member_profiles, self.product_review_summaries}

    def all(self) -> list[str]:
        return list(self.model_dump().values())


class TierRule(BaseModel):
    """A membership tier and what it takes to hold it over the trailing window."""

    name: str
    min_monetary: float = Field(ge=0, description="net spend in the window, in currency units")
    min_frequency: int = Field(ge=0, description="paid orders in the window")


def _default_tiers() -> list[TierRule]:
    return [
        TierRule(name="bronze", min_monetary=0, min_frequency=0),
        TierRule(name="silver", min_monetary=100, min_frequency=2),
        TierRule(name="gold", min_monetary=300, min_frequency=4),
        TierRule(name="platinum", min_monetary=1000, min_frequency=8),
    ]


class MembershipSettings(BaseModel):
    """RFM window and tier thresholds (see ``memberstream.models.membership``)."""

    window_days: float = Field(365.0, gt=0)
    grace_days: float = Field(30.0, ge=0)
    tiers: list[TierRule] = Field(default_factory=_default_tiers)
    max_orders_in_window: int = Field(
        2000, gt=0, description="bound on orders kept per member; oldest dropped first"
    )

    @field_validator("tiers")
    @classmethod
    def _tiers_ascend(cls, tiers: list[TierRule]) -> list[TierRule]:
        if not tiers:
            raise ValueError("at least one tier is required")
        if tiers[0].min_monetary != 0 or tiers[0].min_frequency != 0:
            raise ValueError(f"the first tier ({tiers[0].name}) must have zero thresholds")
        names = [t.name for t in tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        for low, high in itertools.pairwise(tiers):
            if high.min_monetary < low.min_monetary or high.min_frequency < low.min_frequency:
                raise ValueError(
                    f"tier {high.name} must not need less than {low.name}; list tiers lowest first"
                )
        return tiers


class BatchSettings(BaseModel):
    """Micro-batching of each input stream (``stream.take_events``)."""

    max_batch: int = Field(500, gt=0)
    max_wait_s: float = Field(0.05, gt=0)
    commit_interval_s: float = Field(2.8, gt=0, description="how often offsets are committed")


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


class BrokerSettings(BaseModel):
    """The local development broker (``memberstream broker``)."""

    kafka_version: str = "3.9.2"
    scala_version: str = "2.13"
    home: Path = Path(os.path.expanduser("~/.cache/memberstream/broker"))
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"
    start_timeout_s: float = 90.0


class Settings(BaseSettings):
    """Everything memberstream reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="MEMBERSTREAM_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices(
            "kafka_bootstrap_servers",
            "MEMBERSTREAM_KAFKA_BOOTSTRAP_SERVERS",
            "KAFKA_BOOTSTRAP_SERVERS",
        ),
    )
    kafka: KafkaSecuritySettings = Field(
        default_factory=KafkaSecuritySettings,
        description="connection security: TLS, SASL (PLAIN, SCRAM); secrets never printed",
    )
    app_id: str = "memberstream"
    partitions: int = Field(4, gt=0)
    replication_factor: int = Field(1, gt=0)
    session_timeout_s: float = Field(
        30.0, ge=6, description="consumer session timeout: how soon a dead worker's partitions move"
    )
    stall_after_s: float = Field(
        20.0,
        gt=0,
        description="idle this long with input lag left uncommitted: re-read from the "
        "committed offsets (works around a Faust recovery race, faust-streaming#596)",
    )
    store: str = Field("rocksdb://", description="faust table store: rocksdb:// or memory://")
    data_dir: Path = Path(".memberstream")
    dedupe_ids_per_member: int = Field(
        512, gt=0, description="recent event ids kept per member to drop duplicates"
    )
    outbox_per_member: int = Field(
        16, gt=0, description="recent outputs kept per member so a replayed event re-emits them"
    )
    topics: TopicNames = Field(default_factory=TopicNames)
    membership: MembershipSettings = Field(default_factory=MembershipSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    interest: InterestSettings = Field(default_factory=InterestSettings)
    anomaly: AnomalySettings = Field(default_factory=AnomalySettings)
    summary: SummarySettings = Field(default_factory=SummarySettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)

    @model_validator(mode="after")
    def _store_known(self) -> Settings:
        if not self.store.startswith(("rocksdb://", "memory://")):
            raise ValueError(f"store must be rocksdb:// or memory://, got {self.store!r}")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get() or os.environ.get(CONFIG_ENV)
        if path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"config file {path}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def describe(self) -> dict[str, Any]:
        """Settings as printed at start-up; secrets show as ``**********``."""
        return self.model_dump(mode="json")

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Bootstrap servers and security arguments for any aiokafka client."""
        return {"bootstrap_servers": self.kafka_bootstrap_servers, **self.kafka.client_kwargs()}


_config_file: ContextVar[str | None] = ContextVar("memberstream_config_file", default=None)


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build settings, optionally from a TOML file (which env vars still override).

    The file applies to this call only; ``MEMBERSTREAM_CONFIG`` names one for every call.
    """
    token = _config_file.set(None if config_file is None else str(config_file))
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)
