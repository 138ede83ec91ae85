"""The CDNOW purchase log (1997-1998) as a stream of :class:`PurchaseEvent`.

The file ships with the ``lifetimes`` package; it is found by path without
importing ``lifetimes`` (which would pull in pandas and scipy). Its 80
zero-dollar rows (free CDs) are kept: they become paid orders with total 0.
"""

from __future__ import annotations

import importlib.util
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from memberstream.schemas.events import LineItem, PurchaseEvent

CDNOW_TRANSACTIONS = 69659
CDNOW_CUSTOMERS = 23570
CDNOW_ZERO_VALUE_ROWS = 80
"""Rows with dollar_value 0.00; no row has number_of_cds 0, but 0 would count as 1."""
SOURCE = "cdnow"

_FIRST_HOUR = 9
_SPREAD_S = 15 * 3600  # purchases fall within 09:00-23:59:59 UTC of their date


class CdnowRow(NamedTuple):
    line_number: int
    """1-based line in the file; the header is line 1, so data starts at line 2."""
    customer_id: str
    date: str
    number_of_cds: int
    dollar_value: str
    """As written in the file (two decimals), so sums can be exact."""


def cdnow_path() -> Path:
    """Where ``lifetimes`` installed ``CDNOW_master.txt``."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the CDNOW dataset ships with the 'lifetimes' package: pip install lifetimes"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "CDNOW_master.txt"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "lifetimes is installed but has no datasets/CDNOW_master.txt; "
        "reinstall it: pip install --force-reinstall lifetimes"
    )


def read_cdnow_rows(path: Path | None = None) -> list[CdnowRow]:
    """Rows in file order (the file is sorted by customer, not by date)."""
    rows = []
    with (path or cdnow_path()).open(encoding="ascii") as f:
        for line_number, line in enumerate(f, start=1):
            fields = line.split()
            if line_number == 1 or not fields:
                continue  # header, blank lines
            customer, date, cds, dollars = fields
            if len(date) != 8 or not date.isdigit():
                raise ValueError(f"CDNOW line {line_number}: date {date!r} is not YYYYMMDD")
            rows.append(CdnowRow(line_number, customer, date, int(cds), dollars))
    return rows


def _offsets(rows: list[CdnowRow]) -> dict[int, int]:
    """Second of the day for each row, from a hash of its line. The file lists a
    customer's rows together, so a day's rows in file order would put one customer's
    orders of that day minutes apart (and trip order_velocity); hashed, they fall
    anywhere in the day, as separate visits do."""
    return {r.line_number: zlib.crc32(f"cdnow/{r.line_number}".encode()) % _SPREAD_S for r in rows}


def _event(row: CdnowRow, second_of_day: int) -> PurchaseEvent:
    d = row.date
    day = datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), tzinfo=UTC)
    quantity = max(1, row.number_of_cds)
    total = float(row.dollar_value)
    item = LineItem(
        product_id="cdnow-cd",
        title="CDs",
        category="music",
        quantity=quantity,
        unit_price=round(total / quantity, 2),
    )
    return PurchaseEvent(
        event_id=f"cdnow-{row.line_number}",
        member_id=f"cdnow-{row.customer_id}",
        occurred_at=day + timedelta(hours=_FIRST_HOUR, seconds=second_of_day),
        source=SOURCE,
        order_id=f"cdnow-order-{row.line_number}",
        items=[item],
        total=total,
        currency="USD",
        status="paid",
    )


def iter_cdnow_events(limit: int | None = None) -> Iterator[PurchaseEvent]:
    """Every transaction as a paid order, in event-time order (date, second of the day,
    then file order)."""
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    rows = read_cdnow_rows()
    offsets = _offsets(rows)
    rows.sort(key=lambda r: (r.date, offsets[r.line_number], r.line_number))
    for row in rows if limit is None else rows[:limit]:
        yield _event(row, offsets[row.line_number])
