"""Unstick commits that Faust stopped advancing.

Faust commits a partition only up to its first offset that was never acked
(``Consumer._new_offset``). A race in Faust's recovery after a restart or
rebalance (faust-streaming/faust#596) can drop messages that were already
fetched from the in-memory queues: they are neither processed nor re-fetched,
so the worker goes idle with lag left behind it, and its commits never move
again until the next restart.

The watchdog notices that state — no batch for ``stall_after_s`` while an input
partition's committed offset is below its high watermark — and seeks every
partition back to its committed offset. A partition the group never committed
(e.g. ``labels.feedback``, empty until an analyst writes) can be left unread
the same way after a restart; when the broker holds records there, the
watchdog seeks it to the start and resumes fetching it. The records after it come again;
those already applied are recognised by their Kafka position in the member's (or
product's) state and skipped, however long the re-read span
(:mod:`memberstream.core.positions`); their outputs were acknowledged before
that state was written. The span is logged with each re-read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


class _TP(Protocol):
    topic: str
    partition: int


@dataclass(frozen=True)
class Stuck:
    tp: Any
    committed: int
    highwater: int

    def __str__(self) -> str:
        return f"{self.tp.topic}[{self.tp.partition}] {self.committed}/{self.highwater}"


def fetched_positions(
    consumer: Any, assignment: Iterable[_TP], topics: Collection[str]
) -> list[tuple[_TP, int | None, int]]:
    """(partition, committed offset or None, high watermark) of the assigned partitions of
    ``topics`` whose high watermark the fetcher knows (the commit watchdog's view of lag,
    and the worker's lag metric)."""
    committed_by_tp = getattr(consumer, "_committed_offset", {})
    out = []
    for tp in assignment:
        if tp.topic not in topics:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not fetched from yet
            continue
        if highwater is not None:
            out.append((tp, committed_by_tp.get(tp), highwater))
    return out


def stuck_partitions(
    consumer: Any, assignment: Iterable[_TP], topics: Collection[str]
) -> list[Stuck]:
    """Input partitions whose committed offset is below the high watermark."""
    return [
        Stuck(tp, committed, highwater)
        for tp, committed, highwater in fetched_positions(consumer, assignment, topics)
        if committed is not None and committed < highwater
    ]


class CommitWatchdog:
    """Call :meth:`check` periodically; it re-seeks when the worker idles with lag."""

    def __init__(
        self,
        app: Any,
        topics: Collection[str],
        stall_after_s: float,
        on_reseek: Callable[[list[Any]], None] | None = None,
    ) -> None:
        """``on_reseek(tps)`` is told which partitions were sought back (the offset guard
        forgets what it expected of them)."""
        self.app = app
        self.topics = set(topics)
        self.stall_after_s = stall_after_s
        self.on_reseek = on_reseek
        self.reseeks = 0

    async def check(self, idle_s: float) -> list[Stuck]:
        """Seek back when idle for ``idle_s`` >= ``stall_after_s`` with lag; what was stuck."""
        app = self.app
        if idle_s < self.stall_after_s:
            return []
        if getattr(app, "rebalancing", False) or getattr(app, "in_recovery", False):
            return []
        consumer = app.consumer
        assignment = consumer.assignment()
        stuck = stuck_partitions(consumer, assignment, self.topics)
        stuck += await unfetched_with_lag(consumer, assignment, self.topics)
        unread = await never_committed_with_records(consumer, assignment, self.topics)
        if not stuck and not unread:
            return []
        self.reseeks += 1
        span = sum(s.highwater - s.committed for s in (*stuck, *unread))
        log.warning(
            "no batch for %.0f s but records are left uncommitted on %s; re-reading %d "
            "records from the committed offsets (those already applied are skipped)",
            idle_s,
            ", ".join(str(s) for s in (*stuck, *unread)),
            span,
        )
        tps = [s.tp for s in (*stuck, *unread)]
        forget_acks(consumer, tps)
        if self.on_reseek is not None:
            self.on_reseek(tps)
        if stuck:
            await consumer.perform_seek()
        for s in unread:
            await consumer.seek(s.tp, 0)
        # A partition Faust paused (flow control, a full stream buffer) and never resumed
        # would stay silent after the seek: resume every partition re-read.
        consumer.resume_partitions(tps)
        return [*stuck, *unread]


def forget_acks(consumer: Any, tps: Iterable[Any]) -> None:
    """Clear Faust's acknowledgement bookkeeping of ``tps`` before re-reading them.

    Faust commits a partition up to the end of the first run of consecutive acked
    offsets. Offsets acked before a seek, gaps recorded for records that were
    dropped, and records left unacked on purpose can leave a hole in that run that
    the re-read never fills, and the commits creep forward a few records per re-read
    (seen after a SIGKILL restart: 50 records per 25 s re-read). After the seek every
    offset from the committed one comes again and is acked afresh."""
    for name in ("_acked", "_acked_index", "_gap"):
        book = getattr(consumer, name, None)
        if not book:
            continue
        for tp in tps:
            entry = book.get(tp)
            if entry is not None:
                entry.clear()


async def unfetched_with_lag(
    consumer: Any, assignment: Iterable[_TP], topics: Collection[str]
) -> list[Stuck]:
    """Committed input partitions whose high watermark the consumer does not know (never
    fetched since the assignment, e.g. paused) while the broker holds records past the
    committed offset: :func:`stuck_partitions` cannot see those from the fetcher alone."""
    committed_by_tp = getattr(consumer, "_committed_offset", {})
    tps = []
    for tp in assignment:
        if tp.topic not in topics or committed_by_tp.get(tp) is None:
            continue
        try:
            known = consumer.highwater(tp)
        except Exception:
            known = None
        if known is None:
            tps.append(tp)
    if not tps:
        return []
    try:
        ends = await consumer.highwaters(*tps)
    except Exception:  # the broker did not answer: try again at the next check
        log.debug("could not read high watermarks", exc_info=True)
        return []
    return [
        Stuck(tp, committed_by_tp[tp], end)
        for tp, end in sorted(ends.items())
        if end is not None and committed_by_tp[tp] < end
    ]


async def never_committed_with_records(
    consumer: Any, assignment: Iterable[_TP], topics: Collection[str]
) -> list[Stuck]:
    """Input partitions the group never committed on which the broker holds records."""
    committed_by_tp = getattr(consumer, "_committed_offset", {})
    tps = [tp for tp in assignment if tp.topic in topics and committed_by_tp.get(tp) is None]
    if not tps:
        return []
    try:
        ends = await consumer.highwaters(*tps)
    except Exception:  # the broker did not answer: try again at the next check
        log.debug("could not read high watermarks", exc_info=True)
        return []
    return [Stuck(tp, 0, end) for tp, end in sorted(ends.items()) if end and end > 0]
