"""Seeded synthetic e-commerce workload: members browse, buy, refund and review.

Used by tests, benchmarks and the demo. Everything derives from
``WorkloadConfig.seed``: the same config yields the same events, ids included.

How it works: each member has a heavy-tailed activity rate and 1-3 favourite
categories. Sessions arrive as a Poisson process (thinned by a daily cycle)
inside the member's active window; a session is a few searches and product
views, some add-to-carts and maybe an order. Paid orders may be refunded and
their line items reviewed days later. Each member's timeline is generated
lazily by its own RNG, so timelines are independent of one another and
``heapq.merge`` can interleave them in event-time order while holding only a
few pending events per member in memory.

Payment, shipping and device references (``WorkloadConfig.instrument_refs``, off by
default): each member has 1-2 cards (40% two), 1-2 shipping addresses (25% two) and 1-2
devices (50% two). A paid order uses the member's first one of each kind 75% of the time,
else another of its own, and a new one at ``new_card_rate`` (2.5% of orders),
``new_address_rate`` (2%) and ``new_device_rate`` (3%), drawn independently; a new one is
the member's own from then on (it becomes the first, at most 3 kept). A refund carries its
order's references. References are opaque tokens (``pay-``, ``ship-``, ``dev-`` and 16 hex
digits of a hash of seed, member and number), as a platform would send hashes. They come
from each member's own RNG, separate from the timeline's, so events, ids and times are the
same with references on or off; only purchase events gain the three fields.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from bisect import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any, Literal, Protocol

from memberstream.schemas.events import (
    PURCHASE_REFS,
    ClickEvent,
    LineItem,
    PurchaseEvent,
    ReviewEvent,
)

SyntheticEvent = ClickEvent | PurchaseEvent | ReviewEvent
EventKind = Literal["click", "purchase", "review"]
EVENT_KINDS: frozenset[str] = frozenset({"click", "purchase", "review"})
SOURCE = "synthetic"
MAX_ORDER_ITEMS = 4

_DAY_MS = 86_400_000


@dataclass(frozen=True)
class WorkloadConfig:
    """Knobs of the synthetic workload. Rates are probabilities unless named per-something."""

    seed: int = 7
    members: int = 2000
    products: int = 800
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    """Aware timestamp where sessions start; normalised to UTC."""
    days: float = 60
    """Sessions fall in [start, start + days); refunds and reviews of late orders may come later."""
    sessions_per_day: float = 0.25
    """Mean sessions per member per active day; each member's rate is this times a lognormal."""
    activity_sigma: float = 1.0
    """Sigma of the (mean-one) lognormal activity multiplier: larger means heavier tail."""
    new_member_share: float = 0.3
    """Members who join partway through the period rather than at its start."""
    churn_share: float = 0.2
    """Members who stop being active before the period ends."""
    views_per_session: float = 4.0
    """Mean product views per session (at least one)."""
    searches_per_session: float = 0.8
    add_to_cart_rate: float = 0.07
    """Probability that a product view is followed by an add-to-cart."""
    checkout_rate: float = 0.5
    """Probability that a session with a non-empty cart ends with an order."""
    refund_rate: float = 0.04
    """Share of paid orders later refunded (wholly, or one line item)."""
    review_rate: float = 0.12
    """Share of purchased line items later reviewed."""
    zh_share: float = 0.2
    """Share of members who search and review in Chinese, and of products titled in Chinese."""
    mean_click_gap_s: float = 40.0
    refund_delay_days: float = 6.0
    review_delay_days: float = 5.0
    instrument_refs: bool = False
    """Paid orders and refunds carry ``payment_ref``, ``shipping_ref`` and ``device_ref``
    (see the module doc); off, purchase events carry none."""
    new_card_rate: float = 0.025
    """Share of paid orders on a card the member has not used before."""
    new_address_rate: float = 0.02
    """Share of paid orders shipped to an address the member has not used before."""
    new_device_rate: float = 0.03
    """Share of paid orders from a device the member has not used before."""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        if self.members < 1 or self.days <= 0:
            raise ValueError("members must be >= 1 and days > 0")
        if self.products < len(CATEGORIES):
            raise ValueError(f"products must be >= {len(CATEGORIES)} (one per category)")
        for name in (
            "new_member_share",
            "churn_share",
            "add_to_cart_rate",
            "checkout_rate",
            "refund_rate",
            "review_rate",
            "zh_share",
            "new_card_rate",
            "new_address_rate",
            "new_device_rate",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        for name in (
            "sessions_per_day",
            "views_per_session",
            "mean_click_gap_s",
            "refund_delay_days",
            "review_delay_days",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if self.views_per_session < 1 or self.searches_per_session < 0 or self.activity_sigma < 0:
            raise ValueError(
                "need views_per_session >= 1, searches_per_session >= 0, activity_sigma >= 0"
            )


# --- catalog -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    id: str
    name_en: str
    name_zh: str
    weight: float
    """Relative share of products and of casual browsing."""
    consumable: bool
    """Bought in multiples more often (groceries, diapers)."""
    items: tuple[tuple[str, str, float], ...]
    """Product kinds: (English noun, Chinese noun, typical price in USD)."""


def _cat(
    cid: str, en: str, zh: str, weight: float, items: str, consumable: bool = False
) -> Category:
    kinds = tuple((e, z, float(p)) for e, z, p in (i.split("|") for i in items.split(";")))
    return Category(cid, en, zh, weight, consumable, kinds)


CATEGORIES: tuple[Category, ...] = (
    _cat(
        "electronics",
        "Electronics",
        "电子产品",
        1.3,
        "Wireless Earbuds|无线耳机|90;Bluetooth Speaker|蓝牙音箱|80;Smart Watch|智能手表|230;"
        "Action Camera|运动相机|260;Power Bank|充电宝|40;"
        "Noise-Cancelling Headphones|降噪耳机|300",
    ),
    _cat(
        "computers",
        "Computers & Office",
        "电脑办公",
        0.7,
        "Laptop|笔记本电脑|850;Mechanical Keyboard|机械键盘|90;Wireless Mouse|无线鼠标|25;"
        "27-inch Monitor|27英寸显示器|280;USB-C Hub|扩展坞|35",
    ),
    _cat(
        "cell_phones",
        "Cell Phones & Accessories",
        "手机通讯",
        0.8,
        "Smartphone|智能手机|450;Phone Case|手机壳|15;Fast Charger|快充充电器|22;"
        "Screen Protector|钢化膜|9;Wireless Charging Pad|无线充电板|28",
    ),
    _cat(
        "books",
        "Books",
        "图书",
        1.2,
        "Mystery Novel|悬疑小说|14;Cookbook|菜谱|22;Children's Picture Book|儿童绘本|12;"
        "Science Fiction Paperback|科幻小说|11;History Hardcover|历史精装书|28",
    ),
    _cat(
        "movies_music",
        "Movies & Music",
        "影音",
        0.5,
        "Vinyl Record|黑胶唱片|28;Blu-ray Box Set|蓝光套装|35;Music CD|音乐CD|13;"
        "Concert DVD|演唱会DVD|18",
    ),
    _cat(
        "video_games",
        "Video Games",
        "电子游戏",
        0.6,
        "Console Game|主机游戏|55;Gaming Controller|游戏手柄|60;Gaming Headset|游戏耳机|70;"
        "Handheld Console|掌上游戏机|300",
    ),
    _cat(
        "beauty",
        "Beauty & Personal Care",
        "美妆个护",
        1.1,
        "Face Serum|精华液|32;Lipstick|口红|22;Sunscreen SPF 50|防晒霜|18;Hair Dryer|吹风机|65;"
        "Eyeshadow Palette|眼影盘|28",
    ),
    _cat(
        "health_household",
        "Health & Household",
        "健康家居",
        0.8,
        "Vitamin D3 Gummies|维生素D3软糖|16;Electric Toothbrush|电动牙刷|55;"
        "Laundry Detergent|洗衣液|14;Digital Thermometer|电子体温计|15;Face Masks|口罩|12",
        consumable=True,
    ),
    _cat(
        "home_kitchen",
        "Home & Kitchen",
        "家居厨具",
        1.3,
        "Nonstick Frying Pan|不粘煎锅|38;Air Fryer|空气炸锅|95;Chef's Knife|厨师刀|45;"
        "Coffee Maker|咖啡机|80;Storage Containers|收纳盒|25;Bath Towels|浴巾|30",
    ),
    _cat(
        "furniture",
        "Furniture",
        "家具",
        0.4,
        "Office Chair|办公椅|190;Bookshelf|书架|120;Standing Desk|升降桌|350;"
        "Bedside Table|床头柜|85",
    ),
    _cat(
        "garden_outdoor",
        "Garden & Outdoor",
        "园艺户外",
        0.5,
        "Garden Hose|花园水管|35;Solar Path Lights|太阳能草坪灯|30;Pruning Shears|修枝剪|20;"
        "Patio Umbrella|庭院伞|90",
    ),
    _cat(
        "sports_outdoors",
        "Sports & Outdoors",
        "运动户外",
        1.0,
        "Yoga Mat|瑜伽垫|30;Adjustable Dumbbells|可调哑铃|150;Camping Tent|露营帐篷|130;"
        "Insulated Water Bottle|保温水壶|25;Cycling Helmet|骑行头盔|55",
    ),
    _cat(
        "toys_games",
        "Toys & Games",
        "玩具游戏",
        0.9,
        "Building Blocks Set|积木套装|45;Board Game|桌游|30;Plush Toy|毛绒玩具|18;"
        "Remote Control Car|遥控车|40;Jigsaw Puzzle|拼图|16",
    ),
    _cat(
        "fashion_women",
        "Women's Fashion",
        "女装",
        1.2,
        "Summer Dress|连衣裙|45;Knit Cardigan|针织开衫|50;High-Waist Jeans|高腰牛仔裤|55;"
        "Silk Blouse|真丝衬衫|60;Leather Handbag|真皮手提包|120",
    ),
    _cat(
        "fashion_men",
        "Men's Fashion",
        "男装",
        0.9,
        "Cotton T-Shirt|纯棉T恤|18;Slim Fit Chinos|修身休闲裤|45;Down Jacket|羽绒服|140;"
        "Oxford Shirt|牛津纺衬衫|40;Leather Belt|皮带|30",
    ),
    _cat(
        "shoes",
        "Shoes",
        "鞋靴",
        0.8,
        "Running Shoes|跑鞋|95;Leather Boots|皮靴|130;Canvas Sneakers|帆布鞋|50;Slippers|拖鞋|20",
    ),
    _cat(
        "jewelry_watches",
        "Jewelry & Watches",
        "珠宝手表",
        0.4,
        "Sterling Silver Necklace|纯银项链|60;Stud Earrings|耳钉|35;Quartz Watch|石英手表|110;"
        "Charm Bracelet|手链|40",
    ),
    _cat(
        "grocery",
        "Grocery & Gourmet",
        "食品杂货",
        1.1,
        "Ground Coffee|研磨咖啡|12;Green Tea|绿茶|9;Mixed Nuts|混合坚果|14;"
        "Dark Chocolate|黑巧克力|6;Olive Oil|橄榄油|15;Instant Noodles|方便面|10",
        consumable=True,
    ),
    _cat(
        "pet_supplies",
        "Pet Supplies",
        "宠物用品",
        0.7,
        "Dry Dog Food|狗粮|48;Cat Litter|猫砂|20;Cat Scratching Post|猫抓板|30;"
        "Dog Leash|牵引绳|16;Pet Bed|宠物窝|35",
        consumable=True,
    ),
    _cat(
        "baby",
        "Baby",
        "母婴",
        0.6,
        "Diapers|纸尿裤|40;Baby Stroller|婴儿推车|220;Baby Bottles|奶瓶|22;"
        "Baby Monitor|婴儿监视器|70",
        consumable=True,
    ),
    _cat(
        "automotive",
        "Automotive",
        "汽车用品",
        0.4,
        "Dash Cam|行车记录仪|70;Car Phone Mount|车载手机支架|18;Tire Inflator|车载充气泵|45;"
        "Seat Covers|座椅套|60",
    ),
)
CATEGORY_BY_ID: dict[str, Category] = {c.id: c for c in CATEGORIES}

_BRANDS_EN = (
    "Auralux",
    "Novaro",
    "Kestrel",
    "Brightwell",
    "Ostara",
    "Pinecrest",
    "Zephyr",
    "Lumina",
    "Halden",
    "Corvex",
    "Maplewood",
    "Tidewater",
)
_BRANDS_ZH = ("华声", "优品", "森屿", "青禾", "星河", "素然", "木槿", "云栖", "拾光", "南山")
_ADJ_EN = ("Premium", "Compact", "Classic", "Deluxe", "Eco", "Ultra", "Essential", "Pro", "Lite")
_ADJ_ZH = ("高级", "便携", "经典", "豪华", "环保", "超薄", "基础款", "专业", "轻便")
_VARIANTS = (
    ("Black", "黑色"),
    ("White", "白色"),
    ("Blue", "蓝色"),
    ("Grey", "灰色"),
    ("2-Pack", "两件装"),
    ("Large", "大号"),
    ("Small", "小号"),
    ("Set of 3", "三件套"),
)
_PRICE_SIGMA = 0.35


@dataclass(frozen=True)
class Product:
    id: str
    title: str
    category: str
    price: float
    language: str
    """Language of the title: "en" or "zh"."""
    noun_en: str
    noun_zh: str


def _title(rng: random.Random, zh: bool, noun_en: str, noun_zh: str) -> str:
    variant = rng.choice(_VARIANTS) if rng.random() < 0.5 else None
    if zh:
        adj = rng.choice(_ADJ_ZH) if rng.random() < 0.6 else ""
        base = f"{rng.choice(_BRANDS_ZH)} {adj}{noun_zh}"
        return f"{base} {variant[1]}" if variant else base
    adj = f"{rng.choice(_ADJ_EN)} " if rng.random() < 0.6 else ""
    base = f"{rng.choice(_BRANDS_EN)} {adj}{noun_en}"
    return f"{base}, {variant[0]}" if variant else base


def _price(rng: random.Random, typical: float) -> float:
    """Lognormal around the typical price, with retail .99 endings."""
    raw = typical * rng.lognormvariate(0.0, _PRICE_SIGMA)
    return 0.99 if raw < 1.5 else round(round(raw) - 0.01, 2)


def build_catalog(config: WorkloadConfig) -> list[Product]:
    """Products p00001..; the first ``len(CATEGORIES)`` cover one category each."""
    rng = random.Random(f"{config.seed}/catalog")
    cum = list(accumulate(c.weight for c in CATEGORIES))
    products = []
    for i in range(config.products):
        if i < len(CATEGORIES):
            cat = CATEGORIES[i]
        else:
            cat = CATEGORIES[bisect(cum, rng.random() * cum[-1])]
        noun_en, noun_zh, typical = rng.choice(cat.items)
        zh = rng.random() < config.zh_share
        products.append(
            Product(
                id=f"p{i + 1:05d}",
                title=_title(rng, zh, noun_en, noun_zh),
                category=cat.id,
                price=_price(rng, typical),
                language="zh" if zh else "en",
                noun_en=noun_en,
                noun_zh=noun_zh,
            )
        )
    return products


# --- members -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticMember:
    """A member's hidden traits: the ground truth behind its events."""

    id: str
    language: str
    sessions_per_day: float
    favourites: tuple[str, ...]
    """1-3 favourite category ids, most preferred first."""
    preference: tuple[float, ...]
    """Probability of browsing each category, aligned with ``CATEGORIES``."""
    joined_day: float
    active_until_day: float
    """Day offset after which the member has no more sessions (churn); ``days`` if never."""


_EXPLORE = 0.15  # share of browsing outside the favourites, spread by category weight


def build_members(config: WorkloadConfig) -> list[SyntheticMember]:
    rng = random.Random(f"{config.seed}/members")
    sigma = config.activity_sigma
    total_w = sum(c.weight for c in CATEGORIES)
    cum = list(accumulate(c.weight for c in CATEGORIES))
    members = []
    for i in range(config.members):
        k = rng.choices((1, 2, 3), weights=(0.4, 0.4, 0.2))[0]
        favs: list[int] = []
        while len(favs) < k:
            c = bisect(cum, rng.random() * cum[-1])
            if c not in favs:
                favs.append(c)
        shares = sorted((rng.gammavariate(1.5, 1.0) for _ in favs), reverse=True)
        pref = [_EXPLORE * c.weight / total_w for c in CATEGORIES]
        for c, s in zip(favs, shares, strict=True):
            pref[c] += (1 - _EXPLORE) * s / sum(shares)
        joined = 0.0
        if rng.random() < config.new_member_share:
            joined = rng.uniform(0, 0.8 * config.days)
        until = float(config.days)
        if rng.random() < config.churn_share:
            until = rng.uniform(joined + 0.1 * (config.days - joined), config.days)
        rate = config.sessions_per_day * rng.lognormvariate(-sigma * sigma / 2, sigma)
        members.append(
            SyntheticMember(
                id=f"m{i + 1:06d}",
                language="zh" if rng.random() < config.zh_share else "en",
                sessions_per_day=min(rate, 40.0),
                favourites=tuple(CATEGORIES[c].id for c in favs),
                preference=tuple(pref),
                joined_day=joined,
                active_until_day=until,
            )
        )
    return members


# --- reviews and searches --------------------------------------------------------------------

# Per language, per rating: (headlines, sentences). Sentiment matches the rating.
_REVIEWS: dict[str, dict[int, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "en": {
        5: (
            (
                "Absolutely love it",
                "Five stars",
                "Exceeded my expectations",
                "Perfect!",
                "Best purchase this year",
                "Highly recommend",
            ),
            (
                "Love this {noun}.",
                "Works perfectly and arrived early.",
                "Excellent quality for the price.",
                "Exactly as described, would buy again.",
                "My whole family loves it.",
                "Great value, highly recommend this {noun}.",
                "Fantastic build quality.",
            ),
        ),
        4: (
            ("Very good", "Solid choice", "Happy with it", "Good value"),
            (
                "Really good {noun} overall.",
                "Does the job well, though shipping was a bit slow.",
                "Good quality, the packaging could be better.",
                "Happy with it, minor issues only.",
                "Nice {noun}, slightly pricey.",
            ),
        ),
        3: (
            ("It's okay", "Average", "Mixed feelings"),
            (
                "The {noun} is okay, nothing special.",
                "Works, but quality is average.",
                "Decent for the price but I expected more.",
                "Some good points, some bad.",
            ),
        ),
        2: (
            ("Disappointed", "Not great", "Below expectations"),
            (
                "The {noun} feels cheap.",
                "Stopped working properly after a week.",
                "Not as described, quality is poor.",
                "Would not buy again.",
            ),
        ),
        1: (
            ("Terrible", "Waste of money", "Broken on arrival", "Do not buy"),
            (
                "Arrived broken and support was useless.",
                "Complete waste of money.",
                "Worst {noun} I have ever bought.",
                "Returned it immediately, very poor quality.",
                "Fell apart after two days.",
            ),
        ),
    },
    "zh": {
        5: (
            ("非常满意", "五星好评", "超出预期", "强烈推荐"),
            (
                "{noun}非常好用，强烈推荐！",
                "质量很棒，物流也很快。",
                "和描述完全一致，会回购。",
                "性价比超高，家人都很喜欢。",
                "做工精细，非常满意。",
            ),
        ),
        4: (
            ("还不错", "整体满意", "值得购买"),
            (
                "{noun}整体不错，就是物流有点慢。",
                "质量挺好，包装可以再改进。",
                "用着挺顺手，小瑕疵可以接受。",
                "东西不错，价格稍贵。",
            ),
        ),
        3: (
            ("一般般", "中规中矩"),
            ("{noun}一般，没有特别惊喜。", "能用，但质量一般。", "价格还行，不过期待更高。"),
        ),
        2: (
            ("有点失望", "不太满意"),
            ("{noun}做工粗糙。", "用了一周就出问题了。", "和描述不符，质量较差。", "不会再买了。"),
        ),
        1: (
            ("非常差", "浪费钱", "收到就坏了"),
            (
                "收到就是坏的，客服也不处理。",
                "完全是浪费钱。",
                "买过最差的{noun}。",
                "质量太差，已经退货。",
            ),
        ),
    },
}
_NEUTRAL = {
    "en": ("Bought it as a gift.", "Second order from this seller.", "Used it for a month."),
    "zh": ("买来送人的。", "第二次在这家买了。", "用了一个月了。"),
}
_RATINGS = (1, 2, 3, 4, 5)
_RATING_CUM = tuple(accumulate((0.14, 0.06, 0.08, 0.17, 0.55)))  # J-shaped
_REFUNDED_RATING_CUM = tuple(accumulate((0.45, 0.2, 0.15, 0.1, 0.1)))
_QUERY_PREFIX = {
    "en": ("", "", "", "best ", "cheap ", "premium ", "new "),
    "zh": ("", "", "", "性价比高的", "便宜", "高端", "新款"),
}


def _lower_noun(noun: str) -> str:
    return " ".join(
        w if w.isupper() or any(ch.isdigit() for ch in w) else w.lower() for w in noun.split()
    )


def _review_text(rng: random.Random, lang: str, rating: int, product: Product) -> tuple[str, str]:
    heads, sentences = _REVIEWS[lang][rating]
    noun = product.noun_zh if lang == "zh" else _lower_noun(product.noun_en)
    picked = [s.format(noun=noun) for s in rng.sample(sentences, rng.randint(1, 3))]
    if rng.random() < 0.2:
        picked.insert(rng.randint(0, len(picked)), rng.choice(_NEUTRAL[lang]))
    return rng.choice(heads), ("" if lang == "zh" else " ").join(picked)


def _query(rng: random.Random, lang: str, category: Category) -> str:
    noun_en, noun_zh, _ = rng.choice(category.items)
    noun = noun_zh if lang == "zh" else _lower_noun(noun_en)
    return rng.choice(_QUERY_PREFIX[lang]) + noun


# --- timelines -----------------------------------------------------------------------------

# Relative session intensity by hour of day (UTC), evening peak.
_DIURNAL = (
    0.25,
    0.15,
    0.1,
    0.08,
    0.08,
    0.12,
    0.25,
    0.45,
    0.6,
    0.7,
    0.75,
    0.8,
    0.85,
    0.8,
    0.75,
    0.75,
    0.8,
    0.9,
    1.0,
    1.1,
    1.2,
    1.15,
    0.9,
    0.55,
)
_DIURNAL_MAX = max(_DIURNAL)
_DIURNAL_MEAN = sum(_DIURNAL) / len(_DIURNAL)
_HOUR_MS = 3_600_000

# (t_ms, member index, per-member seq, kind, payload): tuples order by time, then member,
# then seq, and never compare further because (member, seq) is unique.
_Raw = tuple[int, int, int, str, tuple[Any, ...]]


Refs = tuple[str, str, str]
"""(payment_ref, shipping_ref, device_ref) of an order."""
_WALLET = (("pay", 0.4), ("ship", 0.25), ("dev", 0.5))
"""Per kind of reference: its prefix and the share of members who have two."""
_PRIMARY_SHARE = 0.75
_WALLET_KEPT = 3


class _Wallet:
    """A member's cards, shipping addresses and devices, as opaque references; its own
    RNG, so drawing them moves nothing else in the member's timeline."""

    def __init__(self, cfg: WorkloadConfig, member_id: str, index: int) -> None:
        self.cfg = cfg
        self.member_id = member_id
        self.rng = random.Random(f"{cfg.seed}/refs/{index}")
        self.made = {prefix: 0 for prefix, _ in _WALLET}
        self.own = {
            prefix: [self._new(prefix) for _ in range(1 + (self.rng.random() < two))]
            for prefix, two in _WALLET
        }

    def _new(self, prefix: str) -> str:
        self.made[prefix] += 1
        key = f"{self.cfg.seed}/{self.member_id}/{prefix}/{self.made[prefix]}"
        return f"{prefix}-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}"

    def _pick(self, prefix: str, new_rate: float) -> str:
        rng, own = self.rng, self.own[prefix]
        if rng.random() < new_rate:
            own.insert(0, self._new(prefix))  # a new card is the one used from now on
            del own[_WALLET_KEPT:]
            return own[0]
        if len(own) == 1 or rng.random() < _PRIMARY_SHARE:
            return own[0]
        return rng.choice(own[1:])

    def order_refs(self) -> Refs:
        cfg = self.cfg
        return (
            self._pick("pay", cfg.new_card_rate),
            self._pick("ship", cfg.new_address_rate),
            self._pick("dev", cfg.new_device_rate),
        )


def _geometric(rng: random.Random, mean: float) -> int:
    """Failures before the first success, with the given mean (0 when mean is 0)."""
    if mean <= 0:
        return 0
    return int(math.log(1.0 - rng.random()) / math.log(mean / (1.0 + mean)))


class _Timeline:
    """One member's events, generated lazily session by session in time order."""

    def __init__(self, workload: SyntheticWorkload, index: int) -> None:
        cfg = workload.config
        self.cfg = cfg
        self.w = workload
        self.index = index
        self.member = workload.members[index]
        self.rng = random.Random(f"{cfg.seed}/timeline/{index}")
        self.wallet = _Wallet(cfg, self.member.id, index) if cfg.instrument_refs else None
        self.pref_cum = list(accumulate(self.member.preference))
        self.seq = 0
        self.pending: list[_Raw] = []

    def _raw(self, t: int, kind: str, payload: tuple[Any, ...]) -> _Raw:
        self.seq += 1
        return (t, self.index, self.seq, kind, payload)

    def _category(self) -> int:
        return bisect(self.pref_cum, self.rng.random() * self.pref_cum[-1])

    def _product(self, category: int) -> Product:
        ids, cum = self.w._popularity[category]
        return self.w.catalog[ids[bisect(cum, self.rng.random() * cum[-1])]]

    def __iter__(self) -> Iterator[_Raw]:
        cfg, rng, m = self.cfg, self.rng, self.member
        horizon = min(m.active_until_day, cfg.days) * _DAY_MS
        peak_rate = m.sessions_per_day * _DIURNAL_MAX / _DIURNAL_MEAN / _DAY_MS
        t = m.joined_day * _DAY_MS
        free_at = 0  # sessions do not overlap
        n_session = 0
        while True:
            t += rng.expovariate(peak_rate)
            if t >= horizon:
                break
            if rng.random() * _DIURNAL_MAX > _DIURNAL[int(t // _HOUR_MS) % 24]:
                continue
            start = max(int(t), free_at)
            if start >= horizon:
                break
            n_session += 1
            session = self._session(start, f"s{cfg.seed}-{m.id}-{n_session}", n_session)
            for ev in session:
                while self.pending and self.pending[0] < ev:
                    yield heapq.heappop(self.pending)
                yield ev
            free_at = session[-1][0] + 60_000 + int(rng.expovariate(1 / 600_000))
        while self.pending:
            yield heapq.heappop(self.pending)

    def _session(self, t: int, session_id: str, n: int) -> list[_Raw]:
        cfg, rng, lang = self.cfg, self.rng, self.member.language
        gap_ms = cfg.mean_click_gap_s * 1000
        intent = self._category()
        views = 1 + _geometric(rng, cfg.views_per_session - 1)
        searches = _geometric(rng, cfg.searches_per_session)
        search_at = {0} if searches else set()
        while len(search_at) < min(searches, views):
            search_at.add(rng.randrange(views))
        out: list[_Raw] = []
        cart: list[Product] = []
        for i in range(views):
            if i in search_at:
                query = _query(rng, lang, CATEGORIES[intent])
                out.append(self._raw(t, "search", (session_id, None, query)))
                t += 2000 + int(rng.expovariate(1 / gap_ms))
            product = self._product(intent if rng.random() < 0.7 else self._category())
            out.append(self._raw(t, "view", (session_id, product, None)))
            t += 2000 + int(rng.expovariate(1 / gap_ms))
            if rng.random() < cfg.add_to_cart_rate:
                out.append(self._raw(t, "add_to_cart", (session_id, product, None)))
                t += 2000 + int(rng.expovariate(1 / gap_ms))
                if product not in cart:
                    cart.append(product)
        if cart and rng.random() < cfg.checkout_rate:
            t += 30_000 + int(rng.expovariate(1 / 120_000))
            out.append(self._order(t, f"o{cfg.seed}-{self.member.id}-{n}", cart[:MAX_ORDER_ITEMS]))
        return out

    def _order(self, t: int, order_id: str, products: list[Product]) -> _Raw:
        rng, cfg = self.rng, self.cfg
        items = []
        for p in products:
            if CATEGORY_BY_ID[p.category].consumable:
                qty = rng.choices((1, 2, 3, 4, 6), cum_weights=(0.6, 0.8, 0.9, 0.95, 1.0))[0]
            else:
                qty = rng.choices((1, 2, 3), cum_weights=(0.9, 0.98, 1.0))[0]
            price = round(p.price * 0.85, 2) if rng.random() < 0.1 else p.price
            items.append((p, qty, price))
        refs = None if self.wallet is None else self.wallet.order_refs()
        order = self._raw(t, "paid", (order_id, tuple(items), _total(items), refs))
        refunded: tuple[Any, ...] = ()
        if rng.random() < cfg.refund_rate:
            delay = min(0.5 + rng.expovariate(1 / cfg.refund_delay_days), 30.0)
            whole = len(items) == 1 or rng.random() < 0.7
            refunded = tuple(items) if whole else (rng.choice(items),)
            payload = (order_id, refunded, _total(refunded), refs)
            heapq.heappush(self.pending, self._raw(t + int(delay * _DAY_MS), "refunded", payload))
        refunded_products = {p.id for p, _, _ in refunded}
        for p, _, _ in items:
            if rng.random() >= cfg.review_rate:
                continue
            cum = _REFUNDED_RATING_CUM if p.id in refunded_products else _RATING_CUM
            rating = _RATINGS[bisect(cum, rng.random() * cum[-1])]
            head, text = _review_text(rng, self.member.language, rating, p)
            delay = min(0.5 + rng.expovariate(1 / cfg.review_delay_days), 60.0)
            payload = (p, rating, head, text, self.member.language)
            heapq.heappush(self.pending, self._raw(t + int(delay * _DAY_MS), "review", payload))
        return order


def _total(items: Iterable[tuple[Product, int, float]]) -> float:
    return round(sum(q * u for _, q, u in items), 2)


# --- the workload ----------------------------------------------------------------------------


class Injector(Protocol):
    """Extension point: rewrites the event stream, e.g. to splice in labeled anomalies.

    Gets the time-ordered stream of every kind and must return a time-ordered stream.
    Injectors run in order, before the ``kinds`` filter of :meth:`SyntheticWorkload.events`.
    """

    def __call__(
        self, events: Iterator[SyntheticEvent], workload: SyntheticWorkload
    ) -> Iterator[SyntheticEvent]: ...


_KIND_OF = {
    "search": "click",
    "view": "click",
    "add_to_cart": "click",
    "paid": "purchase",
    "refunded": "purchase",
    "review": "review",
}


class SyntheticWorkload:
    """Deterministic event stream for a :class:`WorkloadConfig`; ``events()`` can be re-run."""

    def __init__(
        self, config: WorkloadConfig | None = None, injectors: Sequence[Injector] = ()
    ) -> None:
        self.config = config or WorkloadConfig()
        self.injectors = tuple(injectors)
        self._catalog = build_catalog(self.config)
        self.members = build_members(self.config)
        rng = random.Random(f"{self.config.seed}/popularity")
        by_cat: list[list[int]] = [[] for _ in CATEGORIES]
        cat_index = {c.id: i for i, c in enumerate(CATEGORIES)}
        for i, p in enumerate(self._catalog):
            by_cat[cat_index[p.category]].append(i)
        # Zipf-like popularity within each category, over a seeded random ranking.
        self._popularity: list[tuple[list[int], list[float]]] = []
        for ids in by_cat:
            ranked = rng.sample(ids, len(ids))
            zipf = list(accumulate(1 / rank for rank in range(1, len(ids) + 1)))
            self._popularity.append((ranked, zipf))

    @property
    def catalog(self) -> list[Product]:
        return self._catalog

    def events(self, kinds: Iterable[str] | None = None) -> Iterator[SyntheticEvent]:
        """All events in non-decreasing ``occurred_at`` order, or only the given kinds.

        Ids count over the unfiltered stream, so a filtered run's events equal the
        corresponding events of a full run.
        """
        wanted = EVENT_KINDS if kinds is None else frozenset(kinds)
        if unknown := wanted - EVENT_KINDS:
            raise ValueError(f"unknown event kinds {sorted(unknown)}; known: {sorted(EVENT_KINDS)}")
        if not self.injectors:
            return self._built(wanted)
        stream: Iterator[SyntheticEvent] = self._built(EVENT_KINDS)
        for inject in self.injectors:
            stream = inject(stream, self)
        return (ev for ev in stream if ev.type in wanted)

    def _built(self, wanted: frozenset[str]) -> Iterator[SyntheticEvent]:
        merged = heapq.merge(*(_Timeline(self, i) for i in range(len(self.members))))
        for n, raw in enumerate(merged):
            if _KIND_OF[raw[3]] in wanted:
                yield self._build(raw, n)

    def _build(self, raw: _Raw, n: int) -> SyntheticEvent:
        t, m, _, kind, p = raw
        env = {
            "event_id": f"syn-{self.config.seed}-{n}",
            "member_id": self.members[m].id,
            "occurred_at": self.config.start + timedelta(milliseconds=t),
            "source": SOURCE,
        }
        if kind == "review":
            product, rating, head, text, lang = p
            return ReviewEvent(
                **env, product_id=product.id, rating=rating, title=head, text=text, language=lang
            )
        if kind in ("paid", "refunded"):
            order_id, items, total, refs = p
            line_items = [
                LineItem(
                    product_id=pr.id, title=pr.title, category=pr.category, quantity=q, unit_price=u
                )
                for pr, q, u in items
            ]
            if refs is not None:
                env |= dict(zip(PURCHASE_REFS, refs, strict=True))
            return PurchaseEvent(
                **env, order_id=order_id, items=line_items, total=total, currency="USD", status=kind
            )
        session_id, product, query = p
        if product is None:
            return ClickEvent(**env, action=kind, query=query, session_id=session_id)
        return ClickEvent(
            **env,
            action=kind,
            product_id=product.id,
            category=product.category,
            title=product.title,
            session_id=session_id,
        )
