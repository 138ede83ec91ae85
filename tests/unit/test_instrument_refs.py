"""Payment, shipping and device references on purchase events: the schema, what the member
state remembers, and how order_value_outlier and order_velocity use them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from pydantic import ValidationError

from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES
from memberstream.domain.anomaly.flags import Candidate
from memberstream.domain.anomaly.instruments import MAX_REFS, RefHistory
from memberstream.domain.anomaly.member_detectors import MemberAnomalyState, MemberDetectors
from memberstream.domain.anomaly.settings import AnomalySettings
from memberstream.schemas.codec import decode_event, encode
from memberstream.schemas.events import PURCHASE_REFS, LineItem, PurchaseEvent
from memberstream.schemas.outputs import AnomalyFlag

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
DAY = 86_400.0
OWN = ("card-a", "home", "phone")
"""The member's own card, address and device."""
HISTORY = (40.0, 50.0, 60.0, 45.0, 55.0)
"""Five ordinary orders: median $50; the log-space MAD (0.105) is under the 0.5 floor of
the scale, so an order's robust z is ln(total / 50) / 0.5."""


def order(
    t: float,
    n: int | str,
    total: float,
    refs: tuple[str | None, str | None, str | None] | None = OWN,
    status: str = "paid",
    member: str = "m1",
) -> PurchaseEvent:
    item = LineItem(product_id="p1", title="Thing", category="books", quantity=1, unit_price=total)
    fields = {} if refs is None else dict(zip(PURCHASE_REFS, refs, strict=True))
    return PurchaseEvent(
        event_id=f"o-{member}-{n}",
        member_id=member,
        occurred_at=T0 + timedelta(seconds=t),
        order_id=f"order-{n}",
        items=[item],
        total=total,
        status=status,  # type: ignore[arg-type]
        **fields,
    )


def history(refs: tuple[str | None, str | None, str | None] | None = OWN) -> list[PurchaseEvent]:
    return [order(i * DAY, i, total, refs) for i, total in enumerate(HISTORY)]


def feed(det: MemberDetectors, state: MemberAnomalyState, *events: PurchaseEvent) -> list:
    return [c for e in events for c in det.on_purchase(state, e)]


def kinds(candidates: list[Candidate]) -> list[str]:
    return [c.kind for c in candidates]


@pytest.fixture
def det() -> MemberDetectors:
    return MemberDetectors(AnomalySettings())


# --- schema ----------------------------------------------------------------------------------


def test_an_order_without_references_serializes_as_before() -> None:
    plain = order(0, 1, 30.0, refs=None)
    data = orjson.loads(encode(plain))
    assert not set(PURCHASE_REFS) & set(data)
    assert set(data) == {
        "event_id",
        "schema_version",
        "member_id",
        "occurred_at",
        "source",
        "type",
        "order_id",
        "items",
        "total",
        "currency",
        "status",
    }
    again = decode_event(encode(plain), PurchaseEvent)
    assert again == plain and again.payment_ref is None


def test_references_round_trip_and_are_ids() -> None:
    event = order(0, 1, 30.0, refs=("pay-1f3a", "ship-9c2e", None))
    data = orjson.loads(encode(event))
    assert (data["payment_ref"], data["shipping_ref"]) == ("pay-1f3a", "ship-9c2e")
    assert "device_ref" not in data
    assert decode_event(encode(event), PurchaseEvent) == event
    for bad in ("", "x" * 129, 12345):
        with pytest.raises(ValidationError):
            PurchaseEvent.model_validate({**data, "payment_ref": bad})
    schema = PurchaseEvent.model_json_schema()
    assert not set(PURCHASE_REFS) & set(schema["required"])
    assert all("hashed" in schema["properties"][name]["description"] for name in PURCHASE_REFS)


# --- order_value_outlier ----------------------------------------------------------------------


def test_a_takeover_on_a_new_card_to_a_new_address_flags_below_the_old_floor(
    det: MemberDetectors,
) -> None:
    state = MemberAnomalyState()
    assert feed(det, state, *history()) == []
    # 6x the median, far under min_total = 1,500: z = ln(6) / 0.5 = 3.58 >= 3.5
    spike = order(6 * DAY, "ato", 300.0, refs=("card-thief", "drop-house", "phone"))
    (flag,) = det.on_purchase(state, spike)
    assert flag.kind == "order_value_outlier"
    assert flag.score == pytest.approx(math.log(6.0) / 0.5) == pytest.approx(3.583519)
    assert flag.details["new_refs"] == "payment+shipping"
    assert flag.details["floor"] == "new_instrument"
    assert flag.details["min_total"] == 250.0
    assert flag.details["median_total"] == pytest.approx(50.0)
    # the thief's card and address do not become the member's own
    assert "card-thief" not in state.refs.payment and "drop-house" not in state.refs.shipping
    assert list(state.totals) == list(HISTORY)
    # a new card from a new device (own address) is the same evidence
    other = MemberAnomalyState()
    feed(det, other, *history())
    (flag,) = feed(det, other, order(6 * DAY, "ato", 300.0, refs=("card-thief", "home", "pc")))
    assert flag.details["new_refs"] == "payment+device"


def test_the_same_order_from_the_members_own_card_does_not_flag(det: MemberDetectors) -> None:
    state = MemberAnomalyState()
    # the member's own card, address and device: held to min_total (1,500) as before
    assert feed(det, state, *history(), order(6 * DAY, "big", 300.0)) == []
    assert state.totals[-1] == 300.0  # an ordinary order for this member now
    # its own card to a new address (a gift) is no new instrument either
    gift = MemberAnomalyState()
    assert feed(det, gift, *history(), order(6 * DAY, "g", 300.0, ("card-a", "aunt", "pc"))) == []


def test_a_new_card_alone_does_not_lower_the_floor(det: MemberDetectors) -> None:
    state = MemberAnomalyState()
    # a new card for an ordinary order: nothing, and the card is the member's own from now on
    assert feed(det, state, *history(), order(6 * DAY, "n", 55.0, ("card-b", *OWN[1:]))) == []
    assert list(state.refs.payment) == ["card-a", "card-b"]
    # a new card with its own address and device: min_total applies, although z reaches
    # the threshold (median sqrt(50 x 55) = 52.4 after the $55 order; z = 2 ln(400 / 52.4)
    # = 4.06); under the floor the order is ordinary and joins the history
    assert feed(det, state, order(7 * DAY, "c", 400.0, ("card-c", *OWN[1:]))) == []
    assert state.totals[-1] == 400.0
    # a new card to a new address at an ordinary size: z = ln(55 / 50) / 0.5 = 0.19
    assert feed(det, state, order(8 * DAY, "d", 55.0, ("card-d", "new-flat", "phone"))) == []


def test_members_whose_orders_never_carried_references_keep_todays_behaviour() -> None:
    det = MemberDetectors(AnomalySettings())
    plain = MemberAnomalyState()
    assert feed(det, plain, *history(refs=None), order(6 * DAY, "s", 300.0, refs=None)) == []
    assert "rf" not in plain.to_dict()
    # with a floor low enough to flag, the flag is the one raised before references existed
    low = MemberDetectors(AnomalySettings.model_validate({"order_value": {"min_total": 250.0}}))
    state = MemberAnomalyState()
    (flag,) = feed(low, state, *history(refs=None), order(6 * DAY, "s", 300.0, refs=None))
    assert "new_refs" not in flag.details and "floor" not in flag.details
    assert flag.details["min_total"] == 250.0
    # a member whose platform starts sending references: nothing is new against no history
    starts = MemberAnomalyState()
    feed(det, starts, *history(refs=None))
    assert feed(det, starts, order(6 * DAY, "s", 300.0, ("card-x", "addr-x", "dev-x"))) == []


def test_too_few_orders_with_references_keep_the_floor(det: MemberDetectors) -> None:
    """Two orders with references (new_instrument_min_orders is 3) after three without."""
    state = MemberAnomalyState()
    events = [order(i * DAY, i, t, OWN if i >= 3 else None) for i, t in enumerate(HISTORY)]
    assert feed(det, state, *events) == []
    assert state.refs.orders == 2
    assert feed(det, state, order(6 * DAY, "s", 300.0, ("card-x", "addr-x", "phone"))) == []
    # the third order with references makes the member eligible
    state = MemberAnomalyState()
    feed(det, state, *events, order(5 * DAY, 5, 50.0))
    (flag,) = feed(det, state, order(6 * DAY, "s", 300.0, ("card-x", "addr-x", "phone")))
    assert flag.details["floor"] == "new_instrument"


def test_card_tests_on_an_account_do_not_make_its_owners_order_a_takeover(
    det: MemberDetectors,
) -> None:
    """Twelve $9 tries on new cards from the tester's address and device, then the owner's
    own first order: its card, address and device are new, its total 64x the tries'."""
    state = MemberAnomalyState()
    tries = [order(i * 50.0, f"t{i}", 9.0, (f"stolen-{i}", "drop", "bot")) for i in range(12)]
    assert kinds(feed(det, state, *tries)) == ["order_velocity"]
    assert state.refs.orders == 1  # the first card only: every later try came on a new one
    assert len(state.totals) == 12  # (the value history learns them, as it always did)
    owner = order(DAY, "own", 575.0, OWN)
    assert feed(det, state, owner) == []  # held to min_total: z = 2 ln(575 / 9) = 8.3
    assert state.refs.orders == 1  # a card new to the account: it counts from its next order
    assert feed(det, state, order(2 * DAY, "own2", 60.0, OWN)) == []
    assert state.refs.orders == 2


# --- order_velocity ---------------------------------------------------------------------------


def test_three_new_cards_in_ten_minutes_flag_velocity(det: MemberDetectors) -> None:
    state = MemberAnomalyState()
    feed(det, state, *history())
    # $45 each: not tiny (tiny_total 20), but each on a card the member never used
    base = 6 * DAY
    tries = [order(base + i * 240.0, f"t{i}", 45.0, (f"card-{i}", *OWN[1:])) for i in range(3)]
    assert feed(det, state, *tries[:2]) == []
    (flag,) = det.on_purchase(state, tries[2])
    assert flag.kind == "order_velocity"
    assert flag.score == 3.0 and flag.threshold == 3.0
    assert flag.details["new_payment_refs"] == 3
    assert flag.evidence == tuple(e.event_id for e in tries)
    assert flag.window_start == tries[0].occurred_at.timestamp()


def test_one_new_card_among_ordinary_orders_is_not_card_testing(det: MemberDetectors) -> None:
    state = MemberAnomalyState()
    feed(det, state, *history())
    base = 6 * DAY
    sale = [
        order(base, "a", 45.0, ("card-new", *OWN[1:])),
        order(base + 120, "b", 60.0, ("card-new", *OWN[1:])),  # the same card: known now
        order(base + 240, "c", 35.0),
        order(base + 360, "d", 15.0),  # one tiny order
    ]
    assert feed(det, state, *sale) == []  # one new card + one tiny order: 2 < 3
    assert [o[2] for o in state.orders] == ["card-new", ""]


def test_without_new_payment_refs_velocity_counts_as_before() -> None:
    off = MemberDetectors(
        AnomalySettings.model_validate({"order_velocity": {"new_payment_refs": False}})
    )
    state = MemberAnomalyState()
    feed(off, state, *history())
    tries = [order(6 * DAY + i * 240.0, i, 45.0, (f"card-{i}", *OWN[1:])) for i in range(4)]
    assert feed(off, state, *tries) == []
    assert len(state.orders) == 0


# --- state --------------------------------------------------------------------------------------


def test_references_round_trip_and_stay_bounded() -> None:
    det = MemberDetectors(AnomalySettings.model_validate({"refs_kept": 8}))
    state = MemberAnomalyState()
    # 20 orders a day apart, each on its own card, the last 10 from a second device
    for i in range(20):
        device = "phone" if i < 10 else "tablet"
        det.on_purchase(state, order(i * DAY, i, 40.0, (f"card-{i}", "home", device)))
    assert list(state.refs.payment) == [f"card-{i}" for i in range(12, 20)]
    assert list(state.refs.shipping) == ["home"]
    assert list(state.refs.device) == ["phone", "tablet"]
    assert state.refs.orders == 1  # each later order came on a new card: not counted
    stored = orjson.dumps(state.to_dict())
    again = MemberAnomalyState.from_dict(orjson.loads(stored))
    assert orjson.dumps(again.to_dict()) == stored
    assert list(again.refs.payment) == list(state.refs.payment)
    assert again.refs.orders == 1
    # the hard bound holds whatever is stored, and a setting above it is refused
    crowded = RefHistory.from_dict({"p": [f"c{i}" for i in range(40)], "n": 10**9})
    assert len(crowded.payment) == MAX_REFS and crowded.orders <= 1_000
    with pytest.raises(ValidationError):
        AnomalySettings.model_validate({"refs_kept": MAX_REFS + 1})


def test_a_state_written_before_references_loads() -> None:
    old = {"v": 1, "oc": 100.0, "o": [40.0, 50.0], "q": [[90.0, "o-1"], [95.0, "o-2"]]}
    state = MemberAnomalyState.from_dict(old)
    assert list(state.orders) == [(90.0, "o-1", ""), (95.0, "o-2", "")]
    assert not state.refs
    assert state.to_dict() == old


def test_round_trip_after_every_order_gives_identical_candidates(det: MemberDetectors) -> None:
    base = 6 * DAY
    events = [
        *history(),
        order(base, "ato", 300.0, ("card-t", "drop", "pc")),
        *[order(base + 7200 + i * 200.0, f"ct{i}", 9.0, (f"c{i}", "x", "y")) for i in range(4)],
        order(base + 9000, "r", 9.0, ("c1", "x", "y"), status="refunded"),
        *[order(base + (i + 2) * DAY, f"p{i}", 50.0, refs=None) for i in range(3)],
    ]
    live = MemberAnomalyState()
    stored = orjson.dumps(MemberAnomalyState().to_dict())
    a: list[Candidate] = []
    b: list[Candidate] = []
    for event in events:
        a += det.on_purchase(live, event)
        again = MemberAnomalyState.from_dict(orjson.loads(stored))
        b += det.on_purchase(again, event)
        stored = orjson.dumps(again.to_dict())
    assert kinds(a) == ["order_value_outlier", "order_velocity"]
    assert a == b
    assert orjson.dumps(live.to_dict()) == stored


# --- through the processing core ------------------------------------------------------------


def test_the_worker_flags_the_takeover_and_keeps_the_references_in_the_member_state() -> None:
    run = OfflineRun(Settings())
    spike = order(6 * DAY, "ato", 300.0, refs=("card-thief", "drop-house", "phone"))
    run.feed([*history(), spike])
    (flag,) = [f for f in run.outputs[ANOMALIES] if f["kind"] == "order_value_outlier"]
    assert AnomalyFlag.model_validate(flag).model_dump(mode="json") == flag
    assert flag["evidence"] == [spike.event_id]
    assert flag["details"]["new_refs"] == "payment+shipping"
    refs = run.members["m1"].anomaly.refs  # decoded from the stored bytes
    assert (list(refs.payment), list(refs.shipping), refs.orders) == (["card-a"], ["home"], 5)
    # the same stream without references: nothing, as before
    plain = OfflineRun(Settings())
    plain.feed([*history(refs=None), order(6 * DAY, "ato", 300.0, refs=None)])
    assert [f for f in plain.outputs[ANOMALIES] if f["kind"] == "order_value_outlier"] == []
    assert not plain.members["m1"].anomaly.refs
