"""Workloads: a seeded synthetic e-commerce generator (optionally with labeled anomalies)
and the real CDNOW purchase log."""

from memberstream.datasets.anomalies import (
    EXPECTED_KINDS,
    SCENARIOS,
    AnomalyInjector,
    AnomalyLabel,
    InjectionConfig,
    anomalous_workload,
    read_labels,
    write_labels,
)
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
    "EXPECTED_KINDS",
    "SCENARIOS",
    "AnomalyInjector",
    "AnomalyLabel",
    "Category",
    "CdnowRow",
    "InjectionConfig",
    "Injector",
    "Product",
    "SyntheticEvent",
    "SyntheticMember",
    "SyntheticWorkload",
    "WorkloadConfig",
    "anomalous_workload",
    "cdnow_path",
    "iter_cdnow_events",
    "read_cdnow_rows",
    "read_labels",
    "write_labels",
]
