"""The replay's comparison with the live outputs, on hand-made outputs."""

from __future__ import annotations

import pytest

from memberstream.core.output_diff import diff_kind, diff_outputs, identity, in_range


def tier(member: str, cause: str, tier_name: str, oid: str = "x") -> dict:
    return {"output_id": oid, "member_id": member, "cause_event_id": cause, "tier": tier_name}


def profile(member: str, last: str, orders: int, oid: str = "x") -> dict:
    return {"output_id": oid, "member_id": member, "last_event_id": last, "orders": orders}


def test_matched_outputs_are_same_changed_or_on_one_side_only() -> None:
    live = [tier("m1", "e1", "gold"), tier("m2", "e2", "silver"), tier("m3", "e3", "gold")]
    replay = [
        tier("m1", "e1", "gold", oid="other-id"),  # ids are not compared
        tier("m2", "e2", "gold"),
        tier("m4", "e4", "bronze"),
    ]
    d = diff_kind("member_tiers", live, replay)
    assert (d.live, d.replay, d.same, d.changed, d.only_live, d.only_replay) == (3, 3, 1, 1, 1, 1)
    assert d.changed_fields == {"tier": 1}
    assert d.samples == [{"identity": ["m2", "e2"], "live_vs_replay": {"tier": ["silver", "gold"]}}]


def test_an_output_redelivered_or_resumed_counts_once() -> None:
    once = [tier("m1", "e1", "gold")]
    d = diff_kind("member_tiers", once, once * 3)
    assert (d.live, d.replay, d.same) == (1, 1, 1)


def test_profiles_compare_the_replays_last_per_member_against_live_at_that_event() -> None:
    live = [profile("m1", "e1", 1), profile("m1", "e5", 3), profile("m2", "e9", 2)]
    replay = [profile("m1", "e1", 1), profile("m1", "e5", 2), profile("m2", "e8", 1)]
    d = diff_kind("member_profiles", live, replay)
    # m1: replay's last (e5) against live at e5: changed; m2: live has nothing at e8
    assert (d.replay, d.same, d.changed, d.not_comparable, d.only_live) == (2, 0, 1, 1, 0)
    assert d.changed_fields == {"orders": 1}


def test_live_outputs_outside_the_range_are_left_out() -> None:
    live = {"member_tiers": [tier("m1", "e1", "gold"), tier("m1", "e0", "silver")]}
    replay = {"member_tiers": [tier("m1", "e1", "gold")]}
    diffs = diff_outputs(live, replay, lambda kind, p: in_range(kind, p, {"e1"}))
    assert (diffs["member_tiers"].live, diffs["member_tiers"].same) == (1, 1)
    assert diffs["dlq"].live == diffs["dlq"].replay == 0


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        ("member_anomalies", {"kind": "click_burst", "member_id": "m1", "cause_event_id": "e"},
         ("click_burst", "m1", "e")),
        ("member_anomalies",
         {"kind": "review_bombing", "member_id": None, "product_id": "p1", "cause_event_id": "e"},
         ("review_bombing", "p1", "e")),
        ("product_review_summaries", {"product_id": "p1", "as_of": "t"}, ("p1", "t")),
        ("dlq", {"source_topic": "c", "partition": 1, "offset": 7}, ("c", 1, 7)),
    ],
)  # fmt: skip
def test_identities(kind: str, payload: dict, expected: tuple) -> None:
    assert identity(kind, payload) == expected


def test_a_summary_is_in_range_when_one_of_its_reviews_is() -> None:
    summary = {"product_id": "p1", "as_of": "t", "review_ids": ["r1", "r2"]}
    assert in_range("product_review_summaries", summary, {"r2"})
    assert not in_range("product_review_summaries", summary, {"r3"})
