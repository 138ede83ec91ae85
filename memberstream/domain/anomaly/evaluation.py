"""Precision and recall of anomaly flags against labeled incidents and hard negatives.

Labels. A label with flag kinds is an *incident*: a detector should raise those
kinds on its events. A label without kinds (``kinds == frozenset()``) is a *hard
negative*: benign traffic that looks suspicious (a flash sale, a popular product's
review wave); any flag on it is a false positive.

Matching. A flag matches a label when its evidence shares an event id with the
label's events. Per kind:

- a flag is a true positive when it matches an incident that should raise that
  kind; any other flag of the kind (on background traffic, on a hard negative, or
  on an incident of other kinds only) is a false positive;
- an incident that should raise the kind is found when at least one flag of the
  kind matches it (several flags on one long incident count once for recall, and
  each as a true positive for precision).

Intervals. Precision and recall come with 95% Wilson score intervals
(:func:`wilson_interval`). Recall's trials are incidents; precision's are flags,
and several flags on one incident are not independent, so its interval is
indicative.

Rates, both per 10,000 events:

- ``normal_flags_per_10k`` (against ``anomaly.flag_budget_per_10k_events``): flags
  that match no label at all, over the events that belong to no label (background);
- ``false_alerts_per_10k``: false-positive flags on benign traffic (background or
  hard negatives: an innocent member or product flagged), over the *benign* events:
  those that belong to no incident, i.e. background events plus hard-negative
  events. Per kind likewise, over the same benign events. A flag of the wrong kind
  on a real incident (a click_burst on a scripted slow bot labeled bot_pattern) is a
  false positive for its kind's precision, counted under ``other_incident``, but no
  false alert: nobody innocent was flagged.

Curves. Flags only exist at or above a detector's threshold, so a curve is computed
from a run with lowered thresholds (``bench.anomaly_curves``): :func:`pr_curve` sweeps
a cutoff over a strength attached to each flag (e.g. its score relative to the
default threshold, so the default thresholds sit at cutoff 1.0; or the probability
itself) and scores the flags at or above it as :func:`evaluate` does, after a
suppression step that stands in for the cooldowns and once-per-window rules of the
detectors (:func:`cooldown`, :func:`once_per_bucket`). The curve is approximate
where a detector's state depends on its earlier flags: a cooldown started by a
candidate below the cutoff, outliers kept out of a member's order history, a
baseline that does not learn from flagged clicks all differ between the lowered run
and a run at the cutoff's thresholds. Compare the point at the default cutoff with
the default run's own figures to see by how much.

Variants. Labels may name a ``variant`` (``understated/zh/top`` for a mismatched
review): :func:`by_variant` gives recall per variant (flagged share for a hard
negative's), or rolled up on one ``/``-separated part; :func:`precision_by_detail`
splits a kind's precision by a value its flags carry (rating_text_mismatch's
``language``), since a false positive belongs to no variant.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from memberstream.domain.anomaly.flags import KINDS

MISSED_LISTED = 10
"""Ids of missed incidents listed per scenario, at most."""


class Label(Protocol):
    @property
    def incident_id(self) -> str: ...

    @property
    def scenario(self) -> str: ...

    @property
    def kinds(self) -> frozenset[str]: ...

    @property
    def event_ids(self) -> tuple[str, ...]: ...


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (95% for z=1.96); None without trials."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError(f"successes {successes} outside 0..{trials}")
    p = successes / trials
    z2 = z * z
    denom = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _ci(interval: tuple[float, float] | None) -> list[float] | None:
    return None if interval is None else [interval[0], interval[1]]


def _per_10k(count: int, events: int) -> float:
    return 10_000 * count / max(events, 1)


@dataclass
class KindScore:
    kind: str
    incidents: int = 0
    found: int = 0
    flags: int = 0
    true_positives: int = 0
    false_alerts: int = 0
    """False positives on benign events (background or a hard negative): an innocent
    member or product flagged. A flag of the wrong kind on an incident is a false
    positive for precision, not a false alert."""

    @property
    def false_positives(self) -> int:
        return self.flags - self.true_positives

    @property
    def precision(self) -> float | None:
        return None if self.flags == 0 else self.true_positives / self.flags

    @property
    def recall(self) -> float | None:
        return None if self.incidents == 0 else self.found / self.incidents

    @property
    def precision_ci(self) -> tuple[float, float] | None:
        """95% Wilson interval of the precision (flags as trials)."""
        return wilson_interval(self.true_positives, self.flags)

    @property
    def recall_ci(self) -> tuple[float, float] | None:
        """95% Wilson interval of the recall (incidents as trials)."""
        return wilson_interval(self.found, self.incidents)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "incidents": self.incidents,
            "found": self.found,
            "flags": self.flags,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_alerts": self.false_alerts,
            "precision": self.precision,
            "precision_ci": _ci(self.precision_ci),
            "recall": self.recall,
            "recall_ci": _ci(self.recall_ci),
        }


@dataclass
class ScenarioRecall:
    """Incidents of one scenario: found when a flag of any of its kinds matches."""

    scenario: str
    incidents: int = 0
    found: int = 0
    incidents_by_kind: dict[str, int] = field(default_factory=dict)
    found_by_kind: dict[str, int] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)
    """Ids of incidents no expected flag matched (the first :data:`MISSED_LISTED`)."""

    @property
    def recall(self) -> float | None:
        return None if self.incidents == 0 else self.found / self.incidents

    @property
    def recall_ci(self) -> tuple[float, float] | None:
        return wilson_interval(self.found, self.incidents)

    def recall_by_kind(self) -> dict[str, float]:
        return {k: self.found_by_kind.get(k, 0) / n for k, n in self.incidents_by_kind.items() if n}

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "kinds": sorted(self.incidents_by_kind),
            "incidents": self.incidents,
            "found": self.found,
            "recall": self.recall,
            "recall_ci": _ci(self.recall_ci),
            "recall_by_kind": self.recall_by_kind(),
            "missed": self.missed,
        }


@dataclass
class HardNegativeScore:
    """Benign cases of one hard-negative scenario, and how many of them were flagged."""

    scenario: str
    cases: int = 0
    flagged: int = 0
    """Cases matched by at least one flag of any kind."""
    flags: int = 0
    """Flags matching a case of the scenario."""
    flagged_by_kind: dict[str, int] = field(default_factory=dict)
    """Kind -> cases matched by at least one flag of that kind."""

    @property
    def flagged_share(self) -> float | None:
        return None if self.cases == 0 else self.flagged / self.cases

    @property
    def flagged_ci(self) -> tuple[float, float] | None:
        return wilson_interval(self.flagged, self.cases)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "cases": self.cases,
            "flagged": self.flagged,
            "flagged_share": self.flagged_share,
            "flagged_ci": _ci(self.flagged_ci),
            "flags": self.flags,
            "flagged_by_kind": dict(sorted(self.flagged_by_kind.items())),
        }


FALSE_POSITIVE_SOURCES = ("background", "hard_negative", "other_incident")
"""Where a false-positive flag landed: on no label; on a hard negative (and no
incident); on an incident that should not raise its kind."""


@dataclass
class Evaluation:
    kinds: dict[str, KindScore]
    normal_events: int
    """Events in no label (background)."""
    flags_on_normal_traffic: int
    """Flags matching no label."""
    normal_flags_by_kind: dict[str, int] = field(default_factory=dict)
    benign_events: int = 0
    """Events in no incident: background plus hard-negative events."""
    false_positives_by_source: dict[str, int] = field(default_factory=dict)
    other_incident_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    """Kind -> scenario -> its flags that fell on incidents of other kinds."""
    scenarios: dict[str, ScenarioRecall] = field(default_factory=dict)
    hard_negatives: dict[str, HardNegativeScore] = field(default_factory=dict)

    @property
    def normal_flags_per_10k(self) -> float:
        return _per_10k(self.flags_on_normal_traffic, self.normal_events)

    @property
    def false_positives(self) -> int:
        return sum(s.false_positives for s in self.kinds.values())

    @property
    def false_alerts(self) -> int:
        return sum(s.false_alerts for s in self.kinds.values())

    @property
    def false_alerts_per_10k(self) -> float:
        """False alerts (false positives on benign events) per 10,000 benign events."""
        return _per_10k(self.false_alerts, self.benign_events)

    def false_alerts_per_10k_by_kind(self) -> dict[str, float]:
        """Per kind: its false alerts per 10,000 benign events."""
        return {k: _per_10k(s.false_alerts, self.benign_events) for k, s in self.kinds.items()}

    def meets(self, precision: float, recall: float) -> dict[str, bool]:
        """Per kind with injected incidents: both goals met (precision 1.0 without flags)."""
        return {
            k: (1.0 if s.precision is None else s.precision) >= precision
            and (s.recall or 0.0) >= recall
            for k, s in self.kinds.items()
            if s.incidents
        }

    def as_dict(self) -> dict[str, Any]:
        by_kind = self.false_alerts_per_10k_by_kind()
        return {
            "kinds": [s.as_dict() for s in self.kinds.values()],
            "normal_events": self.normal_events,
            "flags_on_normal_traffic": self.flags_on_normal_traffic,
            "normal_flags_per_10k": self.normal_flags_per_10k,
            "normal_flags_by_kind": self.normal_flags_by_kind,
            "benign_events": self.benign_events,
            "false_positives": self.false_positives,
            "false_alerts": self.false_alerts,
            "false_positives_by_source": self.false_positives_by_source,
            "other_incident_by_kind": self.other_incident_by_kind,
            "false_alerts_per_10k": self.false_alerts_per_10k,
            "false_alerts_per_10k_by_kind": by_kind,
            "scenarios": [s.as_dict() for s in self.scenarios.values()],
            "hard_negatives": [h.as_dict() for h in self.hard_negatives.values()],
        }


class _Truth:
    """The labels indexed by event id, and the event counts the rates divide by."""

    def __init__(self, labels: Sequence[Label], total_events: int) -> None:
        self.labels = labels
        self.by_event: dict[str, list[Label]] = defaultdict(list)
        labeled: set[str] = set()
        in_incidents: set[str] = set()
        for label in labels:
            labeled.update(label.event_ids)
            if label.kinds:
                in_incidents.update(label.event_ids)
            for eid in label.event_ids:
                self.by_event[eid].append(label)
        self.background_events = total_events - len(labeled)
        self.benign_events = total_events - len(in_incidents)

    def match(self, flag: Mapping[str, Any]) -> dict[str, Label]:
        """Labels sharing an event with the flag's evidence, by incident id."""
        return {lab.incident_id: lab for e in flag["evidence"] for lab in self.by_event.get(e, ())}

    def incidents(self, kind: str) -> int:
        return sum(1 for lab in self.labels if kind in lab.kinds)


def _source(matched: Mapping[str, Label]) -> str:
    if not matched:
        return "background"
    if any(lab.kinds for lab in matched.values()):
        return "other_incident"
    return "hard_negative"


def evaluate(
    flags: Iterable[Mapping[str, Any]],
    labels: Sequence[Label],
    total_events: int,
    kinds: Sequence[str] = KINDS,
) -> Evaluation:
    """Score ``flags`` (AnomalyFlag dicts, each id once) against ``labels`` (incidents and
    hard negatives) in a stream of ``total_events`` events."""
    truth = _Truth(labels, total_events)
    scores = {k: KindScore(k) for k in kinds}
    scenarios: dict[str, ScenarioRecall] = {}
    hard: dict[str, HardNegativeScore] = {}
    for label in labels:
        if not label.kinds:
            hard.setdefault(label.scenario, HardNegativeScore(label.scenario)).cases += 1
            continue
        sc = scenarios.setdefault(label.scenario, ScenarioRecall(label.scenario))
        sc.incidents += 1
        for k in label.kinds:
            sc.incidents_by_kind[k] = sc.incidents_by_kind.get(k, 0) + 1
            if k in scores:
                scores[k].incidents += 1
    found: dict[str, set[str]] = defaultdict(set)
    hn_flagged: dict[str, set[str]] = defaultdict(set)  # kind -> hard-negative ids
    on_normal = 0
    normal_by_kind: dict[str, int] = defaultdict(int)
    sources = dict.fromkeys(FALSE_POSITIVE_SOURCES, 0)
    other: dict[str, dict[str, int]] = {}
    for flag in flags:
        kind = flag["kind"]
        score = scores.setdefault(kind, KindScore(kind))
        score.flags += 1
        matched = truth.match(flag)
        if not matched:
            on_normal += 1
            normal_by_kind[kind] += 1
        benign = [lab for lab in matched.values() if not lab.kinds]
        for scenario in {lab.scenario for lab in benign}:
            hard[scenario].flags += 1
        hn_flagged[kind].update(lab.incident_id for lab in benign)
        hits = [lab for lab in matched.values() if kind in lab.kinds]
        if hits:
            score.true_positives += 1
            found[kind].update(lab.incident_id for lab in hits)
        else:
            source = _source(matched)
            sources[source] += 1
            if source != "other_incident":
                score.false_alerts += 1
            else:
                by = other.setdefault(kind, {})
                for scenario in sorted({lab.scenario for lab in matched.values() if lab.kinds}):
                    by[scenario] = by.get(scenario, 0) + 1
    for kind, ids in found.items():
        scores[kind].found = len(ids)
    flagged_any: set[str] = set().union(*hn_flagged.values()) if hn_flagged else set()
    for label in labels:
        if not label.kinds:
            hn = hard[label.scenario]
            if label.incident_id in flagged_any:
                hn.flagged += 1
            for kind, ids in hn_flagged.items():
                if label.incident_id in ids:
                    hn.flagged_by_kind[kind] = hn.flagged_by_kind.get(kind, 0) + 1
            continue
        sc = scenarios[label.scenario]
        hit_kinds = [k for k in label.kinds if label.incident_id in found.get(k, ())]
        for k in hit_kinds:
            sc.found_by_kind[k] = sc.found_by_kind.get(k, 0) + 1
        if hit_kinds:
            sc.found += 1
        elif len(sc.missed) < MISSED_LISTED:
            sc.missed.append(label.incident_id)
    return Evaluation(
        scores,
        truth.background_events,
        on_normal,
        dict(normal_by_kind),
        benign_events=truth.benign_events,
        false_positives_by_source=sources,
        other_incident_by_kind=other,
        scenarios=scenarios,
        hard_negatives=hard,
    )


# -- precision-recall curves -------------------------------------------------------------

Scored = tuple[float, Mapping[str, Any]]
"""(strength, AnomalyFlag dict): a flag with the normalised strength a curve sweeps."""
Suppress = Callable[[Sequence[Scored]], Sequence[Scored]]
"""Given the flags at or above a cutoff, those a detector's suppression rules would keep."""


class PRPoint(NamedTuple):
    cutoff: float
    precision: float | None
    """None when no flag reaches the cutoff."""
    recall: float | None
    """None without incidents of the kind."""
    false_alerts_per_10k: float
    """False-positive flags of the kind per 10,000 benign events (see the module doc)."""


def _epoch(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value)).timestamp()


def _subject(flag: Mapping[str, Any]) -> tuple[str, str]:
    sid = flag.get("member_id") if flag.get("subject") == "member" else flag.get("product_id")
    return str(flag.get("subject")), str(sid)


def _in_time_order(scored: Sequence[Scored]) -> list[Scored]:
    return sorted(scored, key=lambda sf: _epoch(sf[1]["as_of"]))  # stable for equal times


def cooldown(cooldown_s: float) -> Suppress:
    """Keep a flag unless a kept flag of the same kind and subject was raised (``as_of``)
    less than ``cooldown_s`` before it, as the member detectors' cooldowns do."""

    def suppress(scored: Sequence[Scored]) -> list[Scored]:
        last: dict[tuple[str, str, str], float] = {}
        kept = []
        for sf in _in_time_order(scored):
            key = (sf[1]["kind"], *_subject(sf[1]))
            t = _epoch(sf[1]["as_of"])
            prev = last.get(key)
            if prev is None or t >= prev + cooldown_s:
                last[key] = t
                kept.append(sf)
        return kept

    return suppress


def once_per_bucket(bucket_s: float) -> Suppress:
    """Keep the first flag (by ``as_of``) of each kind, subject and tumbling window of
    ``bucket_s`` that its ``window_start`` falls in, as the review detectors do."""

    def suppress(scored: Sequence[Scored]) -> list[Scored]:
        seen: set[Hashable] = set()
        kept = []
        for sf in _in_time_order(scored):
            flag = sf[1]
            key = (
                flag["kind"],
                *_subject(flag),
                math.floor(_epoch(flag["window_start"]) / bucket_s),
            )
            if key not in seen:
                seen.add(key)
                kept.append(sf)
        return kept

    return suppress


def pr_curve(
    flags_with_strength: Iterable[Scored],
    labels: Sequence[Label],
    kind: str,
    cutoffs: Iterable[float],
    total_events: int,
    suppress: Suppress | None = None,
) -> list[PRPoint]:
    """Precision, recall and false alerts of ``kind`` per cutoff (ascending).

    At each cutoff the flags of ``kind`` whose strength is at least the cutoff (then
    ``suppress``, when given) are scored as :func:`evaluate` scores them; flags of
    other kinds are ignored. ``total_events`` is the stream's length (the benign
    events are those in no incident). Approximate where the detector's state depends
    on its earlier flags (see the module doc); include the default thresholds' cutoff
    in ``cutoffs`` to mark that point.
    """
    truth = _Truth(labels, total_events)
    incidents = truth.incidents(kind)
    candidates: list[tuple[float, Mapping[str, Any], frozenset[str]]] = []
    innocent: set[int] = set()  # flags on benign events only: false alerts when kept
    for strength, flag in flags_with_strength:
        if flag["kind"] != kind:
            continue
        matched = truth.match(flag)
        hits = frozenset(i for i, lab in matched.items() if kind in lab.kinds)
        if not hits and _source(matched) != "other_incident":
            innocent.add(id(flag))
        candidates.append((strength, flag, hits))
    hits_of = {id(flag): hits for _, flag, hits in candidates}
    points = []
    for cutoff in sorted(set(cutoffs)):
        kept: Sequence[Scored] = [(s, f) for s, f, _ in candidates if s >= cutoff]
        if suppress is not None:
            kept = suppress(kept)
        tp = 0
        found: set[str] = set()
        for _, flag in kept:
            hits = hits_of[id(flag)]
            if hits:
                tp += 1
                found |= hits
        n = len(kept)
        alerts = sum(1 for _, flag in kept if id(flag) in innocent)
        points.append(
            PRPoint(
                cutoff,
                None if n == 0 else tp / n,
                None if incidents == 0 else len(found) / incidents,
                _per_10k(alerts, truth.benign_events),
            )
        )
    return points


# -- breakdown by variant ----------------------------------------------------------------


@dataclass
class VariantScore:
    """The cases of one variant of a scenario (labels carry ``variant``, e.g.
    ``understated/zh/top``): for an incident scenario, how many a flag of one of its
    kinds found; for a hard negative, how many any flag matched."""

    scenario: str
    variant: str
    hard_negative: bool
    cases: int = 0
    hits: int = 0

    @property
    def share(self) -> float | None:
        """Recall of an incident variant; flagged share of a hard-negative one."""
        return None if self.cases == 0 else self.hits / self.cases

    @property
    def share_ci(self) -> tuple[float, float] | None:
        return wilson_interval(self.hits, self.cases)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "hard_negative": self.hard_negative,
            "cases": self.cases,
            "hits": self.hits,
            "share": self.share,
            "share_ci": _ci(self.share_ci),
        }


def by_variant(
    flags: Iterable[Mapping[str, Any]], labels: Sequence[Label], part: int | None = None
) -> list[VariantScore]:
    """Recall (incidents) or flagged share (hard negatives) per scenario and variant, for
    the labels that have a ``variant``; matching as in :func:`evaluate`. With ``part``,
    variants are rolled up on that ``/``-separated part (``understated/zh/top``: 0 the
    tone, 1 the language). Sorted by scenario and variant."""
    truth = _Truth(labels, 0)
    hit: set[str] = set()
    for flag in flags:
        for lab in truth.match(flag).values():
            if not lab.kinds or flag["kind"] in lab.kinds:
                hit.add(lab.incident_id)
    scores: dict[tuple[str, str], VariantScore] = {}
    for label in labels:
        variant = getattr(label, "variant", "")
        if not variant:
            continue
        if part is not None:
            pieces = variant.split("/")
            variant = pieces[part] if part < len(pieces) else variant
        key = (label.scenario, variant)
        score = scores.setdefault(key, VariantScore(label.scenario, variant, not label.kinds))
        score.cases += 1
        score.hits += label.incident_id in hit
    return [scores[k] for k in sorted(scores)]


@dataclass
class GroupPrecision:
    """Flags of one kind whose ``details`` hold one value (e.g. ``language`` "zh")."""

    value: str
    flags: int = 0
    true_positives: int = 0

    @property
    def precision(self) -> float | None:
        return None if self.flags == 0 else self.true_positives / self.flags

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "flags": self.flags,
            "true_positives": self.true_positives,
            "precision": self.precision,
            "precision_ci": _ci(wilson_interval(self.true_positives, self.flags)),
        }


def precision_by_detail(
    flags: Iterable[Mapping[str, Any]], labels: Sequence[Label], kind: str, detail: str
) -> list[GroupPrecision]:
    """Precision of ``kind`` split by the value of ``details[detail]`` of its flags (a
    flag without it counts under "-"); true positives as in :func:`evaluate`."""
    truth = _Truth(labels, 0)
    groups: dict[str, GroupPrecision] = {}
    for flag in flags:
        if flag["kind"] != kind:
            continue
        value = str(flag.get("details", {}).get(detail, "-"))
        group = groups.setdefault(value, GroupPrecision(value))
        group.flags += 1
        group.true_positives += any(kind in lab.kinds for lab in truth.match(flag).values())
    return [groups[v] for v in sorted(groups)]
