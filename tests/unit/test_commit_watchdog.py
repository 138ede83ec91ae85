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

    def highwater(self, tp: TP) -> int:
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
