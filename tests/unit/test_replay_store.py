"""The replay's SQLite store: a batch's state and progress commit together or not at all."""

from __future__ import annotations

from pathlib import Path

from memberstream.core.replay_store import ReplayStore


def test_state_and_progress_commit_together(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite"
    store = ReplayStore(path)
    members = store.states("members")
    members.put(b"m1", b"state-1")
    store.commit({("clicks", 0): 10}, ["e1", "e2"])
    members.put(b"m1", b"state-2")  # a batch that never commits (a crash)
    members.put(b"m2", b"state-x")
    assert members.get(b"m1") == b"state-2"  # the open batch reads its own writes
    store.close()

    again = ReplayStore(path)
    members = again.states("members")
    assert members.get(b"m1") == b"state-1"
    assert members.get(b"m2") is None
    assert again.next_offsets() == {("clicks", 0): 10}
    assert again.event_ids() == {"e1", "e2"}
    again.close()


def test_kinds_are_separate_and_meta_round_trips(tmp_path: Path) -> None:
    store = ReplayStore(tmp_path / "r.sqlite")
    store.states("members").put(b"k", b"member")
    store.states("products").put(b"k", b"product")
    store.commit({}, [])
    store.set_meta("plan", {"from_ms": 1, "spans": [["t", 0, 1, 2]]})
    assert store.states("members").get(b"k") == b"member"
    assert store.states("products").get(b"k") == b"product"
    assert store.count("members") == 1
    assert store.meta("plan") == {"from_ms": 1, "spans": [["t", 0, 1, 2]]}
    assert store.meta("absent") is None
    store.close()
