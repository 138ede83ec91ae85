"""The offset guard: records of a partition are processed in order, holes re-read."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP
from intervaltree import IntervalTree

from memberstream.streams.offset_guard import OffsetGuard

A = TP("events.clicks", 0)
B = TP("events.clicks", 1)


class Broker:
    """What the broker holds: the first record at or after an offset (a probe)."""

    def __init__(self, holes: dict[TP, range] | None = None) -> None:
        self.holes = holes or {}
        self.asked: list[tuple[TP, int]] = []

    async def first_at(self, tp: TP, offset: int) -> int | None:
        self.asked.append((tp, offset))
        hole = self.holes.get(tp)
        return hole.stop if hole is not None and offset in hole else offset


def group(committed: dict[TP, int | None]):  # type: ignore[no-untyped-def]
    """The group's committed offsets as the broker has them."""

    async def committed_at(tp: TP) -> int | None:
        return committed.get(tp)

    return committed_at


class Consumer:
    def __init__(self, committed: dict[TP, int | None], earliest: int = 0) -> None:
        self._committed_offset = committed
        self._unacked_messages: set = set()
        self._gap: dict[TP, IntervalTree] = {}
        self.earliest = earliest
        self.seeks: list[tuple[TP, int]] = []

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.earliest for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


class Msg:
    def __init__(self, tp: TP, offset: int) -> None:
        self.tp, self.offset, self.acked = tp, offset, False


def events(consumer: Consumer, *records: tuple[TP, int]) -> list[SimpleNamespace]:
    out = []
    for tp, offset in records:
        msg = Msg(tp, offset)
        consumer._unacked_messages.add(msg)
        out.append(SimpleNamespace(message=msg))
    return out


def offsets(evs: list[SimpleNamespace]) -> list[tuple[int, int]]:
    return [(e.message.tp.partition, e.message.offset) for e in evs]


async def test_contiguous_records_pass_from_the_committed_offset() -> None:
    consumer = Consumer({A: 10, B: None}, earliest=3)
    guard = OffsetGuard(consumer, Broker().first_at, group(consumer._committed_offset))
    batch = events(consumer, (A, 10), (B, 3), (A, 11), (B, 4))
    assert await guard.admit(batch) == batch
    assert consumer.seeks == [] and guard.expect == {A: 12, B: 5}


async def test_a_hole_is_not_processed_past_and_is_read_again() -> None:
    """Faust skipped offsets 12-14: 15 and what is queued after it wait for the re-read."""
    consumer = Consumer({A: 10, B: 0})
    consumer._gap[A] = IntervalTree.from_tuples([(12, 15)])  # Faust's "done" bookkeeping
    broker = Broker()
    guard = OffsetGuard(consumer, broker.first_at, group(consumer._committed_offset))
    first = events(consumer, (A, 10), (A, 11), (B, 0), (A, 15), (B, 1), (A, 16))
    got = await guard.admit(first)
    assert offsets(got) == [(0, 10), (0, 11), (1, 0), (1, 1)]
    assert consumer.seeks == [(A, 12)] and broker.asked == [(A, 12)]
    assert not consumer._gap[A]  # the skipped offsets are no longer counted as done
    dropped = [e.message for e in first if e not in got]
    assert all(m.acked for m in dropped)  # Faust will not ack (commit) them
    assert not consumer._unacked_messages & set(dropped)  # nor wait for them
    # still queued from before the seek: dropped; then the re-read, in order
    queued = events(consumer, (A, 17), (A, 12), (A, 13), (A, 14), (A, 15), (A, 16), (A, 17))
    got = await guard.admit(queued)
    assert offsets(got) == [(0, o) for o in range(12, 18)]
    assert guard.holes == 1 and guard.dropped == 3


async def test_a_hole_the_broker_confirms_is_accepted() -> None:
    """Transaction markers or deleted records: the broker has nothing at 12-14."""
    consumer = Consumer({A: 10})
    broker = Broker({A: range(12, 15)})
    guard = OffsetGuard(consumer, broker.first_at, group(consumer._committed_offset))
    got = await guard.admit(events(consumer, (A, 10), (A, 11), (A, 15), (A, 16)))
    assert offsets(got) == [(0, 10), (0, 11), (0, 15), (0, 16)]
    assert consumer.seeks == [] and broker.asked == [(A, 12)] and guard.expect[A] == 17


async def test_a_partly_real_hole_is_re_read_from_the_first_record_there() -> None:
    """12-13 are markers, 14 exists but was skipped: re-read from 14, not 12."""
    consumer = Consumer({A: 10})
    guard = OffsetGuard(
        consumer, Broker({A: range(12, 14)}).first_at, group(consumer._committed_offset)
    )
    assert offsets(await guard.admit(events(consumer, (A, 10), (A, 11), (A, 15)))) == [
        (0, 10),
        (0, 11),
    ]
    assert consumer.seeks == [(A, 14)]
    # queued records past the hole never count as the re-read, however they interleave
    got = await guard.admit(events(consumer, (A, 16), (A, 17), (A, 15), (A, 14), (A, 15)))
    assert offsets(got) == [(0, 14), (0, 15)]


async def test_when_the_broker_cannot_be_asked_the_hole_is_re_read() -> None:
    async def down(tp: TP, offset: int) -> int | None:
        raise OSError("broker away")

    consumer = Consumer({A: 10})
    guard = OffsetGuard(consumer, down, group(consumer._committed_offset))
    assert await guard.admit(events(consumer, (A, 13))) == []
    assert consumer.seeks == [(A, 10)]


async def test_records_before_the_expected_offset_are_re_reads() -> None:
    consumer = Consumer({A: 10})
    guard = OffsetGuard(consumer, Broker().first_at, group(consumer._committed_offset))
    await guard.admit(events(consumer, (A, 10), (A, 11), (A, 12)))
    again = events(consumer, (A, 10), (A, 11), (A, 12), (A, 13))  # a seek to committed
    assert await guard.admit(again) == again


async def test_a_hole_at_the_head_is_caught() -> None:
    """Nothing committed yet, and the first record delivered is not the first one."""
    consumer = Consumer({A: None}, earliest=0)
    guard = OffsetGuard(consumer, Broker().first_at, group(consumer._committed_offset))
    assert await guard.admit(events(consumer, (A, 91), (A, 92))) == []
    assert consumer.seeks == [(A, 0)]


async def test_after_a_rebalance_the_committed_offset_is_the_start_again() -> None:
    consumer = Consumer({A: 10})
    guard = OffsetGuard(consumer, Broker().first_at, group(consumer._committed_offset))
    await guard.admit(events(consumer, (A, 10), (A, 11)))
    consumer._committed_offset[A] = 30  # another worker went on meanwhile
    guard.forget()
    assert offsets(await guard.admit(events(consumer, (A, 30)))) == [(0, 30)]


async def test_the_start_is_the_committed_offset_the_broker_has() -> None:
    """Faust may not know the committed offset yet when the first records arrive; taking
    the partition's first offset instead would seek below the commit, where the
    re-read never comes."""
    consumer = Consumer({A: None}, earliest=0)
    guard = OffsetGuard(consumer, Broker().first_at, group({A: 1157}))
    batch = events(consumer, (A, 1157), (A, 1158))
    assert await guard.admit(batch) == batch
    assert consumer.seeks == []
