"""JSON Schema export, so producers in other languages can validate before sending."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from memberstream.schemas.events import ClickEvent, Feedback, PurchaseEvent, ReviewEvent
from memberstream.schemas.outputs import (
    AnomalyFlag,
    DeadLetter,
    InterestTierUpdate,
    MemberProfile,
    MemberTierUpdate,
    ModelUpdate,
    ReviewSummary,
)

EXPORTED: tuple[type[BaseModel], ...] = (
    ClickEvent,
    PurchaseEvent,
    ReviewEvent,
    Feedback,
    MemberTierUpdate,
    InterestTierUpdate,
    MemberProfile,
    AnomalyFlag,
    ReviewSummary,
    DeadLetter,
    ModelUpdate,
)


def export_json_schemas(directory: Path) -> list[Path]:
    """Write one ``<Model>.schema.json`` per schema into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in EXPORTED:
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        path = directory / f"{model.__name__}.schema.json"
        path.write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
        written.append(path)
    return written
