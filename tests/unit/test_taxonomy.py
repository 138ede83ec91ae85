"""The interest taxonomy: the packaged default, loading from JSON/TOML, and clear errors."""

from __future__ import annotations

import doctest
import json
import re
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import memberstream.domain.taxonomy as taxonomy_module
from memberstream.datasets.synthetic import CATEGORIES
from memberstream.domain.taxonomy import Category, Taxonomy, TaxonomyError
from memberstream.domain.vectors import zero_shot_probs

_CJK = re.compile(r"[\u4e00-\u9fff]")


def _cat(cid: str, **over: str) -> dict[str, str]:
    base = {
        "id": cid,
        "name_en": cid.title(),
        "name_zh": "类目",
        "description_en": f"things about {cid}",
        "description_zh": "相关商品",
    }
    base.update(over)
    return base


def _write(tmp_path: Path, data: Any, name: str = "tax.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# --- the packaged default ------------------------------------------------------------------


def test_default_has_about_twenty_categories_covering_the_synthetic_catalog() -> None:
    tax = Taxonomy.load()
    assert 18 <= len(tax) <= 25
    assert len(set(tax.ids)) == len(tax)
    for cat in CATEGORIES:
        assert cat.id in tax, f"synthetic category {cat.id} missing from the default taxonomy"
        assert tax[cat.id].name_en == cat.name_en
        assert tax[cat.id].name_zh == cat.name_zh


def test_default_descriptions_are_bilingual_and_in_taxonomy_order() -> None:
    tax = Taxonomy.load()
    texts = tax.descriptions()
    assert len(texts) == len(tax)
    for cat, text in zip(tax, texts, strict=True):
        assert cat.description_en and cat.description_zh
        assert cat.description_en in text and cat.description_zh in text
        assert _CJK.search(text) and re.search(r"[A-Za-z]{3}", text)
        assert not _CJK.search(cat.description_en)
        assert _CJK.search(cat.description_zh)
        assert len(cat.description_en) <= 200
    assert tax.descriptions("en")[0].startswith("Electronics: ")
    assert not _CJK.search(" ".join(tax.descriptions("en")))
    assert all(_CJK.search(t) for t in tax.descriptions("zh"))


def _ngram_embed(text: str, dim: int = 4096) -> np.ndarray:
    """A toy, stable character n-gram embedding (no model needed)."""
    v = np.zeros(dim)
    for word in re.findall(r"[a-z0-9]+|[\u4e00-\u9fff]+", text.lower()):
        padded = f" {word} "
        for n in (2, 3):
            for i in range(len(padded) - n + 1):
                v[zlib.crc32(padded[i : i + n].encode()) % dim] += 1
    return v


@pytest.mark.parametrize(("lang", "col"), [("en", 0), ("zh", 1)])
def test_default_descriptions_name_the_catalog_product_kinds(lang: str, col: int) -> None:
    # Zero-shot scoring compares item texts with the descriptions: even a bag of
    # character n-grams should place most synthetic product kinds in their own category.
    tax = Taxonomy.load()
    cat_emb = np.stack([_ngram_embed(t) for t in tax.descriptions(lang)])  # type: ignore[arg-type]
    items = [(kind[col], c.id) for c in CATEGORIES for kind in c.items]
    probs = zero_shot_probs(np.stack([_ngram_embed(text) for text, _ in items]), cat_emb)
    hits = sum(tax.ids[int(i)] == cid for i, (_, cid) in zip(probs.argmax(1), items, strict=True))
    assert hits / len(items) >= 0.85


def test_index_and_lookup() -> None:
    tax = Taxonomy.load()
    assert tax.index("electronics") == 0
    assert tax.ids[tax.index("automotive")] == "automotive"
    assert "books" in tax and "spaceships" not in tax
    with pytest.raises(KeyError, match="unknown category 'spaceships'"):
        tax.index("spaceships")
    assert isinstance(tax["books"], Category)


def test_category_text_falls_back_to_the_language_present() -> None:
    only_en = Category("a", "Alpha", "", "alpha things", "")
    assert only_en.text("zh") == "Alpha: alpha things"
    assert only_en.text() == "Alpha: alpha things"


def test_doctest() -> None:
    assert doctest.testmod(taxonomy_module).failed == 0


# --- loading custom files ------------------------------------------------------------------


def test_load_json_and_toml_give_the_same_taxonomy(tmp_path: Path) -> None:
    data = {"version": 1, "name": "shop", "categories": [_cat("tea"), _cat("coffee")]}
    from_json = Taxonomy.load(_write(tmp_path, data))
    toml = 'version = 1\nname = "shop"\n' + "".join(
        "\n[[categories]]\n" + "".join(f'{k} = "{v}"\n' for k, v in c.items())
        for c in data["categories"]
    )
    from_toml = Taxonomy.load(_write(tmp_path, toml, "tax.toml"))
    assert from_json.ids == from_toml.ids == ("tea", "coffee")
    assert from_json.categories == from_toml.categories
    assert from_json.name == "shop"
    assert from_json.descriptions() == from_toml.descriptions()


def test_chinese_only_category_is_fine(tmp_path: Path) -> None:
    data = {"categories": [_cat("tea", name_en="", description_en="")]}
    tax = Taxonomy.load(_write(tmp_path, data))
    assert tax.descriptions() == ["类目：相关商品"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"categories": [_cat("tea"), _cat("coffee"), _cat("tea")]}, "duplicate category id 'tea'"),
        (
            {"categories": [_cat("tea", description_en="  ", description_zh="")]},
            r"categories\[0\] \('tea'\): description is empty",
        ),
        ({"categories": []}, "no categories"),
        ({"categories": [_cat("")]}, "id is missing or empty"),
        ({"categories": [_cat("has space")]}, "id must be"),
        ({"categories": [{**_cat("tea"), "descripton_en": "typo"}]}, "unknown keys"),
        ({"categories": [_cat("tea", name_en="", name_zh="")]}, "needs a name"),
        ({"categories": [_cat("tea", description_en="x" * 600)]}, "longer than 500"),
        ({"categories": [{**_cat("tea"), "name_en": 3}]}, "name_en must be a string"),
        ({"categories": ["tea"]}, r"categories\[0\] must be an object"),
        ({"categories": "tea"}, "'categories' must be a list"),
        ({"version": 2, "categories": [_cat("tea")]}, "unsupported version 2"),
        ({"cats": []}, "unknown top-level keys"),
        ([_cat("tea")], "expected an object"),
    ],
)
def test_invalid_files_give_clear_errors(tmp_path: Path, data: Any, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(TaxonomyError, match=message) as info:
        Taxonomy.load(path)
    assert str(path) in str(info.value)


def test_unparseable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="not valid JSON"):
        Taxonomy.load(_write(tmp_path, "{not json"))
    with pytest.raises(TaxonomyError, match="not valid TOML"):
        Taxonomy.load(_write(tmp_path, "[[categories]\n", "bad.toml"))
    with pytest.raises(TaxonomyError, match="no such file"):
        Taxonomy.load(tmp_path / "absent.json")


def test_taxonomy_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no categories"):
        Taxonomy(())
