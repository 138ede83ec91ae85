"""One language detector for sentiment, aspects, summaries and the mismatch flag."""

from __future__ import annotations

import pytest

from memberstream.domain.language import detect_language, is_cjk, normalize_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("这个耳机音质很好", "zh"),
        ("价格小贵，但是真香", "zh"),
        ("这个iPhone很好用，就是电池不太行", "zh"),
        ("Great!!", "en"),
        ("looks great, broke on day three, returned it", "en"),
        ("I love this 耳机", "en"),
        ("この商品はとても良いです", "other"),
        ("좋은 제품입니다", "other"),
        ("Очень хороший товар", "other"),
        ("El producto es muy bueno y llegó rápido", "other"),
        ("Le produit est très bien, mais la livraison est lente", "other"),
        ("Das ist sehr gut und ich bin zufrieden", "other"),
        ("👍👍👍", "other"),
        ("12345", "other"),
        ("", "other"),
    ],
)
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


def test_a_declared_tag_wins_and_maps_onto_the_three_languages() -> None:
    assert normalize_language("zh-CN", "plain English text") == "zh"
    assert normalize_language("en_US", "中文") == "en"
    assert normalize_language("fr", "texte") == "other"
    assert normalize_language(None, "中文评论") == "zh"
    assert normalize_language("", "an English review") == "en"


def test_is_cjk() -> None:
    assert is_cjk("abc 中")
    assert is_cjk("カタカナ")
    assert not is_cjk("plain")
