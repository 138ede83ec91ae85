"""Workers follow model.updates: load an announced version in the background, swap it
in between two batches.

At start the watcher reads the topic up to its end and loads the newest version of
each task before the first batch is processed (the worker waits on :attr:`ready`), so
a worker that starts after a promotion runs the promoted version from its first
record. Then it follows the topic. Loading (checksums, the head's own loader) runs
off the event loop; the swap itself is :meth:`InferenceStage.offer`, which waits for
the batches in flight to finish. A version that cannot be loaded (a file missing or
changed on this host) is logged and the current one stays: promotion already refused
versions that do not load, so this means the registry is not readable here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from memberstream.config import Settings
from memberstream.ml.category_heads import HEAD_FILE, load_head
from memberstream.ml.encoder import sha256_file
from memberstream.ml.inference import InferenceStage, head_version
from memberstream.ml.learned_scorer import SCORER_FILE, LearnedScorer
from memberstream.ml.sentiment import WEIGHTS_FILE, load_sentiment_head
from memberstream.schemas.outputs import ModelUpdate
from memberstream.streams.kafka_io import _partitions_of, _start, connection
from memberstream.streams.model_updates import latest_updates, parse_update

log = logging.getLogger(__name__)

SWAPPABLE = {"sentiment": WEIGHTS_FILE, "interest": HEAD_FILE, "anomaly": SCORER_FILE}


class ModelLoadError(RuntimeError):
    pass


def load_announced(update: ModelUpdate, stage: InferenceStage) -> tuple[Any, str]:
    """The head an update names, checked against its checksums: (head, output label)."""
    directory = Path(update.location)
    name = SWAPPABLE.get(update.task)
    if name is None:
        raise ModelLoadError(f"no hot swap for task {update.task!r}")
    path = directory / name
    if not path.is_file():
        raise ModelLoadError(f"{path}: missing (is the registry readable from this worker?)")
    want = update.files.get(name)
    got = sha256_file(path)
    if want is not None and want != got:
        raise ModelLoadError(f"{path}: sha256 {got}, the announcement says {want}")
    if update.task == "anomaly":
        scorer = LearnedScorer.load(path)
        return scorer, scorer.version
    if update.task == "sentiment":
        head = load_sentiment_head(directory)
        if head is None:
            raise ModelLoadError(f"{directory}: no sentiment head")
        return head, head.version
    interest = load_head(directory, stage.taxonomy)
    if interest is None:
        raise ModelLoadError(f"{directory}: no interest head")
    return interest, head_version(interest, stage.taxonomy, path)


class ModelWatcher:
    """Reads model.updates without a consumer group (every worker sees every record)."""

    def __init__(self, settings: Settings, stage: InferenceStage) -> None:
        self.settings = settings
        self.stage = stage
        self.ready = asyncio.Event()
        """Set once the announcements present at start are applied (or failed)."""
        self.applied: dict[str, str] = {}
        self.failures = 0

    async def _apply(self, update: ModelUpdate) -> None:
        if self.applied.get(update.task) == update.version:
            return
        try:
            head, label = await asyncio.to_thread(load_announced, update, self.stage)
        except Exception as exc:  # keep serving with the current version
            self.failures += 1
            log.error(
                "model.updates: cannot load %s %s from %s: %s; keeping the current version",
                update.task,
                update.version,
                update.location,
                exc,
            )
            return
        self.applied[update.task] = update.version
        current = self.stage.head_version
        if update.task == "sentiment":
            current = None if self.stage.sentiment is None else self.stage.sentiment.version
        elif update.task == "anomaly":
            current = None if self.stage.scorer is None else self.stage.scorer.version
        if current == label:
            log.info(
                "model.updates: %s %s (%s) is already running", update.task, update.version, label
            )
            return
        log.info(
            "model.updates: %s %s (%s, %s) loaded; it takes over between two batches",
            update.task,
            update.version,
            label,
            update.action,
        )
        self.stage.offer(update.task, head, label)

    async def apply_current(self) -> None:
        """Apply the newest announced version of each task now on the topic (a replay: the
        versions a worker starting now would run), without following the topic."""
        for update in (await latest_updates(self.settings)).values():
            if update.task in SWAPPABLE:
                await self._apply(update)

    async def run(self) -> None:
        conn = connection(self.settings)
        topic = self.settings.topics.model_updates
        consumer = AIOKafkaConsumer(**conn.client_kwargs(), group_id=None, enable_auto_commit=False)
        try:
            await _start(consumer, conn)
            tps = await _partitions_of(consumer, topic, conn)
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps) if tps else {}
            latest: dict[str, ModelUpdate] = {}
            while tps and any([await consumer.position(tp) < end for tp, end in ends.items()]):
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for rec in records:
                        update = parse_update(rec.value)
                        if update is not None and update.task in SWAPPABLE:
                            latest[update.task] = update
            for update in latest.values():
                await self._apply(update)
        except Exception:
            log.exception(
                "model.updates: cannot read the announcements; serving the models as loaded"
            )
            self.ready.set()
            with contextlib.suppress(Exception):
                await consumer.stop()
            return
        self.ready.set()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for rec in records:
                        update = parse_update(rec.value)
                        if update is not None and update.task in SWAPPABLE:
                            await self._apply(update)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
