"""Review texts of the independent scenario family (:mod:`independent_scenarios`).

English and Chinese pools, kept apart from the normal-traffic texts in
:mod:`memberstream.datasets.synthetic` so that neither family's wording leaks into the
other. Every composer takes a seeded ``random.Random`` and returns ``(title, text)``.
Sentences are stored with a ``{noun}`` slot filled from the product's noun.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

Pool = tuple[str, ...]
BiPool = dict[str, Pool]


def noun_for(lang: str, noun_en: str, noun_zh: str) -> str:
    """The product noun as it reads inside a sentence: lowercased English, or Chinese."""
    if lang == "zh":
        return noun_zh
    words = noun_en.split()
    return " ".join(w if w.isupper() or any(c.isdigit() for c in w) else w.lower() for w in words)


def join(lang: str, sentences: Sequence[str]) -> str:
    return ("" if lang == "zh" else " ").join(s for s in sentences if s)


def _fill(sentences: Sequence[str], noun: str, days: int = 0) -> list[str]:
    return [s.format(noun=noun, n=days) for s in sentences]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- defective product: real buyers complaining about the same fault -------------------------

DEFECTS: dict[str, BiPool] = {
    "dies": {
        "en": (
            "Stopped working after {n} days.",
            "It died on day {n} and won't turn on at all.",
            "Worked fine for {n} days, then nothing.",
            "The {noun} just quit on me after {n} days of light use.",
            "Dead after {n} days: no lights, no response.",
        ),
        "zh": (
            "用了{n}天就坏了，完全开不了机。",
            "第{n}天突然就不工作了。",
            "才用{n}天就没反应了。",
            "{noun}用了{n}天就罢工了。",
        ),
    },
    "battery": {
        "en": (
            "The battery barely lasts an hour.",
            "It won't hold a charge overnight.",
            "Charges to full and is empty again by lunch.",
            "Battery life is nowhere near what the listing claims.",
        ),
        "zh": (
            "电池根本撑不过一个小时。",
            "充满电放一晚上就没电了。",
            "早上充满，中午就没电了。",
            "续航和宣传的差太远了。",
        ),
    },
    "overheat": {
        "en": (
            "It gets too hot to touch after a few minutes.",
            "Runs alarmingly hot even when idle.",
            "Heats up so much I'm afraid to leave it plugged in.",
        ),
        "zh": ("用几分钟就烫得没法碰。", "待机状态下也发烫。", "发热太严重了，不敢一直插着电。"),
    },
    "crack": {
        "en": (
            "A crack appeared along the seam within a week.",
            "The casing split the first time it slipped off a table.",
            "The plastic cracked near the edge after normal use.",
            "Found a hairline crack on the side after a few days.",
        ),
        "zh": (
            "不到一周接缝处就裂开了。",
            "从桌上滑下来一次外壳就裂了。",
            "正常使用几天边缘就开裂了。",
            "没几天侧面就出现了裂纹。",
        ),
    },
    "connect": {
        "en": (
            "It keeps dropping the connection every few minutes.",
            "Pairing fails more often than it works.",
            "Disconnects constantly, even right next to my phone.",
        ),
        "zh": ("每隔几分钟就断开连接。", "配对十次有八次失败。", "离手机很近也一直断连。"),
    },
    "binding": {
        "en": (
            "Pages started falling out on the first read.",
            "The binding came apart by chapter three.",
            "The spine cracked and a whole section came loose.",
        ),
        "zh": ("第一次翻就开始掉页。", "看到第三章装订就散了。", "书脊裂开，整整一沓纸掉了出来。"),
    },
    "misprint": {
        "en": (
            "A block of pages is printed twice and another is missing.",
            "Several pages are blank or smudged.",
            "The print is so faint in places that it's unreadable.",
        ),
        "zh": (
            "有一部分页面重复印刷，另一部分缺页。",
            "好几页是空白或者印花了。",
            "有些地方印得太淡，根本看不清。",
        ),
    },
    "disc": {
        "en": (
            "The disc skips on every player I've tried.",
            "It freezes halfway through on two different players.",
            "Crackles and skips from the second track on.",
        ),
        "zh": ("换了几台机器都跳碟。", "两台播放器都在中途卡住。", "从第二首开始就有杂音和跳音。"),
    },
    "smell": {
        "en": (
            "It has a strong chemical smell that won't go away.",
            "It still reeks of plastic after airing out for a week.",
            "The odour is so strong I had to keep it on the balcony.",
        ),
        "zh": (
            "有很重的化学味，一直散不掉。",
            "放了一周塑料味还是很大。",
            "味道太冲，只能放在阳台上。",
        ),
    },
    "irritation": {
        "en": (
            "It gave me a rash the first time I used it.",
            "My skin turned red and itchy within minutes.",
            "Broke me out badly, and I don't have sensitive skin.",
        ),
        "zh": (
            "第一次用就过敏起疹子了。",
            "用上几分钟皮肤就发红发痒。",
            "我不是敏感肌，用了也爆痘了。",
        ),
    },
    "leak": {
        "en": (
            "It leaks from the bottom no matter how tightly I close it.",
            "The seal failed and it leaked everywhere.",
            "Drips constantly from the joint.",
        ),
        "zh": ("不管拧多紧底部都漏。", "密封圈不行，漏得到处都是。", "接口处一直滴水。"),
    },
    "coating": {
        "en": (
            "The coating started flaking after a few uses.",
            "The finish is peeling off after the first wash.",
            "The surface bubbled and came off in patches.",
        ),
        "zh": ("用了几次涂层就开始掉。", "洗了一次表面就脱皮了。", "涂层起泡，一块一块地掉。"),
    },
    "broke": {
        "en": (
            "Something inside snapped within the first few days.",
            "A part broke off the first time I used it properly.",
            "It fell apart with very ordinary use.",
            "A piece snapped off on day {n}.",
        ),
        "zh": (
            "没用几天里面就有东西断了。",
            "正常使用第一次就掉了一个零件。",
            "很普通地用着就散架了。",
            "第{n}天就断了一块。",
        ),
    },
    "parts": {
        "en": (
            "Two screws were missing and the holes don't line up.",
            "The pieces don't fit together the way the manual shows.",
            "Parts were missing and the ones included don't match.",
        ),
        "zh": (
            "少了两颗螺丝，孔位也对不上。",
            "零件根本装不到一起，和说明书不一样。",
            "缺零件，而且附带的零件型号不对。",
        ),
    },
    "wobble": {
        "en": (
            "Even fully assembled it wobbles badly.",
            "It leans to one side no matter how I tighten it.",
            "Rocks back and forth every time I touch it.",
        ),
        "zh": ("装好以后晃得厉害。", "怎么拧紧都往一边歪。", "一碰就前后摇晃。"),
    },
    "fade": {
        "en": (
            "The colour faded badly after a couple of weeks.",
            "It bleached out in the sun within days.",
            "The colour ran in the first wash.",
        ),
        "zh": ("没两周颜色就褪得很厉害。", "晒了几天就褪色了。", "第一次洗就掉色了。"),
    },
    "seams": {
        "en": (
            "The stitching came apart after one wear.",
            "A seam split the first time I washed it.",
            "Threads started unravelling within days.",
        ),
        "zh": ("穿了一次就开线了。", "洗了一次接缝就裂开了。", "没几天线头就开始散。"),
    },
    "sizing": {
        "en": (
            "The sizing is way off, two sizes smaller than the chart.",
            "It's cut completely differently from the size guide.",
            "Nothing like the measurements on the listing.",
        ),
        "zh": (
            "尺码严重偏小，比尺码表小了两个码。",
            "版型和尺码表完全不一样。",
            "和页面上写的尺寸差太多了。",
        ),
    },
    "sole": {
        "en": (
            "The sole started peeling away from the upper within a week.",
            "The glue gave out and the sole flaps when I walk.",
            "A crack went right across the sole after a few walks.",
        ),
        "zh": ("一周鞋底就开胶了。", "胶水不牢，走路时鞋底一张一合。", "走了几次鞋底就横着裂了。"),
    },
    "tarnish": {
        "en": (
            "It tarnished within days of wearing it.",
            "The plating rubbed off and left a green mark on my skin.",
            "Turned dull and discoloured after a week.",
        ),
        "zh": ("戴了几天就氧化发黑了。", "镀层掉了，皮肤上留下绿印。", "一周就暗淡变色了。"),
    },
    "stale": {
        "en": (
            "It arrived stale even though the date is months away.",
            "Tastes off, like it was stored somewhere hot.",
            "Half of it had clumped together and tasted old.",
        ),
        "zh": (
            "日期还早，但收到就不新鲜了。",
            "味道不对，像是在高温下放过。",
            "一半都结块了，吃起来像陈货。",
        ),
    },
    "packaging": {
        "en": (
            "The packaging was torn open and half of it spilled.",
            "The seal was broken on arrival.",
            "Every bag in the box had split at the seam.",
        ),
        "zh": ("包装破了，洒了一半。", "收到时封口就是开的。", "箱子里每一袋都裂开了。"),
    },
    "fit": {
        "en": (
            "It doesn't fit the models the listing says it does.",
            "It won't stay in place in any car I've tried.",
            "Keeps slipping off after a few minutes of driving.",
        ),
        "zh": ("根本不适配页面上写的车型。", "试了几辆车都固定不住。", "开几分钟就滑下来了。"),
    },
}

DEFECTS_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "electronics": ("dies", "battery", "overheat", "connect", "crack"),
    "computers": ("dies", "overheat", "connect", "crack"),
    "cell_phones": ("dies", "battery", "overheat", "crack"),
    "video_games": ("dies", "connect", "crack"),
    "books": ("binding", "misprint"),
    "movies_music": ("disc", "crack"),
    "beauty": ("smell", "irritation", "leak"),
    "health_household": ("leak", "smell", "broke"),
    "home_kitchen": ("coating", "broke", "smell", "leak"),
    "furniture": ("parts", "wobble", "crack"),
    "garden_outdoor": ("leak", "crack", "fade"),
    "sports_outdoors": ("seams", "crack", "smell"),
    "toys_games": ("parts", "broke", "smell"),
    "fashion_women": ("seams", "fade", "sizing"),
    "fashion_men": ("seams", "fade", "sizing"),
    "shoes": ("sole", "seams", "sizing"),
    "jewelry_watches": ("tarnish", "broke"),
    "grocery": ("stale", "packaging"),
    "pet_supplies": ("broke", "smell", "packaging"),
    "baby": ("broke", "parts", "smell"),
    "automotive": ("dies", "broke", "fit"),
}

_DEFECT_OPENERS: BiPool = {
    "en": (
        "Bought this when it first came out.",
        "Was really looking forward to this one.",
        "Ordered it to replace my old one.",
        "Got it as a birthday present for my partner.",
        "Second thing I've bought from this brand.",
        "Picked this up from the new arrivals.",
        "I rarely write reviews but this needs saying.",
    ),
    "zh": (
        "新品一上架就买了。",
        "期待了很久。",
        "买来替换旧的。",
        "买来给家人当生日礼物。",
        "这个牌子买过好几次了。",
        "在新品推荐里看到的。",
        "平时很少写评价。",
    ),
}
_DEFECT_OUTCOMES: BiPool = {
    "en": (
        "Returning it.",
        "Support sent a replacement with the exact same problem.",
        "Still waiting for the seller to reply.",
        "Looks like a bad batch, hold off for now.",
        "Disappointed, because the first impression was good.",
        "Asked for a refund.",
        "Not what I expect at this price.",
    ),
    "zh": (
        "已经申请退货。",
        "客服换了一个新的，还是同样的问题。",
        "联系卖家还没回复。",
        "估计这批有问题，建议先别买。",
        "刚到手印象还不错，太失望了。",
        "已申请退款。",
        "这个价格不应该是这种质量。",
    ),
}
_DEFECT_SOFTENERS: BiPool = {
    "en": (
        "Looked great out of the box and the price was fair.",
        "Design is nice, I'll give it that.",
        "Delivery was quick at least.",
    ),
    "zh": ("刚开箱时看着不错，价格也合适。", "设计还是挺好看的。", "至少发货挺快。"),
}
_DEFECT_TITLES: dict[str, dict[int, Pool]] = {
    "en": {
        1: ("Defective", "Broke within days", "Bad batch?", "Very disappointed", "Not reliable"),
        2: ("Disappointing", "Promising but flawed", "Quality issues", "Not as good as hoped"),
    },
    "zh": {
        1: ("质量有问题", "没几天就坏了", "这批有问题", "非常失望", "不靠谱"),
        2: ("有点失望", "质量一般", "不太满意"),
    },
}


def defect_theme(rng: random.Random, category: str) -> str:
    return rng.choice(DEFECTS_BY_CATEGORY.get(category, ("broke",)))


def defect_review(
    rng: random.Random, lang: str, theme: str, rating: int, noun: str, days_owned: int = 3
) -> tuple[str, str]:
    """A buyer's own account of the product's fault (1-2 stars), ``days_owned`` after buying."""
    days = rng.randint(1, max(1, days_owned))
    parts: list[str] = []
    if rng.random() < 0.6:
        parts.append(rng.choice(_DEFECT_OPENERS[lang]))
    parts.append(_cap(rng.choice(DEFECTS[theme][lang])))
    if rating >= 2 and rng.random() < 0.7:
        parts.append(rng.choice(_DEFECT_SOFTENERS[lang]))
    parts.extend(rng.sample(_DEFECT_OUTCOMES[lang], rng.randint(1, 2)))
    return rng.choice(_DEFECT_TITLES[lang][rating]), join(lang, _fill(parts, noun, days))


# --- friends: same things praised, each in their own words -----------------------------------

FRIEND_ASPECTS: dict[str, BiPool] = {
    "quality": {
        "en": (
            "Really well made, feels sturdy.",
            "The build quality is excellent.",
            "Solid construction, nothing feels cheap.",
            "You can tell it's made with care.",
        ),
        "zh": (
            "做工很扎实，用着放心。",
            "质量非常好。",
            "用料很足，一点都不廉价。",
            "看得出来做得很用心。",
        ),
    },
    "value": {
        "en": (
            "Great value for what it costs.",
            "Worth every cent.",
            "For the price it's a steal.",
            "Much better than I expected at this price.",
        ),
        "zh": (
            "性价比很高。",
            "这个价钱太值了。",
            "花这点钱买到这个，很划算。",
            "比预想的好太多，价格还实惠。",
        ),
    },
    "easy": {
        "en": (
            "Very easy to set up and use.",
            "Took me five minutes to figure out.",
            "Simple to use right out of the box.",
            "No learning curve at all.",
        ),
        "zh": (
            "上手很简单。",
            "五分钟就搞明白怎么用了。",
            "开箱即用，很方便。",
            "完全不需要学习。",
        ),
    },
    "looks": {
        "en": (
            "Looks even nicer in person.",
            "The design is clean and stylish.",
            "It's really good-looking.",
            "Nicer colour than in the photos.",
        ),
        "zh": ("实物比图片还好看。", "设计简洁又大方。", "颜值很高。", "颜色比照片上的更好看。"),
    },
    "daily": {
        "en": (
            "I've used it every day since it arrived.",
            "It's become part of my daily routine.",
            "Use it daily and it still works like new.",
            "Gets used every single day in our house.",
        ),
        "zh": (
            "到货后每天都在用。",
            "已经成了日常必备。",
            "天天用，还跟新的一样。",
            "家里每天都离不开它。",
        ),
    },
    "delivery": {
        "en": (
            "Arrived quickly and well packed.",
            "Shipping was fast and the box was in perfect shape.",
            "Delivered a day early, nicely packaged.",
            "Came sooner than promised.",
        ),
        "zh": (
            "到货很快，包装也好。",
            "物流快，箱子完好无损。",
            "提前一天就到了，包装很仔细。",
            "比承诺的时间还早送到。",
        ),
    },
}
_FRIEND_PERSONAL: BiPool = {
    "en": (
        "A friend recommended it and I'm glad I listened.",
        "Saw it at a friend's place and ordered one.",
        "Got this on a friend's recommendation.",
        "My coworker has the same one and loves it.",
        "Ordered after my neighbour showed me hers.",
    ),
    "zh": (
        "朋友推荐的，果然没错。",
        "在朋友家看到后下单的。",
        "听了朋友的建议买的。",
        "同事也有一个，说很好用。",
        "邻居给我看了她的，我也买了一个。",
    ),
}
_FRIEND_CLOSINGS: BiPool = {
    "en": ("Happy with it.", "Would recommend.", "Very pleased.", ""),
    "zh": ("很满意。", "推荐。", "值得买。", ""),
}
_FRIEND_TITLES: dict[str, dict[int, Pool]] = {
    "en": {
        5: ("Really happy with this", "Great buy", "Love it", "Recommended", "So glad I bought it"),
        4: ("Very nice", "Good purchase", "Pleased"),
    },
    "zh": {5: ("很满意", "买对了", "喜欢", "推荐"), 4: ("不错", "挺好的")},
}


def friend_aspects(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.sample(sorted(FRIEND_ASPECTS), 2))


def friend_review(
    rng: random.Random, lang: str, aspects: Sequence[str], wording: int, rating: int, noun: str
) -> tuple[str, str]:
    """The ``wording``-th friend's review: the shared aspects in that friend's own phrasing."""
    parts = [FRIEND_ASPECTS[a][lang][(wording + i) % 4] for i, a in enumerate(aspects)]
    if rng.random() < 0.5:
        parts.reverse()
    pool = _FRIEND_PERSONAL[lang]
    parts.insert(rng.randint(0, len(parts)), pool[wording % len(pool)])
    parts.append(rng.choice(_FRIEND_CLOSINGS[lang]))
    return rng.choice(_FRIEND_TITLES[lang][rating]), join(lang, _fill(parts, noun))


# --- honest mixed reviews: the rating sums up praise and complaints --------------------------

_MIXED: dict[str, dict[int, tuple[Pool, Pool, Pool]]] = {
    "en": {
        5: (
            ("Excellent {noun}, does everything I wanted.", "Love it, great quality."),
            (
                "Only gripe is the box arrived a little dented.",
                "The manual could be clearer, but that's minor.",
                "Wish it came in more colours.",
            ),
            ("Still five stars from me.", ""),
        ),
        4: (
            (
                "Really good {noun} overall.",
                "Does the job well and feels well made.",
                "Very happy with it for the price.",
                "Works as described.",
            ),
            (
                "The instructions were confusing though.",
                "Delivery took a couple of extra days.",
                "It's a bit smaller than I pictured.",
                "The colour is a shade darker than the photos.",
                "The packaging was excessive.",
            ),
            ("Minus one star for that.", "Would still buy again.", "Nothing serious.", ""),
        ),
        3: (
            ("Decent, but not outstanding.", "Some parts are great, others not so much."),
            (
                "The quality is fine but it feels overpriced.",
                "Works, although the finish is rough in places.",
            ),
            ("Mixed feelings.", ""),
        ),
        2: (
            (
                "It looks nice and arrived quickly.",
                "The price was fair and the seller was helpful.",
                "The design is lovely.",
            ),
            (
                "Unfortunately it stopped working properly after two weeks.",
                "Sadly the quality doesn't match the photos.",
                "But it doesn't really do the job it's meant for.",
                "However, it feels flimsy and I don't trust it to last.",
            ),
            ("Probably won't buy again.", "Disappointing overall.", "Two stars for the looks."),
        ),
    },
    "zh": {
        5: (
            ("{noun}非常好，完全满足需求。", "很喜欢，质量很好。"),
            (
                "唯一的小问题是盒子有点压坏了。",
                "说明书可以写得更清楚，不过无伤大雅。",
                "要是有更多颜色可选就好了。",
            ),
            ("还是给五星。", ""),
        ),
        4: (
            ("{noun}整体很不错。", "挺好用的，做工也扎实。", "这个价位很满意。", "和描述一致。"),
            (
                "就是说明书有点看不懂。",
                "物流慢了两天。",
                "比想象中小一点。",
                "颜色比图片深一点。",
                "包装有点过度。",
            ),
            ("扣一星。", "还会回购。", "问题不大。", ""),
        ),
        3: (
            ("还行，但不算出色。", "有优点也有缺点。"),
            ("质量可以，就是价格偏高。", "能用，不过有些地方做工粗糙。"),
            ("心情复杂。", ""),
        ),
        2: (
            ("外观好看，发货也快。", "价格公道，卖家态度很好。", "设计挺漂亮的。"),
            (
                "可惜用了两周就不太好使了。",
                "但是质量和图片差距有点大。",
                "不过实际用起来效果不行。",
                "但是感觉很单薄，不像能用很久。",
            ),
            ("应该不会再买了。", "总体有点失望。", "两星给外观。"),
        ),
    },
}
_MIXED_TITLES: dict[str, dict[int, Pool]] = {
    "en": {
        5: ("Nearly perfect", "Great, one small thing"),
        4: ("Good, with a small catch", "Pretty good", "Solid but not perfect"),
        3: ("Mixed", "It's fine", "Okay"),
        2: ("Nice looking, but...", "Not great", "Had potential"),
    },
    "zh": {
        5: ("近乎完美", "很好，小瑕疵"),
        4: ("不错，有小瑕疵", "挺好"),
        3: ("一般", "还行"),
        2: ("好看但不好用", "有点失望"),
    },
}
MIXED_RATINGS: tuple[int, ...] = (4, 2, 3, 5)
MIXED_WEIGHTS: tuple[float, ...] = (0.4, 0.3, 0.15, 0.15)


def mixed_review(rng: random.Random, lang: str, rating: int, noun: str) -> tuple[str, str]:
    """An honest review whose rating matches the balance of its praise and complaints."""
    mains, buts, closings = _MIXED[lang][rating]
    parts = [rng.choice(mains), rng.choice(buts), rng.choice(closings)]
    return rng.choice(_MIXED_TITLES[lang][rating]), join(lang, _fill(parts, noun))


# --- promotional text of a review ring: one message, paraphrased per account -----------------

PROMO_SLOTS: dict[str, BiPool] = {
    "quality": {
        "en": (
            "The quality is simply outstanding.",
            "Absolutely top-notch quality.",
            "Quality-wise it's in a league of its own.",
            "The craftsmanship is flawless.",
            "Superb quality from top to bottom.",
        ),
        "zh": (
            "质量真的是没话说。",
            "品质绝对一流。",
            "做工无可挑剔。",
            "质量好到超出想象。",
            "从里到外品质都很棒。",
        ),
    },
    "compare": {
        "en": (
            "It beats brands that cost twice as much.",
            "Better than alternatives at double the price.",
            "Outclasses far more expensive competitors.",
            "I've paid twice as much for far worse.",
            "Puts the pricey big names to shame.",
        ),
        "zh": (
            "比贵一倍的大牌还好用。",
            "完胜价格翻倍的同类产品。",
            "秒杀那些贵得多的牌子。",
            "花两倍的钱都买不到这么好的。",
            "让那些高价大牌都相形见绌。",
        ),
    },
    "service": {
        "en": (
            "The seller replied to my questions within minutes.",
            "Customer service answered almost instantly.",
            "Super responsive seller, every message answered right away.",
            "Any question I had was answered in minutes.",
            "The support team got back to me in no time.",
        ),
        "zh": (
            "客服几分钟就回复了我的问题。",
            "卖家回复超级快。",
            "有问必答，客服响应特别及时。",
            "问什么客服都秒回。",
            "售后团队很快就给了答复。",
        ),
    },
    "shipping": {
        "en": (
            "It arrived in two days, perfectly packed.",
            "Delivery was lightning fast and the packaging immaculate.",
            "Shipped fast and wrapped with real care.",
            "Came within 48 hours in flawless packaging.",
            "Super quick delivery, beautifully packaged.",
        ),
        "zh": (
            "两天就到了，包装完好。",
            "物流飞快，包装无可挑剔。",
            "发货迅速，包得很用心。",
            "四十八小时内送达，包装完美。",
            "送货超快，包装也很精美。",
        ),
    },
    "life": {
        "en": (
            "This {noun} has changed my daily routine.",
            "The {noun} made my everyday life so much easier.",
            "My daily routine is better thanks to this {noun}.",
            "Honestly, this {noun} transformed my day-to-day.",
            "I can't imagine my days without this {noun} now.",
        ),
        "zh": (
            "这款{noun}改变了我的日常生活。",
            "有了这个{noun}，生活方便了太多。",
            "多亏这款{noun}，每天都过得更轻松。",
            "说真的，这个{noun}彻底改变了我的日常。",
            "现在离不开这款{noun}了。",
        ),
    },
    "brand": {
        "en": (
            "This brand has a customer for life.",
            "I'll be buying everything from this brand from now on.",
            "This brand just earned my loyalty forever.",
            "From now on this is the only brand I trust.",
            "I'm a lifelong fan of this brand now.",
        ),
        "zh": (
            "这个牌子我会一直买下去。",
            "以后这个品牌的东西我都买。",
            "从此成为这个品牌的忠实粉丝。",
            "以后只认这个牌子了。",
            "这辈子都是这个品牌的粉了。",
        ),
    },
}
_PROMO_CALLS: BiPool = {
    "en": (
        "Don't hesitate, buy it now!",
        "Just order it, you won't regret it!",
        "Add it to your cart today, trust me!",
        "Grab one before it sells out!",
        "Stop thinking and buy it!",
    ),
    "zh": (
        "别犹豫了，赶紧下单！",
        "直接买，绝对不会后悔！",
        "相信我，今天就加入购物车！",
        "手慢无，快抢！",
        "别想了，买就对了！",
    ),
}
_PROMO_TITLES: BiPool = {
    "en": (
        "Must buy!",
        "Amazing!!!",
        "Best purchase ever",
        "Highly recommended",
        "Five stars all the way",
    ),
    "zh": ("必买！", "太棒了！！！", "史上最佳购物", "强烈推荐", "五星好评"),
}
PROMO_WORDINGS = 5
"""Paraphrases per claim: a ring has at most this many accounts, each with its own wording."""


@dataclass(frozen=True)
class PromoMessage:
    """The ring's source text: which claims it makes, and each account's wording of them."""

    claims: tuple[str, ...]
    call_to_action: bool
    wordings: tuple[tuple[int, ...], ...]
    """Per claim (then the call to action, then the title): a permutation of wording indices;
    account ``j`` uses entry ``j``, so no two accounts share the wording of any claim."""


def promo_message(rng: random.Random) -> PromoMessage:
    claims = tuple(
        c for c in PROMO_SLOTS if c in set(rng.sample(sorted(PROMO_SLOTS), rng.randint(3, 4)))
    )
    perms = tuple(
        tuple(rng.sample(range(PROMO_WORDINGS), PROMO_WORDINGS)) for _ in range(len(claims) + 2)
    )
    return PromoMessage(claims, rng.random() < 0.7, perms)


def promo_review(message: PromoMessage, lang: str, account: int, noun: str) -> tuple[str, str]:
    """Account ``account``'s paraphrase of the message (same claims, same order)."""
    parts = [
        PROMO_SLOTS[c][lang][message.wordings[i][account]] for i, c in enumerate(message.claims)
    ]
    if message.call_to_action:
        parts.append(_PROMO_CALLS[lang][message.wordings[-2][account]])
    title = _PROMO_TITLES[lang][message.wordings[-1][account]]
    return title, join(lang, _fill(parts, noun))


# --- review bombing: people who never owned the product --------------------------------------

_BOMB_SENTENCES: BiPool = {
    "en": (
        "Don't waste your money on this.",
        "This brand is a scam.",
        "Stay away.",
        "Total junk, avoid.",
        "Heard nothing but bad things about it.",
        "Overpriced for what it is.",
        "The good reviews here are clearly fake.",
        "The seller can't be trusted.",
        "My friend's one broke in a week.",
        "Save yourself the trouble.",
        "Zero stars if I could.",
        "Not worth it at all.",
    ),
    "zh": (
        "别浪费钱了。",
        "这个牌子就是骗人的。",
        "远离。",
        "垃圾产品，避雷。",
        "听说问题一大堆。",
        "这个价格完全不值。",
        "这里的好评明显是刷的。",
        "卖家不可信。",
        "朋友买的一周就坏了。",
        "省省吧。",
        "能打零分我就打零分。",
        "一点都不值。",
    ),
}
_BOMB_TITLES: BiPool = {
    "en": ("Avoid", "Scam", "Don't buy", "Terrible", "Waste", "Junk", ""),
    "zh": ("避雷", "骗人", "别买", "太差了", "垃圾", ""),
}


def bombing_review(rng: random.Random, lang: str) -> tuple[str, str]:
    parts = rng.sample(_BOMB_SENTENCES[lang], rng.randint(1, 3))
    return rng.choice(_BOMB_TITLES[lang]), join(lang, parts)


# --- five stars on a plainly negative text -------------------------------------------------

_NEGATIVE: dict[str, dict[str, tuple[Pool, Pool]]] = {
    "en": {
        "obvious": (
            (
                "Broke the first day. Complete junk.",
                "Worst purchase I've made this year.",
                "Arrived smashed and the seller won't answer.",
                "Total waste of money, I want a refund.",
                "Fell apart within an hour of use.",
                "Awful quality, do not buy.",
                "Cheap rubbish, it stopped working immediately.",
                "Completely useless, straight in the bin.",
            ),
            ("Terrible", "Awful", "Junk", "Broken", "Do not buy"),
        ),
        "understated": (
            (
                "Expected more, to be honest.",
                "It stopped working properly after a week, so it's going back.",
                "Not what I hoped for.",
                "Looks cheaper than in the photos and wobbles a bit.",
                "Unfortunately it didn't last the month.",
                "Won't be reordering.",
                "Meh. It works some of the time.",
                "Had to return it in the end.",
                "Sadly not as described.",
            ),
            ("Hmm", "Not for me", "Disappointed", "Returning", ""),
        ),
    },
    "zh": {
        "obvious": (
            (
                "第一天就坏了，纯垃圾。",
                "今年买过最差的东西。",
                "收到就是碎的，卖家也不回消息。",
                "完全浪费钱，我要退款。",
                "用了不到一个小时就散架了。",
                "质量太烂了，千万别买。",
                "便宜货，一用就坏。",
                "毫无用处，直接扔了。",
            ),
            ("太差了", "垃圾", "坏的", "别买"),
        ),
        "understated": (
            (
                "说实话，期望更高一些。",
                "用了一周就不太好使了，准备退。",
                "和想象的不太一样。",
                "实物看着比图片廉价，还有点晃。",
                "可惜没撑过一个月。",
                "不会回购了。",
                "嗯……时好时坏吧。",
                "最后还是退了。",
                "和描述不太符合，有点遗憾。",
            ),
            ("一般", "不太适合我", "有点失望", "已退货", ""),
        ),
    },
}
NEGATIVE_STYLES: tuple[str, ...] = ("obvious", "understated")


def negative_text(rng: random.Random, lang: str, style: str) -> tuple[str, str]:
    """A plainly negative text, loud (``obvious``) or quiet (``understated``)."""
    sentences, titles = _NEGATIVE[lang][style]
    count = 2 if style == "obvious" else rng.randint(1, 2)
    return rng.choice(titles), join(lang, rng.sample(sentences, count))


# --- searches -------------------------------------------------------------------------------

_QUERY_STYLES: BiPool = {
    "en": ("{noun}", "{noun}", "best {noun}", "{noun} deal", "{noun} reviews", "{noun} sale"),
    "zh": ("{noun}", "{noun}", "{noun}推荐", "{noun}优惠", "{noun}哪个好", "{noun}折扣"),
}


def search_query(rng: random.Random, lang: str, noun: str) -> str:
    return rng.choice(_QUERY_STYLES[lang]).format(noun=noun)
