"""Per-member anomaly detectors: click bursts, bot patterns, order outliers, order velocity.

Plain code, no Kafka: the member agent keeps one :class:`MemberAnomalyState` per
member (stored with orjson inside the member's state on every event, hence its
compact :meth:`~MemberAnomalyState.to_dict`) and calls
:meth:`MemberDetectors.on_click` / :meth:`MemberDetectors.on_purchase`, which
update the state and return the :class:`~memberstream.domain.anomaly.flags.Candidate`
flags the event raised. All windows are event time.

click_burst
    Clicks in the sliding window ``(now - window_s, now]`` reach
    ``max(min_clicks, baseline_multiplier * baseline)``, and the window looks scripted:
    no add-to-cart in it and click gaps whose coefficient of variation is at most
    ``human_cv`` (a script's gaps barely vary; a person's vary about as much as they
    last). A person shopping fast (carting, or clicking at an uneven pace) is not
    flagged below ``hard_cap`` clicks in the window. The baseline (starting at
    1.0) is an EWMA of the window count seen at each click, weighted by event
    time: a click moves it toward the count by ``baseline_alpha * min(dt /
    window_s, 1)``, ``dt`` the time since the member's previous click. So it
    learns at most ``baseline_alpha`` per window of clicking: a burst cannot
    teach itself a high baseline before reaching the limit (with a weight per
    click, 19 clicks in 20 s would lift it to 7.5 and the limit to 38), an
    idle week does not erase it, and a member who clicks a lot for hours raises
    their own bar. It is not updated during a flagged episode (the cooldown).
bot_pattern
    (a) The last ``min_intervals`` inter-click intervals are machine-regular:
    coefficient of variation (population std / mean) at most ``max_cv`` and mean
    at most ``max_mean_interval_s``; score ``1 - cv`` against ``1 - max_cv``.
    (b) Or catalogue walking: ``distinct_products_per_min`` distinct products viewed
    within 60 s, sustained (``distinct_products_per_min * sustain_s / 60`` distinct
    products within ``sustain_s``), with no add-to-cart in that span and click gaps
    whose coefficient of variation is at most ``max_walk_cv``; score the distinct
    count against that need. Opening a page of results in tabs is one burst, then
    reading; a fast shopper carts or clicks unevenly; a walker keeps a steady pace.
    (a) is reported when both fire. The window starts at the run's first click (a)
    or the span's oldest product view (b); the evidence is those clicks.
order_value_outlier
    Paid orders only. With ``min_history`` past totals: robust z-score of
    ``log(total)`` against the median and MAD of the member's own log totals
    (scale floored at ``min_scale``), flagged at ``z_threshold`` when the total is
    at least ``min_total`` (a small floor: a takeover at 5-10x a member's usual
    $50 is a $250-500 order; the floor keeps the smallest of those, and a $40 member's
    one $300 purchase, out of the queue). With less history: flagged at
    ``population_cap``. An
    order that meets the outlier condition is not added to the history, whether
    or not a cooldown kept it from flagging, so a stolen account's spree does
    not shift the member's baseline (nor are its references learned).
    New instruments (when the platform sends references,
    :mod:`memberstream.domain.anomaly.instruments`): an order on a ``payment_ref``
    the member has never used that also ships to a new ``shipping_ref`` or comes from
    a new ``device_ref``, by a member with ``new_instrument_min_orders`` orders that
    carried a payment reference, is held to ``new_instrument_min_total`` instead of
    ``min_total``; the robust z still has to reach ``z_threshold``. The flag's
    ``new_refs`` detail names the new kinds (``payment+shipping``...; ``none``), given
    whenever the order carries references and the member has some. A new card alone,
    or a member whose orders never carried references, meets ``min_total`` as before.
    An order on a card new to a member with cards does not count toward
    ``new_instrument_min_orders`` (a card counts from its second order): card tests on
    an account, a new card each, leave its owner's next order judged as before.
order_velocity
    Tiny paid orders (total at most ``tiny_total``) plus refunds plus orders on a
    ``payment_ref`` the member had never used (each distinct new reference once,
    whatever the total; ``new_payment_refs``) in ``(now - window_s, now]`` reach
    ``max_orders``: card testers try stolen cards on cheap goods and refund them, or
    several cards in a row; a household placing several ordinary orders at a sale does
    not count, and neither does a member adding one new card.

After a flag of a kind at ``now``, that kind is not raised again for the member
before ``now + cooldown_s``.

Allowances: a click window or a paid order whose measure is at or below the member's
allowance for click_burst or order_value_outlier is not flagged, and feeds neither the
click baseline nor the order history. Only an analyst's false_positive verdict makes an
allowance, bounded and expiring (:mod:`memberstream.domain.anomaly.adaptive`).

Late events: ``now`` is the latest event time seen for the member (clicks and
purchases alike); windows are pruned relative to it, and a late event counts only
if it falls inside the current window. A late click never joins the run that
bot_pattern (a) measures, since intervals are only defined going forward.

Bounds: every structure is a deque with a hard maximum length (module constants,
checked against the settings by :class:`MemberDetectors`). The click window
holds at most :data:`MAX_WINDOW_CLICKS` clicks, so the click-burst limit is capped
there: that many clicks in one window always flags. The regularity run is cut at
any interval longer than ``max_mean_interval_s * (1 + max_cv * sqrt(min_intervals
- 1))`` (or ``session_gap_s`` if shorter): no interval that long can belong to
``min_intervals`` intervals with mean and CV within the limits, since one sample
of n deviates from the mean by at most ``std * sqrt(n - 1)``. A human's run is
therefore a few clicks long and the stored state stays small.

Evidence lists at most ``AnomalySettings.max_evidence`` event ids: the most recent
ones, oldest first.

Determinism: the candidates are a pure function of (state, event): no wall clock,
no randomness, no set iteration in outputs, and ``to_dict`` / ``from_dict``
round-trips every float exactly, so a replay through stored state gives identical
candidates. Events whose id is still in a window are ignored (a cheap guard
against redelivery; the member agent deduplicates as well).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from memberstream.domain.anomaly.adaptive import AdaptiveBaseline
from memberstream.domain.anomaly.flags import Candidate
from memberstream.domain.anomaly.instruments import MAX_REFS, RefHistory, carried
from memberstream.domain.anomaly.settings import AnomalySettings
from memberstream.schemas.events import ClickEvent, PurchaseEvent

__all__ = [
    "MAX_HISTORY",
    "MAX_RUN",
    "MAX_WINDOW_CLICKS",
    "MAX_WINDOW_ORDERS",
    "MemberAnomalyState",
    "MemberDetectors",
]

STATE_VERSION = 1
MAX_WINDOW_CLICKS = 256
"""Clicks kept in the sliding window (the click-burst count saturates here)."""
MAX_RUN = 128
"""Clicks kept for the regularity run (needs ``min_intervals + 1``)."""
MAX_HISTORY = 256
"""Paid order totals kept (needs ``order_value.history``)."""
MAX_WINDOW_ORDERS = 64
"""Orders and refunds kept in the velocity window (needs ``max_orders``)."""
BOT_MINUTE_S = 60.0
"""Window of the distinct-products signal of bot_pattern."""
ACTION_CODES = {"view": "v", "search": "s", "add_to_cart": "c"}
CART = ACTION_CODES["add_to_cart"]
MIN_LOG_TOTAL = 0.01
"""Totals are floored at one cent before taking the log."""
MAD_TO_SIGMA = 1.4826

_CODES = {
    "click_burst": "cb",
    "bot_pattern": "bp",
    "order_value_outlier": "ov",
    "order_velocity": "vel",
}
_KINDS = {code: kind for kind, code in _CODES.items()}


def _clicks_deque() -> deque[tuple[float, str, str, str]]:
    return deque(maxlen=MAX_WINDOW_CLICKS)


def _click_entry(raw: Any) -> tuple[float, str, str, str]:
    """A stored click; states written before clicks kept their action read as views."""
    t, eid, product, *action = raw
    return (float(t), str(eid), str(product), str(action[0]) if action else "v")


def _cv(times: list[float]) -> float | None:
    """Coefficient of variation of the gaps between sorted ``times`` (None: under 3 gaps)."""
    gaps = [b - a for a, b in pairwise(times)]
    if len(gaps) < 3:
        return None
    mean = sum(gaps) / len(gaps)
    if mean <= 0:
        return 0.0
    return math.sqrt(sum((g - mean) ** 2 for g in gaps) / len(gaps)) / mean


def _run_deque() -> deque[tuple[float, str]]:
    return deque(maxlen=MAX_RUN)


def _history_deque() -> deque[float]:
    return deque(maxlen=MAX_HISTORY)


def _orders_deque() -> deque[tuple[float, str, str]]:
    return deque(maxlen=MAX_WINDOW_ORDERS)


def _order_entry(raw: Any) -> tuple[float, str, str]:
    """A stored velocity entry; states written before references read as none."""
    t, eid, *ref = raw
    return (float(t), str(eid), str(ref[0]) if ref else "")


@dataclass(eq=False)
class MemberAnomalyState:
    """What the member detectors remember; see :meth:`to_dict` for the stored form."""

    clock: float | None = None
    """Latest click event time seen (epoch seconds)."""
    order_clock: float | None = None
    """Latest order or refund event time seen. Clicks and orders keep separate clocks:
    Kafka orders a member's clicks, and a member's purchases, but not one against the
    other, so neither kind of detector may depend on the other topic's progress."""
    clicks: deque[tuple[float, str, str, str]] = field(default_factory=_clicks_deque)
    """(t, event id, product id or "", action code) of the clicks in the window, sorted by
    t; the code is :data:`ACTION_CODES` of the click's action."""
    run: deque[tuple[float, str]] = field(default_factory=_run_deque)
    """(t, event id) of the latest clicks with no run-breaking gap, in time order."""
    baseline: float = 1.0
    """EWMA of the click-burst window count."""
    totals: deque[float] = field(default_factory=_history_deque)
    """Paid order totals that were not outliers, oldest first."""
    orders: deque[tuple[float, str, str]] = field(default_factory=_orders_deque)
    """(t, event id, new payment reference or "") of the orders and refunds counted in the
    velocity window, sorted by t."""
    last_flag: dict[str, float] = field(default_factory=dict)
    """Kind -> event time of its last flag, while its cooldown may still apply."""
    adaptive: AdaptiveBaseline = field(default_factory=AdaptiveBaseline)
    """Allowances from analysts' false_positive verdicts
    (:mod:`memberstream.domain.anomaly.adaptive`)."""
    refs: RefHistory = field(default_factory=RefHistory)
    """The member's last payment, shipping and device references
    (:mod:`memberstream.domain.anomaly.instruments`)."""

    def to_dict(self) -> dict[str, Any]:
        """Short keys, lists and floats; empty parts are left out (a fresh state is tiny)."""
        d: dict[str, Any] = {"v": STATE_VERSION}
        if self.clock is not None:
            d["c"] = self.clock
        if self.order_clock is not None:
            d["oc"] = self.order_clock
        if self.clicks:
            d["w"] = [list(c) for c in self.clicks]
        if self.run:
            d["r"] = [list(r) for r in self.run]
        if self.baseline != 1.0:
            d["b"] = self.baseline
        if self.totals:
            d["o"] = list(self.totals)
        if self.orders:
            d["q"] = [[t, eid, ref] if ref else [t, eid] for t, eid, ref in self.orders]
        if self.last_flag:
            d["f"] = {_CODES[k]: self.last_flag[k] for k in _CODES if k in self.last_flag}
        if self.adaptive:
            d["ad"] = self.adaptive.to_dict()
        if self.refs:
            d["rf"] = self.refs.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemberAnomalyState:
        if data.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported member anomaly state version {data.get('v')!r}")
        try:
            clock = data.get("c")
            order_clock = data.get("oc")
            state = cls(
                clock=None if clock is None else float(clock),
                order_clock=None if order_clock is None else float(order_clock),
            )
            state.clicks.extend(_click_entry(c) for c in data.get("w", ()))
            state.run.extend((float(t), str(e)) for t, e in data.get("r", ()))
            state.baseline = float(data.get("b", 1.0))
            state.totals.extend(float(x) for x in data.get("o", ()))
            state.orders.extend(_order_entry(o) for o in data.get("q", ()))
            state.last_flag = {_KINDS[c]: float(t) for c, t in data.get("f", {}).items()}
            state.adaptive = AdaptiveBaseline.from_dict(data.get("ad", {}))
            state.refs = RefHistory.from_dict(data.get("rf", {}))
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"malformed member anomaly state: {exc}") from None
        return state


def _insert_sorted(window: deque[Any], item: tuple[Any, ...]) -> bool:
    """Insert ``item`` by its time (first element) after equal times; a full window drops
    its oldest entry first. False when the item itself would be the one dropped."""
    t = item[0]
    if not window or window[-1][0] <= t:
        window.append(item)  # the common case; a full deque drops its oldest
        return True
    i = len(window)
    while i > 0 and window[i - 1][0] > t:
        i -= 1
    if len(window) == window.maxlen:
        if i == 0:
            return False
        window.popleft()
        i -= 1
    window.insert(i, item)
    return True


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    if n % 2:
        return sorted_values[mid]
    return (sorted_values[mid - 1] + sorted_values[mid]) / 2.0


class MemberDetectors:
    """The four per-member detectors under one :class:`AnomalySettings` (see the module doc)."""

    def __init__(self, settings: AnomalySettings) -> None:
        self.settings = settings
        s = settings
        self.enabled = s.enabled
        self.max_evidence = s.max_evidence
        cb, bp, ov, vel = s.click_burst, s.bot_pattern, s.order_value, s.order_velocity
        self.cb, self.bp, self.ov, self.vel = cb, bp, ov, vel
        for name, needed, cap in (
            ("click_burst.min_clicks", cb.min_clicks, MAX_WINDOW_CLICKS),
            (
                "bot_pattern.distinct_products_per_min",
                bp.distinct_products_per_min,
                MAX_WINDOW_CLICKS,
            ),
            ("bot_pattern.min_intervals + 1", bp.min_intervals + 1, MAX_RUN),
            ("order_value.history", ov.history, MAX_HISTORY),
            ("order_velocity.max_orders", vel.max_orders, MAX_WINDOW_ORDERS),
            ("refs_kept", s.refs_kept, MAX_REFS),
        ):
            if needed > cap:
                raise ValueError(f"{name} = {needed} exceeds the state bound {cap}")
        # clicks are kept for the longer of the burst window and the bot minute
        self.click_horizon = max(cb.window_s if cb.enabled else 0.0, BOT_MINUTE_S, bp.sustain_s)
        self.run_len = bp.min_intervals + 1
        self.run_gap = min(  # (with a hair of slack for float rounding)
            bp.session_gap_s,
            bp.max_mean_interval_s
            * (1.0 + bp.max_cv * math.sqrt(bp.min_intervals - 1))
            * (1.0 + 1e-9),
        )
        self.regular_threshold = 1.0 - bp.max_cv
        self.refs_kept = s.refs_kept

    # -- shared --

    def _evidence(self, ids: list[str]) -> tuple[str, ...]:
        return tuple(ids[-self.max_evidence :])

    @staticmethod
    def _cooling(state: MemberAnomalyState, kind: str, now: float, cooldown_s: float) -> bool:
        """True while ``kind`` is in its cooldown; forgets the flag time once it has passed
        (``now`` never decreases, so it could not matter again)."""
        last = state.last_flag.get(kind)
        if last is None:
            return False
        if now < last + cooldown_s:
            return True
        del state.last_flag[kind]
        return False

    def _advance(self, state: MemberAnomalyState, t: float) -> float:
        """Move the click clock to ``t`` (never back)."""
        prev = state.clock
        now = t if prev is None or t > prev else prev
        state.clock = now
        run = state.run
        if run and now - run[-1][0] > self.run_gap:
            run.clear()  # the next interval would break the run anyway
        return now

    def _advance_orders(self, state: MemberAnomalyState, t: float) -> float:
        """Move the order clock to ``t`` (never back) and prune the velocity window."""
        prev = state.order_clock
        now = t if prev is None or t > prev else prev
        state.order_clock = now
        orders = state.orders
        lo = now - self.vel.window_s
        while orders and orders[0][0] <= lo:
            orders.popleft()
        return now

    def _prune_clicks(self, state: MemberAnomalyState, now: float) -> float:
        horizon = now - self.click_horizon
        clicks = state.clicks
        while clicks and clicks[0][0] <= horizon:
            clicks.popleft()
        return horizon

    # -- clicks --

    def on_click(self, state: MemberAnomalyState, event: ClickEvent) -> list[Candidate]:
        """click_burst and bot_pattern for one click; updates ``state``."""
        if not self.enabled or not (self.cb.enabled or self.bp.enabled):
            return []
        t = event.occurred_at.timestamp()
        eid = event.event_id
        for c in state.clicks:
            if c[1] == eid:
                return []
        late = state.clock is not None and t < state.clock
        now = self._advance(state, t)
        horizon = self._prune_clicks(state, now)
        since = now - state.clicks[-1][0] if state.clicks else math.inf
        entry = (t, eid, event.product_id or "", ACTION_CODES[event.action])
        if t <= horizon or not _insert_sorted(state.clicks, entry):
            return []
        if not late:
            run = state.run
            if run and t - run[-1][0] > self.run_gap:
                run.clear()
            run.append((t, eid))
            while len(run) > self.run_len:
                run.popleft()
        out: list[Candidate] = []
        if self.cb.enabled:
            flag = self._click_burst(state, event.member_id, now, since)
            if flag is not None:
                out.append(flag)
        if self.bp.enabled and not self._cooling(state, "bot_pattern", now, self.bp.cooldown_s):
            flag = self._bot_pattern(state, event.member_id, now)
            if flag is not None:
                out.append(flag)
        return out

    def _click_burst(
        self, state: MemberAnomalyState, member_id: str, now: float, since: float
    ) -> Candidate | None:
        """``since``: event time from the member's previous click to this one (inf if none
        in the window); it weighs this click's update of the baseline."""
        cb = self.cb
        clicks = state.clicks
        lo = now - cb.window_s
        n = len(clicks)
        k = 0
        while k < n and clicks[k][0] <= lo:
            k += 1
        count = n - k
        if self._cooling(state, "click_burst", now, cb.cooldown_s):
            return None
        baseline = state.baseline
        limit = min(max(float(cb.min_clicks), cb.baseline_multiplier * baseline), MAX_WINDOW_CLICKS)
        if count < limit:  # (count may be 0 after a late click outside the window)
            weight = cb.baseline_alpha * min(since / cb.window_s, 1.0)
            state.baseline = baseline + weight * (count - baseline)
            return None
        window = list(clicks)[k:]
        carts = sum(1 for c in window if c[3] == CART)
        cv = _cv([c[0] for c in window])
        human = carts > 0 or (cv is not None and cv > cb.human_cv)
        if human and count < cb.hard_cap:
            # a person shopping fast: carting, or clicking at an irregular pace
            state.baseline = baseline + cb.baseline_alpha * min(since / cb.window_s, 1.0) * (
                count - baseline
            )
            return None
        allowance = state.adaptive.limit("click_burst", now)
        if allowance is not None and count <= allowance:
            return None  # an analyst let this rate pass; it does not teach the baseline
        state.last_flag["click_burst"] = now
        return Candidate(
            kind="click_burst",
            subject="member",
            subject_id=member_id,
            window_start=window[0][0],
            window_end=now,
            score=float(count),
            threshold=limit,
            evidence=self._evidence([c[1] for c in window]),
            details={
                "clicks": count,
                "baseline": baseline,
                "window_s": cb.window_s,
                "cv": -1.0 if cv is None else cv,
                "add_to_cart": carts,
            },
        )

    def _bot_pattern(
        self, state: MemberAnomalyState, member_id: str, now: float
    ) -> Candidate | None:
        bp = self.bp
        run = state.run
        if len(run) == self.run_len:
            times = [r[0] for r in run]
            intervals = [b - a for a, b in pairwise(times)]
            n = len(intervals)
            mean = sum(intervals) / n
            if mean <= bp.max_mean_interval_s:
                std = math.sqrt(sum((x - mean) ** 2 for x in intervals) / n)
                cv = std / mean if mean > 0 else 0.0
                score = 1.0 - cv
                if score >= self.regular_threshold:
                    state.last_flag["bot_pattern"] = now
                    return Candidate(
                        kind="bot_pattern",
                        subject="member",
                        subject_id=member_id,
                        window_start=times[0],
                        window_end=now,
                        score=score,
                        threshold=self.regular_threshold,
                        evidence=self._evidence([r[1] for r in run]),
                        details={
                            "signal": "regular_intervals",
                            "cv": cv,
                            "max_cv": bp.max_cv,
                            "mean_interval_s": mean,
                            "intervals": n,
                        },
                    )
        limit = bp.distinct_products_per_min
        clicks = state.clicks
        lo = now - BOT_MINUTE_S
        if len(clicks) < limit or clicks[-limit][0] <= lo:
            return None  # fewer than `limit` clicks in the minute: cannot reach it
        minute = [c for c in clicks if c[0] > lo and c[2]]
        distinct = len({c[2] for c in minute})
        if distinct < limit:
            return None
        # sustained catalogue walking with no cart: a person opening a page of results in
        # tabs does it once, then reads; a walker keeps going
        span = [c for c in clicks if c[0] > now - bp.sustain_s]
        if any(c[3] == CART for c in span):
            return None
        span = [c for c in span if c[2]]
        walked = len({c[2] for c in span})
        needed = math.ceil(limit * bp.sustain_s / BOT_MINUTE_S)
        if walked < needed:
            return None
        cv = _cv([c[0] for c in span])
        if cv is not None and cv > bp.max_walk_cv:
            return None  # a person's uneven pace, however many products
        state.last_flag["bot_pattern"] = now
        return Candidate(
            kind="bot_pattern",
            subject="member",
            subject_id=member_id,
            window_start=span[0][0],
            window_end=now,
            score=float(walked),
            threshold=float(needed),
            evidence=self._evidence([c[1] for c in span]),
            details={
                "signal": "distinct_products",
                "distinct_products": walked,
                "distinct_last_minute": distinct,
                "window_s": bp.sustain_s,
                "cv": -1.0 if cv is None else cv,
            },
        )

    # -- purchases --

    def on_purchase(self, state: MemberAnomalyState, event: PurchaseEvent) -> list[Candidate]:
        """order_value_outlier (paid orders) and order_velocity (paid and refunded)."""
        if not self.enabled:
            return []
        t = event.occurred_at.timestamp()
        eid = event.event_id
        for o in state.orders:
            if o[1] == eid:
                return []
        now = self._advance_orders(state, t)
        new = state.refs.new(event)
        out: list[Candidate] = []
        learn = event.status == "paid"
        if learn and self.ov.enabled:
            flag, outlier = self._order_value(state, event, now, new)
            learn = not outlier  # a takeover's card does not become the member's own
            if flag is not None:
                out.append(flag)
        if self.vel.enabled:
            flag = self._order_velocity(state, event, t, now, new)
            if flag is not None:
                out.append(flag)
        if learn:
            counts = self._builds_ref_history(state, event, new)
            state.refs.learn(event, self.refs_kept, counts=counts)
        return out

    def _builds_ref_history(
        self, state: MemberAnomalyState, event: PurchaseEvent, new: tuple[str, ...]
    ) -> bool:
        """Whether a paid order counts toward ``new_instrument_min_orders``: not when it
        came on a card new to a member that has cards (a card counts from its second
        order), so a burst of card tests on an account, a new card each, is no history of
        the member (its references are remembered all the same)."""
        return not ("payment" in new and state.refs.payment)

    def _order_value(
        self, state: MemberAnomalyState, event: PurchaseEvent, now: float, new: tuple[str, ...]
    ) -> tuple[Candidate | None, bool]:
        """The flag (None: none) and whether the order met the outlier condition."""
        ov = self.ov
        total = float(event.total)
        history = state.totals
        while len(history) > ov.history:
            history.popleft()
        n = len(history)
        details: dict[str, float | int | str] = {"total": total, "history": n}
        if n >= ov.min_history:
            logs = sorted(math.log(max(x, MIN_LOG_TOTAL)) for x in history)
            m = _median(logs)
            mad = _median(sorted(abs(x - m) for x in logs))
            scale = max(MAD_TO_SIGMA * mad, ov.min_scale)
            score = (math.log(max(total, MIN_LOG_TOTAL)) - m) / scale
            threshold = ov.z_threshold
            # a new card to a new address (or from a new device) lowers the floor
            lowered = state.refs.takeover_refs(new, ov.new_instrument_min_orders)
            floor = min(ov.min_total, ov.new_instrument_min_total) if lowered else ov.min_total
            outlier = score >= threshold and total >= floor
            details |= {
                "reason": "member_baseline",
                "median_total": math.exp(m),
                "z": score,
                "scale": scale,
                "min_total": floor,
                "limit_total": max(floor, math.exp(m + threshold * scale)),
            }
            if state.refs and carried(event):
                details["new_refs"] = "+".join(new) or "none"
            if lowered:
                details["floor"] = "new_instrument"
        else:
            score, threshold = total, ov.population_cap
            outlier = score >= threshold
            details |= {"reason": "population_cap", "limit_total": ov.population_cap}
        if not outlier:
            history.append(total)
            if len(history) > ov.history:
                history.popleft()
            return None, False
        allowance = state.adaptive.limit("order_value_outlier", now)
        if allowance is not None and total <= allowance:
            return None, True  # an analyst let this size pass; kept out of the history as well
        if self._cooling(state, "order_value_outlier", now, ov.cooldown_s):
            return None, True
        state.last_flag["order_value_outlier"] = now
        t = event.occurred_at.timestamp()
        flag = Candidate(
            kind="order_value_outlier",
            subject="member",
            subject_id=event.member_id,
            window_start=t,
            window_end=t,
            score=score,
            threshold=threshold,
            evidence=(event.event_id,),
            details=details,
        )
        return flag, True

    def _order_velocity(
        self,
        state: MemberAnomalyState,
        event: PurchaseEvent,
        t: float,
        now: float,
        new: tuple[str, ...],
    ) -> Candidate | None:
        vel = self.vel
        orders = state.orders  # pruned by _advance
        lo = now - vel.window_s
        card = event.payment_ref if vel.new_payment_refs and "payment" in new else None
        counted = (
            event.status == "refunded"
            or vel.tiny_total <= 0
            or event.total <= vel.tiny_total
            or card is not None
        )
        entry = (t, event.event_id, card or "")
        if not counted or t <= lo or not _insert_sorted(orders, entry):
            return None
        # each distinct new card once: the same one twice is one card, however often tried
        cards = {o[2] for o in orders if o[2]}
        count = sum(1 for o in orders if not o[2]) + len(cards)
        if count < vel.max_orders or self._cooling(state, "order_velocity", now, vel.cooldown_s):
            return None
        state.last_flag["order_velocity"] = now
        return Candidate(
            kind="order_velocity",
            subject="member",
            subject_id=event.member_id,
            window_start=orders[0][0],
            window_end=now,
            score=float(count),
            threshold=float(vel.max_orders),
            evidence=self._evidence([o[1] for o in orders]),
            details={
                "orders": count,
                "window_s": vel.window_s,
                "tiny_total": vel.tiny_total,
                **({"new_payment_refs": len(cards)} if cards else {}),
            },
        )
