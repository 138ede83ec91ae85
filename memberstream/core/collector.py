"""The sample collector's batch logic, independent of the Kafka client that feeds it.

Records come in with their topic, partition and offset; events become labeled
samples (:mod:`memberstream.domain.samples`), flags on ``member.anomalies`` are
remembered for the analysts' verdicts, announcements on ``model.updates`` say
which model version is live. Samples are deduplicated by (event id, sample id) in a
bounded memory warmed from the newest shards at start, and buffered until a flush
writes them (:class:`~memberstream.ml.training.sample_store.SampleStore`). A flush
returns the offsets the consumer may commit; nothing is committed before the
samples it covers are on disk.

Records the worker cannot decode are the worker's to dead-letter; the collector
counts and skips them (it must not write a second dead letter for the same record).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import orjson
from pydantic import ValidationError

from memberstream.config import Settings
from memberstream.config.learning import CollectorSettings
from memberstream.core import failpoints
from memberstream.domain.samples import DerivationSettings, SampleDeriver
from memberstream.ml.training.sample_store import Collected, FlushRecord, SampleStore
from memberstream.schemas.codec import DecodeFailure, decode_event
from memberstream.schemas.events import ClickEvent, Envelope, Feedback, PurchaseEvent, ReviewEvent
from memberstream.schemas.outputs import AnomalyFlag, ModelUpdate

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


@dataclass
class CollectorStats:
    records: int = 0
    samples: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    flushes: int = 0
    masked: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.samples.items())) or "none"
        skipped = sum(self.skipped.values())
        return (
            f"{self.records} records, samples: {kinds}; {self.duplicates} duplicates dropped, "
            f"{skipped} records skipped, {self.flushes} flushes, "
            f"{sum(self.masked.values())} personal-data spans masked"
        )


class SampleCollector:
    """Feed it records with :meth:`add`; :meth:`flush` when :meth:`should_flush`."""

    def __init__(
        self,
        settings: Settings,
        store: SampleStore,
        key: bytes,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        conf: CollectorSettings = settings.learning.collector
        self.conf = conf
        self.store = store
        self.clock = clock
        topics = settings.topics
        self.event_types: dict[str, type[Envelope]] = {
            topics.clicks: ClickEvent,
            topics.purchases: PurchaseEvent,
            topics.reviews: ReviewEvent,
            topics.feedback: Feedback,
        }
        self.flags_topic = topics.member_anomalies
        self.updates_topic = topics.model_updates
        self.deriver = SampleDeriver(
            key,
            DerivationSettings(
                interest_window=timedelta(hours=conf.interest_window_h),
                members_tracked=conf.members_tracked,
                flags_tracked=conf.flags_tracked,
            ),
        )
        self._seen: OrderedDict[str, None] = OrderedDict()
        for k in reversed(store.dedupe_keys(conf.dedupe_ids)):  # oldest first: evicted first
            self._seen[k] = None
        self.buffer: list[Collected] = []
        self.pending: dict[TopicPartition, int] = {}
        """Next offset per partition consumed since the last flush (to commit with it)."""
        self._oldest: float | None = None
        self.stats = CollectorStats()

    @property
    def topics(self) -> list[str]:
        """What the collector reads: the labeled inputs, flags and model announcements."""
        return [*self.event_types, self.flags_topic, self.updates_topic]

    def _remember(self, key: str) -> bool:
        """False when ``key`` was seen already."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        while len(self._seen) > self.conf.dedupe_ids:
            self._seen.popitem(last=False)
        return True

    def add(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        self.stats.records += 1
        self.pending[(topic, partition)] = offset + 1
        if topic == self.flags_topic:
            self._observe(value, AnomalyFlag, self.deriver.observe_flag)
            return
        if topic == self.updates_topic:
            self._observe(value, ModelUpdate, self._announced)
            return
        event_type = self.event_types.get(topic)
        if event_type is None:
            self.stats.skipped["unknown topic"] += 1
            return
        event = decode_event(value, event_type)
        if isinstance(event, DecodeFailure):
            self.stats.skipped[event.error_type] += 1
            return
        try:
            samples = list(self.deriver.derive(event))
        except Exception:  # a rule's bug must not stop collection; the record is counted
            log.exception("collector: no samples from %s[%d]@%d", topic, partition, offset)
            self.stats.skipped["derivation"] += 1
            return
        for sample in samples:
            if not self._remember(sample.dedupe_key):
                self.stats.duplicates += 1
                continue
            self.buffer.append(Collected(sample, topic, partition, offset))
            self.stats.samples[sample.kind] += 1
            self.stats.masked.update(sample.masked)
            if self._oldest is None:
                self._oldest = self.clock()

    def _observe(self, value: bytes | None, model: type, apply: Callable) -> None:
        if value is None:  # a tombstone
            return
        try:
            apply(model.model_validate(orjson.loads(value)))
        except (orjson.JSONDecodeError, ValidationError, TypeError):
            self.stats.skipped[f"bad {model.__name__}"] += 1

    def _announced(self, update: ModelUpdate) -> None:
        self.deriver.versions[update.task] = update.version

    def should_flush(self) -> bool:
        if len(self.buffer) >= self.conf.flush_samples:
            return True
        if self._oldest is not None:
            return self.clock() - self._oldest >= self.conf.flush_interval_s
        return False

    @property
    def full(self) -> bool:
        """The buffer is at its bound: stop fetching until a flush."""
        return len(self.buffer) >= self.conf.max_buffered_samples

    def flush(self) -> tuple[dict[TopicPartition, int], FlushRecord | None]:
        """Write the buffered samples (if any); the offsets that are now safe to commit."""
        offsets, self.pending = self.pending, {}
        record = None
        if self.buffer:
            record = self.store.write(
                self.buffer, offsets, lambda _path: failpoints.reached("shard_written")
            )
            failpoints.reached("flush_recorded")
            self.stats.flushes += 1
            log.info(
                "collector: flush %s: %d samples (%s) in %d files",
                record.flush_id,
                len(self.buffer),
                ", ".join(f"{k} {n}" for k, n in sorted(record.counts.items())),
                len(record.files),
            )
        self.buffer = []
        self._oldest = None
        return offsets, record
