"""Labeled anomalies spliced into the synthetic workload, to evaluate the anomaly detectors.

:class:`AnomalyInjector` is an :class:`~memberstream.datasets.synthetic.Injector`: it reads
the normal, time-ordered stream of a :class:`SyntheticWorkload` and splices in *incidents*,
each a small burst of abusive events with an :class:`AnomalyLabel` naming the flag kinds a
detector should raise (:data:`EXPECTED_KINDS`) and every event it consists of. Labels are
the only ground truth: injected events carry the normal ``source`` ("synthetic"), so a
detector cannot tell them apart by anything but behaviour.

Scenarios, and why they look the way they do:

``bot_session`` (click_burst, bot_pattern)
    An existing member (already seen in the stream, so it has a normal baseline) suddenly
    runs 80-300 ``view`` clicks in a new session, at a base interval drawn per session from
    0.5-3 s with each gap jittered by at most 2%. That is a scraper: far more clicks per
    minute than any human session (click_burst), at an interval whose coefficient of
    variation (~1%) no human reaches (bot_pattern), walking the catalog in id order so almost
    every product is new (distinct products per minute).
``card_testing`` (order_velocity)
    An account (half existing members, half new accounts) places 8-20 paid orders within
    5-15 minutes, each a single unit of a product priced at most $15 (stolen cards are tried
    on cheap goods), and about 30% are refunded a few minutes later. Normal members order at
    most once per session.
``account_takeover`` (order_value_outlier, learned_score)
    70%: an existing member with at least 3 paid orders places one order totalling at least
    ``max(25 x the member's median order total, $1,500)``; 30% (and whenever no member is
    eligible yet): a brand-new account's first order totals at least $3,000. The basket is
    2-8 units of resellable high-value goods (>= $200, electronics, computers, phones,
    jewelry and watches, video games), capped at $20,000. The ratio makes the order an
    outlier against the member's own history; the new-account floor is above anything the
    normal workload produces (its maximum is about $2,500).
``copy_paste_reviews`` (review_duplicate)
    4-8 distinct accounts (existing and new) post 5-star reviews of one product within 1-12
    hours, all the same long promotional text (>= 80 characters, in the product's language,
    naming the product) with light edits (punctuation, case, a trailing "!", one swapped
    filler word), as review farms do to dodge exact-match filters. The copies stay
    near-identical for a sentence encoder: edits that moved all-MiniLM-L6-v2 embeddings
    noticeably (dropping a comma, some synonyms) are left out, and copies measure cosine
    >= 0.98 with each other.
``review_bombing`` (review_bombing)
    12-40 distinct accounts post 1-star (80%) or 2-star reviews of one product within 2-12
    hours. Texts are composed from independent pools (opening, complaint about the product,
    detail with random numbers, closing), so they are all different: a bombing is a burst of
    low ratings, not a copy-paste, and must not trip the duplicate detector by construction;
    no two reviews of an incident share more than one sentence template.

Quieter incidents and hard negatives (:data:`HARD_SCENARIOS`, enabled by name; the
family the member detectors are tuned on, with an independently written family in
:mod:`memberstream.datasets.independent_scenarios` to report on):

``slow_bot`` (bot_pattern)
    60-150 views walking the catalogue at one view per 2-8 s, gaps jittered by 5%.
``small_card_testing`` (order_velocity)
    3-5 single-unit orders of at most $12 within 4-9 minutes, 40% refunded.
``mid_takeover`` (order_value_outlier, learned_score)
    A member with 3+ orders buys resellable goods at 4-12x their median order (>= $300).
``hn_fast_browser``, ``hn_tab_opener``, ``hn_sale_family``, ``hn_big_spender``,
``hn_new_large_order`` (no kind)
    3-6 minutes at 15-22 clicks a minute with exponential gaps and some carts; a search
    and 12-20 results opened within 5-20 s, then minutes of reading; 4-6 ordinary orders
    ($15-120 items) within 30-90 minutes; a new account ordering $1,200-2,800 every 3-8
    days; a new member's first order of $800-2,000.
``hn_new_card`` (no kind)
    A member with 3+ paid orders pays with a card it never used: 70% an order of its usual
    size (0.5-2x its median), 30% at its usual large size (0.9-1.1x its largest order);
    its own address, and its own device 70% of the time (else a new one, a new phone).
    The ``variant`` is ``ordinary|large/own_device|new_device``.
``rating_mismatch`` (rating_text_mismatch)
    One review by an existing member of a product members have bought, whose stars
    contradict its text: 5 stars over a complaint (70%) or 1 star over praise, in English
    or Chinese (half each), the text said in an obvious tone ("Terrible, broke in a day")
    or an understated one ("It stopped charging after a week, not what I hoped for"),
    half each. The label's ``variant`` is ``tone/language/top|low``.
``hn_honest_mixed_reviews`` (no kind)
    One honest review whose text mixes praise and complaint and agrees with its stars:
    5 stars "pricey but worth every cent" (45%), 4 stars with a small complaint (20%),
    1 (60%) or 2 stars with faint praise (35%); English or Chinese, half each. The
    ``variant`` is ``kind/language/stars``.

Payment, shipping and device references: when the workload sends them
(``WorkloadConfig.instrument_refs``), injected orders carry them too, otherwise none.
Card testing uses a new card per order (refunds go back to the order's card), one new
address and one new device per incident; account takeovers (both sizes) of an existing
member use a new card, a new address and a new device 80% of the time
(:data:`ATO_NEW_REFS_SHARE`), else the member's saved card with a new address and device;
the hard negatives use the member's own references (the last ones it used), and new
accounts their own new ones throughout. New references are ``pay-x{seed}-{n}`` (and
``ship-``, ``dev-``); the choices come from a second RNG per incident, so the incidents'
events, totals and times are the same with references on or off.

How it works: incident start times are planned up front, a Poisson process per scenario
over ``[start + warmup_days, start + days)`` of the workload, each scenario from its own
seeded RNG (turning one scenario off does not move the others). While the normal stream
passes, the injector remembers what it has shown (members, paid order totals, purchased
products); when the stream reaches an incident's start, the incident is built from that
memory with its own seeded RNG, and its events wait in a heap until their time comes.
Besides that memory (members, their paid order totals, purchased product ids), only the
planned incidents and the pending events of running incidents are held; the stream itself
is never materialised. The same workload and :class:`InjectionConfig` always give the same
events, ids and labels.

Ids: events ``syn-{seed}-x{n}``, orders ``ox{seed}-{n}``, sessions ``sx{seed}-{n}`` and new
accounts ``x000001``... (``seed`` is the injection seed), none of which the workload uses.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from memberstream.datasets.anomaly_texts import (
    BOMB_TITLES,
    MISMATCH_TONES,
    PROMO_TITLES,
    bomb_texts,
    honest_mixed_review,
    mismatch_review,
    product_noun,
    promo_copies,
)
from memberstream.datasets.synthetic import (
    SOURCE,
    Product,
    Refs,
    SyntheticEvent,
    SyntheticWorkload,
    WorkloadConfig,
)
from memberstream.schemas.events import (
    PURCHASE_REFS,
    ClickEvent,
    LineItem,
    PurchaseEvent,
    ReviewEvent,
)

Scenario = str
SCENARIOS: tuple[Scenario, ...] = (
    "bot_session",
    "card_testing",
    "account_takeover",
    "copy_paste_reviews",
    "review_bombing",
)
"""The obvious incidents, enabled by default (the demo's)."""
HARD_SCENARIOS: tuple[Scenario, ...] = (
    "slow_bot",
    "small_card_testing",
    "mid_takeover",
    "hn_fast_browser",
    "hn_tab_opener",
    "hn_sale_family",
    "hn_big_spender",
    "hn_new_large_order",
    "hn_new_card",
    "rating_mismatch",
    "hn_honest_mixed_reviews",
)
"""Quieter incidents and hard negatives (``hn_``: ordinary members who behave unusually,
labeled with no kind: any flag on them is a false alert), enabled by name; the tuning
family of the member detectors."""
ALL_SCENARIOS: tuple[Scenario, ...] = SCENARIOS + HARD_SCENARIOS
EXPECTED_KINDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "bot_session": frozenset({"click_burst", "bot_pattern"}),
        "card_testing": frozenset({"order_velocity"}),
        "account_takeover": frozenset({"order_value_outlier", "learned_score"}),
        "copy_paste_reviews": frozenset({"review_duplicate"}),
        "review_bombing": frozenset({"review_bombing"}),
        "slow_bot": frozenset({"bot_pattern"}),
        "small_card_testing": frozenset({"order_velocity"}),
        "mid_takeover": frozenset({"order_value_outlier", "learned_score"}),
        "rating_mismatch": frozenset({"rating_text_mismatch"}),
        **{name: frozenset() for name in HARD_SCENARIOS if name.startswith("hn_")},
    }
)
"""Flag kinds each scenario should raise (none for a hard negative)."""
SUBJECTS: Mapping[str, Literal["member", "product"]] = MappingProxyType(
    {
        "copy_paste_reviews": "product",
        "review_bombing": "product",
        "hn_honest_mixed_reviews": "member",
        **{name: "member" for name in ALL_SCENARIOS if "review" not in name},
    }
)

BOT_CLICKS = (80, 300)
BOT_INTERVAL_S = (0.5, 3.0)
BOT_JITTER = 0.02
BOT_REVISIT = 0.1
"""Share of bot clicks that revisit a product of the same session instead of walking on."""
CARD_ORDERS = (8, 20)
CARD_WINDOW_MIN = (5.0, 15.0)
CARD_MAX_PRICE = 15.0
CARD_REFUND_SHARE = 0.3
CARD_REFUND_DELAY_MIN = (1.0, 5.0)
ATO_EXISTING_SHARE = 0.7
ATO_MIN_ORDERS = 3
ATO_MEDIAN_MULTIPLE = 25.0
ATO_MIN_TOTAL = 1500.0
ATO_NEW_MIN_TOTAL = 3000.0
ATO_MAX_TOTAL = 20_000.0
ATO_UNITS = (2, 8)
ATO_MIN_PRICE = 200.0
ATO_CATEGORIES = frozenset(
    {"electronics", "computers", "cell_phones", "jewelry_watches", "video_games"}
)
EXISTING_ACCOUNT_SHARE = 0.5
"""Card testing and review incidents: share of accounts that are existing members."""
COPY_ACCOUNTS = (4, 8)
COPY_SPAN_H = (1.0, 12.0)
BOMB_ACCOUNTS = (12, 40)
BOMB_SPAN_H = (2.0, 12.0)
BOMB_ONE_STAR = 0.8
SLOW_BOT_CLICKS = (60, 150)
SLOW_BOT_INTERVAL_S = (2.0, 8.0)
SLOW_BOT_JITTER = 0.05
SMALL_CARD_ORDERS = (3, 5)
SMALL_CARD_WINDOW_MIN = (4.0, 9.0)
SMALL_CARD_MAX_PRICE = 12.0
SMALL_CARD_REFUND_SHARE = 0.4
MID_ATO_MULTIPLE = (4.0, 12.0)
MID_ATO_MIN_TOTAL = 300.0
FAST_MINUTES = (3.0, 6.0)
FAST_PER_MIN = (15.0, 22.0)
FAST_CART = 0.08
FAST_REVISIT = 0.3
TABS = (12, 20)
TABS_SPAN_S = (5.0, 20.0)
TABS_PAUSE_MIN = (2.0, 5.0)
SALE_ORDERS = (4, 6)
SALE_SPAN_MIN = (30.0, 90.0)
SALE_PRICE = (15.0, 120.0)
BIG_HISTORY = (4, 6)
BIG_GAP_DAYS = (3.0, 8.0)
BIG_TOTAL = (1200.0, 2800.0)
NEW_LARGE_TOTAL = (800.0, 2000.0)
ATO_NEW_REFS_SHARE = 0.8
"""Takeovers of existing members on a new card, to a new address, from a new device (the
rest: the member's saved card, a new address and device)."""
NEW_CARD_ORDINARY = (0.5, 2.0)
"""hn_new_card: an ordinary order's total, as a multiple of the member's median."""
NEW_CARD_LARGE = (0.9, 1.1)
"""hn_new_card: a large order's total, as a multiple of the member's largest order."""
NEW_CARD_LARGE_SHARE = 0.3
NEW_CARD_NEW_DEVICE_SHARE = 0.3
REVIEW_LANGUAGES = ("en", "zh")
MISMATCH_TOP_SHARE = 0.7
"""rating_mismatch: share of 5-star reviews over a complaint (the rest: 1 star over praise)."""
HONEST_STARS: tuple[tuple[str, int, float], ...] = (
    ("mixed_top", 5, 0.45),
    ("small_complaint", 4, 0.2),
    ("faint_praise", 1, 0.21),
    ("faint_praise", 2, 0.14),
)
"""hn_honest_mixed_reviews: (kind of text, stars, share)."""

_MS = timedelta(milliseconds=1)
_MINUTE_MS = 60_000
_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000


# --- labels and config -------------------------------------------------------------------


@dataclass(frozen=True)
class AnomalyLabel:
    """Ground truth of one incident: what should be flagged, about whom, from which events."""

    incident_id: str
    scenario: str
    kinds: frozenset[str]
    """Flag kinds a detector should raise (:data:`EXPECTED_KINDS`)."""
    subject: Literal["member", "product"]
    member_ids: tuple[str, ...]
    """The acting account(s); for review incidents in posting order."""
    product_id: str | None
    """The targeted product of review incidents, else None."""
    event_ids: tuple[str, ...]
    """Every injected event of the incident, in time order."""
    start: datetime
    end: datetime
    variant: str = ""
    """The case within its scenario, for a breakdown (e.g. ``understated/zh/top``); empty
    when the scenario has one kind of case."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "scenario": self.scenario,
            "kinds": sorted(self.kinds),
            "subject": self.subject,
            "member_ids": list(self.member_ids),
            "product_id": self.product_id,
            "event_ids": list(self.event_ids),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        } | ({"variant": self.variant} if self.variant else {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnomalyLabel:
        return cls(
            incident_id=data["incident_id"],
            scenario=data["scenario"],
            kinds=frozenset(data["kinds"]),
            subject=data["subject"],
            member_ids=tuple(data["member_ids"]),
            product_id=data["product_id"],
            event_ids=tuple(data["event_ids"]),
            start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]),
            variant=data.get("variant", ""),
        )


def write_labels(path: str | Path, labels: Sequence[AnomalyLabel]) -> int:
    """Write labels as JSON lines; returns how many."""
    with Path(path).open("w", encoding="utf-8") as out:
        for label in labels:
            out.write(json.dumps(label.to_dict(), ensure_ascii=False) + "\n")
    return len(labels)


def read_labels(path: str | Path) -> list[AnomalyLabel]:
    """Labels written by :func:`write_labels` (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as lines:
        return [AnomalyLabel.from_dict(json.loads(line)) for line in lines if line.strip()]


@dataclass(frozen=True)
class InjectionConfig:
    """Which incidents to inject, and how often. Everything derives from ``seed``."""

    seed: int = 11
    incidents_per_day: float = 0.5
    """Mean incidents per day of each enabled scenario (a Poisson process per scenario)."""
    scenario_rates: Mapping[str, float] = field(default_factory=dict)
    """Per-scenario overrides of ``incidents_per_day``."""
    scenarios: tuple[str, ...] = SCENARIOS
    """Enabled scenarios (any of :data:`ALL_SCENARIOS`); stored deduplicated in that order."""
    warmup_days: float = 0.0
    """No incident starts earlier than this into the period (lets members build history)."""

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError("seed must be an int")
        if isinstance(self.scenarios, str):
            raise ValueError("scenarios must be a sequence of scenario names, not a string")
        _check_scenarios("scenarios", self.scenarios)
        _check_scenarios("scenario_rates", self.scenario_rates)
        for name, rate in [("incidents_per_day", self.incidents_per_day)] + [
            (f"scenario_rates[{s!r}]", r) for s, r in self.scenario_rates.items()
        ]:
            if not _finite_non_negative(rate):
                raise ValueError(f"{name} must be a finite number >= 0, got {rate!r}")
        if not _finite_non_negative(self.warmup_days):
            raise ValueError(f"warmup_days must be a finite number >= 0, got {self.warmup_days!r}")
        wanted = set(self.scenarios)
        object.__setattr__(self, "scenarios", tuple(s for s in ALL_SCENARIOS if s in wanted))
        object.__setattr__(self, "scenario_rates", MappingProxyType(dict(self.scenario_rates)))

    def rate(self, scenario: str) -> float:
        """Incidents per day of ``scenario`` (0 when it is not enabled)."""
        if scenario not in self.scenarios:
            return 0.0
        return float(self.scenario_rates.get(scenario, self.incidents_per_day))


def _check_scenarios(name: str, names: Iterable[object]) -> None:
    unknown = sorted(str(s) for s in names if s not in ALL_SCENARIOS)
    if unknown:
        raise ValueError(f"{name}: unknown scenarios {unknown}; known: {list(ALL_SCENARIOS)}")


def _finite_non_negative(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


# --- what the stream has shown -------------------------------------------------------------


class _Seen:
    """The injector's only view of the past: what the normal stream has shown so far."""

    def __init__(self) -> None:
        self.members: list[str] = []
        self._members: set[str] = set()
        self.paid_totals: dict[str, list[float]] = {}
        self.purchased: list[str] = []
        self._purchased: set[str] = set()
        self.refs: dict[str, Refs] = {}
        """The references of each member's latest paid order (when the workload sends them)."""

    def observe(self, event: SyntheticEvent) -> None:
        if event.member_id not in self._members:
            self._members.add(event.member_id)
            self.members.append(event.member_id)
        if isinstance(event, PurchaseEvent) and event.status == "paid":
            self.paid_totals.setdefault(event.member_id, []).append(event.total)
            refs = (event.payment_ref, event.shipping_ref, event.device_ref)
            if all(refs):
                self.refs[event.member_id] = refs  # type: ignore[assignment]
            for item in event.items:
                if item.product_id not in self._purchased:
                    self._purchased.add(item.product_id)
                    self.purchased.append(item.product_id)


def ato_required_total(paid_totals: Sequence[float]) -> float:
    """The least total of an account-takeover order by a member with these earlier orders."""
    return max(ATO_MEDIAN_MULTIPLE * statistics.median(paid_totals), ATO_MIN_TOTAL)


# --- incidents -----------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class _Planned:
    at: datetime
    scenario_index: int
    number: int

    @property
    def scenario(self) -> Scenario:
        return ALL_SCENARIOS[self.scenario_index]


@dataclass
class _Draft:
    """An incident's events before they are labeled."""

    members: list[str]
    events: list[SyntheticEvent]
    product_id: str | None = None
    variant: str = ""


def _plan(config: InjectionConfig, workload: WorkloadConfig) -> list[_Planned]:
    """Incident start times: a Poisson process per scenario, from its own RNG."""
    plan = []
    end_ms = workload.days * _DAY_MS
    for index, scenario in enumerate(ALL_SCENARIOS):
        per_ms = config.rate(scenario) / _DAY_MS
        if per_ms <= 0:
            continue
        rng = random.Random(f"{workload.seed}/{config.seed}/plan/{scenario}")
        t = config.warmup_days * _DAY_MS
        number = 0
        while (t := t + rng.expovariate(per_ms)) < end_ms:
            plan.append(_Planned(workload.start + int(t) * _MS, index, number))
            number += 1
    plan.sort()
    return plan


class _Run:
    """One pass of the injector over one stream: its memory, counters, labels and heap."""

    def __init__(self, config: InjectionConfig, workload: SyntheticWorkload) -> None:
        self.config = config
        self.workload = workload
        self.seed = config.seed
        self.products = {p.id: p for p in workload.catalog}
        self.cheap = [p for p in workload.catalog if p.price <= CARD_MAX_PRICE]
        self.expensive = [
            p for p in workload.catalog if p.price >= ATO_MIN_PRICE and p.category in ATO_CATEGORIES
        ]
        self._check_catalog()
        self.plan = _plan(config, workload.config)
        self.seen = _Seen()
        self.labels: list[AnomalyLabel] = []
        self.pending: list[tuple[datetime, int, SyntheticEvent]] = []
        self.counts = {"event": 0, "account": 0, "order": 0, "session": 0, "pushed": 0, "ref": 0}
        self.refs_on = workload.config.instrument_refs
        self.ref_rng = random.Random()
        """Reference choices of the incident being built (its own seed, see ``_fire``)."""

    def _check_catalog(self) -> None:
        if self.config.rate("card_testing") > 0 and not self.cheap:
            raise ValueError(f"card_testing needs catalog products priced <= ${CARD_MAX_PRICE}")
        top = max((p.price for p in self.expensive), default=0.0)
        if self.config.rate("account_takeover") > 0 and top * ATO_UNITS[1] < ATO_NEW_MIN_TOTAL:
            raise ValueError(
                f"account_takeover needs catalog products priced >= ${ATO_MIN_PRICE} in "
                f"{sorted(ATO_CATEGORIES)} worth ${ATO_NEW_MIN_TOTAL} in {ATO_UNITS[1]} units; "
                "use more products"
            )

    # -- the stream ---------------------------------------------------------------------------

    def stream(self, events: Iterator[SyntheticEvent]) -> Iterator[SyntheticEvent]:
        plan = iter(self.plan)
        upcoming = next(plan, None)
        for event in events:
            while upcoming is not None and upcoming.at <= event.occurred_at:
                self._fire(upcoming)
                upcoming = next(plan, None)
            while self.pending and self.pending[0][0] <= event.occurred_at:
                yield heapq.heappop(self.pending)[2]
            self.seen.observe(event)
            yield event
        while upcoming is not None:
            self._fire(upcoming)
            upcoming = next(plan, None)
        while self.pending:
            yield heapq.heappop(self.pending)[2]

    def _fire(self, planned: _Planned) -> None:
        scenario, number = planned.scenario, planned.number
        key = f"{self.workload.config.seed}/{self.seed}/{scenario}/{number}"
        rng = random.Random(key)
        self.ref_rng = random.Random(f"{key}/refs")
        draft = _BUILDERS[scenario](self, rng, planned.at)
        draft.events.sort(key=lambda e: e.occurred_at)
        for event in draft.events:
            heapq.heappush(self.pending, (event.occurred_at, self._next("pushed"), event))
        self.labels.append(
            AnomalyLabel(
                incident_id=f"inc-{self.seed}-{scenario}-{number:04d}",
                scenario=scenario,
                kinds=EXPECTED_KINDS[scenario],
                subject=SUBJECTS[scenario],
                member_ids=tuple(draft.members),
                product_id=draft.product_id,
                event_ids=tuple(e.event_id for e in draft.events),
                start=draft.events[0].occurred_at,
                end=draft.events[-1].occurred_at,
                variant=draft.variant,
            )
        )

    # -- ids and envelopes --------------------------------------------------------------------

    def _next(self, counter: str) -> int:
        self.counts[counter] += 1
        return self.counts[counter]

    def _new_account(self) -> str:
        return f"x{self._next('account'):06d}"

    def _envelope(self, member_id: str, at: datetime) -> dict[str, Any]:
        return {
            "event_id": f"syn-{self.seed}-x{self._next('event') - 1}",
            "member_id": member_id,
            "occurred_at": at,
            "source": SOURCE,
        }

    def _existing_or_new(self, rng: random.Random, existing_share: float) -> str:
        if self.seen.members and rng.random() < existing_share:
            return rng.choice(self.seen.members)
        return self._new_account()

    def _accounts(self, rng: random.Random, n: int) -> list[str]:
        """``n`` distinct accounts, a mix of existing members and new accounts."""
        existing = sum(rng.random() < EXISTING_ACCOUNT_SHARE for _ in range(n))
        existing = min(max(existing, 1), n - 1, len(self.seen.members))
        accounts = rng.sample(self.seen.members, existing)
        accounts += [self._new_account() for _ in range(n - existing)]
        rng.shuffle(accounts)
        return accounts

    def _target_product(self, rng: random.Random) -> Product:
        """A product members have bought so far, else any catalog product."""
        known = [pid for pid in self.seen.purchased if pid in self.products]
        if known:
            return self.products[rng.choice(known)]
        return rng.choice(self.workload.catalog)

    def _purchase(
        self,
        member: str,
        at: datetime,
        order_id: str,
        items: Sequence[tuple[Product, int]],
        status: Literal["paid", "refunded"] = "paid",
        refs: Refs | None = None,
    ) -> PurchaseEvent:
        line_items = [
            LineItem(
                product_id=p.id, title=p.title, category=p.category, quantity=q, unit_price=p.price
            )
            for p, q in items
        ]
        total = round(sum(q * p.price for p, q in items), 2)
        return PurchaseEvent(
            **self._envelope(member, at),
            order_id=order_id,
            items=line_items,
            total=total,
            status=status,
            **_ref_fields(refs if self.refs_on else None),
        )

    def _fresh(self, prefix: str) -> str:
        """A reference nobody has used (``pay``, ``ship`` or ``dev``)."""
        return f"{prefix}-x{self.seed}-{self._next('ref')}"

    def _fresh_refs(self) -> Refs:
        return (self._fresh("pay"), self._fresh("ship"), self._fresh("dev"))

    def _own_refs(self, member: str) -> Refs:
        """The references of the member's latest paid order (new ones if it has none)."""
        return self.seen.refs.get(member) or self._fresh_refs()

    def _takeover_refs(self, member: str) -> Refs:
        """A thief's: new card, address and device, or the member's saved card with a new
        address and device (:data:`ATO_NEW_REFS_SHARE`)."""
        if member not in self.seen.refs or self.ref_rng.random() < ATO_NEW_REFS_SHARE:
            return self._fresh_refs()
        return (self.seen.refs[member][0], self._fresh("ship"), self._fresh("dev"))

    # -- scenarios ----------------------------------------------------------------------------

    def bot_session(self, rng: random.Random, t0: datetime) -> _Draft:
        member = rng.choice(self.seen.members) if self.seen.members else self._new_account()
        session_id = f"sx{self.seed}-{self._next('session')}"
        catalog = self.workload.catalog
        interval_ms = rng.uniform(*BOT_INTERVAL_S) * 1000
        position = rng.randrange(len(catalog))
        viewed: list[Product] = []
        events: list[SyntheticEvent] = []
        offset = 0.0
        for _ in range(rng.randint(*BOT_CLICKS)):
            if viewed and rng.random() < BOT_REVISIT:
                product = rng.choice(viewed)
            else:
                product = catalog[position % len(catalog)]
                position += 1
                viewed.append(product)
            at = t0 + round(offset) * _MS
            events.append(
                ClickEvent(
                    **self._envelope(member, at),
                    action="view",
                    product_id=product.id,
                    category=product.category,
                    title=product.title,
                    session_id=session_id,
                )
            )
            offset += interval_ms * (1 + rng.uniform(-BOT_JITTER, BOT_JITTER))
        return _Draft([member], events)

    def card_testing(self, rng: random.Random, t0: datetime) -> _Draft:
        member = self._existing_or_new(rng, EXISTING_ACCOUNT_SHARE)
        n = rng.randint(*CARD_ORDERS)
        window_ms = rng.uniform(*CARD_WINDOW_MIN) * _MINUTE_MS
        offsets = [0.0, *sorted(rng.uniform(0, window_ms) for _ in range(n - 1))]
        events: list[SyntheticEvent] = []
        ship, dev = self._fresh("ship"), self._fresh("dev")
        for offset in offsets:
            order_id = f"ox{self.seed}-{self._next('order')}"
            item = [(rng.choice(self.cheap), 1)]
            at = t0 + round(offset) * _MS
            refs = (self._fresh("pay"), ship, dev)  # a card per order
            events.append(self._purchase(member, at, order_id, item, refs=refs))
            if rng.random() < CARD_REFUND_SHARE:
                delay = rng.uniform(*CARD_REFUND_DELAY_MIN) * _MINUTE_MS
                refunded_at = at + round(delay) * _MS
                events.append(self._purchase(member, refunded_at, order_id, item, "refunded", refs))
        return _Draft([member], events)

    def account_takeover(self, rng: random.Random, t0: datetime) -> _Draft:
        eligible = self._takeover_members()
        if eligible and rng.random() < ATO_EXISTING_SHARE:
            member = rng.choice(eligible)
            required = ato_required_total(self.seen.paid_totals[member])
        else:
            member, required = self._new_account(), ATO_NEW_MIN_TOTAL
        basket = _expensive_basket(rng, self.expensive, required)
        order_id = f"ox{self.seed}-{self._next('order')}"
        refs = self._takeover_refs(member)
        return _Draft([member], [self._purchase(member, t0, order_id, basket, refs=refs)])

    def _takeover_members(self) -> list[str]:
        """Members with enough paid orders whose required total a basket can reach."""
        top = max(p.price for p in self.expensive)
        reachable = min(ATO_UNITS[1] * top, ATO_MAX_TOTAL)
        return [
            m
            for m in self.seen.members
            if len(totals := self.seen.paid_totals.get(m, ())) >= ATO_MIN_ORDERS
            and ato_required_total(totals) <= reachable
        ]

    def copy_paste_reviews(self, rng: random.Random, t0: datetime) -> _Draft:
        product = self._target_product(rng)
        lang = product.language
        accounts = self._accounts(rng, rng.randint(*COPY_ACCOUNTS))
        texts = promo_copies(rng, lang, product_noun(product, lang), len(accounts))
        title = rng.choice(PROMO_TITLES[lang])
        times = _spread(rng, t0, len(accounts), COPY_SPAN_H)
        events: list[SyntheticEvent] = [
            ReviewEvent(
                **self._envelope(member, at),
                product_id=product.id,
                rating=5,
                title=title,
                text=text,
                language=lang,
            )
            for member, at, text in zip(accounts, times, texts, strict=True)
        ]
        return _Draft(accounts, events, product.id)

    def review_bombing(self, rng: random.Random, t0: datetime) -> _Draft:
        product = self._target_product(rng)
        lang = product.language
        accounts = self._accounts(rng, rng.randint(*BOMB_ACCOUNTS))
        texts = bomb_texts(rng, lang, product_noun(product, lang), len(accounts))
        times = _spread(rng, t0, len(accounts), BOMB_SPAN_H)
        events: list[SyntheticEvent] = [
            ReviewEvent(
                **self._envelope(member, at),
                product_id=product.id,
                rating=1 if rng.random() < BOMB_ONE_STAR else 2,
                title=rng.choice(BOMB_TITLES[lang]),
                text=text,
                language=lang,
            )
            for member, at, text in zip(accounts, times, texts, strict=True)
        ]
        return _Draft(accounts, events, product.id)

    # -- quieter incidents --------------------------------------------------------------------

    def _click(
        self, member: str, at: datetime, product: Product, session: str, action: str = "view"
    ) -> ClickEvent:
        return ClickEvent(
            **self._envelope(member, at),
            action=action,  # type: ignore[arg-type]
            product_id=product.id,
            category=product.category,
            title=product.title,
            session_id=session,
        )

    def _existing(self, rng: random.Random) -> str:
        return rng.choice(self.seen.members) if self.seen.members else self._new_account()

    def slow_bot(self, rng: random.Random, t0: datetime) -> _Draft:
        """A scraper at a human-looking pace: 60-150 views, one every 2-8 s (per session),
        each gap jittered by up to 5%, walking the catalogue; no cart, no search."""
        member = self._existing(rng)
        session = f"sx{self.seed}-{self._next('session')}"
        catalog = self.workload.catalog
        interval_ms = rng.uniform(*SLOW_BOT_INTERVAL_S) * 1000
        position = rng.randrange(len(catalog))
        events: list[SyntheticEvent] = []
        offset = 0.0
        for _ in range(rng.randint(*SLOW_BOT_CLICKS)):
            product = catalog[position % len(catalog)]
            position += 1
            events.append(self._click(member, t0 + round(offset) * _MS, product, session))
            offset += interval_ms * (1 + rng.uniform(-SLOW_BOT_JITTER, SLOW_BOT_JITTER))
        return _Draft([member], events)

    def small_card_testing(self, rng: random.Random, t0: datetime) -> _Draft:
        """3-5 single-unit orders of at most $12 within 4-9 minutes, 40% refunded."""
        member = self._existing_or_new(rng, EXISTING_ACCOUNT_SHARE)
        cheap = [p for p in self.cheap if p.price <= SMALL_CARD_MAX_PRICE] or self.cheap
        n = rng.randint(*SMALL_CARD_ORDERS)
        window_ms = rng.uniform(*SMALL_CARD_WINDOW_MIN) * _MINUTE_MS
        offsets = [0.0, *sorted(rng.uniform(0, window_ms) for _ in range(n - 1))]
        events: list[SyntheticEvent] = []
        ship, dev = self._fresh("ship"), self._fresh("dev")
        for offset in offsets:
            order_id = f"ox{self.seed}-{self._next('order')}"
            item = [(rng.choice(cheap), 1)]
            at = t0 + round(offset) * _MS
            refs = (self._fresh("pay"), ship, dev)  # a card per order
            events.append(self._purchase(member, at, order_id, item, refs=refs))
            if rng.random() < SMALL_CARD_REFUND_SHARE:
                delay = rng.uniform(*CARD_REFUND_DELAY_MIN) * _MINUTE_MS
                refunded_at = at + round(delay) * _MS
                events.append(self._purchase(member, refunded_at, order_id, item, "refunded", refs))
        return _Draft([member], events)

    def mid_takeover(self, rng: random.Random, t0: datetime) -> _Draft:
        """A member with 3+ paid orders places one of resellable goods at 4-12x their median
        order total (at least $300): a takeover below any fixed floor."""
        eligible = [
            m for m in self.seen.members if len(self.seen.paid_totals.get(m, ())) >= ATO_MIN_ORDERS
        ]
        member = rng.choice(eligible) if eligible else self._new_account()
        median = statistics.median(self.seen.paid_totals.get(member, [50.0]))
        target = max(median * rng.uniform(*MID_ATO_MULTIPLE), MID_ATO_MIN_TOTAL)
        fits = [p for p in self.expensive if p.price <= target] or [min(self.expensive, key=_price)]
        basket: dict[str, tuple[Product, int]] = {}
        total = 0.0
        while total < target and sum(q for _, q in basket.values()) < ATO_UNITS[1]:
            product = rng.choice(fits)
            _, q = basket.get(product.id, (product, 0))
            basket[product.id] = (product, q + 1)
            total += product.price
        order_id = f"ox{self.seed}-{self._next('order')}"
        refs = self._takeover_refs(member)
        order = self._purchase(member, t0, order_id, list(basket.values()), refs=refs)
        return _Draft([member], [order])

    # -- hard negatives: unusual, not abusive ---------------------------------------------------

    def hn_fast_browser(self, rng: random.Random, t0: datetime) -> _Draft:
        """A keen shopper: 3-6 minutes at 15-22 clicks a minute, irregular (exponential)
        gaps, revisiting products, carting some."""
        member = self._existing(rng)
        session = f"sx{self.seed}-{self._next('session')}"
        end_ms = rng.uniform(*FAST_MINUTES) * _MINUTE_MS
        mean_ms = _MINUTE_MS / rng.uniform(*FAST_PER_MIN)
        viewed: list[Product] = []
        events: list[SyntheticEvent] = []
        offset = 0.0
        while offset < end_ms:
            at = t0 + round(offset) * _MS
            if viewed and rng.random() < FAST_CART:
                events.append(self._click(member, at, viewed[-1], session, "add_to_cart"))
            else:
                revisit = viewed and rng.random() < FAST_REVISIT
                product = rng.choice(viewed) if revisit else rng.choice(self.workload.catalog)
                viewed.append(product)
                events.append(self._click(member, at, product, session))
            offset += rng.expovariate(1.0 / mean_ms)
        return _Draft([member], events)

    def hn_tab_opener(self, rng: random.Random, t0: datetime) -> _Draft:
        """A search, 12-20 results opened in tabs within 5-20 s, a pause of 2-5 minutes of
        reading, then a few slow views and (half the time) one add-to-cart."""
        member = self._existing(rng)
        session = f"sx{self.seed}-{self._next('session')}"
        category = rng.choice(self.workload.catalog).category
        results = [p for p in self.workload.catalog if p.category == category]
        tabs = rng.sample(results, min(len(results), rng.randint(*TABS)))
        events: list[SyntheticEvent] = [
            ClickEvent(
                **self._envelope(member, t0),
                action="search",
                category=category,
                query=category.replace("_", " "),
                session_id=session,
            )
        ]
        span_ms = rng.uniform(*TABS_SPAN_S) * 1000
        for offset in sorted(rng.uniform(1000, 1000 + span_ms) for _ in tabs):
            events.append(
                self._click(member, t0 + round(offset) * _MS, tabs[len(events) - 1], session)
            )
        later = 1000 + span_ms + rng.uniform(*TABS_PAUSE_MIN) * _MINUTE_MS
        for product in rng.sample(tabs, rng.randint(2, min(6, len(tabs)))):
            events.append(self._click(member, t0 + round(later) * _MS, product, session))
            later += rng.uniform(20_000, 60_000)
        if rng.random() < 0.5:
            pick = rng.choice(tabs)
            events.append(
                self._click(member, t0 + round(later) * _MS, pick, session, "add_to_cart")
            )
        return _Draft([member], events)

    def hn_sale_family(self, rng: random.Random, t0: datetime) -> _Draft:
        """A household on a sale day: 4-6 separate ordinary orders ($15-120 items) from one
        account within 30-90 minutes, none refunded."""
        member = self._existing(rng)
        ordinary = [p for p in self.workload.catalog if SALE_PRICE[0] <= p.price <= SALE_PRICE[1]]
        n = rng.randint(*SALE_ORDERS)
        span_ms = rng.uniform(*SALE_SPAN_MIN) * _MINUTE_MS
        offsets = [0.0, *sorted(rng.uniform(0, span_ms) for _ in range(n - 1))]
        events: list[SyntheticEvent] = []
        refs = self._own_refs(member)
        for offset in offsets:
            order_id = f"ox{self.seed}-{self._next('order')}"
            items = [(p, rng.randint(1, 2)) for p in rng.sample(ordinary, rng.randint(1, 2))]
            at = t0 + round(offset) * _MS
            events.append(self._purchase(member, at, order_id, items, refs=refs))
        return _Draft([member], events)

    def hn_big_spender(self, rng: random.Random, t0: datetime) -> _Draft:
        """A new account that buys big from the start: 4-6 orders of $1,200-2,800 every 3-8
        days, then one more of the same size (the one a detector must not flag)."""
        member = self._new_account()
        events: list[SyntheticEvent] = []
        at = t0
        refs = self._fresh_refs()  # the account's own, throughout
        for _ in range(rng.randint(*BIG_HISTORY) + 1):
            target = rng.uniform(*BIG_TOTAL)
            order_id = f"ox{self.seed}-{self._next('order')}"
            basket = self._basket(rng, target)
            events.append(self._purchase(member, at, order_id, basket, refs=refs))
            at += rng.uniform(*BIG_GAP_DAYS) * _DAY_MS * _MS
        return _Draft([member], events)

    def hn_new_large_order(self, rng: random.Random, t0: datetime) -> _Draft:
        """A new member's first order: $800-2,000 of ordinary goods (furniture, appliances)."""
        member = self._new_account()
        order_id = f"ox{self.seed}-{self._next('order')}"
        basket = self._basket(rng, rng.uniform(*NEW_LARGE_TOTAL))
        order = self._purchase(member, t0, order_id, basket, refs=self._fresh_refs())
        return _Draft([member], [order])

    def hn_new_card(self, rng: random.Random, t0: datetime) -> _Draft:
        """A member with 3+ paid orders pays with a card it never used, for an order of its
        usual size or its usual large size, from its own address (and mostly its own
        device); see the module doc."""
        eligible = [
            m for m in self.seen.members if len(self.seen.paid_totals.get(m, ())) >= ATO_MIN_ORDERS
        ]
        member = rng.choice(eligible) if eligible else self._new_account()
        totals = self.seen.paid_totals.get(member, [50.0])
        large = rng.random() < NEW_CARD_LARGE_SHARE
        if large:
            target = max(totals) * rng.uniform(*NEW_CARD_LARGE)
        else:
            target = statistics.median(totals) * rng.uniform(*NEW_CARD_ORDINARY)
        new_device = rng.random() < NEW_CARD_NEW_DEVICE_SHARE
        _, ship, dev = self._own_refs(member)
        refs = (self._fresh("pay"), ship, self._fresh("dev") if new_device else dev)
        order_id = f"ox{self.seed}-{self._next('order')}"
        order = self._purchase(member, t0, order_id, self._near_basket(rng, target), refs=refs)
        size = "large" if large else "ordinary"
        return _Draft([member], [order], variant=f"{size}/{'new' if new_device else 'own'}_device")

    def _near_basket(self, rng: random.Random, target: float) -> list[tuple[Product, int]]:
        """1 item (2 above $60) from the whole catalogue adding up to about ``target``: each
        among the few products priced nearest its share."""
        n = 1 if target < 60.0 else rng.randint(1, 2)
        closest = sorted(self.workload.catalog, key=lambda p: abs(p.price - target / n))[:5]
        basket: dict[str, tuple[Product, int]] = {}
        for product in (rng.choice(closest) for _ in range(n)):
            _, q = basket.get(product.id, (product, 0))
            basket[product.id] = (product, q + 1)
        return list(basket.values())

    # -- one review: stars against the text, and honest mixed verdicts -----------------------

    def _review(
        self,
        member: str,
        at: datetime,
        product: Product,
        rating: int,
        lang: str,
        texts: tuple[str, str],
    ) -> ReviewEvent:
        title, text = texts
        return ReviewEvent(
            **self._envelope(member, at),
            product_id=product.id,
            rating=rating,
            title=title,
            text=text,
            language=lang,
        )

    def rating_mismatch(self, rng: random.Random, t0: datetime) -> _Draft:
        """One review whose stars contradict its text: 5 stars over a complaint or 1 star
        over praise, obvious or understated, English or Chinese."""
        member = self._existing(rng)
        product = self._target_product(rng)
        lang = rng.choice(REVIEW_LANGUAGES)
        tone = rng.choice(MISMATCH_TONES)
        top = rng.random() < MISMATCH_TOP_SHARE
        sentiment = "negative" if top else "positive"
        texts = mismatch_review(rng, tone, sentiment, lang, product_noun(product, lang))
        review = self._review(member, t0, product, 5 if top else 1, lang, texts)
        return _Draft([member], [review], variant=f"{tone}/{lang}/{'top' if top else 'low'}")

    def hn_honest_mixed_reviews(self, rng: random.Random, t0: datetime) -> _Draft:
        """An honest review whose mixed text agrees with its stars (:data:`HONEST_STARS`)."""
        member = self._existing(rng)
        product = self._target_product(rng)
        lang = rng.choice(REVIEW_LANGUAGES)
        kind, stars, _ = rng.choices(HONEST_STARS, weights=[w for *_, w in HONEST_STARS])[0]
        texts = honest_mixed_review(rng, kind, lang, product_noun(product, lang))
        review = self._review(member, t0, product, stars, lang, texts)
        return _Draft([member], [review], variant=f"{kind}/{lang}/{stars}")

    def _basket(self, rng: random.Random, target: float) -> list[tuple[Product, int]]:
        """1-4 items from the whole catalogue (priced $50 and up) adding up to about
        ``target``: each the product priced nearest its share, among a few close ones."""
        pool = sorted((p for p in self.workload.catalog if p.price >= 50.0), key=_price)
        n = rng.randint(1, 4)
        basket: dict[str, tuple[Product, int]] = {}
        for _ in range(n):
            share = target / n
            closest = sorted(pool, key=lambda p: abs(p.price - share))[:5]
            product = rng.choice(closest)
            _, q = basket.get(product.id, (product, 0))
            basket[product.id] = (product, q + 1)
        return list(basket.values())


_BUILDERS: dict[str, Callable[[_Run, random.Random, datetime], _Draft]] = {
    "bot_session": _Run.bot_session,
    "card_testing": _Run.card_testing,
    "account_takeover": _Run.account_takeover,
    "copy_paste_reviews": _Run.copy_paste_reviews,
    "review_bombing": _Run.review_bombing,
    "slow_bot": _Run.slow_bot,
    "small_card_testing": _Run.small_card_testing,
    "mid_takeover": _Run.mid_takeover,
    "hn_fast_browser": _Run.hn_fast_browser,
    "hn_tab_opener": _Run.hn_tab_opener,
    "hn_sale_family": _Run.hn_sale_family,
    "hn_big_spender": _Run.hn_big_spender,
    "hn_new_large_order": _Run.hn_new_large_order,
    "hn_new_card": _Run.hn_new_card,
    "rating_mismatch": _Run.rating_mismatch,
    "hn_honest_mixed_reviews": _Run.hn_honest_mixed_reviews,
}


def _spread(
    rng: random.Random, t0: datetime, n: int, span_h: tuple[float, float]
) -> list[datetime]:
    """``n`` sorted times from ``t0`` to ``t0 + span``, the span drawn from ``span_h`` hours."""
    span_ms = rng.uniform(*span_h) * _HOUR_MS
    inner = sorted(rng.uniform(0, span_ms) for _ in range(n - 2))
    return [t0 + round(offset) * _MS for offset in (0.0, *inner, span_ms)]


def _expensive_basket(
    rng: random.Random, products: Sequence[Product], required: float
) -> list[tuple[Product, int]]:
    """2-8 units of ``products`` totalling at least ``required`` and at most the cap.

    Each unit is drawn among the products that still leave the remaining units able to
    reach ``required`` (with the dearest product) without passing the cap (with the
    cheapest), so the draw never fails when ``required`` is reachable at all.
    """
    top = max(p.price for p in products)
    bottom = min(p.price for p in products)
    units = rng.randint(max(ATO_UNITS[0], math.ceil(required / top)), ATO_UNITS[1])
    counts: dict[str, int] = {}
    by_id = {p.id: p for p in products}
    total = 0.0
    for left in range(units, 0, -1):
        low = required - total - (left - 1) * top
        high = ATO_MAX_TOTAL - total - (left - 1) * bottom
        fits = [p for p in products if low <= p.price <= high] or [max(products, key=_price)]
        product = rng.choice(fits)
        counts[product.id] = counts.get(product.id, 0) + 1
        total += product.price
    return [(by_id[pid], q) for pid, q in counts.items()]


def _price(product: Product) -> float:
    return product.price


def _ref_fields(refs: Refs | None) -> dict[str, str]:
    """``payment_ref``, ``shipping_ref`` and ``device_ref`` of an order (none without)."""
    return {} if refs is None else dict(zip(PURCHASE_REFS, refs, strict=True))


# --- the injector --------------------------------------------------------------------------


class AnomalyInjector:
    """Splices labeled incidents into a workload's stream (an ``Injector``).

    ``labels`` holds the labels of the latest run: reset when the injector is called,
    appended as each incident starts, complete once that stream is exhausted. Runs are
    independent, but two streams consumed at once share nothing but the last ``labels``.
    """

    def __init__(self, config: InjectionConfig | None = None) -> None:
        self.config = config or InjectionConfig()
        self.labels: list[AnomalyLabel] = []

    def __call__(
        self, events: Iterator[SyntheticEvent], workload: SyntheticWorkload
    ) -> Iterator[SyntheticEvent]:
        run = _Run(self.config, workload)
        self.labels = run.labels
        return run.stream(events)


def anomalous_workload(
    workload_config: WorkloadConfig | None = None,
    injection_config: InjectionConfig | None = None,
) -> tuple[SyntheticWorkload, AnomalyInjector]:
    """A workload whose ``events()`` carry injected incidents, and the injector with the labels."""
    injector = AnomalyInjector(injection_config)
    return SyntheticWorkload(workload_config, injectors=[injector]), injector
