"""Applied offsets: a redelivered record is recognised by its Kafka position."""

from __future__ import annotations

import orjson

from memberstream.core.positions import AppliedOffsets, Position


def test_covers_what_was_marked_per_partition() -> None:
    applied = AppliedOffsets()
    applied.mark(Position("events.clicks", 0, 10))
    assert applied.covers(Position("events.clicks", 0, 10))
    assert applied.covers(Position("events.clicks", 0, 0))
    assert not applied.covers(Position("events.clicks", 0, 11))
    assert not applied.covers(Position("events.clicks", 1, 3))  # another partition
    assert not applied.covers(Position("events.reviews", 0, 3))  # another topic
    assert not applied.covers(None)  # not read from Kafka: only event ids can tell


def test_marks_only_move_forward_and_round_trip_as_json() -> None:
    applied = AppliedOffsets()
    for offset in (5, 9, 7):
        applied.mark(Position("t", 2, offset))
    applied.mark(None)
    assert applied.to_dict() == {"t:2": 9}
    again = AppliedOffsets(orjson.loads(orjson.dumps(applied.to_dict())))
    assert again.covers(Position("t", 2, 9)) and not again.covers(Position("t", 2, 10))


def test_positions_carried_in_records_are_checked() -> None:
    assert Position.from_list(["events.reviews", 1, 5]) == Position("events.reviews", 1, 5)
    for bad in (None, [], ["t", 1], ["t", "1", 5], ["t", 1, -1], ["t", 1, True], [1, 1, 1], "x"):
        assert Position.from_list(bad) is None, bad
    assert Position("a", 1, 2).to_list() == ["a", 1, 2]
