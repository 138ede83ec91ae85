"""The commit watchdog re-reads from the committed offsets only when the worker idles
with input records left uncommitted (the Faust recovery race it works around)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from memberstream.streams.commit_watchdog import CommitWatchdog, stuck_partitions


class TP(NamedTuple):
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self, committed: dict[TP, int | None], highwater: dict[TP, int]) -> None:
        self._committed_offset = committed
        self._highwater = highwater
        self.seeks = 0
        self.sought: list[tuple[TP, int]] = []
        self.resumed: list[TP] = []
        self.unfetched: set[TP] = set()
        """Partitions the fetcher has no high watermark for (paused since the assignment)."""

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self._highwater[tp] for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.sought.append((tp, offset))

    def resume_partitions(self, tps: list[TP]) -> None:
        self.resumed.extend(tps)

    def highwater(self, tp: TP) -> int | None:
        if tp in self.unfetched:
            return None
        return self._highwater[tp]

    def assignment(self) -> set[TP]:
        return set(self._highwater)

    async def perform_seek(self) -> None:
        self.seeks += 1


class FakeApp:
    def __init__(self, consumer: FakeConsumer, rebalancing: bool = False) -> None:
        self.consumer = consumer
        self.rebalancing = rebalancing
        self.in_recovery = False


CLICKS, CHANGELOG = TP("events.clicks", 0), TP("app-members-changelog", 0)


def consumer(committed: int | None, highwater: int = 100) -> FakeConsumer:
    return FakeConsumer({CLICKS: committed, CHANGELOG: 0}, {CLICKS: highwater, CHANGELOG: 50})


def test_only_input_partitions_with_lag_are_stuck() -> None:
    assert [
        s.tp for s in stuck_partitions(consumer(40), [CLICKS, CHANGELOG], {"events.clicks"})
    ] == [CLICKS]
    assert stuck_partitions(consumer(100), [CLICKS, CHANGELOG], {"events.clicks"}) == []
    assert (
        stuck_partitions(consumer(None), [CLICKS], {"events.clicks"}) == []
    )  # nothing committed yet


@pytest.mark.parametrize(
    ("idle_s", "committed", "rebalancing", "seeks"),
    [
        (30.0, 40, False, 1),  # idle with lag: the stall it exists for
        (5.0, 40, False, 0),  # recently busy: commits may still be on their way
        (30.0, 100, False, 0),  # idle and all committed: just a quiet stream
        (30.0, 40, True, 0),  # Faust is rebalancing: it seeks by itself
    ],
)
async def test_seeks_back_only_when_idle_with_lag(
    idle_s: float, committed: int, rebalancing: bool, seeks: int
) -> None:
    c = consumer(committed)
    watchdog = CommitWatchdog(FakeApp(c, rebalancing), ["events.clicks"], stall_after_s=20.0)
    stuck = await watchdog.check(idle_s)
    assert c.seeks == seeks == watchdog.reseeks
    assert len(stuck) == seeks


@pytest.mark.parametrize(("highwater", "reread"), [(2, True), (0, False)])
async def test_a_partition_never_committed_is_read_from_the_start_when_it_holds_records(
    highwater: int, reread: bool
) -> None:
    """E.g. labels.feedback: empty in the first run, records arrive while the worker is down."""
    feedback = TP("labels.feedback", 1)
    c = FakeConsumer({CLICKS: 100, feedback: None}, {CLICKS: 100, feedback: highwater})
    watchdog = CommitWatchdog(FakeApp(c), ["events.clicks", "labels.feedback"], 20.0)
    stuck = await watchdog.check(30.0)
    assert c.seeks == 0  # nothing committed is behind: no seek back of the others
    assert c.sought == ([(feedback, 0)] if reread else [])
    assert c.resumed == ([feedback] if reread else [])
    assert [s.tp for s in stuck] == ([feedback] if reread else [])
    assert await watchdog.check(5.0) == []  # only when idle long enough


async def test_a_stuck_partition_is_resumed_after_the_seek() -> None:
    """Sought back but left paused, it would stay as silent as before."""
    c = consumer(40)
    stuck = await CommitWatchdog(FakeApp(c), ["events.clicks"], 20.0).check(30.0)
    assert [s.tp for s in stuck] == [CLICKS]
    assert c.seeks == 1 and c.resumed == [CLICKS]


@pytest.mark.parametrize(("committed", "found"), [(40, True), (100, False)])
async def test_lag_on_a_partition_never_fetched_is_found_from_the_broker(
    committed: int, found: bool
) -> None:
    c = consumer(committed)
    c.unfetched.add(CLICKS)
    assert stuck_partitions(c, [CLICKS], {"events.clicks"}) == []  # the fetcher cannot tell
    stuck = await CommitWatchdog(FakeApp(c), ["events.clicks"], 20.0).check(30.0)
    assert [(s.tp, s.committed, s.highwater) for s in stuck] == (
        [(CLICKS, 40, 100)] if found else []
    )
    assert c.resumed == ([CLICKS] if found else [])


async def test_a_reseek_clears_the_ack_bookkeeping_and_tells_the_guard() -> None:
    """Offsets acked or gapped before the seek must not leave a hole in the run that the
    commit is computed from; the guard must stop expecting what it expected before."""
    c = consumer(40)
    c._acked = {CLICKS: [45, 46, 47], CHANGELOG: [3]}  # 40-44 were dropped: a hole
    c._acked_index = {CLICKS: {45, 46, 47}, CHANGELOG: {3}}
    c._gap = {CLICKS: [(41, 42)]}
    told: list[list[TP]] = []
    watchdog = CommitWatchdog(FakeApp(c), ["events.clicks"], 20.0, on_reseek=told.append)
    await watchdog.check(30.0)
    assert c._acked == {CLICKS: [], CHANGELOG: [3]}
    assert c._acked_index == {CLICKS: set(), CHANGELOG: {3}}
    assert c._gap == {CLICKS: []}
    assert told == [[CLICKS]]
