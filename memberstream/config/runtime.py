"""Settings sections of the Faust wiring: topic names, micro-batching, the RocksDB
tables, dead letters (the bounds :mod:`memberstream.core.dead_letters` applies), the
metrics endpoint and the log format."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TopicNames(BaseModel):
    """Kafka topic names. Defaults follow the design document."""

    model_config = ConfigDict(extra="forbid")

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
    model_updates: str = Field(
        "model.updates", description="promoted model versions, one record per task (compacted)"
    )
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

    def for_event(self, event_type: str) -> str:
        """The input topic of an event of ``event_type`` (its ``type`` field)."""
        return {
            "click": self.clicks,
            "purchase": self.purchases,
            "review": self.reviews,
            "feedback": self.feedback,
        }[event_type]

    def compacted(self) -> set[str]:
        return {self.member_profiles, self.product_review_summaries, self.model_updates}

    def all(self) -> list[str]:
        return list(self.model_dump().values())


class BatchSettings(BaseModel):
    """Micro-batching of each input stream (``stream.take_events``)."""

    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(500, gt=0)
    max_wait_s: float = Field(0.05, gt=0)
    commit_interval_s: float = Field(2.8, gt=0, description="how often offsets are committed")
    send_timeout_s: float = Field(
        60.0,
        gt=0,
        description="a batch's outputs not acknowledged by the broker within this time fail "
        "the batch: the worker exits (without committing it) instead of stalling",
    )
    state_cache_mb: float = Field(
        16.0,
        ge=0,
        description="decoded member states kept in memory between batches, bounded by their "
        "stored size (decoded they take about 4-5x that; 0: none); one is used only while "
        "the table still holds the very bytes it was written as",
    )


class RocksDBSettings(BaseModel):
    """Memory of each RocksDB database behind a table (one per table partition a worker
    holds). Faust's defaults (a 2 GiB block cache and three 64 MiB write buffers per
    database) let a worker with a few partitions grow to gigabytes."""

    model_config = ConfigDict(extra="forbid")

    block_cache_mb: int = Field(16, gt=0, description="block cache per database")
    write_buffer_mb: int = Field(4, gt=0, description="memtable size per database")
    max_write_buffers: int = Field(2, ge=2, description="memtables per database")

    def table_options(self) -> dict[str, int]:
        """``options`` for ``app.Table`` (faust.stores.rocksdb.RocksDBOptions)."""
        mb = 1024 * 1024
        return {
            "block_cache_size": self.block_cache_mb * mb,
            "write_buffer_size": self.write_buffer_mb * mb,
            "max_write_buffer_number": self.max_write_buffers,
        }


# aiokafka's default max_request_size (1 MiB): a dead letter must stay well below it.
PRODUCER_MAX_REQUEST_BYTES = 1024 * 1024
# JSON field names, ids, topic, reason: what a dead letter holds besides key and value.
_ENVELOPE_BYTES = 16 * 1024


class DeadLetterSettings(BaseModel):
    """Bounds on what a dead letter keeps of a bad record, and how a failed DLQ write
    is retried."""

    model_config = ConfigDict(extra="forbid")

    max_value_bytes: int = Field(
        256 * 1024,
        ge=0,
        description="raw value bytes kept (more is cut; length and sha256 of the whole kept)",
    )
    max_key_bytes: int = Field(4096, ge=0, description="raw key bytes kept (more is cut)")
    max_reason_chars: int = Field(2000, gt=0, description="reason text kept")
    max_errors: int = Field(50, gt=0, description="per-field errors kept")
    retry_initial_s: float = Field(
        0.5, gt=0, description="first wait before retrying a DLQ write that failed"
    )
    retry_max_s: float = Field(30.0, gt=0, description="longest wait between DLQ write retries")

    @model_validator(mode="after")
    def _fits_a_request(self) -> DeadLetterSettings:
        encoded = (self.max_value_bytes + self.max_key_bytes) * 4 // 3 + 8
        if encoded + _ENVELOPE_BYTES + self.max_reason_chars * 4 > PRODUCER_MAX_REQUEST_BYTES:
            raise ValueError(
                "max_value_bytes + max_key_bytes (base64: x4/3) must leave a dead letter under "
                f"the producer's {PRODUCER_MAX_REQUEST_BYTES}-byte request limit"
            )
        return self


class MetricsSettings(BaseModel):
    """The Prometheus endpoint of the worker, the collector and the periodic learning loop,
    its health checks and costs."""

    model_config = ConfigDict(extra="forbid")

    port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="/metrics, /healthz and /readyz on this port (0: no endpoint)",
    )
    host: str = Field("0.0.0.0", description="address the endpoint listens on")
    stall_s: float = Field(
        30.0,
        gt=0,
        description="/healthz fails when the event loop has not run for this long",
    )
    core_hour_price: float = Field(
        0.04, ge=0, description="price of one CPU core for an hour, for the cost metrics"
    )
    gpu_hour_price: float = Field(
        2.5, ge=0, description="price of one GPU for an hour, for the cost metrics"
    )
    currency: str = Field("USD", min_length=1, max_length=8)
    state_every_s: float = Field(
        30.0,
        gt=0,
        description="how often the worker samples its state size (entries per table, bytes "
        "on disk) for the metrics; never per record",
    )


class LoggingSettings(BaseModel):
    """How the long-running commands (worker, collector, learn, replay) log.

    Both formats go through the same redaction (:mod:`memberstream.streams.logs`):
    review texts, titles and queries never appear, member ids only as pseudonyms.
    """

    model_config = ConfigDict(extra="forbid")

    format: Literal["text", "json"] = Field(
        "text",
        description="text: one human-readable line per record; json: one JSON object per "
        "line (timestamp, level, logger, message, structured fields, exception)",
    )
