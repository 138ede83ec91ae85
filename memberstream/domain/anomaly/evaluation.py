"""Precision and recall of anomaly flags against injected, labeled incidents.

A flag is matched to an incident when its evidence shares an event id with the
incident's injected events. Per kind:

- a flag is a true positive when it matches an incident that should raise
  that kind; any other flag of the kind (on normal traffic, or on an incident
  of another kind) is a false positive;
- an incident that should raise the kind is found when at least one flag of
  the kind matches it (several flags on one long incident count once for
  recall, and each as a true positive for precision).

Flags that match no incident at all are also counted per 10,000 normal events,
against the configured budget.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from memberstream.domain.anomaly.flags import KINDS


class Label(Protocol):
    @property
    def incident_id(self) -> str: ...

    @property
    def kinds(self) -> frozenset[str]: ...

    @property
    def event_ids(self) -> tuple[str, ...]: ...


@dataclass
class KindScore:
    kind: str
    incidents: int = 0
    found: int = 0
    flags: int = 0
    true_positives: int = 0

    @property
    def precision(self) -> float | None:
        return None if self.flags == 0 else self.true_positives / self.flags

    @property
    def recall(self) -> float | None:
        return None if self.incidents == 0 else self.found / self.incidents

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "incidents": self.incidents,
            "found": self.found,
            "flags": self.flags,
            "true_positives": self.true_positives,
            "false_positives": self.flags - self.true_positives,
            "precision": self.precision,
            "recall": self.recall,
        }


@dataclass
class Evaluation:
    kinds: dict[str, KindScore]
    normal_events: int
    flags_on_normal_traffic: int
    normal_flags_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def normal_flags_per_10k(self) -> float:
        return 10_000 * self.flags_on_normal_traffic / max(self.normal_events, 1)

    def meets(self, precision: float, recall: float) -> dict[str, bool]:
        """Per kind with injected incidents: both goals met (precision 1.0 without flags)."""
        return {
            k: (1.0 if s.precision is None else s.precision) >= precision
            and (s.recall or 0.0) >= recall
            for k, s in self.kinds.items()
            if s.incidents
        }


def evaluate(
    flags: Iterable[Mapping[str, Any]],
    labels: Sequence[Label],
    total_events: int,
    kinds: Sequence[str] = KINDS,
) -> Evaluation:
    """Score ``flags`` (AnomalyFlag dicts, each id once) against ``labels``."""
    by_event: dict[str, list[Label]] = defaultdict(list)
    injected = 0
    for label in labels:
        injected += len(label.event_ids)
        for eid in label.event_ids:
            by_event[eid].append(label)
    scores = {k: KindScore(k) for k in kinds}
    for label in labels:
        for k in label.kinds:
            if k in scores:
                scores[k].incidents += 1
    found: dict[str, set[str]] = defaultdict(set)
    on_normal = 0
    normal_by_kind: dict[str, int] = defaultdict(int)
    for flag in flags:
        kind = flag["kind"]
        score = scores.setdefault(kind, KindScore(kind))
        score.flags += 1
        matched = {lab.incident_id: lab for e in flag["evidence"] for lab in by_event.get(e, ())}
        if not matched:
            on_normal += 1
            normal_by_kind[kind] += 1
        hits = [lab for lab in matched.values() if kind in lab.kinds]
        if hits:
            score.true_positives += 1
            found[kind].update(lab.incident_id for lab in hits)
    for kind, ids in found.items():
        scores[kind].found = len(ids)
    return Evaluation(scores, total_events - injected, on_normal, dict(normal_by_kind))
