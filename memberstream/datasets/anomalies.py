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
import itertools
import json
import math
import random
import re
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from memberstream.datasets.synthetic import (
    SOURCE,
    Product,
    SyntheticEvent,
    SyntheticWorkload,
    WorkloadConfig,
    _lower_noun,
)
from memberstream.schemas.events import ClickEvent, LineItem, PurchaseEvent, ReviewEvent

Scenario = Literal[
    "bot_session", "card_testing", "account_takeover", "copy_paste_reviews", "review_bombing"
]
SCENARIOS: tuple[Scenario, ...] = (
    "bot_session",
    "card_testing",
    "account_takeover",
    "copy_paste_reviews",
    "review_bombing",
)
EXPECTED_KINDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "bot_session": frozenset({"click_burst", "bot_pattern"}),
        "card_testing": frozenset({"order_velocity"}),
        "account_takeover": frozenset({"order_value_outlier", "learned_score"}),
        "copy_paste_reviews": frozenset({"review_duplicate"}),
        "review_bombing": frozenset({"review_bombing"}),
    }
)
"""Flag kinds each scenario should raise."""
SUBJECTS: Mapping[str, Literal["member", "product"]] = MappingProxyType(
    {
        "bot_session": "member",
        "card_testing": "member",
        "account_takeover": "member",
        "copy_paste_reviews": "product",
        "review_bombing": "product",
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
_BOMB_TRIES = 200

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
        }

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
    """Enabled scenarios; stored deduplicated in :data:`SCENARIOS` order."""
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
        object.__setattr__(self, "scenarios", tuple(s for s in SCENARIOS if s in wanted))
        object.__setattr__(self, "scenario_rates", MappingProxyType(dict(self.scenario_rates)))

    def rate(self, scenario: str) -> float:
        """Incidents per day of ``scenario`` (0 when it is not enabled)."""
        if scenario not in self.scenarios:
            return 0.0
        return float(self.scenario_rates.get(scenario, self.incidents_per_day))


def _check_scenarios(name: str, names: Iterable[object]) -> None:
    unknown = sorted(str(s) for s in names if s not in SCENARIOS)
    if unknown:
        raise ValueError(f"{name}: unknown scenarios {unknown}; known: {list(SCENARIOS)}")


def _finite_non_negative(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


# --- text ----------------------------------------------------------------------------------

_PROMO_TITLES = {
    "en": ("Best purchase ever!!", "Must buy!", "Amazing, 5 stars", "Highly recommended!"),
    "zh": ("强烈推荐！", "五星好评", "闭眼入！", "超值好物"),
}
_PROMO_TEXTS = {
    "en": (
        "This {noun} is absolutely amazing, the best I have ever owned. Top quality, super fast "
        "delivery and a great price. Everyone should buy one today, you will not regret it!",
        "Best {noun} on the market, hands down. I compared a dozen brands and nothing comes "
        "close. Order now while the discount lasts, this deal will not be around for long!",
        "Five stars is not enough for this {noun}! Premium build, beautiful design and "
        "unbeatable value. I already bought two more for my friends and family. Highly "
        "recommended to everyone!",
        "Wow, just wow. This {noun} changed my life and I cannot imagine going back. Genuine "
        "product, super fast shipping, perfect packaging. Do yourself a favour and add it to "
        "your cart right now!",
        "I am a professional reviewer and this {noun} is the best value I have tested this "
        "year. Flawless quality, excellent seller, lightning fast delivery. Grab it before it "
        "sells out again!",
        "Perfect {noun}, exactly as described and even better in person. The seller is really "
        "honest and shipping was incredibly quick. Use the coupon on the store page for an "
        "extra discount, trust me!",
        "Do not hesitate, this {noun} is worth every penny. Outstanding quality, elegant look "
        "and it works flawlessly. My whole office ordered one after seeing mine. Best purchase "
        "of the year!",
        "Absolutely the greatest {noun} ever made. Superior materials, amazing performance and "
        "the customer service is outstanding. Follow the store for more great deals, five "
        "stars all the way!",
        "Highly recommend this {noun} to anyone looking for quality. It arrived in two days, "
        "works perfectly and looks stunning. Cheaper than anywhere else too, buy it now and "
        "thank me later!",
        "Incredible {noun} at an incredible price. I was skeptical at first but it exceeded "
        "every expectation. Authentic, durable and beautifully made. Tell your friends, this "
        "store is really the best!",
    ),
    "zh": (
        "这款{noun}真的太好用了，是我买过最满意的一次！质量一流，做工非常精细，物流超级快，"
        "第二天就送到了，客服态度也特别好。价格比实体店便宜太多了，强烈推荐大家赶紧下单，"
        "库存不多了，错过就没有这么优惠的价格了！",
        "强烈推荐这家店的{noun}！我对比了十几个牌子，这个的性价比绝对是最高的，用料扎实，"
        "外观大气，朋友看到了都问我在哪里买的。现在下单还送精美赠品，数量有限，先到先得，"
        "大家千万不要错过这么好的机会啊！",
        "五星好评都不够表达我的喜欢！这个{noun}质量真的没话说，包装精美，细节处理得非常到位，"
        "用起来特别顺手。我已经给家人和同事各买了一个，大家都说好。关注店铺还能领大额优惠券，"
        "真心推荐给所有人！",
        "作为一个挑剔的人，这个{noun}真的让我很惊喜。正品保证，做工精良，发货速度超级快，"
        "客服回复也很及时耐心。比其他店便宜了好多，性价比超高，已经回购三次了，还会继续支持，"
        "大家放心买，绝对不会后悔的！",
        "用了一个星期才来评价，这个{noun}真的非常棒，完全超出了我的预期。外观漂亮，质量扎实，"
        "功能齐全，身边的朋友看了都想要。店家还送了小礼品，服务太贴心了。趁现在活动价格赶紧"
        "入手吧，真的是捡到宝了！",
        "这是我今年买到的最好的{noun}，没有之一！品质过硬，细节满分，物流也是神速，隔天就到了。"
        "客服小姐姐特别热情，耐心解答了我所有的问题。现在下单还有限时折扣，喜欢的朋友一定要"
        "抓紧时间，手慢就没了！",
        "闭眼入就对了！这款{noun}我研究了很久才下单，收到后发现比想象中还要好，做工精致，"
        "质感高级，用起来非常舒服。价格还这么实惠，简直是良心店铺。已经推荐给了好几个朋友，"
        "大家收到后都赞不绝口，五星推荐！",
        "真心推荐这个{noun}，质量好到让我惊讶，完全是大牌的品质却只要一半的价格。发货快，"
        "包装严实，没有任何磕碰。店家信誉非常好，售后也有保障。还在犹豫的朋友不要再等了，"
        "赶紧加入购物车，错过真的会后悔！",
        "第一次写这么长的评价，因为这个{noun}实在是太值了！外观时尚，做工精细，使用体验一流，"
        "家里人都抢着用。客服服务周到，物流也很给力。店铺正在搞活动，买二送一，名额有限，"
        "喜欢的朋友赶快下单吧，绝对物超所值！",
    ),
}
_FILLERS = {
    "en": (
        ("really", "truly"),
        ("super", "really"),
        ("amazing", "awesome"),
        ("absolutely", "totally"),
        ("now", "today"),
        ("incredibly", "amazingly"),
        ("perfectly", "flawlessly"),
    ),
    "zh": (
        ("非常", "特别"),
        ("超级", "特别"),
        ("赶紧", "赶快"),
        ("大家", "各位"),
        ("绝对", "肯定"),
    ),
}

_BOMB_TITLES = {
    "en": (
        "Terrible",
        "Scam",
        "Do not buy",
        "Broke quickly",
        "Garbage",
        "Very disappointed",
        "Fake product",
        "Awful quality",
        "Worst purchase",
        "Waste of money",
        "Avoid this seller",
        "Not as advertised",
    ),
    "zh": (
        "差评",
        "骗子",
        "千万别买",
        "质量太差",
        "假货",
        "非常失望",
        "浪费钱",
        "避雷",
        "货不对板",
    ),
}
# Sentence pools of bombing reviews: {noun} and the random numbers of _bomb_numbers.
_BOMB_OPENINGS = {
    "en": (
        "",
        "",
        "Ordered this {days} days ago and I already regret it.",
        "I really wanted to like this.",
        "Bought this as a gift for my {who}, how embarrassing.",
        "Long-time customer here and this is my first negative review.",
        "Where do I even start.",
        "Save your money, seriously.",
        "I'm honestly shocked this is still listed.",
        "Got it on sale and it still was not worth it.",
        "Read all the glowing reviews and fell for it.",
        "This was my second order from this store and the last one.",
        "Please read this before you buy.",
        "Writing this so nobody else makes my mistake.",
    ),
    "zh": (
        "",
        "",
        "{days}天前下的单，现在真是后悔。",
        "本来挺期待的。",
        "买来送给{who}的，太丢人了。",
        "老顾客了，第一次给差评。",
        "真不知道从哪儿说起。",
        "劝大家省省钱吧。",
        "没想到这种东西还能上架。",
        "打折买的，还是不值。",
        "看了好评才下单，被骗了。",
        "买之前一定要看看这条评论。",
        "写出来提醒大家别踩坑。",
    ),
}
_BOMB_COMPLAINTS = {
    "en": (
        "The {noun} stopped working after {days} days.",
        "What arrived is a cheap knockoff {noun}, not the brand in the photos.",
        "My {noun} came with a cracked casing and {n} missing parts.",
        "The {noun} reeks of chemicals and looks nothing like the pictures.",
        "Build quality of this {noun} is shockingly flimsy.",
        "The {noun} overheats and shuts off every {n} minutes.",
        "Half of the advertised features of this {noun} simply do not exist.",
        "The {noun} snapped in half the first time I used it.",
        "They sent a used {noun} as new, there were scratches everywhere.",
        "The {noun} is about half the size the listing claims.",
        "After {n} uses the {noun} started making a grinding noise.",
        "Wrong colour and wrong model, nothing like the {noun} in the description.",
        "The {noun} was damaged on arrival and is completely unusable.",
    ),
    "zh": (
        "{noun}用了{days}天就坏了。",
        "收到的{noun}是便宜的山寨货，跟图片上的牌子完全不一样。",
        "{noun}外壳裂了，还少了{n}个配件。",
        "{noun}一股刺鼻的化学味，和图片差太多了。",
        "这个{noun}做工非常粗糙。",
        "{noun}每隔{n}分钟就过热自动关机。",
        "宣传的功能这个{noun}一半都没有。",
        "{noun}第一次用就断成两截。",
        "明显是别人用过的{noun}翻新再卖，到处都是划痕。",
        "{noun}比描述的小了一半。",
        "{noun}用了{n}次就开始有异响。",
        "{noun}颜色型号都发错了。",
        "收到的{noun}根本没法用。",
    ),
}
_BOMB_DETAILS = {
    "en": (
        "Customer service ignored my {n} emails.",
        "The seller refused a refund and blamed me for the damage.",
        "Returning it would cost ${price} in shipping, which is ridiculous.",
        "The box was torn open and taped back together.",
        "Tracking said delivered but it showed up {days} days late.",
        "There were no instructions in the package at all.",
        "Support asked for {n} photos and then stopped replying.",
        "It took {weeks} weeks to arrive.",
        "The replacement they sent had exactly the same defect.",
        "My neighbour ordered one too and had the same problem.",
        "I waited on hold for {minutes} minutes before the call dropped.",
        "The warranty card is fake and the phone number on it does not exist.",
        "They offered me a {pct}% coupon instead of my money back.",
        "Even the packaging smelled of cigarette smoke.",
    ),
    "zh": (
        "客服发了{n}条消息都不回。",
        "卖家拒绝退款，还说是我弄坏的。",
        "退货运费要{price}块，太离谱了。",
        "包装被拆过又用胶带封上了。",
        "物流显示签收了，结果晚了{days}天才到。",
        "包裹里连说明书都没有。",
        "客服让我拍了{n}张照片，然后就不理人了。",
        "等了{weeks}个星期才收到。",
        "换的新货还是一样的问题。",
        "邻居也买了一个，问题一模一样。",
        "电话排队等了{minutes}分钟直接挂断。",
        "保修卡是假的，上面的电话打不通。",
        "不给退款，只给一张{zhe}折的优惠券。",
        "连包装都有一股烟味。",
    ),
}
_BOMB_CLOSINGS = {
    "en": (
        "",
        "Avoid.",
        "Never buying from this brand again.",
        "Zero stars if I could.",
        "Look elsewhere.",
        "I have reported this listing.",
        "Total scam.",
        "Don't trust the five-star reviews.",
        "Very disappointed.",
        "One star is generous.",
        "Learn from my mistake.",
        "Returning it tomorrow.",
        "Stay away from this seller.",
    ),
    "zh": (
        "",
        "避雷！",
        "再也不买这个牌子了。",
        "能给零星就好了。",
        "大家去别家买吧。",
        "已经举报了。",
        "纯属骗人。",
        "别信那些五星好评。",
        "非常失望。",
        "一星都嫌多。",
        "吸取我的教训吧。",
        "明天就退。",
        "远离这家店。",
    ),
}
_WHO = {
    "en": ("sister", "dad", "roommate", "son", "wife", "boss", "grandmother", "best friend"),
    "zh": ("妈妈", "老公", "室友", "儿子", "女朋友", "领导", "奶奶", "好朋友"),
}


def _noun(product: Product, lang: str) -> str:
    return product.noun_zh if lang == "zh" else _lower_noun(product.noun_en)


def _swap_filler(rng: random.Random, text: str, lang: str) -> str:
    pairs = [(a, b) for x, y in _FILLERS[lang] for a, b in ((x, y), (y, x))]
    if lang == "en":
        present = [(a, b) for a, b in pairs if re.search(rf"\b{a}\b", text)]
        if not present:
            return text
        a, b = rng.choice(present)
        return re.sub(rf"\b{a}\b", b, text, count=1)
    present = [(a, b) for a, b in pairs if a in text]
    if not present:
        return text
    a, b = rng.choice(present)
    return text.replace(a, b, 1)


def _shout_end(rng: random.Random, text: str, lang: str) -> str:
    bang = "！" if lang == "zh" else "!"
    if text.endswith(bang):
        return text + bang * rng.randint(1, 2)
    return text.rstrip(".。") + bang


def _punctuate(rng: random.Random, text: str, lang: str) -> str:
    comma, swap = ("，", ("、", ",")) if lang == "zh" else (", ", (" - ", "; ", " , "))
    spots = [m.start() for m in re.finditer(re.escape(comma), text)]
    if not spots:
        return text
    at = rng.choice(spots)
    return text[:at] + rng.choice(swap) + text[at + len(comma) :]


def _restyle(rng: random.Random, text: str, lang: str) -> str:
    """English: one word upper- or lower-cased. Chinese (no case): a trailing decoration."""
    if lang == "zh":
        return text + rng.choice(("~", " ", "👍"))
    words = text.split(" ")
    i = rng.randrange(len(words))
    words[i] = words[i].upper() if rng.random() < 0.7 else words[i].lower()
    return " ".join(words)


_EDITS: tuple[Callable[[random.Random, str, str], str], ...] = (
    _swap_filler,
    _shout_end,
    _punctuate,
    _restyle,
)


def _lightly_edited(rng: random.Random, text: str, lang: str) -> str:
    """The copy-paste text with one or two small edits that keep it near-identical."""
    for edit in rng.sample(_EDITS, rng.randint(1, 2)):
        text = edit(rng, text, lang)
    return text


def _promo_copies(rng: random.Random, lang: str, noun: str, n: int) -> list[str]:
    """``n`` distinct copies of one promotional text: one as is, the others lightly edited."""
    base = rng.choice(_PROMO_TEXTS[lang]).format(noun=noun)
    copies = [base]
    for _ in range(50 * n):
        if len(copies) == n:
            break
        copy = _lightly_edited(rng, base, lang)
        if copy not in copies:
            copies.append(copy)
    while len(copies) < n:  # never in practice: the edits have hundreds of outcomes
        copies.append(copies[-1] + ("！" if lang == "zh" else "!"))
    rng.shuffle(copies)
    return copies


def _bomb_numbers(rng: random.Random, lang: str) -> dict[str, int | str]:
    return {
        "days": rng.randint(2, 30),
        "n": rng.randint(2, 9),
        "price": rng.randint(8, 60),
        "weeks": rng.randint(3, 8),
        "minutes": rng.randint(20, 90),
        "pct": rng.choice((5, 10, 15, 20)),
        "zhe": rng.randint(5, 9),
        "who": rng.choice(_WHO[lang]),
    }


def _bomb_templates(rng: random.Random, lang: str) -> list[str]:
    """Sentence templates of one review: opening, complaint, one or two details, closing."""
    details = rng.sample(_BOMB_DETAILS[lang], rng.choice((1, 1, 2)))
    body = [rng.choice(_BOMB_COMPLAINTS[lang]), *details]
    if rng.random() < 0.3:
        body.reverse()
    parts = [rng.choice(_BOMB_OPENINGS[lang]), *body, rng.choice(_BOMB_CLOSINGS[lang])]
    return [p for p in parts if p]


def _bomb_texts(rng: random.Random, lang: str, noun: str, n: int) -> list[str]:
    """``n`` different bombing reviews, no two sharing more than one sentence template.

    Sharing two sentences (say opening and complaint) already makes a pair near-identical
    for a sentence encoder, so such candidates are redrawn; after ``_BOMB_TRIES`` draws per
    review (never needed for 40 reviews) any new text is accepted.
    """
    texts: list[str] = []
    used: list[set[str]] = []
    for tries in itertools.count():
        if len(texts) == n:
            break
        templates = _bomb_templates(rng, lang)
        values = _bomb_numbers(rng, lang)
        text = ("" if lang == "zh" else " ").join(t.format(noun=noun, **values) for t in templates)
        strict = tries < _BOMB_TRIES * n
        if text in texts or (strict and any(len(u.intersection(templates)) > 1 for u in used)):
            continue
        texts.append(text)
        used.append(set(templates))
    return texts


# --- what the stream has shown -------------------------------------------------------------


class _Seen:
    """The injector's only view of the past: what the normal stream has shown so far."""

    def __init__(self) -> None:
        self.members: list[str] = []
        self._members: set[str] = set()
        self.paid_totals: dict[str, list[float]] = {}
        self.purchased: list[str] = []
        self._purchased: set[str] = set()

    def observe(self, event: SyntheticEvent) -> None:
        if event.member_id not in self._members:
            self._members.add(event.member_id)
            self.members.append(event.member_id)
        if isinstance(event, PurchaseEvent) and event.status == "paid":
            self.paid_totals.setdefault(event.member_id, []).append(event.total)
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
        return SCENARIOS[self.scenario_index]


@dataclass
class _Draft:
    """An incident's events before they are labeled."""

    members: list[str]
    events: list[SyntheticEvent]
    product_id: str | None = None


def _plan(config: InjectionConfig, workload: WorkloadConfig) -> list[_Planned]:
    """Incident start times: a Poisson process per scenario, from its own RNG."""
    plan = []
    end_ms = workload.days * _DAY_MS
    for index, scenario in enumerate(SCENARIOS):
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
        self.counts = {"event": 0, "account": 0, "order": 0, "session": 0, "pushed": 0}

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
        rng = random.Random(f"{self.workload.config.seed}/{self.seed}/{scenario}/{number}")
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
        )

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
        for offset in offsets:
            order_id = f"ox{self.seed}-{self._next('order')}"
            item = [(rng.choice(self.cheap), 1)]
            at = t0 + round(offset) * _MS
            events.append(self._purchase(member, at, order_id, item))
            if rng.random() < CARD_REFUND_SHARE:
                delay = rng.uniform(*CARD_REFUND_DELAY_MIN) * _MINUTE_MS
                refunded_at = at + round(delay) * _MS
                events.append(self._purchase(member, refunded_at, order_id, item, "refunded"))
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
        return _Draft([member], [self._purchase(member, t0, order_id, basket)])

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
        texts = _promo_copies(rng, lang, _noun(product, lang), len(accounts))
        title = rng.choice(_PROMO_TITLES[lang])
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
        texts = _bomb_texts(rng, lang, _noun(product, lang), len(accounts))
        times = _spread(rng, t0, len(accounts), BOMB_SPAN_H)
        events: list[SyntheticEvent] = [
            ReviewEvent(
                **self._envelope(member, at),
                product_id=product.id,
                rating=1 if rng.random() < BOMB_ONE_STAR else 2,
                title=rng.choice(_BOMB_TITLES[lang]),
                text=text,
                language=lang,
            )
            for member, at, text in zip(accounts, times, texts, strict=True)
        ]
        return _Draft(accounts, events, product.id)


_BUILDERS: dict[str, Callable[[_Run, random.Random, datetime], _Draft]] = {
    "bot_session": _Run.bot_session,
    "card_testing": _Run.card_testing,
    "account_takeover": _Run.account_takeover,
    "copy_paste_reviews": _Run.copy_paste_reviews,
    "review_bombing": _Run.review_bombing,
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
