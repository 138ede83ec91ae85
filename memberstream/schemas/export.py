"""JSON Schema export, so producers in other languages can validate before sending."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from memberstream.schemas.events import (
    SCHEMA_VERSION,
    ClickEvent,
    Feedback,
    PurchaseEvent,
    ReviewEvent,
)
from memberstream.schemas.outputs import (
    OUTPUT_SCHEMA_VERSION,
    AnomalyFlag,
    DeadLetter,
    InterestTierUpdate,
    MemberProfile,
    MemberTierUpdate,
    ModelUpdate,
    Output,
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


def schema_version(model: type[BaseModel]) -> int:
    """The version a record of ``model`` carries in ``schema_version``."""
    if issubclass(model, Output):
        return OUTPUT_SCHEMA_VERSION
    return SCHEMA_VERSION


def schema_bytes(model: type[BaseModel]) -> bytes:
    """The JSON Schema of ``model`` as committed: ``$id`` names the model and its version."""
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:memberstream:schema:{model.__name__}:v{schema_version(model)}"
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def export_json_schemas(directory: Path) -> list[Path]:
    """Write one ``<Model>.schema.json`` per schema into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in EXPORTED:
        path = directory / f"{model.__name__}.schema.json"
        path.write_bytes(schema_bytes(model))
        written.append(path)
    return written


def schema_drift(directory: Path) -> list[str]:
    """How the committed schemas in ``directory`` differ from the code's (empty: none)."""
    problems = []
    expected = {f"{m.__name__}.schema.json": m for m in EXPORTED}
    for name, model in expected.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name}: not committed")
            continue
        committed = orjson.loads(path.read_bytes())
        current = orjson.loads(schema_bytes(model))
        if committed != current:
            changed = sorted(
                k
                for k in {*committed.get("properties", {}), *current.get("properties", {})}
                if committed.get("properties", {}).get(k) != current.get("properties", {}).get(k)
            )
            what = f"fields {', '.join(changed)}" if changed else "its definitions"
            problem = f"{name}: {what} differ from the code"
            if committed.get("$id") == current.get("$id"):
                problem += f", still {current.get('$id')}"
            problems.append(problem)
    for path in sorted(directory.glob("*.schema.json")):
        if path.name not in expected:
            problems.append(f"{path.name}: committed, but no such schema in the code")
    return problems
