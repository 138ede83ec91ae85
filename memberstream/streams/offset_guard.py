"""Process each input partition's records in offset order, without holes.

Faust can skip records. In a recovery after a restart or rebalance it may drop
records it had already fetched (faust-streaming/faust#596) and go on with later
ones; its consumer then records the skipped offsets as a "gap" (meant for
compacted topics and transaction markers) and counts them as done when it
commits, so they are never processed. Seen here: a worker restarted mid-stream
lost 91 of one member's clicks. The member state's applied offsets
(:mod:`memberstream.core.positions`) also assume a member's records on a
partition arrive in order.

The guard checks every record of a batch against the next offset it expects on
that partition (at the start of an assignment: the group's committed offset, or
the partition's first offset when the group never committed). On a hole it asks
the broker (a short read with a consumer of its own) where the next record at or
after the expected offset really is. If that is the record in hand, the hole is
real (transaction markers, records deleted by retention) and processing goes on.
Otherwise records were skipped: the record in hand is not processed and not
acked, the partition is sought back (and Faust's gap bookkeeping for it
forgotten), and every record of the partition is dropped the same way until the
re-read reaches the missing offset. A record at or before what was expected (a
re-read after a seek) is processed; the member state skips what it applied
already. If the re-read never comes, the commit watchdog's re-seek (the worker
idles with lag) brings it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faust.types import TP, EventT

log = logging.getLogger(__name__)

Probe = Callable[[TP, int], Awaitable[int | None]]
Committed = Callable[[TP], Awaitable[int | None]]


class OffsetGuard:
    """Admits a batch's records in offset order per partition; seeks back over holes."""

    def __init__(self, consumer: Any, probe: Probe, committed: Committed) -> None:
        """``probe(tp, offset)``: the offset of the first record the broker holds at or
        after ``offset`` (None: none yet); ``committed(tp)``: the group's committed
        offset as the broker has it (None: never committed)."""
        self.consumer = consumer
        self.probe = probe
        self.committed = committed
        self.expect: dict[TP, int] = {}
        self.resync: dict[TP, int] = {}
        """Partitions sought back: the offset the re-read must start at."""
        self.holes = 0
        self.dropped = 0

    def forget(self, tps: Any = None) -> None:
        """Start over for ``tps`` (all when None): after a rebalance, the next record of
        a partition is checked against the committed offset again."""
        for tp in [*self.expect, *self.resync] if tps is None else tps:
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
            tp, offset = msg.tp, msg.offset
            expected = self.expect.get(tp, offset)  # start unknown: take the first as it is
            if tp not in self.resync and offset > expected:  # a seek puts tp in resync
                await self._hole(tp, expected, offset, seek)
            if self._admits(tp, offset):
                admitted.append(ev)
            else:
                self._drop(msg)
        for tp, offset in seek.items():
            await self._seek_back(tp, offset)
        return admitted

    async def _hole(self, tp: TP, expected: int, offset: int, seek: dict[TP, int]) -> None:
        """Offsets ``expected``..``offset - 1`` did not arrive: accept them as empty if
        the broker has nothing there, else seek back to the first one it has."""
        try:
            first = await self.probe(tp, expected)
        except Exception as exc:  # cannot tell: re-reading is the safe choice
            log.warning(
                "%s[%d]: probing offset %d failed: %s", tp.topic, tp.partition, expected, exc
            )
            first = None
        if first is not None and first >= offset:
            log.info(
                "%s[%d]: no records at offsets %d-%d (transaction markers or deleted)",
                tp.topic,
                tp.partition,
                expected,
                offset - 1,
            )
            self.expect[tp] = offset
            return
        self.holes += 1
        start = expected if first is None else first
        log.warning(
            "%s[%d]: got offset %d but %d was not processed yet (records skipped by the "
            "consumer); re-reading from %d",
            tp.topic,
            tp.partition,
            offset,
            expected,
            start,
        )
        self.resync[tp] = start
        seek[tp] = start

    def _admits(self, tp: TP, offset: int) -> bool:
        start = self.resync.get(tp)
        if start is not None:
            if offset > start:  # queued before the seek, or past the hole: not yet
                return False
            del self.resync[tp]  # the re-read (or an earlier re-read) has arrived
        self.expect[tp] = offset + 1
        return True

    async def _start_of(self, tp: TP) -> int | None:
        """Where the partition's records start for this worker: the group's committed
        offset (asked of the broker: the consumer may not know it yet when the first
        records arrive), else the partition's first offset (None: cannot tell)."""
        try:
            committed = await self.committed(tp)
            if committed is not None and committed >= 0:
                return committed
            earliest = await self.consumer.earliest_offsets(tp)
        except Exception as exc:  # e.g. no broker under faust's test_context
            log.warning(
                "%s: no committed or first offset (%s); its first record is taken as the start",
                tp,
                exc,
            )
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
