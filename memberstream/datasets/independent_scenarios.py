"""Family B: an independent evaluation family of anomaly scenarios.

The anomaly detectors were tuned on the incidents of :mod:`memberstream.datasets.anomalies`.
This family measures them on cases written from what real shoppers and real abuse look
like: *hard negatives* (ordinary members doing something unusual, which should raise no
flag; scenario names start with ``hn_``) and *subtle incidents* (quieter abuse than the
injector's). Normal traffic comes from :class:`SyntheticWorkload`; each case is generated
by its own seeded RNG and spliced in. Every case starts at or after ``warmup_days`` so
members have history first; a case's own events lie in ``[start + warmup_days, start +
days)``. Some cases also add *setup* history before that (the power user's week, the big
spender's earlier orders); setup events are part of the stream but not of the label.
Background events at or after ``start + days`` (late refunds and reviews) are dropped.
Accounts the family creates are ``ni{seed}-NNNNNN``; their ids carry no scenario.
Existing members acting in a case have no other event within 30 minutes of their part in
it, and members of takeovers, tab openers and sale days act in no other case.

Hard negatives
--------------
``hn_power_user``: an account with a week of heavy browsing (about 2-5 sessions a day of
8-25 views, with carts and orders) clicks 20-30 times a minute for 1-3 minutes with
lognormal, human-irregular gaps; views mix with add-to-carts and end in an ordinary
purchase. Enthusiasts on a deal page do this; volume alone is not abuse.

``hn_tab_opener``: a member searches, then opens 15-25 distinct results of that category
in new tabs within a minute (near-simultaneous views, 0.4-4 s apart), reads them for
2-8 minutes without clicking and carts one (and buys it 40% of the time). Fast, but
irregular, funnel-shaped and short.

``hn_sale_day_orders``: on one of the period's two sale days a household member places
5-7 separate small orders within an hour (spread over 25-50 minutes; different products
priced $20-150, 10-25% off, 1-2 per order, each after a view and an add-to-cart). Many
orders in little time, but none tiny and none refunded.

``hn_big_spender``: an account whose history is 3-6 orders of $1,500-2,500 (office and
electronics equipment, spread over up to four weeks) places another $1,500-2,500 order.
Large, but normal for this member.

``hn_new_member_big_order``: a brand-new account browses 5-15 products and places a first
order of $900-1,800 of ordinary goods (a laptop, furniture, appliances). New members
setting up a home or office do this.

``hn_defective_product``: 6-15 members buy a product over two days and, 1-5 days after
their own purchase, review it at 1-2 stars describing the same fault in their own words
(one fault theme per case, drawn for the product's category). Many low ratings, but from
verified buyers, spread over days, with varied texts.

``hn_friends_reviews``: 2-3 members with a common language buy the product within a day
and review it 1-4 days later at 4-5 stars, praising the same two aspects in different
words (each friend has its own wording of each aspect). Similar, but independent.

``hn_mixed_reviews``: one buyer reviews 1-6 days after buying with an honest mixed text:
4 stars with a minor complaint (40%), 2 stars with some praise (30%), 3 balanced stars
(15%) or 5 stars with a nitpick (15%); English or Chinese (35%). Rating and text agree.

Subtle incidents
----------------
``slow_jittered_bot`` (``bot_pattern``): a fresh account's scripted session of 60-200
product views at a mean interval of 2-6 s with Gaussian jitter of CV 3-8% (clipped at 3
sigma), no searches, no add-to-cart, walking the catalogue in product-id order category
by category. Slow enough not to be a click burst; too regular to be a person.

``moderate_account_takeover`` (``order_value_outlier``, ``learned_score``): an existing
member with at least three earlier paid orders (median $40-200) suddenly buys resellable
goods (electronics, phones, computers, consoles, watches; 1-3 lines, at most 3 units
each) worth 5-10x the median of their earlier paid orders and $400-1,000, straight after
viewing them. Members the background cannot supply get a created account with 3-6
ordinary orders of $40-160 in the preceding three weeks.

``quiet_card_testing`` (``order_velocity``): a fresh account places 3-5 single-item
orders of $1-15 within ten minutes (each after one view); each is refunded 1-20 minutes
later with probability 0.5, at least one is refunded (declined or reversed charges).

``paraphrase_review_ring`` (``review_duplicate``): 3-5 fresh accounts that never bought
the product view it and post 5-star reviews over 3-36 hours, each a paraphrase of one
promotional text (3-4 claims and usually a call to action; every account words every
claim differently), English or Chinese (40%).

``slow_review_bombing`` (``review_bombing``): 6-15 accounts without a purchase of the
product (fresh accounts, and up to 40% existing members) post 1-2 star reviews spread
over 2-4 days (so crossing midnight), some after viewing the product.

``five_star_negative_text`` (``rating_text_mismatch``): a buyer reviews 1-6 days after
buying with 5 stars and a plainly negative text, either obvious (two loud complaints)
or understated (one or two quiet ones), English or Chinese (40%).
"""

from __future__ import annotations

import random
import statistics
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from memberstream.datasets import independent_texts as tx
from memberstream.datasets.anomalies import AnomalyLabel
from memberstream.datasets.synthetic import (
    CATEGORIES,
    CATEGORY_BY_ID,
    MAX_ORDER_ITEMS,
    SOURCE,
    Product,
    SyntheticMember,
    SyntheticWorkload,
    WorkloadConfig,
)
from memberstream.schemas.events import (
    ClickEvent,
    Envelope,
    LineItem,
    PurchaseEvent,
    ReviewEvent,
)

HN_POWER_USER = "hn_power_user"
HN_TAB_OPENER = "hn_tab_opener"
HN_SALE_DAY = "hn_sale_day_orders"
HN_BIG_SPENDER = "hn_big_spender"
HN_NEW_BIG_ORDER = "hn_new_member_big_order"
HN_DEFECTIVE = "hn_defective_product"
HN_FRIENDS = "hn_friends_reviews"
HN_MIXED = "hn_mixed_reviews"
SLOW_BOT = "slow_jittered_bot"
TAKEOVER = "moderate_account_takeover"
CARD_TESTING = "quiet_card_testing"
PARAPHRASE_RING = "paraphrase_review_ring"
SLOW_BOMBING = "slow_review_bombing"
FIVE_STAR_NEGATIVE = "five_star_negative_text"

SCENARIOS: tuple[str, ...] = (
    HN_POWER_USER,
    HN_TAB_OPENER,
    HN_SALE_DAY,
    HN_BIG_SPENDER,
    HN_NEW_BIG_ORDER,
    HN_DEFECTIVE,
    HN_FRIENDS,
    HN_MIXED,
    SLOW_BOT,
    TAKEOVER,
    CARD_TESTING,
    PARAPHRASE_RING,
    SLOW_BOMBING,
    FIVE_STAR_NEGATIVE,
)

EXPECTED: Mapping[str, frozenset[str]] = {
    **{name: frozenset() for name in SCENARIOS if name.startswith("hn_")},
    SLOW_BOT: frozenset({"bot_pattern"}),
    TAKEOVER: frozenset({"order_value_outlier", "learned_score"}),
    CARD_TESTING: frozenset({"order_velocity"}),
    PARAPHRASE_RING: frozenset({"review_duplicate"}),
    SLOW_BOMBING: frozenset({"review_bombing"}),
    FIVE_STAR_NEGATIVE: frozenset({"rating_text_mismatch"}),
}

REVIEW_SCENARIOS: frozenset[str] = frozenset(
    {HN_DEFECTIVE, HN_FRIENDS, HN_MIXED, PARAPHRASE_RING, SLOW_BOMBING, FIVE_STAR_NEGATIVE}
)
"""Scenarios whose label is about a product (``subject="product"``)."""

# --- parameters (inclusive ranges) ------------------------------------------------------------

POWER_RATE_PER_MIN = (20.0, 30.0)
POWER_BURST_S = (60.0, 180.0)
POWER_HISTORY_DAYS = 7.0
POWER_SESSIONS_PER_DAY = (2, 5)
POWER_SESSION_VIEWS = (8, 25)
TAB_COUNT = (15, 25)
TAB_GAP_S = (0.4, 4.0)
TAB_READ_MIN = (2.0, 8.0)
SALE_ORDERS = (5, 7)
SALE_SPAN_MIN = (25.0, 50.0)
SALE_PRICE = (20.0, 150.0)
SALE_DISCOUNT = (0.10, 0.25)
BIG_SPENDER_TOTAL = (1500.0, 2500.0)
BIG_SPENDER_HISTORY = (3, 6)
NEW_MEMBER_TOTAL = (900.0, 1800.0)
DEFECT_BUYERS = (6, 15)
DEFECT_REVIEW_DELAY_DAYS = (1.0, 5.0)
FRIENDS = (2, 3)
BOT_VIEWS = (60, 200)
BOT_INTERVAL_S = (2.0, 6.0)
BOT_JITTER_CV = (0.03, 0.08)
TAKEOVER_RATIO = (5.0, 10.0)
TAKEOVER_TOTAL = (400.0, 1000.0)
TAKEOVER_MEDIAN = (40.0, 200.0)
TAKEOVER_MIN_ORDERS = 3
CARD_TEST_ORDERS = (3, 5)
CARD_TEST_TOTAL = (1.0, 15.0)
CARD_TEST_WINDOW_MIN = 10.0
RING_ACCOUNTS = (3, 5)
RING_SPAN_H = (3.0, 36.0)
BOMB_ACCOUNTS = (6, 15)
BOMB_SPAN_DAYS = (2.0, 4.0)
BOMB_EXISTING_SHARE = 0.4
MIN_ROOM_DAYS = 8.0
"""Shortest ``days - warmup_days``: the longest case (defective product) spans 7 days."""

_S = 1000
_MIN = 60 * _S
_HOUR = 60 * _MIN
_DAY = 24 * _HOUR
_MS = timedelta(milliseconds=1)
# Relative chance that a person is shopping at each UTC hour.
_HUMAN_HOURS = (
    *(0.3, 0.15, 0.08, 0.05, 0.05, 0.1, 0.3, 0.5, 0.7, 0.8, 0.85, 0.9),
    *(0.95, 0.9, 0.85, 0.85, 0.9, 1.0, 1.1, 1.2, 1.25, 1.1, 0.8, 0.5),
)
RESELLABLE_CATEGORIES = frozenset(
    {"electronics", "cell_phones", "computers", "video_games", "jewelry_watches"}
)
_OFFICE = frozenset({"computers", "electronics", "furniture", "cell_phones"})
_HOME_SETUP = frozenset(
    {"furniture", "home_kitchen", "electronics", "computers", "baby", "garden_outdoor"}
)


@dataclass(frozen=True)
class FamilyConfig:
    seed: int = 101
    members: int = 1500
    """Normal background members (:class:`SyntheticWorkload`)."""
    days: float = 30.0
    start: datetime = datetime(2024, 6, 1, tzinfo=UTC)
    per_scenario: int = 60
    """Cases per enabled scenario, incidents and hard negatives alike."""
    warmup_days: float = 7.0
    """No case starts before this: members build history first."""
    scenarios: tuple[str, ...] = SCENARIOS
    """The enabled scenarios."""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "scenarios", tuple(self.scenarios))
        if unknown := set(self.scenarios) - set(SCENARIOS):
            raise ValueError(f"unknown scenarios {sorted(unknown)}; known: {list(SCENARIOS)}")
        if len(set(self.scenarios)) != len(self.scenarios):
            raise ValueError("scenarios must not repeat")
        if self.members < 1 or self.per_scenario < 0 or self.warmup_days < 0:
            raise ValueError("need members >= 1, per_scenario >= 0, warmup_days >= 0")
        if self.days - self.warmup_days < MIN_ROOM_DAYS:
            raise ValueError(f"days - warmup_days must be >= {MIN_ROOM_DAYS}")


def independent_family(config: FamilyConfig) -> tuple[list[Envelope], list[AnomalyLabel]]:
    """All events (background + cases), sorted by occurred_at (ties stable), and one
    AnomalyLabel per case: incidents have non-empty kinds, hard negatives kinds=frozenset()
    and a scenario name starting with "hn_"."""
    family = _Family(config)
    labels: list[AnomalyLabel] = []
    for scenario in _BUILD_ORDER:
        if scenario not in config.scenarios:
            continue
        for k in range(config.per_scenario):
            case = _Case(family, scenario, k)
            _BUILDERS[scenario](case, random.Random(f"{config.seed}/{scenario}/{k}"))
            labels.append(case.label())
    events: list[Envelope] = [*family.background, *family.injected]
    events.sort(key=lambda e: e.occurred_at)
    labels.sort(key=lambda lb: (lb.start, lb.incident_id))
    return events, labels


# --- family state -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    id: str
    language: str
    favourites: tuple[str, ...]
    """Category ids the account mostly browses."""


@dataclass
class _MemberIndex:
    """What the background says about each member, for picking and checking them."""

    times: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    paid: dict[str, list[tuple[int, float]]] = field(default_factory=lambda: defaultdict(list))
    bought: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


class _Family:
    """Shared state of one generation: background, catalogue views, id counters, claims."""

    def __init__(self, config: FamilyConfig) -> None:
        self.cfg = config
        workload = SyntheticWorkload(
            WorkloadConfig(
                seed=config.seed, members=config.members, days=config.days, start=config.start
            )
        )
        self.end = int(config.days * _DAY)
        self.warm = int(config.warmup_days * _DAY)
        end_at = config.start + timedelta(milliseconds=self.end)
        self.background: list[Envelope] = [e for e in workload.events() if e.occurred_at < end_at]
        self.injected: list[Envelope] = []
        self.catalog = workload.catalog
        self.by_category: dict[str, list[Product]] = defaultdict(list)
        for p in self.catalog:
            self.by_category[p.category].append(p)
        self.members = workload.members
        self.index = self._index()
        self.reserved: set[str] = set()
        """Members of member-level cases: no other case touches them."""
        self.busy: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._counters: dict[str, int] = defaultdict(int)
        self._id_rng = random.Random(f"{config.seed}/independent/accounts")
        self._accounts: set[str] = set()
        self._product_rng = random.Random(f"{config.seed}/independent/products")
        self._product_queue: list[Product] = []
        self.targets: set[str] = set()
        """Products that review cases are about."""
        self._member_order = random.Random(f"{config.seed}/independent/members").sample(
            self.members, len(self.members)
        )
        self.sale_days = self._sale_days()

    def _index(self) -> _MemberIndex:
        index = _MemberIndex()
        for e in self.background:
            t = self.ms(e.occurred_at)
            index.times[e.member_id].append(t)
            if isinstance(e, PurchaseEvent) and e.status == "paid":
                index.paid[e.member_id].append((t, e.total))
                index.bought[e.member_id].update(i.product_id for i in e.items)
        return index

    def _sale_days(self) -> list[int]:
        first, last = -(-self.warm // _DAY), (self.end - 2 * _HOUR) // _DAY
        days = list(range(first, last + 1)) or [self.warm // _DAY]
        rng = random.Random(f"{self.cfg.seed}/independent/sale-days")
        return sorted(rng.sample(days, min(2, len(days))))

    # ids and times

    def ms(self, at: datetime) -> int:
        return (at - self.cfg.start) // _MS

    def at(self, t: int) -> datetime:
        return self.cfg.start + timedelta(milliseconds=t)

    def next_id(self, kind: str) -> str:
        self._counters[kind] += 1
        return f"{kind}{self.cfg.seed}-{self._counters[kind]}"

    def new_account(self, rng: random.Random, language: str | None = None) -> _Account:
        while True:
            account_id = f"ni{self.cfg.seed}-{self._id_rng.randrange(10**6):06d}"
            if account_id not in self._accounts:
                self._accounts.add(account_id)
                break
        lang = language or ("zh" if rng.random() < 0.2 else "en")
        weights = [c.weight for c in CATEGORIES]
        favourites: list[str] = []
        count = rng.randint(1, 3)
        while len(favourites) < count:
            cid = rng.choices(CATEGORIES, weights=weights)[0].id
            if cid not in favourites:
                favourites.append(cid)
        return _Account(account_id, lang, tuple(favourites))

    # catalogue

    def take_product(self) -> Product:
        """A target product for a review case: each product once before any repeats."""
        if not self._product_queue:
            self._product_queue = self._product_rng.sample(self.catalog, len(self.catalog))
        product = self._product_queue.pop()
        self.targets.add(product.id)
        return product

    def product_in(self, rng: random.Random, categories: Sequence[str]) -> Product:
        return rng.choice(self.by_category[rng.choice(categories)])

    def pool(self, ok: Callable[[Product], bool]) -> list[Product]:
        return [p for p in self.catalog if ok(p)]

    # members

    def quiet(self, member_id: str, a: int, b: int, margin: int = 30 * _MIN) -> bool:
        """No background or injected event of the member within ``margin`` of [a, b]."""
        times = self.index.times.get(member_id, [])
        i = bisect_left(times, a - margin)
        if i < len(times) and times[i] <= b + margin:
            return False
        return all(b + margin < s or e < a - margin for s, e in self.busy[member_id])

    def mark_busy(self, member_id: str, a: int, b: int) -> None:
        self.busy[member_id].append((a, b))

    def background_member(
        self,
        rng: random.Random,
        a: int,
        b: int,
        *,
        language: str | None = None,
        ok: Callable[[SyntheticMember], bool] = lambda m: True,
        history: int = 0,
    ) -> _Account | None:
        """A member who joined at least a day before ``a``, is still active at ``b``, has at
        least ``history`` background events before ``a``, is unreserved and quiet around."""
        n = len(self._member_order)
        offset = rng.randrange(n)
        for j in range(n):
            m = self._member_order[(offset + j) % n]
            if m.id in self.reserved or (language and m.language != language):
                continue
            if m.joined_day * _DAY > a - _DAY or m.active_until_day * _DAY < b:
                continue
            if history and bisect_left(self.index.times.get(m.id, []), a) < history:
                continue
            if ok(m) and self.quiet(m.id, a, b):
                return _Account(m.id, m.language, m.favourites)
        return None


# --- one case -------------------------------------------------------------------------------


class _Case:
    """Collects one case's events (focal and setup) and its label fields."""

    def __init__(self, family: _Family, scenario: str, k: int) -> None:
        self.fam = family
        self.scenario = scenario
        self.k = k
        self.events: list[Envelope] = []
        self.actors: list[str] = []
        self.used: set[str] = set()
        """Accounts already acting in this case."""
        self.product_id: str | None = None

    def _env(self, t: int, account: _Account) -> dict[str, object]:
        return {
            "event_id": self.fam.next_id("ind"),
            "member_id": account.id,
            "occurred_at": self.fam.at(t),
            "source": SOURCE,
        }

    def _add(self, event: Envelope, setup: bool) -> None:
        self.fam.injected.append(event)
        if not setup:
            self.events.append(event)

    def session(self) -> str:
        return self.fam.next_id("si")

    def click(
        self,
        t: int,
        account: _Account,
        action: Literal["view", "search", "add_to_cart"],
        session: str,
        product: Product | None = None,
        query: str | None = None,
        setup: bool = False,
    ) -> None:
        if product is None:
            event = ClickEvent(
                **self._env(t, account), action=action, query=query, session_id=session
            )
        else:
            event = ClickEvent(
                **self._env(t, account),
                action=action,
                product_id=product.id,
                category=product.category,
                title=product.title,
                session_id=session,
            )
        self._add(event, setup)

    def order(
        self, t: int, account: _Account, lines: Sequence[_Line], setup: bool = False
    ) -> PurchaseEvent:
        event = PurchaseEvent(
            **self._env(t, account),
            order_id=self.fam.next_id("oi"),
            items=_items(lines),
            total=_total(lines),
            status="paid",
        )
        self._add(event, setup)
        self.fam.index.bought[account.id].update(p.id for p, _, _ in lines)
        return event

    def refund(self, t: int, account: _Account, paid: PurchaseEvent) -> None:
        refund = PurchaseEvent(
            **self._env(t, account),
            order_id=paid.order_id,
            items=paid.items,
            total=paid.total,
            status="refunded",
        )
        self._add(refund, False)

    def review(
        self, t: int, account: _Account, product: Product, rating: int, title: str, text: str
    ) -> None:
        event = ReviewEvent(
            **self._env(t, account),
            product_id=product.id,
            rating=rating,
            title=title,
            text=text,
            language=account.language,
        )
        self._add(event, False)

    def label(self) -> AnomalyLabel:
        events = sorted(self.events, key=lambda e: e.occurred_at)
        return AnomalyLabel(
            incident_id=f"fb{self.fam.cfg.seed}-{self.scenario}-{self.k:03d}",
            scenario=self.scenario,
            kinds=EXPECTED[self.scenario],
            subject="product" if self.scenario in REVIEW_SCENARIOS else "member",
            member_ids=tuple(dict.fromkeys(self.actors)),
            product_id=self.product_id,
            event_ids=tuple(e.event_id for e in events),
            start=events[0].occurred_at,
            end=events[-1].occurred_at,
        )


# An order line: product, quantity, unit price.
_Line = tuple[Product, int, float]


def _items(lines: Sequence[_Line]) -> list[LineItem]:
    return [
        LineItem(product_id=p.id, title=p.title, category=p.category, quantity=q, unit_price=u)
        for p, q, u in lines
    ]


def _total(lines: Sequence[_Line]) -> float:
    return round(sum(q * u for _, q, u in lines), 2)


# --- shared behaviour ---------------------------------------------------------------------------


def _human_time(rng: random.Random, lo: int, hi: int) -> int:
    """A time in [lo, hi] drawn with people's daily rhythm (uniform if the range is short)."""
    top = max(_HUMAN_HOURS)
    for _ in range(100):
        t = rng.randint(lo, hi)
        if rng.random() * top <= _HUMAN_HOURS[(t // _HOUR) % 24]:
            return t
    return rng.randint(lo, hi)


def _dwell(rng: random.Random, median_s: float, sigma: float = 0.8) -> int:
    """A person's time on a page: lognormal, at least 1.5 s, at most 10 minutes."""
    return int(min(max(rng.lognormvariate(0.0, sigma) * median_s, 1.5), 600.0) * _S)


def _browse(
    case: _Case,
    rng: random.Random,
    account: _Account,
    t: int,
    views: int,
    *,
    cart_rate: float = 0.1,
    dwell_s: float = 25.0,
    setup: bool = False,
) -> tuple[int, list[Product]]:
    """An ordinary session: maybe a search, product views in favourite categories, carts."""
    session = case.session()
    if rng.random() < 0.5:
        cat = CATEGORY_BY_ID[rng.choice(account.favourites)]
        noun_en, noun_zh, _ = rng.choice(cat.items)
        query = tx.search_query(
            rng, account.language, tx.noun_for(account.language, noun_en, noun_zh)
        )
        case.click(t, account, "search", session, query=query, setup=setup)
        t += _dwell(rng, dwell_s / 3)
    cart: list[Product] = []
    for _ in range(views):
        explore = rng.random() < 0.2
        product = case.fam.product_in(
            rng, [c.id for c in CATEGORIES] if explore else account.favourites
        )
        case.click(t, account, "view", session, product, setup=setup)
        t += _dwell(rng, dwell_s)
        if rng.random() < cart_rate and product not in cart:
            case.click(t, account, "add_to_cart", session, product, setup=setup)
            t += _dwell(rng, dwell_s / 3)
            cart.append(product)
    return t, cart


def _lines_for(rng: random.Random, products: Sequence[Product]) -> list[_Line]:
    lines = []
    for p in products[:MAX_ORDER_ITEMS]:
        qty = rng.choices((1, 2, 3), weights=(0.85, 0.12, 0.03))[0]
        lines.append((p, qty, p.price))
    return lines


def _fill_order(
    rng: random.Random,
    pool: Sequence[Product],
    lo: float,
    hi: float,
    *,
    max_lines: int = 3,
    max_qty: int = 3,
) -> list[_Line]:
    """Catalogue products at catalogue prices whose order total lies in [lo, hi]."""
    for _ in range(500):
        picks = rng.sample(pool, min(rng.randint(1, max_lines), len(pool)))
        qty = [1] * len(picks)
        total = sum(p.price for p in picks)
        target = rng.uniform(lo, hi)
        while total < target:
            room = [i for i, p in enumerate(picks) if qty[i] < max_qty and total + p.price <= hi]
            if not room:
                break
            i = rng.choice(room)
            qty[i] += 1
            total += picks[i].price
        lines = [(p, q, p.price) for p, q in zip(picks, qty, strict=True)]
        if lo <= _total(lines) <= hi:
            return lines
    raise RuntimeError(f"no order between {lo:.2f} and {hi:.2f} from {len(pool)} products")


def _buy(
    case: _Case,
    rng: random.Random,
    account: _Account,
    t: int,
    lines: Sequence[_Line],
    *,
    setup: bool = False,
    dwell_s: float = 25.0,
) -> tuple[int, PurchaseEvent]:
    """View and cart each line's product, then pay: the funnel of an ordinary order."""
    session = case.session()
    for p, _, _ in lines:
        case.click(t, account, "view", session, p, setup=setup)
        t += _dwell(rng, dwell_s)
        case.click(t, account, "add_to_cart", session, p, setup=setup)
        t += _dwell(rng, dwell_s / 3)
    t += int(rng.uniform(30, 180) * _S)
    return t, case.order(t, account, lines, setup=setup)


def _spread(rng: random.Random, lo: int, hi: int, n: int, gap: int) -> list[int]:
    """Up to ``n`` times in [lo, hi], sorted and at least ``gap`` apart: fewer only when the
    range cannot hold ``n``, none when it is empty."""
    if hi < lo:
        return []
    n = min(n, (hi - lo) // gap + 1)
    base = sorted(_human_time(rng, lo, hi - (n - 1) * gap) for _ in range(n))
    return [t + i * gap for i, t in enumerate(base)]


def _light_history(case: _Case, rng: random.Random, account: _Account, before: int) -> None:
    """1-3 ordinary sessions in the days before ``before``: a created account's past."""
    lo = max(0, before - 10 * _DAY)
    for t in _spread(rng, lo, before - 2 * _HOUR, rng.randint(1, 3), 2 * _HOUR):
        end, cart = _browse(case, rng, account, t, rng.randint(2, 8), setup=True)
        if cart and rng.random() < 0.5:
            case.order(end + int(rng.uniform(30, 300) * _S), account, _lines_for(rng, cart), True)


def _buyer(
    case: _Case, rng: random.Random, t_buy: int, t_review: int, language: str | None = None
) -> _Account:
    """An existing member to buy a product at ``t_buy`` and review it at ``t_review``,
    quiet around both; else a created account with a little history."""
    fam = case.fam
    buying = (t_buy, t_buy + 20 * _MIN)
    account = fam.background_member(
        rng,
        *buying,
        language=language,
        history=1,
        ok=lambda m: (
            m.id not in case.used
            and m.active_until_day * _DAY >= t_review
            and fam.quiet(m.id, t_review, t_review)
        ),
    )
    if account is None:
        account = fam.new_account(rng, language)
        _light_history(case, rng, account, t_buy)
    case.used.add(account.id)
    fam.mark_busy(account.id, *buying)
    fam.mark_busy(account.id, t_review, t_review)
    return account


def _purchase_of(
    case: _Case, rng: random.Random, account: _Account, t: int, product: Product
) -> int:
    """An ordinary order containing ``product`` (sometimes with a second item); its time."""
    lines: list[_Line] = [(product, 1, product.price)]
    if rng.random() < 0.3:
        other = case.fam.product_in(rng, account.favourites)
        if other.id not in case.fam.targets:
            lines.append((other, 1, other.price))
    _, paid = _buy(case, rng, account, t, lines)
    return case.fam.ms(paid.occurred_at)


def _start(
    case: _Case, rng: random.Random, span: int, human: bool = True, not_before: float = 0.0
) -> int:
    """A case start in [max(warm, not_before days), end - span]."""
    lo, hi = max(case.fam.warm, int(not_before * _DAY)), case.fam.end - span
    return _human_time(rng, lo, hi) if human else rng.randint(lo, hi)


# --- hard negatives -------------------------------------------------------------------------------


def _power_user(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    t0 = _start(case, rng, 30 * _MIN, not_before=POWER_HISTORY_DAYS)
    account = fam.new_account(rng)
    case.actors.append(account.id)
    lo = t0 - int(POWER_HISTORY_DAYS * _DAY)
    per_day = rng.randint(*POWER_SESSIONS_PER_DAY)
    t_free = lo
    for day_lo in range(lo, t0 - 2 * _HOUR, _DAY):
        day_hi = min(day_lo + _DAY, t0 - 2 * _HOUR)
        count = max(1, round(per_day * rng.uniform(0.6, 1.4)))
        for t in _spread(rng, day_lo, day_hi, count, 20 * _MIN):
            t = max(t, t_free)
            if t >= t0 - 2 * _HOUR:
                break
            views = rng.randint(*POWER_SESSION_VIEWS)
            end, cart = _browse(case, rng, account, t, views, dwell_s=12.0, setup=True)
            if cart and rng.random() < 0.4:
                end += int(rng.uniform(30, 240) * _S)
                case.order(end, account, _lines_for(rng, cart), setup=True)
            t_free = end + 10 * _MIN
    _power_burst(case, rng, account, max(t0, t_free))


def _power_burst(case: _Case, rng: random.Random, account: _Account, t: int) -> None:
    duration = rng.uniform(*POWER_BURST_S) * _S
    clicks = max(2, round(duration / _MIN * rng.uniform(*POWER_RATE_PER_MIN)))
    raw = [rng.lognormvariate(0.0, 0.7) for _ in range(clicks - 1)]
    gaps = [max(400, int(g / sum(raw) * duration)) for g in raw]
    session = case.session()
    viewed: list[Product] = []
    cart: list[Product] = []
    for i in range(clicks):
        if viewed and (rng.random() < 0.15 or (i == clicks - 1 and not cart)):
            product = rng.choice(viewed)
            case.click(t, account, "add_to_cart", session, product)
            if product not in cart:
                cart.append(product)
        else:
            product = case.fam.product_in(rng, account.favourites)
            case.click(t, account, "view", session, product)
            viewed.append(product)
        if i < clicks - 1:
            t += gaps[i]
    t += int(rng.uniform(60, 240) * _S)
    case.order(t, account, [(p, 1, p.price) for p in cart[:MAX_ORDER_ITEMS]])


def _tab_opener(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    for _ in range(20):
        t = _start(case, rng, 30 * _MIN)
        account = fam.background_member(rng, t, t + 20 * _MIN, history=3)
        if account:
            break
    else:
        account = fam.new_account(rng)
        _light_history(case, rng, account, t)
    fam.reserved.add(account.id)
    fam.mark_busy(account.id, t, t + 20 * _MIN)
    case.actors.append(account.id)
    category = rng.choice(account.favourites)
    cat = CATEGORY_BY_ID[category]
    noun_en, noun_zh, _ = rng.choice(cat.items)
    session = case.session()
    query = tx.search_query(rng, account.language, tx.noun_for(account.language, noun_en, noun_zh))
    case.click(t, account, "search", session, query=query)
    t += int(rng.uniform(3, 10) * _S)
    tabs = _search_results(rng, fam, category, noun_en, rng.randint(*TAB_COUNT))
    gaps = [rng.uniform(*TAB_GAP_S) for _ in tabs[1:]]
    scale = min(1.0, 55.0 / max(sum(gaps), 1e-9))
    for i, product in enumerate(tabs):
        case.click(t, account, "view", session, product)
        if i < len(gaps):
            t += int(gaps[i] * scale * _S)
    t += int(rng.uniform(*TAB_READ_MIN) * _MIN)
    chosen = rng.choice(tabs)
    case.click(t, account, "add_to_cart", session, chosen)
    if rng.random() < 0.4:
        t += int(rng.uniform(60, 300) * _S)
        case.order(t, account, [(chosen, 1, chosen.price)])


def _search_results(
    rng: random.Random, fam: _Family, category: str, noun_en: str, n: int
) -> list[Product]:
    """``n`` distinct results: products of the searched kind, then of its category, then any."""
    same = fam.by_category[category]
    tiers = (
        [p for p in same if p.noun_en == noun_en],
        [p for p in same if p.noun_en != noun_en],
        [p for p in fam.catalog if p.category != category],
    )
    results: list[Product] = []
    for tier in tiers:
        results += rng.sample(tier, min(n - len(results), len(tier)))
    return results


def _sale_day(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    span = int(rng.uniform(*SALE_SPAN_MIN) * _MIN)
    account = None
    for _ in range(20):
        day = rng.choice(fam.sale_days)
        lo = max(fam.warm, day * _DAY + 8 * _HOUR)
        hi = min(fam.end - span - 20 * _MIN, day * _DAY + 22 * _HOUR)
        t0 = _human_time(rng, lo, hi) if lo <= hi else _start(case, rng, span + 20 * _MIN)
        account = fam.background_member(
            rng, t0, t0 + span, ok=lambda m: bool(fam.index.paid.get(m.id)), history=3
        )
        if account:
            break
    if account is None:
        account = fam.new_account(rng)
        _light_history(case, rng, account, t0)
    fam.reserved.add(account.id)
    fam.mark_busy(account.id, t0, t0 + span)
    case.actors.append(account.id)
    pool = fam.pool(lambda p: SALE_PRICE[0] <= p.price <= SALE_PRICE[1])
    n = rng.randint(*SALE_ORDERS)
    products = rng.sample(pool, 2 * n)
    discount = 1.0 - rng.uniform(*SALE_DISCOUNT)
    starts = [t0 + round(span * i / (n - 1) + rng.uniform(-1, 1) * _MIN) for i in range(n)]
    t = t0
    for i, at in enumerate(starts):
        picks = products[2 * i : 2 * i + rng.randint(1, 2)]
        lines = [(p, 1, round(p.price * discount, 2)) for p in picks]
        t, _ = _buy(case, rng, account, max(at, t + 30 * _S), lines, dwell_s=12.0)


def _big_spender(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    t0 = _start(case, rng, 30 * _MIN, not_before=4.0)
    account = fam.new_account(rng)
    account = _Account(account.id, account.language, tuple(sorted(_OFFICE)))
    case.actors.append(account.id)
    pool = fam.pool(lambda p: p.category in _OFFICE and p.price >= 60)
    lo = max(0, t0 - 28 * _DAY)
    n = rng.randint(*BIG_SPENDER_HISTORY)
    for t in _spread(rng, lo, t0 - _DAY, n, 12 * _HOUR):
        lines = _fill_order(rng, pool, *BIG_SPENDER_TOTAL, max_qty=8)
        _buy(case, rng, account, t, lines, setup=True)
    lines = _fill_order(rng, pool, *BIG_SPENDER_TOTAL, max_qty=8)
    _buy(case, rng, account, t0, lines)


def _new_member_big_order(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    t = _start(case, rng, 2 * _HOUR)
    account = fam.new_account(rng)
    account = _Account(account.id, account.language, tuple(sorted(_HOME_SETUP)))
    case.actors.append(account.id)
    t, _ = _browse(case, rng, account, t, rng.randint(5, 15), cart_rate=0.0)
    pool = fam.pool(lambda p: p.category in _HOME_SETUP and p.price >= 40)
    lines = _fill_order(rng, pool, *NEW_MEMBER_TOTAL, max_lines=4, max_qty=2)
    _buy(case, rng, account, t + int(rng.uniform(1, 10) * _MIN), lines)


def _defective_product(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    product = fam.take_product()
    case.product_id = product.id
    theme = tx.defect_theme(rng, product.category)
    t0 = _start(case, rng, 7 * _DAY + 2 * _HOUR)
    reviews: list[tuple[int, _Account, int]] = []
    for _ in range(rng.randint(*DEFECT_BUYERS)):
        t_buy = _human_time(rng, t0, t0 + 2 * _DAY)
        t_review = t_buy + _days_offset(rng, *DEFECT_REVIEW_DELAY_DAYS)
        buyer = _buyer(case, rng, t_buy, t_review)
        t_paid = _purchase_of(case, rng, buyer, t_buy, product)
        t_review = max(t_review, t_paid + _DAY)
        reviews.append((t_review, buyer, (t_review - t_paid) // _DAY))
    written: set[str] = set()
    for t, buyer, owned in sorted(reviews, key=lambda r: r[0]):
        rating = 1 if rng.random() < 0.6 else 2
        noun = tx.noun_for(buyer.language, product.noun_en, product.noun_zh)
        for _ in range(20):  # people do not write identical reviews
            title, text = tx.defect_review(rng, buyer.language, theme, rating, noun, owned)
            if text not in written:
                break
        written.add(text)
        case.review(t, buyer, product, rating, title, text)
        case.actors.append(buyer.id)


def _days_offset(rng: random.Random, lo_days: float, hi_days: float) -> int:
    return int(rng.uniform(lo_days, hi_days) * _DAY)


def _friends_reviews(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    product = fam.take_product()
    case.product_id = product.id
    lang = "zh" if rng.random() < 0.3 else "en"
    aspects = tx.friend_aspects(rng)
    t0 = _start(case, rng, 5 * _DAY + 2 * _HOUR)
    reviews: list[tuple[int, _Account, int]] = []
    for wording in range(rng.randint(*FRIENDS)):
        t_buy = _human_time(rng, t0, t0 + _DAY)
        t_review = t_buy + _days_offset(rng, 1.0, 3.9)
        friend = _buyer(case, rng, t_buy, t_review, language=lang)
        t_paid = _purchase_of(case, rng, friend, t_buy, product)
        reviews.append((max(t_review, t_paid + _DAY), friend, wording))
    for t, friend, wording in sorted(reviews, key=lambda r: r[0]):
        rating = 5 if rng.random() < 0.7 else 4
        noun = tx.noun_for(lang, product.noun_en, product.noun_zh)
        title, text = tx.friend_review(rng, lang, aspects, wording, rating, noun)
        case.review(t, friend, product, rating, title, text)
        case.actors.append(friend.id)


def _single_review(
    case: _Case, rng: random.Random, zh_share: float
) -> tuple[int, _Account, Product]:
    """A buyer who purchases a product and is due to review it 1-6 days later."""
    product = case.fam.take_product()
    case.product_id = product.id
    lang = "zh" if rng.random() < zh_share else "en"
    t_buy = _start(case, rng, 6 * _DAY + 2 * _HOUR)
    t_review = t_buy + _days_offset(rng, 1.0, 6.0)
    buyer = _buyer(case, rng, t_buy, t_review, language=lang)
    t_paid = _purchase_of(case, rng, buyer, t_buy, product)
    case.actors.append(buyer.id)
    return max(t_review, t_paid + _DAY), buyer, product


def _mixed_reviews(case: _Case, rng: random.Random) -> None:
    t, buyer, product = _single_review(case, rng, 0.35)
    rating = rng.choices(tx.MIXED_RATINGS, weights=tx.MIXED_WEIGHTS)[0]
    noun = tx.noun_for(buyer.language, product.noun_en, product.noun_zh)
    title, text = tx.mixed_review(rng, buyer.language, rating, noun)
    case.review(t, buyer, product, rating, title, text)


# --- subtle incidents ---------------------------------------------------------------------------


def _slow_bot(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    views = rng.randint(*BOT_VIEWS)
    mean = rng.uniform(*BOT_INTERVAL_S)
    cv = rng.uniform(*BOT_JITTER_CV)
    t = _start(case, rng, int(views * mean * (1 + 3 * cv) * _S) + _MIN, human=False)
    account = fam.new_account(rng)
    case.actors.append(account.id)
    session = case.session()
    for product in _catalogue_walk(rng, fam, views):
        case.click(t, account, "view", session, product)
        jitter = min(max(rng.gauss(0.0, cv), -3 * cv), 3 * cv)
        t += int(mean * (1 + jitter) * _S)


def _catalogue_walk(rng: random.Random, fam: _Family, n: int) -> Iterator[Product]:
    """Products in category order, then id order within a category, from a random point."""
    ordered = [p for c in CATEGORIES for p in sorted(fam.by_category[c.id], key=lambda p: p.id)]
    first = rng.randrange(len(ordered))
    for i in range(n):
        yield ordered[(first + i) % len(ordered)]


def _takeover(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    found = _takeover_victim(case, rng)
    if found is None:
        t, account, median = _seasoned_victim(case, rng)
    else:
        t, account, median = found
    fam.reserved.add(account.id)
    fam.mark_busy(account.id, t, t + 20 * _MIN)
    case.actors.append(account.id)
    lo = max(TAKEOVER_RATIO[0] * median, TAKEOVER_TOTAL[0])
    hi = min(TAKEOVER_RATIO[1] * median, TAKEOVER_TOTAL[1])
    if lo > hi:
        lo, hi = TAKEOVER_RATIO[0] * median, TAKEOVER_RATIO[1] * median
    pool = fam.pool(lambda p: p.category in RESELLABLE_CATEGORIES and p.price >= 40)
    lines = _fill_order(rng, pool, lo * 1.005, hi * 0.995)
    session = case.session()
    for p, _, _ in lines:
        case.click(t, account, "view", session, p)
        t += int(rng.uniform(4, 20) * _S)
        case.click(t, account, "add_to_cart", session, p)
        t += int(rng.uniform(2, 10) * _S)
    case.order(t + int(rng.uniform(20, 90) * _S), account, lines)


def _takeover_victim(case: _Case, rng: random.Random) -> tuple[int, _Account, float] | None:
    """A background member with enough paid orders, their median in TAKEOVER_MEDIAN."""
    fam = case.fam
    candidates = sorted(
        m
        for m, orders in fam.index.paid.items()
        if len(orders) >= TAKEOVER_MIN_ORDERS and m not in fam.reserved
    )
    rng.shuffle(candidates)
    members = {m.id: m for m in fam.members}
    for member_id in candidates:
        orders = fam.index.paid[member_id]
        m = members[member_id]
        lo = max(fam.warm, orders[TAKEOVER_MIN_ORDERS - 1][0] + _DAY)
        hi = min(fam.end - 2 * _HOUR, int(m.active_until_day * _DAY))
        if lo > hi:
            continue
        t = _human_time(rng, lo, hi)
        median = statistics.median(total for at, total in orders if at < t)
        if TAKEOVER_MEDIAN[0] <= median <= TAKEOVER_MEDIAN[1] and fam.quiet(
            member_id, t, t + 20 * _MIN
        ):
            return t, _Account(m.id, m.language, m.favourites), median
    return None


def _seasoned_victim(case: _Case, rng: random.Random) -> tuple[int, _Account, float]:
    """A created account with 3-6 ordinary orders of $40-160 in the three weeks before."""
    fam = case.fam
    t = _start(case, rng, 2 * _HOUR, not_before=4.0)
    account = fam.new_account(rng)
    pool = fam.pool(lambda p: 10 <= p.price <= 160)
    totals = []
    for at in _spread(rng, max(0, t - 21 * _DAY), t - _DAY, rng.randint(3, 6), 6 * _HOUR):
        lines = _fill_order(rng, pool, 40.0, 160.0, max_qty=2)
        _, paid = _buy(case, rng, account, at, lines, setup=True)
        totals.append(paid.total)
    return t, account, statistics.median(totals)


def _card_testing(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    window = int(rng.uniform(2.0, CARD_TEST_WINDOW_MIN - 0.5) * _MIN)
    t0 = _start(case, rng, window + _HOUR, human=False) + _MIN  # room for the first view
    account = fam.new_account(rng)
    case.actors.append(account.id)
    pool = fam.pool(lambda p: CARD_TEST_TOTAL[0] <= p.price <= CARD_TEST_TOTAL[1])
    n = rng.randint(*CARD_TEST_ORDERS)
    times = [t0, *sorted(rng.randint(t0 + 20 * _S, t0 + window) for _ in range(n - 1))]
    refunded = [rng.random() < 0.5 for _ in range(n)]
    if not any(refunded):
        refunded[rng.randrange(n)] = True
    session = case.session()
    for at, refund in zip(times, refunded, strict=True):
        product = rng.choice(pool)
        case.click(at - int(rng.uniform(5, 15) * _S), account, "view", session, product)
        paid = case.order(at, account, [(product, 1, product.price)])
        if refund:
            case.refund(at + int(rng.uniform(1, 20) * _MIN), account, paid)


def _paraphrase_ring(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    product = fam.take_product()
    case.product_id = product.id
    lang = "zh" if rng.random() < 0.4 else "en"
    message = tx.promo_message(rng)
    span = int(rng.uniform(*RING_SPAN_H) * _HOUR)
    t0 = _start(case, rng, span + _HOUR)
    noun = tx.noun_for(lang, product.noun_en, product.noun_zh)
    for j, t in enumerate(
        sorted(_human_time(rng, t0, t0 + span) for _ in range(rng.randint(*RING_ACCOUNTS)))
    ):
        account = fam.new_account(rng, lang)
        session = case.session()
        case.click(t, account, "view", session, product)
        title, text = tx.promo_review(message, lang, j, noun)
        case.review(t + _dwell(rng, 60.0), account, product, 5, title, text)
        case.actors.append(account.id)


def _slow_bombing(case: _Case, rng: random.Random) -> None:
    fam = case.fam
    product = fam.take_product()
    case.product_id = product.id
    span = int(rng.uniform(*BOMB_SPAN_DAYS) * _DAY)
    t0 = _start(case, rng, span + _HOUR) + 15 * _MIN  # room for a view before the first
    n = rng.randint(*BOMB_ACCOUNTS)
    times = sorted([t0, t0 + span, *(_human_time(rng, t0, t0 + span) for _ in range(n - 2))])
    for t in times:
        account = None
        if rng.random() < BOMB_EXISTING_SHARE:
            account = fam.background_member(
                rng,
                t - _MIN,
                t + _MIN,
                ok=lambda m: (
                    m.id not in case.used and product.id not in fam.index.bought.get(m.id, ())
                ),
            )
        if account is None:
            account = fam.new_account(rng, "zh" if rng.random() < 0.25 else "en")
        fam.mark_busy(account.id, t - _MIN, t + _MIN)
        case.used.add(account.id)
        if rng.random() < 0.5:
            case.click(t - _dwell(rng, 40.0), account, "view", case.session(), product)
        rating = 1 if rng.random() < 0.7 else 2
        title, text = tx.bombing_review(rng, account.language)
        case.review(t, account, product, rating, title, text)
        case.actors.append(account.id)


def _five_star_negative(case: _Case, rng: random.Random) -> None:
    t, buyer, product = _single_review(case, rng, 0.4)
    style = rng.choice(tx.NEGATIVE_STYLES)
    title, text = tx.negative_text(rng, buyer.language, style)
    case.review(t, buyer, product, 5, title, text)


_BUILDERS: dict[str, Callable[[_Case, random.Random], None]] = {
    HN_POWER_USER: _power_user,
    HN_TAB_OPENER: _tab_opener,
    HN_SALE_DAY: _sale_day,
    HN_BIG_SPENDER: _big_spender,
    HN_NEW_BIG_ORDER: _new_member_big_order,
    HN_DEFECTIVE: _defective_product,
    HN_FRIENDS: _friends_reviews,
    HN_MIXED: _mixed_reviews,
    SLOW_BOT: _slow_bot,
    TAKEOVER: _takeover,
    CARD_TESTING: _card_testing,
    PARAPHRASE_RING: _paraphrase_ring,
    SLOW_BOMBING: _slow_bombing,
    FIVE_STAR_NEGATIVE: _five_star_negative,
}
# Takeover victims first (their order history must stay untouched), then the other
# member-level cases that claim background members, then the rest.
_BUILD_ORDER: tuple[str, ...] = (
    TAKEOVER,
    HN_TAB_OPENER,
    HN_SALE_DAY,
    *(s for s in SCENARIOS if s not in {TAKEOVER, HN_TAB_OPENER, HN_SALE_DAY}),
)
