"""The CDNOW log as events: every row, in time order, with exact money."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from datetime import UTC, date
from decimal import Decimal
from itertools import pairwise

import pytest

from memberstream.datasets import (
    CDNOW_CUSTOMERS,
    CDNOW_TRANSACTIONS,
    CDNOW_ZERO_VALUE_ROWS,
    cdnow_path,
    iter_cdnow_events,
)
from memberstream.schemas.codec import decode_event, encode
from memberstream.schemas.events import PurchaseEvent


@pytest.fixture(scope="module")
def file_rows() -> dict[str, list[str]]:
    """The file parsed independently: event id -> [customer, date, cds, dollars]."""
    lines = cdnow_path().read_text(encoding="ascii").splitlines()
    return {
        f"cdnow-{n}": line.split()
        for n, line in enumerate(lines, start=1)
        if n > 1 and line.strip()
    }


@pytest.fixture(scope="module")
def events() -> list[PurchaseEvent]:
    return list(iter_cdnow_events())


def test_counts(events: list[PurchaseEvent], file_rows: dict[str, list[str]]) -> None:
    assert len(events) == len(file_rows) == CDNOW_TRANSACTIONS == 69_659
    assert len({e.member_id for e in events}) == CDNOW_CUSTOMERS == 23_570
    assert len({e.event_id for e in events}) == len(events)
    assert len({e.order_id for e in events}) == len(events)


def test_first_row_and_the_period(events: list[PurchaseEvent]) -> None:
    (first_row,) = [e for e in events if e.event_id == "cdnow-2"]  # line 1 is the header
    assert first_row.member_id == "cdnow-00001"
    assert first_row.occurred_at.date() == date(1997, 1, 1)
    assert first_row.total == 11.77 and first_row.items[0].quantity == 1
    assert events[0].occurred_at.date() == date(1997, 1, 1)
    assert events[-1].occurred_at.date() == date(1998, 6, 30)


def test_event_time_order_and_time_of_day(
    events: list[PurchaseEvent], file_rows: dict[str, list[str]]
) -> None:
    times = [e.occurred_at for e in events]
    assert all(a <= b for a, b in pairwise(times))
    for e in events:
        row_date = file_rows[e.event_id][1]
        assert e.occurred_at.strftime("%Y%m%d") == row_date
        assert e.occurred_at.tzinfo is UTC and e.occurred_at.hour >= 9
    assert len({t.time() for t in times}) > 10_000  # the day's purchases are spread out
    # A customer's orders of one day are separate visits, not minutes apart: the file
    # lists a customer's rows together, and in file order they would be.
    by_day: dict[tuple[str, date], list[float]] = {}
    for e in events:
        by_day.setdefault((e.member_id, e.occurred_at.date()), []).append(e.occurred_at.timestamp())
    gaps = [b - a for ts in by_day.values() for a, b in pairwise(sorted(ts))]
    assert len(gaps) > 1_000  # customers do order more than once a day
    close = sum(1 for g in gaps if g < 600)
    # Uniform over 15 hours, two orders fall within 10 minutes about 2% of the time.
    assert close / len(gaps) < 0.04


def test_money_is_exact(events: list[PurchaseEvent], file_rows: dict[str, list[str]]) -> None:
    file_sum = sum(Decimal(r[3]) for r in file_rows.values())
    assert file_sum == Decimal("2500315.63")
    assert sum(Decimal(str(e.total)) for e in events) == file_sum
    for e in events:
        customer, _, cds, dollars = file_rows[e.event_id]
        (item,) = e.items
        assert e.member_id == f"cdnow-{customer}" and e.total == float(dollars)
        assert item.quantity == max(1, int(cds))
        assert abs(item.quantity * item.unit_price - e.total) <= 0.005 * item.quantity + 1e-9
        assert (item.product_id, item.category, e.currency, e.status, e.source) == (
            "cdnow-cd",
            "music",
            "USD",
            "paid",
            "cdnow",
        )


def test_zero_value_rows_become_valid_free_orders(events: list[PurchaseEvent]) -> None:
    free = [e for e in events if e.total == 0]
    assert len(free) == CDNOW_ZERO_VALUE_ROWS == 80
    assert all(e.items[0].unit_price == 0 and e.items[0].quantity >= 1 for e in free)


def test_every_event_round_trips_through_the_codec(events: list[PurchaseEvent]) -> None:
    for ev in events:
        assert decode_event(encode(ev), PurchaseEvent) == ev


def test_limit(events: list[PurchaseEvent]) -> None:
    assert list(iter_cdnow_events(limit=25)) == events[:25]
    assert list(iter_cdnow_events(limit=0)) == []
    with pytest.raises(ValueError):
        list(iter_cdnow_events(limit=-1))


def test_reading_does_not_import_lifetimes() -> None:
    code = (
        "import sys\n"
        "from memberstream.datasets.cdnow import iter_cdnow_events\n"
        "assert len(list(iter_cdnow_events(limit=3))) == 3\n"
        "print(sorted(m for m in ('lifetimes', 'pandas', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_lifetimes_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "lifetimes" else real(name, *a),
    )
    with pytest.raises(FileNotFoundError, match="pip install lifetimes"):
        cdnow_path()
