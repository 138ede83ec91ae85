"""What differs between two sets of outputs for the same input range (a replay against
the live outputs, or two replays).

Output ids cannot be the key: a profile's id counts the member's events and a
summary's names the model versions, so a replay that starts without history, or
with a new model, gives the same output another id. Each kind is matched on what it
is about instead:

==========================  =============================================
tiers, interest tiers       member_id and the cause event
anomaly flags               kind, subject (member or product) and the cause event
review summaries            product_id and the newest review's event time (as_of)
profiles                    member_id and the last event applied
dead letters                source topic, partition and offset
==========================  =============================================

Two matched outputs are *the same* when every field but ``output_id`` is equal,
*changed* otherwise (the fields that differ are reported, with a sample). Profiles
are compared once per member: the replay's last one, against the live profile at
the same last event where the live topic still holds one (a live batch may have
applied later events with it, and compaction keeps only the newest).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Payload = dict[str, Any]

KINDS = (
    "member_tiers",
    "member_interest_tiers",
    "member_anomalies",
    "product_review_summaries",
    "member_profiles",
    "dlq",
)


def identity(kind: str, p: Payload) -> tuple[Any, ...]:
    """What an output of ``kind`` is about (see the module doc)."""
    if kind in ("member_tiers", "member_interest_tiers"):
        return (p["member_id"], p["cause_event_id"])
    if kind == "member_anomalies":
        return (p["kind"], p.get("member_id") or p.get("product_id"), p["cause_event_id"])
    if kind == "product_review_summaries":
        return (p["product_id"], p["as_of"])
    if kind == "member_profiles":
        return (p["member_id"], p["last_event_id"])
    if kind == "dlq":
        return (p["source_topic"], p["partition"], p["offset"])
    raise ValueError(f"unknown output kind {kind!r}")


def in_range(kind: str, p: Payload, events: set[str]) -> bool:
    """Whether the output ``p`` was caused by one of ``events`` (source event ids)."""
    if kind in ("member_tiers", "member_interest_tiers", "member_anomalies"):
        return p.get("cause_event_id") in events
    if kind == "product_review_summaries":
        return any(r in events for r in p.get("review_ids", ()))
    if kind == "member_profiles":
        return p.get("last_event_id") in events
    raise ValueError(f"{kind}: match dead letters by source position instead")


@dataclass
class KindDiff:
    """One output kind: counts, and a sample of what changed."""

    live: int = 0
    replay: int = 0
    same: int = 0
    changed: int = 0
    only_live: int = 0
    only_replay: int = 0
    not_comparable: int = 0
    """Profiles whose live counterpart the topic no longer holds, or never published."""
    changed_fields: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "live": self.live,
            "replay": self.replay,
            "same": self.same,
            "changed": self.changed,
            "only_live": self.only_live,
            "only_replay": self.only_replay,
            "not_comparable": self.not_comparable,
            "changed_fields": dict(sorted(self.changed_fields.items())),
            "samples": self.samples,
        }


def _by_identity(kind: str, payloads: Iterable[Payload]) -> dict[tuple[Any, ...], Payload]:
    """The latest payload per identity (a redelivered or resumed output counts once)."""
    return {identity(kind, p): p for p in payloads}


def _field_diff(a: Payload, b: Payload) -> dict[str, list[Any]]:
    keys = (set(a) | set(b)) - {"output_id"}
    return {k: [a.get(k), b.get(k)] for k in sorted(keys) if a.get(k) != b.get(k)}


def diff_kind(
    kind: str, live: Iterable[Payload], replay: Iterable[Payload], samples: int = 3
) -> KindDiff:
    """Compare one kind's outputs, ``live`` already narrowed to the range."""
    live_by, replay_by = _by_identity(kind, live), _by_identity(kind, replay)
    if kind == "member_profiles":
        replay_by = _last_per_member(replay_by)
    out = KindDiff(live=len(live_by), replay=len(replay_by))
    for ident, got in replay_by.items():
        want = live_by.get(ident)
        if want is None:
            if kind == "member_profiles":
                out.not_comparable += 1
            else:
                out.only_replay += 1
            continue
        fields = _field_diff(want, got)
        if not fields:
            out.same += 1
            continue
        out.changed += 1
        for name in fields:
            out.changed_fields[name] = out.changed_fields.get(name, 0) + 1
        if len(out.samples) < samples:
            out.samples.append({"identity": list(ident), "live_vs_replay": fields})
    if kind != "member_profiles":
        out.only_live = sum(1 for ident in live_by if ident not in replay_by)
    return out


def _last_per_member(by: Mapping[tuple[Any, ...], Payload]) -> dict[tuple[Any, ...], Payload]:
    last: dict[str, tuple[tuple[Any, ...], Payload]] = {}
    for ident, p in by.items():  # in topic order: the last one wins
        last[p["member_id"]] = (ident, p)
    return dict(last.values())


def diff_outputs(
    live: Mapping[str, Iterable[Payload]],
    replay: Mapping[str, Iterable[Payload]],
    live_in_range: Callable[[str, Payload], bool],
    samples: int = 3,
) -> dict[str, KindDiff]:
    """Per output kind (:data:`KINDS`), ``live`` outputs the range caused against
    every ``replay`` output."""
    return {
        kind: diff_kind(
            kind,
            (p for p in live.get(kind, ()) if live_in_range(kind, p)),
            replay.get(kind, ()),
            samples,
        )
        for kind in KINDS
    }
