"""Workloads: a seeded synthetic e-commerce generator and the real CDNOW purchase log."""

from memberstream.datasets.cdnow import (
    CDNOW_CUSTOMERS,
    CDNOW_TRANSACTIONS,
    CDNOW_ZERO_VALUE_ROWS,
    CdnowRow,
    cdnow_path,
    iter_cdnow_events,
    read_cdnow_rows,
)
from memberstream.datasets.synthetic import (
    CATEGORIES,
    CATEGORY_BY_ID,
    EVENT_KINDS,
    Category,
    Injector,
    Product,
    SyntheticEvent,
    SyntheticMember,
    SyntheticWorkload,
    WorkloadConfig,
)

__all__ = [
    "CATEGORIES",
    "CATEGORY_BY_ID",
    "CDNOW_CUSTOMERS",
    "CDNOW_TRANSACTIONS",
    "CDNOW_ZERO_VALUE_ROWS",
    "EVENT_KINDS",
    "Category",
    "CdnowRow",
    "Injector",
    "Product",
    "SyntheticEvent",
    "SyntheticMember",
    "SyntheticWorkload",
    "WorkloadConfig",
    "cdnow_path",
    "iter_cdnow_events",
    "read_cdnow_rows",
]
