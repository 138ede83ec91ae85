"""The interest taxonomy: the categories members are tiered in, from a JSON or TOML file.

Each category has an id (what events and outputs carry), English and Chinese
names, and a short description in each language. The descriptions are written
for zero-shot scoring: they are embedded once and item texts are compared with
them until a fine-tuned head exists, so they name the kinds of products a
shopper would see rather than define the category.

The file holds ``{"version": 1, "categories": [{"id": ..., "name_en": ...,
"name_zh": ..., "description_en": ..., "description_zh": ...}, ...]}`` (TOML:
``version = 1`` and ``[[categories]]`` tables). The packaged default uses the
same ids as the synthetic workload's catalog.

Example:
    >>> taxonomy = Taxonomy.load()
    >>> taxonomy.index("books"), taxonomy.ids[taxonomy.index("books")]
    (3, 'books')
    >>> taxonomy["books"].name_zh
    '图书'
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

__all__ = ["DEFAULT_TAXONOMY", "Category", "Taxonomy", "TaxonomyError"]

DEFAULT_TAXONOMY = "taxonomy_default.json"
SUPPORTED_VERSIONS = frozenset({1})
MAX_ID_CHARS = 128
MAX_DESCRIPTION_CHARS = 500
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_FIELDS = ("id", "name_en", "name_zh", "description_en", "description_zh")
_TOP_FIELDS = frozenset({"version", "name", "description", "categories"})


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Category:
    id: str
    name_en: str
    name_zh: str
    description_en: str
    description_zh: str

    def text(self, lang: Literal["both", "en", "zh"] = "both") -> str:
        """The text to embed for this category (name and description)."""
        en = f"{self.name_en}: {self.description_en}" if self.description_en else self.name_en
        zh = f"{self.name_zh}：{self.description_zh}" if self.description_zh else self.name_zh
        if lang == "en":
            return en or zh
        if lang == "zh":
            return zh or en
        return " ".join(part for part in (en, zh) if part)


@dataclass(frozen=True)
class Taxonomy:
    """An ordered, validated set of categories; positions are the model's output indices."""

    categories: tuple[Category, ...]
    name: str = "custom"
    source: str = "<memory>"

    def __post_init__(self) -> None:
        _check_categories(self.categories, self.source)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Taxonomy:
        """Read a taxonomy file (``.json`` or ``.toml``); ``None`` reads the packaged default."""
        if path is None:
            ref = resources.files("memberstream.domain").joinpath(DEFAULT_TAXONOMY)
            return cls.from_text(ref.read_text(encoding="utf-8"), source=f"<packaged {ref.name}>")
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TaxonomyError(f"taxonomy file {path}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TaxonomyError(f"taxonomy file {path}: cannot read it: {exc}") from None
        fmt: Literal["json", "toml"] = "toml" if path.suffix.lower() == ".toml" else "json"
        return cls.from_text(text, source=str(path), fmt=fmt)

    @classmethod
    def from_text(
        cls, text: str, *, source: str = "<text>", fmt: Literal["json", "toml"] = "json"
    ) -> Taxonomy:
        try:
            data = tomllib.loads(text) if fmt == "toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise TaxonomyError(f"taxonomy file {source}: not valid {fmt.upper()}: {exc}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dict>") -> Taxonomy:
        where = f"taxonomy file {source}"
        if not isinstance(data, Mapping):
            raise TaxonomyError(f"{where}: expected an object with a 'categories' list")
        unknown = sorted(set(data) - _TOP_FIELDS)
        if unknown:
            raise TaxonomyError(f"{where}: unknown top-level keys {unknown}")
        version = data.get("version", 1)
        if version not in SUPPORTED_VERSIONS:
            raise TaxonomyError(f"{where}: unsupported version {version!r} (supported: 1)")
        raw = data.get("categories")
        if not isinstance(raw, Sequence) or isinstance(raw, str):
            raise TaxonomyError(f"{where}: 'categories' must be a list of category objects")
        categories = tuple(_parse_category(item, i, where) for i, item in enumerate(raw))
        name = data.get("name", "custom")
        if not isinstance(name, str):
            raise TaxonomyError(f"{where}: 'name' must be a string")
        return cls(categories, name=name, source=source)

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {cid: i for i, cid in enumerate(self.ids)}

    def index(self, category_id: str) -> int:
        """Position of ``category_id`` (the column of model probabilities)."""
        try:
            return self._index[category_id]
        except KeyError:
            raise KeyError(
                f"unknown category {category_id!r} in taxonomy {self.name!r} ({self.source})"
            ) from None

    def descriptions(self, lang: Literal["both", "en", "zh"] = "both") -> list[str]:
        """Texts to embed for zero-shot scoring, in taxonomy order."""
        return [c.text(lang) for c in self.categories]

    def __getitem__(self, category_id: str) -> Category:
        return self.categories[self.index(category_id)]

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._index

    def __iter__(self) -> Iterator[Category]:
        return iter(self.categories)

    def __len__(self) -> int:
        return len(self.categories)


def _parse_category(item: Any, i: int, where: str) -> Category:
    if not isinstance(item, Mapping):
        raise TaxonomyError(
            f"{where}: categories[{i}] must be an object, got {type(item).__name__}"
        )
    label = f"categories[{i}]" + (f" ({item['id']!r})" if isinstance(item.get("id"), str) else "")
    unknown = sorted(set(item) - set(_FIELDS))
    if unknown:
        raise TaxonomyError(f"{where}: {label}: unknown keys {unknown} (allowed: {list(_FIELDS)})")
    values: dict[str, str] = {}
    for key in _FIELDS:
        value = item.get(key, "")
        if not isinstance(value, str):
            raise TaxonomyError(f"{where}: {label}: {key} must be a string")
        values[key] = value.strip()
    return Category(**values)


def _check_categories(categories: Sequence[Category], source: str) -> None:
    where = f"taxonomy file {source}"
    if not categories:
        raise TaxonomyError(f"{where}: no categories")
    seen: dict[str, int] = {}
    for i, c in enumerate(categories):
        label = f"categories[{i}]" + (f" ({c.id!r})" if c.id else "")
        if not c.id:
            raise TaxonomyError(f"{where}: {label}: id is missing or empty")
        if len(c.id) > MAX_ID_CHARS or not _ID.match(c.id):
            raise TaxonomyError(
                f"{where}: {label}: id must be 1-{MAX_ID_CHARS} letters, digits, '_', '-' or '.'"
            )
        if c.id in seen:
            raise TaxonomyError(
                f"{where}: duplicate category id {c.id!r} (categories[{seen[c.id]}] and [{i}])"
            )
        seen[c.id] = i
        if not (c.name_en or c.name_zh):
            raise TaxonomyError(f"{where}: {label}: needs a name (name_en or name_zh)")
        if not (c.description_en or c.description_zh):
            raise TaxonomyError(
                f"{where}: {label}: description is empty; give description_en and/or "
                "description_zh (the text zero-shot scoring embeds)"
            )
        for key in ("description_en", "description_zh"):
            if len(getattr(c, key)) > MAX_DESCRIPTION_CHARS:
                raise TaxonomyError(
                    f"{where}: {label}: {key} is longer than {MAX_DESCRIPTION_CHARS} characters; "
                    "keep it short (it is embedded as one text)"
                )
