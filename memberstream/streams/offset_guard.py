"""Process each input partition's records in offset order, without holes.

Faust can skip records. In a recovery after a restart or rebalance it may drop
records it had already fetched (faust-streaming/faust#596) and go on with later
ones; its consumer then records the skipped offsets as a "gap" (meant for
compacted topics and transaction markers) and counts them as done when it
commits, so they are never processed. Seen here: a worker restarted mid-stream
lost 91 of one member's clicks. The member state's applied offsets
(:mod:`memberstream.streams.positions`) also assume a member's records on a
partition arrive in order.

The guard checks every record of a batch against the next offset it expects on
that partition (at the start of an assignment: the group's committed offset, or
the partition's first offset when the group never committed). A record past a
hole is not processed and not acked; the partition is sought back to the hole
(and Faust's gap bookkeeping for it forgotten), and records still queued from
before the seek are dropped the same way until the re-read arrives. If the
re-read starts past the hole again, the broker has no records there (transaction
markers, records deleted by retention): the hole is accepted. A record at or
before what was expected (a re-read after a seek) is processed; the member
state skips what it applied already.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import TP, EventT

log = logging.getLogger(__name__)


@dataclass
class _Resync:
    """Sought back to ``start``; records newer than the hole are still queued."""

    start: int
    last_dropped: int


class OffsetGuard:
    """Admits a batch's records in offset order per partition; seeks back over holes."""

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.expect: dict[TP, int] = {}
        self.resync: dict[TP, _Resync] = {}
        self.holes = 0
        self.dropped = 0

    def forget(self, tps: Any = None) -> None:
        """Start over for ``tps`` (all when None): after a rebalance, the next record of
        a partition is checked against the committed offset again."""
        for tp in list(self.expect) if tps is None else tps:
            self.expect.pop(tp, None)
            self.resync.pop(tp, None)

    async def admit(self, events: Sequence[EventT]) -> list[EventT]:
        """The events to process now, in order; the others are dropped (never acked) and
        their partitions sought back."""
        admitted: list[EventT] = []
        seek: dict[TP, int] = {}
        for tp in {ev.message.tp for ev in events} - self.expect.keys() - self.resync.keys():
            start = await self._start_of(tp)
            if start is not None:
                self.expect[tp] = start
        for ev in events:
            msg = ev.message
            if self._admits(msg.tp, msg.offset, seek):
                admitted.append(ev)
            else:
                self._drop(msg)
        for tp, offset in seek.items():
            await self._seek_back(tp, offset)
        return admitted

    def _admits(self, tp: TP, offset: int, seek: dict[TP, int]) -> bool:
        resync = self.resync.get(tp)
        if resync is not None:
            if offset > resync.last_dropped:  # queued before the seek: not yet
                resync.last_dropped = offset
                return False
            if offset > resync.start:  # the re-read starts past the hole: nothing there
                log.info(
                    "%s[%d]: no records at offsets %d-%d (re-read confirms)",
                    tp.topic,
                    tp.partition,
                    resync.start,
                    offset - 1,
                )
            del self.resync[tp]
            self.expect[tp] = offset + 1
            return True
        expected = self.expect.get(tp, offset)  # start unknown: take the first as it comes
        if offset > expected:
            self.holes += 1
            log.warning(
                "%s[%d]: got offset %d but %d was not processed yet (records skipped by the "
                "consumer); re-reading from %d",
                tp.topic,
                tp.partition,
                offset,
                expected,
                expected,
            )
            self.resync[tp] = _Resync(expected, offset)
            seek[tp] = expected
            return False
        self.expect[tp] = offset + 1
        return True

    async def _start_of(self, tp: TP) -> int | None:
        """Where the partition's records start for this worker: the group's committed
        offset, else the partition's first offset (None: the broker did not say)."""
        committed = getattr(self.consumer, "_committed_offset", {}).get(tp)
        if committed is not None and committed >= 0:
            return int(committed)
        try:
            earliest = await self.consumer.earliest_offsets(tp)
        except Exception:  # e.g. no broker under faust's test_context
            log.warning("%s: no earliest offset; its first record is taken as the start", tp)
            return None
        return None if earliest.get(tp) is None else int(earliest[tp])

    def _drop(self, msg: Any) -> None:
        """Leave ``msg`` unprocessed: Faust must neither ack it nor wait for it."""
        self.dropped += 1
        msg.acked = True  # Faust's ack() is a no-op for it, so it is never committed
        unacked = getattr(self.consumer, "_unacked_messages", None)
        if unacked is not None:
            unacked.discard(msg)

    async def _seek_back(self, tp: TP, offset: int) -> None:
        gaps = getattr(self.consumer, "_gap", {}).get(tp)
        if gaps:
            gaps.chop(offset, gaps.end())  # Faust would count the skipped offsets as done
        await self.consumer.seek(tp, offset)
