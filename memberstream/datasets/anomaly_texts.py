"""Review texts of the injected review-spam incidents (:mod:`memberstream.datasets.anomalies`).

Copy-paste rings post one long promotional text with light edits that keep the
copies near-identical for a sentence encoder (edits that moved all-MiniLM-L6-v2
embeddings noticeably are left out). Bombing campaigns compose each review from
independent fragment pools (opening, complaint, detail with numbers, closing), no
two sharing more than one template, so they are all different: a bombing is a
burst of low ratings, not a copy-paste. English and Chinese.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable

from memberstream.datasets.synthetic import Product, _lower_noun

_BOMB_TRIES = 200
"""Attempts per text, per review, before the one-shared-template rule is relaxed."""

# ----------------------------------------------------------------------------------

PROMO_TITLES = {
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

BOMB_TITLES = {
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


def product_noun(product: Product, lang: str) -> str:
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


def promo_copies(rng: random.Random, lang: str, noun: str, n: int) -> list[str]:
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


def bomb_texts(rng: random.Random, lang: str, noun: str, n: int) -> list[str]:
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
