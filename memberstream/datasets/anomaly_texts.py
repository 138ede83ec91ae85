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


# --- rating/text mismatches and honest mixed reviews -------------------------------------
#
# A mismatch is one review whose stars contradict its text: 5 stars over a complaint, or
# 1 star over praise. "obvious" texts say it loudly ("Terrible, broke in a day");
# "understated" ones say it the way many real buyers do, politely, with no strong word
# ("It stopped charging after a week, not what I hoped for"). The honest mixed reviews
# (a hard negative) hold praise and complaint at once but their verdict agrees with the
# stars: 5 stars "pricey but worth every cent", 4 stars with a small complaint, 1-2 stars
# with faint praise. Each text is one or two sentences of a pool and, for some, a closing.

MISMATCH_TONES = ("obvious", "understated")
HONEST_KINDS = ("mixed_top", "small_complaint", "faint_praise")
"""Honest mixed reviews: 5 stars with a complaint, 4 stars with a small complaint, 1-2
stars with faint praise."""

_Pools = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]
"""(titles, sentences, closings); an empty string is "none"."""

_MISMATCH: dict[tuple[str, str], dict[str, _Pools]] = {
    ("obvious", "negative"): {
        "en": (
            ("Terrible", "Garbage", "Do not buy", "Awful", "Scam", "Worst ever"),
            (
                "Terrible, broke in a day.",
                "Complete junk, the {noun} fell apart the first time I used it.",
                "Worst purchase I have ever made, it arrived broken and the seller refuses "
                "to refund.",
                "Absolute garbage, it stopped working after {n} hours.",
                "Fake, cheap and dangerous: the {noun} started smoking when I plugged it in.",
                "Awful quality, horrible smell, nothing like the pictures.",
                "Do not buy this {noun}, it is a scam.",
                "Broken on arrival, useless customer service, a total waste of money.",
                "The {noun} is a disaster, it cracked within minutes.",
                "Horrible. Missing parts, scratched all over and it does not even turn on.",
            ),
            ("", "Avoid!", "Never again.", "Zero stars if I could.", "Returning it."),
        ),
        "zh": (
            ("太差了", "垃圾", "千万别买", "骗子", "差评", "最差的一次"),
            (
                "太差了，一天就坏了。",
                "垃圾，{noun}第一次用就散架了。",
                "买过最差的东西，收到就是坏的，卖家还不给退款。",
                "质量极差，用了{n}个小时就不动了。",
                "假货，插上电就冒烟，太危险了。",
                "做工粗糙，味道刺鼻，和图片完全不一样。",
                "千万别买这个{noun}，骗人的。",
                "收到就坏，客服不理人，纯属浪费钱。",
                "{noun}几分钟就裂了，简直是灾难。",
                "太烂了，少配件，到处是划痕，根本开不了机。",
            ),
            ("", "避雷！", "再也不买了。", "能给零星就好了。", "已经退货。"),
        ),
    },
    ("understated", "negative"): {
        "en": (
            ("", "", "Hmm", "Not quite", "Not what I expected", "Could be better", "Meh"),
            (
                "It stopped charging after {days} days, not what I hoped for.",
                "The {noun} works, mostly. It disconnects every so often and I have to restart it.",
                "Smaller than I expected and the finish is already wearing off.",
                "Took {weeks} weeks to arrive and one of the parts was missing.",
                "It is fine for a day or two, then it starts to rattle.",
                "Honestly I expected a bit more for the price.",
                "Colour looks quite different from the photos and the seams are uneven.",
                "The battery lasts about an hour, less than half of what the listing says.",
                "The instructions were confusing and I still can't get it to pair with my phone.",
                "My {noun} came with a small crack near the hinge. Still usable, I suppose.",
                "It was okay at first, but after {n} uses the button stopped responding.",
                "Not really what the description promised.",
                "Had to send the first one back, and the replacement has the same issue.",
            ),
            (
                "",
                "",
                "A bit disappointed.",
                "Not sure I'd order it again.",
                "Oh well.",
                "I'll probably return it.",
                "Still waiting to hear back from the seller.",
                "Expected better.",
            ),
        ),
        "zh": (
            ("", "", "一般", "有点失望", "不太理想", "还行吧", "和想的不一样"),
            (
                "用了{days}天就不亮了，有点失望。",
                "{noun}基本能用，就是时不时断开，得重启一下。",
                "比想象中小，表面的漆已经开始掉了。",
                "等了{weeks}个星期才到，还少了一个配件。",
                "用了一两天就开始有点松动了。",
                "说实话，这个价格我以为会更好一些。",
                "颜色和图片差得有点多，走线也不太整齐。",
                "电池只能撑一个小时左右，和介绍说的差不少。",
                "说明书看不太懂，到现在也没连上手机。",
                "收到的时候边上有一道小裂痕，凑合着用吧。",
                "刚开始还行，用了{n}次按键就不灵了。",
                "跟描述的不太一样。",
                "退了一次，换来的还是同样的问题。",
            ),
            (
                "",
                "",
                "有点失望。",
                "下次可能不会再买了。",
                "算了。",
                "考虑退掉。",
                "等客服回复吧。",
            ),
        ),
    },
    ("obvious", "positive"): {
        "en": (
            ("Love it!", "Perfect", "Amazing", "Excellent", "Best buy"),
            (
                "Absolutely love this {noun}, best purchase of the year!",
                "Perfect in every way, works great and looks amazing.",
                "Excellent quality and super fast delivery, highly recommend.",
                "Fantastic {noun}, my whole family loves it.",
                "Wonderful, exactly as described and even better in person.",
                "Great value, great quality, I already ordered another one.",
                "Amazing! Works flawlessly and the battery lasts forever.",
                "Best {noun} I have ever owned, totally worth it.",
            ),
            ("", "Five stars!", "Love it!", "Highly recommended.", "Will buy again."),
        ),
        "zh": (
            ("超赞", "完美", "非常满意", "好评", "买对了"),
            (
                "太喜欢这个{noun}了，今年买得最值的东西！",
                "各方面都很完美，好用又好看。",
                "质量非常好，物流超快，强烈推荐。",
                "{noun}很棒，全家人都喜欢。",
                "和描述完全一致，实物比图片还好看。",
                "性价比超高，已经又下了一单。",
                "太好用了，续航特别久。",
                "买过最好的{noun}，非常值。",
            ),
            ("", "五星好评！", "超级喜欢！", "强烈推荐。", "会回购的。"),
        ),
    },
    ("understated", "positive"): {
        "en": (
            ("", "", "Good", "Fine", "Does the job", "Decent"),
            (
                "Works fine so far, no complaints.",
                "Does what it says. Arrived on time.",
                "The {noun} is pretty decent for the price.",
                "I have used it every day for {weeks} weeks now and it holds up well.",
                "Nice enough, fits well and the colour matches the photos.",
                "It's sturdier than it looks.",
                "My {who} uses it daily and seems happy with it.",
                "Good little {noun}, easy to set up.",
                "Comfortable and quiet, does the job.",
            ),
            ("", "", "Would probably buy again.", "Can't complain.", "Happy enough."),
        ),
        "zh": (
            ("", "", "还不错", "可以", "挺好", "能用"),
            (
                "目前用着还行，没什么问题。",
                "东西和描述的一样，按时到的。",
                "这个价格来说{noun}挺不错的。",
                "每天都在用，已经{weeks}个星期了，挺耐用。",
                "还可以，尺寸合适，颜色和图片一样。",
                "比看起来结实。",
                "{who}每天都在用，挺满意的。",
                "小巧好用，安装也简单。",
                "舒服，声音也不大，够用了。",
            ),
            ("", "", "应该会回购。", "没什么可挑的。", "挺满意的。"),
        ),
    },
}

_HONEST: dict[str, dict[str, _Pools]] = {
    "mixed_top": {
        "en": (
            ("", "Worth it", "Great buy", "Very happy", "Excellent"),
            (
                "Pricey, but worth every cent.",
                "It took {days} days longer than promised to arrive, but the {noun} itself is "
                "perfect.",
                "The box was a bit dented. The {noun} inside is flawless and works great.",
                "Setup was fiddly at first, now I love it.",
                "Not the cheapest option, but the quality is outstanding.",
                "The instructions are useless, the product is excellent.",
                "I was worried after reading some bad reviews, but mine works perfectly.",
                "A little heavier than I expected, otherwise fantastic.",
                "The smell went away after a day. Great {noun}, very happy with it.",
                "Had one small issue, the seller fixed it in a day. Superb service.",
            ),
            ("", "", "Would buy again.", "Recommended."),
        ),
        "zh": (
            ("", "值得", "很满意", "好评", "买对了"),
            (
                "有点贵，但是物有所值。",
                "物流比说的慢了{days}天，不过{noun}本身很完美。",
                "外包装有点压坏了，里面的{noun}完好无损，很好用。",
                "一开始安装有点麻烦，现在非常喜欢。",
                "不算便宜，但是质量真的没话说。",
                "说明书写得很差，东西是真的好。",
                "看了差评有点担心，结果我这个用着很完美。",
                "比想象中重一点，其他都很棒。",
                "刚拆开有点味道，放了一天就没了，{noun}很好，很满意。",
                "有个小问题，卖家一天就解决了，服务很好。",
            ),
            ("", "", "会回购。", "推荐。"),
        ),
    },
    "small_complaint": {
        "en": (
            ("", "Good", "Pretty good", "Nice"),
            (
                "Good {noun}, though the cable is a bit short.",
                "Works well. Wish it came in more colours.",
                "Solid and comfortable, the strap could be longer.",
                "Really nice, only the lid is a little stiff.",
                "Happy with it overall, the packaging was excessive.",
                "Does the job, a bit noisy at full speed.",
                "Good quality, delivery was a couple of days late.",
            ),
            ("", "", "Would buy again."),
        ),
        "zh": (
            ("", "不错", "挺好"),
            (
                "{noun}不错，就是线有点短。",
                "挺好用的，希望能多几个颜色。",
                "结实也舒服，带子再长一点就好了。",
                "很好，只是盖子有点紧。",
                "整体满意，包装有点过度了。",
                "够用，最高档有点吵。",
                "质量好，快递晚了两天。",
            ),
            ("", "", "会回购。"),
        ),
    },
    "faint_praise": {
        "en": (
            ("", "Disappointed", "Not good", "Broke quickly"),
            (
                "Looks nice, but it broke after two days.",
                "The colour is pretty. That's about the only good thing I can say.",
                "Fast shipping, shame the {noun} doesn't work.",
                "Nice packaging, poor product. It stopped working within a week.",
                "The seller was polite, but the {noun} is flimsy and already cracked.",
                "Cute design, terrible battery, it lasts maybe {n} minutes.",
                "It's cheap, I'll give it that. It falls apart if you look at it.",
                "Comfortable for the first hour, then it starts to hurt.",
                "Good idea, bad execution. The buttons stick and the lid won't close.",
            ),
            ("", "", "Returning it.", "Not recommended."),
        ),
        "zh": (
            ("", "失望", "不好", "坏得太快"),
            (
                "外观挺好看，可是两天就坏了。",
                "颜色挺漂亮，也就这一个优点了。",
                "发货挺快，可惜{noun}不能用。",
                "包装不错，东西很差，一个星期就不动了。",
                "卖家态度挺好，但是{noun}太单薄，已经裂了。",
                "设计挺可爱，电池太差，只能用{n}分钟。",
                "便宜是便宜，一碰就散。",
                "刚戴上还舒服，一个小时后就开始疼。",
                "想法不错，做得太差，按键卡住，盖子也关不上。",
            ),
            ("", "", "准备退了。", "不推荐。"),
        ),
    },
}


def _compose(rng: random.Random, pools: _Pools, lang: str, noun: str) -> tuple[str, str]:
    """A title and a text: one sentence of the pool (a second one 30% of the time), then
    a closing (often none); numbers and the relative drawn as the bombing texts draw them."""
    titles, sentences, closings = pools
    picked = rng.sample(sentences, 2 if rng.random() < 0.3 else 1)
    parts = [*picked, rng.choice(closings)]
    values = _bomb_numbers(rng, lang)
    sep = "" if lang == "zh" else " "
    text = sep.join(p.format(noun=noun, **values) for p in parts if p)
    return rng.choice(titles), text


def mismatch_review(
    rng: random.Random, tone: str, sentiment: str, lang: str, noun: str
) -> tuple[str, str]:
    """Title and text of a review whose text is ``sentiment`` ("negative" under 5 stars,
    "positive" under 1 star), said in an ``obvious`` or ``understated`` tone."""
    return _compose(rng, _MISMATCH[(tone, sentiment)][lang], lang, noun)


def honest_mixed_review(rng: random.Random, kind: str, lang: str, noun: str) -> tuple[str, str]:
    """Title and text of an honest review of :data:`HONEST_KINDS` whose mixed text agrees
    with its stars."""
    return _compose(rng, _HONEST[kind][lang], lang, noun)
