"""Adaptive baselines: a member's own limits, moved only by analysts' false_positive verdicts.

When an analyst rejects a member's ``order_value_outlier`` or ``click_burst`` flag as a
false positive, the member gets an *allowance* for that kind: what the rejected flag
measured, plus ``margin``. An order whose total is at or below the member's order-value
allowance is not an order-value outlier; a click window whose count is at or below the
click-burst allowance is not a burst. Everything above it is judged as before.

How an allowance is set (``[anomaly.adaptive]``,
:class:`~memberstream.domain.anomaly.settings.AdaptiveBaselineSettings`):

- ``order_value_outlier``: ``min(total x (1 + margin), max_factor x limit, max_order_total)``,
  where ``limit`` is the smallest total that would have flagged when the rejected flag
  was raised (``max(min_total, median x exp(z_threshold x scale))`` against the member's
  history, or ``population_cap`` without one). A member whose $2,000 order was rejected
  (limit $1,500, defaults) is allowed up to $2,200; $3,000 still flags.
- ``click_burst``: ``min(clicks x (1 + margin), max_factor x limit, hard_cap - 1)``, ``limit``
  the burst limit of the rejected flag. ``hard_cap`` clicks in a window always flag.

An allowance lapses ``expire_days`` of event time after the rejected flag's own event
time (not the verdict's, so a replay that reads the verdict before or after the flag ends
with the same allowance). At most ``max_kept`` allowances are kept per member; a new one
pushes out the one that lapses first. Verdicts on other kinds change nothing here (the
flag ledger still suppresses the rejected flag itself).

Why a bot cannot teach itself in:

- Only an analyst's verdict creates an allowance. The member's own traffic never does:
  an order or a window let through by an allowance is not added to the detector's
  baseline (order history, click EWMA), so an allowance never compounds into the member's
  own limits, and an unlabelled member's limits move exactly as before.
- Each allowance is bounded by a multiple of the detector's *own* limit at the rejected
  flag, never of an earlier allowance, so repeated rejections do not ratchet it up.
- Hard caps still apply (``click_burst.hard_cap``, ``max_order_total``), allowances
  expire, and there are at most ``max_kept`` of them.

Feedback can reach the member agent before the flag it names (a replay): the ledger
then remembers the rejected id, and the allowance is made when the detector raises that
flag again (:meth:`AdaptiveBaseline.note`, ``rejected=True``).

Plain data, stored with orjson inside the member's anomaly state
(:meth:`AdaptiveBaseline.to_dict`); deterministic: allowances depend on event times and
verdicts only.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memberstream.domain.anomaly.flags import Candidate
from memberstream.domain.anomaly.settings import DAY_S, AnomalySettings

ADAPTABLE = ("order_value_outlier", "click_burst")
_CODES = {"order_value_outlier": "ov", "click_burst": "cb"}
_KINDS = {code: kind for kind, code in _CODES.items()}
PENDING_KEPT = 32
"""Recent adaptable flags remembered for a verdict (as the ledger keeps flags)."""
MAX_ALLOWANCES = 16
"""Upper bound of ``AdaptiveBaselineSettings.max_kept``."""


@dataclass(frozen=True)
class Adaptable:
    """A raised flag an analyst may reject: what it measured and the most it may allow."""

    flag_id: str
    kind: str
    value: float
    """The order's total, or the clicks in the window."""
    cap: float
    """The most an allowance from this flag may be (see the module doc)."""
    t: float
    """The flag's event time (``window_end``)."""


@dataclass(frozen=True)
class Allowance:
    kind: str
    limit: float
    """A measured value at or below this does not flag."""
    expires: float
    """Event time at which it lapses."""
    flag_id: str


def order_value_limit(details: Mapping[str, Any]) -> float | None:
    """The smallest total that flagged when an order-value flag with ``details`` was raised
    (the detector records it as ``limit_total``, with a baseline or without)."""
    limit = details.get("limit_total")
    return float(limit) if isinstance(limit, int | float) else None


def adaptable(candidate: Candidate, flag_id: str, settings: AnomalySettings) -> Adaptable | None:
    """What a verdict on ``candidate`` could teach (None: not an adaptable kind)."""
    conf = settings.adaptive
    if candidate.kind == "order_value_outlier":
        limit = order_value_limit(candidate.details)
        total = candidate.details.get("total")
        if limit is None or not isinstance(total, int | float):
            return None
        cap = min(conf.max_factor * limit, conf.max_order_total)
        return Adaptable(flag_id, candidate.kind, float(total), cap, candidate.window_end)
    if candidate.kind == "click_burst":
        hard = settings.click_burst.hard_cap - 1
        cap = min(conf.max_factor * candidate.threshold, float(hard))
        return Adaptable(flag_id, candidate.kind, candidate.score, cap, candidate.window_end)
    return None


def _pending_deque() -> deque[Adaptable]:
    return deque(maxlen=PENDING_KEPT)


@dataclass(eq=False)
class AdaptiveBaseline:
    """A member's allowances and the recent flags a verdict could turn into one."""

    pending: deque[Adaptable] = field(default_factory=_pending_deque)
    allowances: list[Allowance] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.pending or self.allowances)

    def note(self, item: Adaptable, settings: AnomalySettings, rejected: bool = False) -> None:
        """Remember a raised flag; ``rejected``: its verdict came first (adapt now)."""
        if not settings.adaptive.enabled:
            return
        if rejected:
            self._allow(item, settings)
        elif all(p.flag_id != item.flag_id for p in self.pending):
            self.pending.append(item)

    def reject(self, flag_id: str, settings: AnomalySettings) -> Allowance | None:
        """An analyst's false_positive verdict on ``flag_id``: the allowance it makes (None:
        not a recent adaptable flag of this member)."""
        if not settings.adaptive.enabled:
            return None
        for item in self.pending:
            if item.flag_id == flag_id:
                return self._allow(item, settings)
        return None

    def _allow(self, item: Adaptable, settings: AnomalySettings) -> Allowance | None:
        conf = settings.adaptive
        if any(a.flag_id == item.flag_id for a in self.allowances):
            return None  # the same verdict applied twice
        limit = min(item.value * (1.0 + conf.margin), item.cap)
        allowance = Allowance(item.kind, limit, item.t + conf.expire_days * DAY_S, item.flag_id)
        self.allowances.append(allowance)
        while len(self.allowances) > min(conf.max_kept, MAX_ALLOWANCES):
            self.allowances.remove(min(self.allowances, key=lambda a: (a.expires, a.flag_id)))
        return allowance

    def limit(self, kind: str, now: float) -> float | None:
        """The member's allowance for ``kind`` at event time ``now`` of that kind's
        detector (None: none). Lapsed allowances of ``kind`` are dropped; other kinds
        are left to their own detector's clock."""
        if not self.allowances:
            return None
        best = -math.inf
        kept = []
        for a in self.allowances:
            if a.kind == kind and now >= a.expires:
                continue
            kept.append(a)
            if a.kind == kind:
                best = max(best, a.limit)
        self.allowances = kept
        return None if best == -math.inf else best

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.pending:
            d["p"] = [[p.flag_id, _CODES[p.kind], p.value, p.cap, p.t] for p in self.pending]
        if self.allowances:
            d["a"] = [[a.flag_id, _CODES[a.kind], a.limit, a.expires] for a in self.allowances]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdaptiveBaseline:
        state = cls()
        state.pending.extend(
            Adaptable(str(f), _KINDS[c], float(v), float(cap), float(t))
            for f, c, v, cap, t in data.get("p", ())
        )
        state.allowances = [
            Allowance(_KINDS[c], float(limit), float(expires), str(f))
            for f, c, limit, expires in data.get("a", ())
        ]
        return state
