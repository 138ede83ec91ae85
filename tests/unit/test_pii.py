"""Personal data masked out of review texts before they become training samples, and
keyed pseudonyms for member ids. Every expected string below is written by hand."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import time
import unicodedata

import pytest

from memberstream.domain.pii import PLACEHOLDERS, Masked, mask, mask_text, pseudonymize

MASKED_EN: list[tuple[str, str]] = [
    ("Email me at john.doe@example.com.", "Email me at <EMAIL>."),
    ("Contact: JANE_99+shop@mail.co.uk for returns", "Contact: <EMAIL> for returns"),
    (
        "Full review at https://blog.example.com/reviews/123?ref=amz, enjoy",
        "Full review at <URL>, enjoy",
    ),
    ("See www.myshop.net for more.", "See <URL> for more."),
    ("my store: shop.example.com/u/jane_doe", "my store: <URL>"),
    ("(details: http://example.org/a_(b))", "(details: <URL>)"),
    ("Call me at +1 (555) 123-4567 if it breaks", "Call me at <PHONE> if it breaks"),
    ("Seller's number 555-123-4567, very helpful", "Seller's number <PHONE>, very helpful"),
    ("text 555.123.4567 anytime", "text <PHONE> anytime"),
    ("Support line 1-800-555-0199 was useless", "Support line <PHONE> was useless"),
    ("WhatsApp +44 20 7946 0958 for bulk orders", "WhatsApp <PHONE> for bulk orders"),
    ("+15551234567", "<PHONE>"),
    ("Charged my card 4111 1111 1111 1111 twice!", "Charged my card <CARD> twice!"),
    ("card 4111111111111111 was declined", "card <CARD> was declined"),
    ("used 5500-0000-0000-0004 to pay", "used <CARD> to pay"),
    ("Amex 3782 822463 10005 works", "Amex <CARD> works"),
    ("Grouped but not Luhn: 1234 5678 9012 3456", "Grouped but not Luhn: <CARD>"),
    ("They asked for my SSN 123-45-6789 at checkout", "They asked for my SSN <ID> at checkout"),
    ("Order #123456789 never arrived", "Order #<NUMBER> never arrived"),
    ("my account id 98765432 got banned", "my account id <NUMBER> got banned"),
    ("Follow @jane_doe99 on Instagram for unboxing", "Follow <HANDLE> on Instagram for unboxing"),
    ("thanks @BestBuySupport.", "thanks <HANDLE>."),
    ("Router admin page 192.168.1.1 kept dropping", "Router admin page <IP> kept dropping"),
    ("WeChat: liming2020 for a discount", "WeChat: <HANDLE> for a discount"),
    ("add me on vx: abcdef12", "add me on vx: <HANDLE>"),
    ("QQ 12345 for group buys", "QQ <NUMBER> for group buys"),
    ("Full-width ＋１ ５５５ １２３ ４５６７", "Full-width <PHONE>"),
    ("mail: ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "mail: <EMAIL>"),
    ("IP 10.0.0.254, SSN 078-05-1120", "IP <IP>, SSN <ID>"),
    ("Call 555-123-4567 or email a@b.io", "Call <PHONE> or email <EMAIL>"),
]

MASKED_ZH: list[tuple[str, str]] = [
    ("我的手机13812345678，有问题联系", "我的手机<PHONE>，有问题联系"),
    ("电话：138-1234-5678，谢谢", "电话：<PHONE>，谢谢"),
    ("联系方式 139 1234 5678 随时打", "联系方式 <PHONE> 随时打"),
    ("+86 138 1234 5678 客服", "<PHONE> 客服"),
    ("+8615912345678找我", "<PHONE>找我"),
    ("座机010-12345678，周末不在", "座机<PHONE>，周末不在"),
    ("店铺电话(0755)1234567", "店铺电话<PHONE>"),
    ("客服电话：400-800-8888", "客服电话：<PHONE>"),
    ("全角号码１３８１２３４５６７８也要遮", "全角号码<PHONE>也要遮"),
    ("微信13812345678同号", "微信<PHONE>同号"),
    ("邮箱：zhangsan@163.com，欢迎来信", "邮箱：<EMAIL>，欢迎来信"),
    ("全角邮箱ｚｈａｎｇ＠ｑｑ．ｃｏｍ", "全角邮箱<EMAIL>"),
    ("链接https://item.jd.com/100012043978.html很好用", "链接<URL>很好用"),
    ("在www.taobao.com买的", "在<URL>买的"),
    ("身份证号110105199003078888别外传", "身份证号<ID>别外传"),
    ("身份证：11010519900307888X", "身份证：<ID>"),
    ("加微信：zhangsan_88，发你优惠券", "加微信：<HANDLE>，发你优惠券"),
    ("微信号abc12345哦", "微信号<HANDLE>哦"),
    ("有事加VX：Lm_2024好吗", "有事加VX：<HANDLE>好吗"),
    ("wxid_abc123xyz是我的微信", "<HANDLE>是我的微信"),
    ("QQ：12345678，晚上在线", "QQ：<NUMBER>，晚上在线"),
    ("qq号 98765 加我", "qq号 <NUMBER> 加我"),
    ("QQ群123456789欢迎加入", "QQ群<NUMBER>欢迎加入"),
    ("订单号2024031512345，到现在没发货", "订单号<NUMBER>，到现在没发货"),
    ("@小明 你这个推荐太坑了", "<HANDLE> 你这个推荐太坑了"),
    ("银行卡6222 0200 1234 5678 被扣款两次", "银行卡<CARD> 被扣款两次"),
    ("服务器IP是10.0.0.1，连不上", "服务器IP是<IP>，连不上"),
]

UNCHANGED: list[str] = [
    "",
    "$1,299.99 well spent",
    "¥299 is a steal",
    "才299元",
    "￥1,099 还包邮",
    "€45.50 incl. VAT",
    "1299 yuan after coupon",
    "30% off today, 50% next week",
    "WH-1000XM4 beats the old model",
    "iPhone 15 Pro case fits",
    "SKU A12-3345 was out of stock",
    "RTX 4090 runs hot",
    "2TB SSD, USB-C, 5G, Model Y",
    "Galaxy S23 Ultra 256GB",
    "delivered 2024-03-15 at 10:30",
    "2024年3月15日到货",
    "at 9:45 pm on 3/15/2024",
    "3 pairs, 2kg, 500ml, 15.6 inch",
    "5/5, would buy again",
    "4.5 stars",
    "Rated 4.8/5 by 1,234 buyers",
    "order of 6 items, 12 months warranty",
    "bought in 2023",
    "firmware v2.1.3 fixed it",
    "order 123456 arrived",
    "Paid with WeChat Pay",
    "wechat support was slow",
    "微信支付很方便",
    "QQ音乐会员",
    "买了3双，每双99元，打8折",
    "2024年买的，用了12个月",
    "屏幕15.6英寸，重2.1kg",
    "型号WH-1000XM4，RTX 4090显卡",
    "I'd give it 10/10 @ this price",
    "Android 14, TLS 1.3, http/2",
    "fits 13-15 inch laptops, 2-3 days shipping",
    "😀👍 ５星好评",
    "e.g. the 3.5mm jack, i.e. wired",
]

ALL_INPUTS = [text for text, _ in MASKED_EN + MASKED_ZH] + UNCHANGED
MOBILE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


def test_table_sizes() -> None:
    assert len(MASKED_EN) >= 25
    assert len(MASKED_ZH) >= 20
    assert len(UNCHANGED) >= 25


@pytest.mark.parametrize(("text", "expected"), MASKED_EN)
def test_masks_english(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize(("text", "expected"), MASKED_ZH)
def test_masks_chinese(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize("text", UNCHANGED)
def test_leaves_non_personal_text_alone(text: str) -> None:
    result = mask_text(text)
    assert result.text == text
    assert result.counts == {}


@pytest.mark.parametrize("text", ALL_INPUTS)
def test_idempotent(text: str) -> None:
    once = mask(text)
    assert mask(once) == once


def test_counts_several_kinds() -> None:
    text = (
        "Mail a@b.com or call 555-123-4567 / 138-1234-5678, "
        "card 4111 1111 1111 1111, order 12345678, @jane"
    )
    result = mask_text(text)
    assert result == Masked(
        "Mail <EMAIL> or call <PHONE> / <PHONE>, card <CARD>, order <NUMBER>, <HANDLE>",
        {"email": 1, "phone": 2, "card": 1, "long_number": 1, "handle": 1},
    )


def test_counts_wechat_and_qq_kinds() -> None:
    result = mask_text("微信：zhangsan_88，QQ：12345678，身份证110105199003078888")
    assert result.text == "微信：<HANDLE>，QQ：<NUMBER>，身份证<ID>"
    assert result.counts == {"wechat": 1, "qq": 1, "id_number": 1}


def test_only_masked_spans_change() -> None:
    # Matching sees NFKC, the output keeps the original characters around the masks.
    text = "￥1,099，Ｍｙ　ｐｈｏｎｅ：１３８１２３４５６７８！"
    assert mask(text) == "￥1,099，Ｍｙ　ｐｈｏｎｅ：<PHONE>！"


def test_placeholders() -> None:
    expected = {
        "email": "<EMAIL>",
        "url": "<URL>",
        "phone": "<PHONE>",
        "card": "<CARD>",
        "id_number": "<ID>",
        "long_number": "<NUMBER>",
        "handle": "<HANDLE>",
        "ip": "<IP>",
    }
    assert expected.items() <= PLACEHOLDERS.items()
    assert PLACEHOLDERS["wechat"] == "<HANDLE>"
    assert PLACEHOLDERS["qq"] == "<NUMBER>"


@pytest.mark.parametrize(
    "text", ["", "\x00", "\x00" * 50, "\ud800", "😀" * 20, "@", "+", "http://", "a@", "<URL>"]
)
def test_odd_inputs_do_not_raise(text: str) -> None:
    assert isinstance(mask(text), str)


def test_pseudonymize_format_and_value() -> None:
    key, member = b"k" * 32, "会员-42"
    pseudonym = pseudonymize(member, key)
    assert re.fullmatch(r"m_[0-9a-f]{24}", pseudonym)
    digest = hmac.new(key, member.encode("utf-8"), hashlib.sha256).hexdigest()
    assert pseudonym == "m_" + digest[:24]


def test_pseudonymize_deterministic_and_keyed() -> None:
    assert pseudonymize("m1", b"key-a") == pseudonymize("m1", b"key-a")
    assert pseudonymize("m1", b"key-a") != pseudonymize("m1", b"key-b")
    assert pseudonymize("m1", b"key-a") != pseudonymize("m2", b"key-a")
    assert pseudonymize("会员七号", b"key-a").startswith("m_")


def test_pseudonymize_rejects_empty_key() -> None:
    with pytest.raises(ValueError):
        pseudonymize("m1", b"")


def _timed(text: str) -> float:
    start = time.perf_counter()
    mask_text(text)
    return time.perf_counter() - start


def test_100k_review_text_is_fast() -> None:
    review = (
        "Great headphones, the 30% off deal was worth it. Call me at 555-123-4567 or mail "
        "jane@example.com. 订单号12345678，微信：abc_123，音质很好，5/5！ "
    )
    text = (review * (100_000 // len(review) + 1))[:100_000]
    assert _timed(text) < 1.0


@pytest.mark.parametrize(
    "text",
    [
        "1" * 100_000,
        "a" * 100_000,
        "a." * 50_000,
        "a" * 99_999 + "@",
        "+44 1" * 20_000,
        "微信 " * 33_000,
        "１" * 100_000,
        "中" * 100_000,
    ],
    ids=["digits", "letters", "dots", "local-part", "intl", "wechat", "fullwidth", "han"],
)
def test_pathological_inputs_stay_linear(text: str) -> None:
    assert _timed(text) < 1.0


def test_fuzz_never_raises_and_leaves_no_mobile() -> None:
    rng = random.Random(20240315)
    alphabet = "abcxyzABC@._-+:/ ()#$¥%0123456789" * 4 + "中文微信号码电话，。：！１３８＠：\x00😀"
    fragments = ["138", "1381234", "5678", "+86 ", "@", "http://", "www.", ".com/", "QQ", "微信"]
    for _ in range(500):
        parts = [
            rng.choice(fragments) if rng.random() < 0.2 else rng.choice(alphabet)
            for _ in range(rng.randint(0, 80))
        ]
        text = "".join(parts)
        out = mask(text)
        assert not MOBILE.search(unicodedata.normalize("NFKC", out)), (text, out)
        assert mask(out) == out, text
