"""Recent flags of one member or product, and the analyst feedback on them.

Feedback on ``labels.feedback`` names a flag by id. A flag rejected as a false
positive must not come back for the same evidence: neither the same flag id
(a restart, a replay) nor a new flag whose evidence lies entirely within the
events of rejected flags (e.g. a detector whose episode start moved). A
confirmed flag changes nothing here; the verdict stays on the topic for the
learning loop.

Feedback can arrive before the flag it names, since a replay reads
``labels.feedback`` and the event topics in an order Kafka does not fix: an
unknown id is remembered as rejected, so the flag is suppressed when it is
raised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class FlagLedger:
    """Bounded: ``flags_kept`` recent flags and rejected ids, ``rejected_kept`` evidence ids."""

    flags_kept: int = 32
    rejected_kept: int = 256
    raised: deque[tuple[str, tuple[str, ...]]] = field(default_factory=deque)
    """(flag id, evidence event ids), oldest first."""
    rejected_flags: deque[str] = field(default_factory=deque)
    rejected_evidence: deque[str] = field(default_factory=deque)
    confirmed: int = 0

    def __post_init__(self) -> None:
        self.raised = deque(self.raised, maxlen=self.flags_kept)
        self.rejected_flags = deque(self.rejected_flags, maxlen=self.flags_kept)
        self.rejected_evidence = deque(self.rejected_evidence, maxlen=self.rejected_kept)

    def is_rejected(self, flag_id: str) -> bool:
        return flag_id in self.rejected_flags

    def suppressed(self, flag_id: str, evidence: Iterable[str]) -> bool:
        """Whether a candidate flag repeats a rejected one (same id, or only rejected evidence)."""
        if flag_id in self.rejected_flags:
            return True
        if not self.rejected_evidence:
            return False
        known = set(self.rejected_evidence)
        ids = list(evidence)
        return bool(ids) and all(e in known for e in ids)

    def record(self, flag_id: str, evidence: Iterable[str]) -> None:
        self.raised.append((flag_id, tuple(evidence)))

    def reject(self, flag_id: str) -> bool:
        """Mark ``flag_id`` a false positive; True when the flag was among the recent ones."""
        if flag_id not in self.rejected_flags:
            self.rejected_flags.append(flag_id)
        for fid, evidence in self.raised:
            if fid == flag_id:
                known = set(self.rejected_evidence)
                self.rejected_evidence.extend(e for e in evidence if e not in known)
                return True
        return False

    def confirm(self, flag_id: str) -> None:
        self.confirmed += 1

    def apply_feedback(self, subject: str, verdict: str, ref_id: str) -> None:
        """An analyst's verdict from ``labels.feedback`` (interest labels are not for us)."""
        if subject != "anomaly_flag":
            return
        if verdict == "false_positive":
            self.reject(ref_id)
        elif verdict == "confirmed":
            self.confirm(ref_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "r": [[fid, list(ev)] for fid, ev in self.raised],
            "x": list(self.rejected_flags),
            "xe": list(self.rejected_evidence),
            "c": self.confirmed,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], flags_kept: int = 32, rejected_kept: int = 256
    ) -> FlagLedger:
        return cls(
            flags_kept=flags_kept,
            rejected_kept=rejected_kept,
            raised=deque((fid, tuple(ev)) for fid, ev in data.get("r", [])),
            rejected_flags=deque(data.get("x", [])),
            rejected_evidence=deque(data.get("xe", [])),
            confirmed=data.get("c", 0),
        )
