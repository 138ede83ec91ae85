"""Raising anomaly flags: a detector's candidates (member or product) through the flag
ledger (which records them and holds back those an analyst rejected) into
:class:`~memberstream.schemas.outputs.AnomalyFlag` outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from memberstream.core.roles import Emit, OutputRole
from memberstream.domain.anomaly.flags import Candidate, flag_id
from memberstream.domain.anomaly.ledger import FlagLedger
from memberstream.domain.rfm import iso
from memberstream.schemas.outputs import OUTPUT_SCHEMA_VERSION


def raise_flags(
    ledger: FlagLedger,
    candidates: Sequence[Candidate],
    versions: Mapping[str, str],
    cause_event_id: str,
    as_of: float,
) -> tuple[list[Emit], int]:
    """Flag records for ``candidates`` (member or product), recorded in the ledger; and
    how many feedback suppressed."""
    emits: list[Emit] = []
    suppressed = 0
    for c in candidates:
        fid = flag_id(c.kind, c.subject, c.subject_id, c.window_start)
        if ledger.suppressed(fid, c.evidence):
            suppressed += 1
            continue
        ledger.record(fid, c.evidence)
        payload = flag_payload(fid, c, versions[c.kind], cause_event_id, as_of)
        emits.append(Emit(OutputRole.ANOMALIES, c.subject_id, payload))
    return emits, suppressed


def flag_payload(
    fid: str, candidate: Candidate, version: str, cause_event_id: str, as_of: float
) -> dict[str, Any]:
    """An :class:`~memberstream.schemas.outputs.AnomalyFlag` as the JSON dict produced.

    Built by hand on the hot path; a unit test holds it equal to the schema's dump.
    """
    member = candidate.subject == "member"
    return {
        "output_id": fid,
        "schema_version": OUTPUT_SCHEMA_VERSION,
        "flag_id": fid,
        "kind": candidate.kind,
        "subject": candidate.subject,
        "member_id": candidate.subject_id if member else None,
        "product_id": None if member else candidate.subject_id,
        "score": candidate.score,
        "threshold": candidate.threshold,
        "window_start": iso(candidate.window_start),
        "window_end": iso(candidate.window_end),
        "evidence": list(candidate.evidence),
        "details": dict(candidate.details),
        "detector_version": version,
        "cause_event_id": cause_event_id,
        "as_of": iso(as_of),
    }
