"""Event schemas, the orjson codec, JSON Schema export and deterministic output ids."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from memberstream.config import CONFIG_ENV
from memberstream.schemas.codec import DecodeFailure, decode_event, encode, parse_any_event
from memberstream.schemas.events import (
    SUPPORTED_SCHEMA_VERSIONS,
    ClickEvent,
    Envelope,
    Feedback,
    PurchaseEvent,
    ReviewEvent,
)
from memberstream.schemas.export import EXPORTED, export_json_schemas
from memberstream.schemas.outputs import deterministic_id
from memberstream.schemas.types import (
    MAX_QUERY_CHARS,
    MAX_RECORD_BYTES,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
)

ENVELOPE_FIELDS = {"event_id", "schema_version", "member_id", "occurred_at", "source"}


def _envelope(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "event_id": "e-1",
        "member_id": "m-1",
        "occurred_at": "2024-05-01T12:00:00+02:00",
        "source": "web",
    }
    d.update(over)
    return d


def _item(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "product_id": "p-1",
        "title": "Blue mug",
        "category": "kitchen",
        "quantity": 2,
        "unit_price": 7.5,
    }
    d.update(over)
    return d


def click(**over: Any) -> dict[str, Any]:
    return {**_envelope(), "action": "view", "product_id": "p-1", "category": "kitchen", **over}


def purchase(**over: Any) -> dict[str, Any]:
    return {
        **_envelope(),
        "order_id": "o-1",
        "items": [_item()],
        "total": 15.0,
        "currency": "EUR",
        **over,
    }


def review(**over: Any) -> dict[str, Any]:
    return {**_envelope(), "product_id": "p-1", "rating": 4, "title": "ok", "text": "fine", **over}


def feedback(**over: Any) -> dict[str, Any]:
    return {
        **_envelope(),
        "subject": "anomaly_flag",
        "ref_id": "flag-9",
        "verdict": "false_positive",
        **over,
    }


def raw(d: Any) -> bytes:
    return orjson.dumps(d)


def failure(result: object) -> DecodeFailure:
    assert isinstance(result, DecodeFailure), f"expected a DecodeFailure, got {result!r}"
    return result


def fields(result: DecodeFailure) -> list[str]:
    return [e["field"] for e in result.errors]


# --------------------------------------------------------------------------- valid events


@pytest.mark.parametrize(
    ("payload", "model"),
    [
        (click(), ClickEvent),
        (purchase(), PurchaseEvent),
        (review(), ReviewEvent),
        (feedback(), Feedback),
    ],
    ids=["click", "purchase", "review", "feedback"],
)
def test_valid_events_decode_normalise_to_utc_and_round_trip(
    payload: dict[str, Any], model: type[Envelope]
) -> None:
    event = decode_event(raw(payload), model)
    assert isinstance(event, model)
    assert event.event_id == "e-1"
    assert event.member_id == "m-1"
    assert event.source == "web"
    assert event.schema_version == 1
    # 12:00 at +02:00 is 10:00 UTC, and the stored value carries UTC itself
    assert event.occurred_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset().total_seconds() == 0
    assert event.occurred_at.hour == 10

    encoded = encode(event)
    assert orjson.loads(encoded)["occurred_at"] == "2024-05-01T10:00:00Z"
    again = decode_event(encoded, model)
    assert again == event
    assert encode(again) == encoded


def test_valid_purchase_fields_and_signed_total() -> None:
    event = decode_event(raw(purchase()), PurchaseEvent)
    assert isinstance(event, PurchaseEvent)
    assert event.type == "purchase"
    assert event.total == 15.0
    assert event.currency == "EUR"
    assert event.items[0].quantity == 2
    assert event.items[0].unit_price == 7.5
    assert event.signed_total == 15.0
    refund = decode_event(raw(purchase(status="refunded", total=4.0)), PurchaseEvent)
    assert isinstance(refund, PurchaseEvent)
    assert refund.signed_total == -4.0


def test_matching_type_field_and_integer_money_are_accepted() -> None:
    event = decode_event(raw(purchase(type="purchase", total=15)), PurchaseEvent)
    assert isinstance(event, PurchaseEvent)
    assert event.total == 15.0
    search = decode_event(raw(click(action="search", product_id=None, query="mugs")), ClickEvent)
    assert isinstance(search, ClickEvent)
    assert search.query == "mugs"


def test_unknown_fields_are_ignored() -> None:
    event = decode_event(raw(review(extra_field={"x": 1})), ReviewEvent)
    assert isinstance(event, ReviewEvent)
    assert "extra_field" not in event.model_dump()


def test_parse_any_event_dispatches_on_type() -> None:
    assert isinstance(parse_any_event({**purchase(), "type": "purchase"}), PurchaseEvent)
    assert isinstance(parse_any_event({**click(), "type": "click"}), ClickEvent)
    with pytest.raises(ValueError, match="'type' must be one of"):
        parse_any_event({**click(), "type": "bogus"})
    with pytest.raises(ValueError, match="'type' must be one of"):
        parse_any_event({**click(), "type": ["click"]})


# --------------------------------------------------------------------------- decode failures


@pytest.mark.parametrize(
    ("data", "reason_part"),
    [
        (b'{"event_id": "e-1", ', "invalid JSON"),
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"event_id": "\xff\xfe", "member_id": "m"}', "UTF-8"),
        (b"[1, 2, 3]", "expected a JSON object, got list"),
        (b'"just a string"', "expected a JSON object, got str"),
        (b"null", "expected a JSON object, got NoneType"),
        (None, "null value"),
        (b"", "invalid JSON"),
    ],
    ids=[
        "truncated",
        "utf8-bom",
        "utf8-in-string",
        "array",
        "string",
        "json-null",
        "none",
        "empty",
    ],
)
def test_undecodable_records(data: bytes | None, reason_part: str) -> None:
    result = failure(decode_event(data, PurchaseEvent))
    assert result.error_type == "decode"
    assert reason_part in result.reason
    assert result.errors == []


@pytest.mark.parametrize("literal", [b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_money_never_reaches_the_model(literal: bytes) -> None:
    data = raw(purchase(total=0.0)).replace(b'"total":0.0', b'"total":' + literal)
    assert literal in data
    result = failure(decode_event(data, PurchaseEvent))
    # orjson refuses NaN/Infinity literals and overflowing numbers at parse time
    assert result.error_type == "decode"
    assert result.reason.startswith("invalid JSON")


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_money_rejected_by_the_model(value: float) -> None:
    with pytest.raises(ValidationError) as err:
        PurchaseEvent.model_validate({**purchase(), "total": value})
    assert {e["loc"] for e in err.value.errors()} == {("total",)}
    with pytest.raises(ValidationError) as err:
        PurchaseEvent.model_validate({**purchase(), "items": [_item(unit_price=value)]})
    assert {e["loc"] for e in err.value.errors()} == {("items", 0, "unit_price")}


CASES: list[tuple[str, type[Envelope], dict[str, Any], str, str]] = [
    (
        "quantity-str",
        PurchaseEvent,
        purchase(items=[_item(quantity="1")]),
        "items.0.quantity",
        "valid integer",
    ),
    (
        "quantity-float",
        PurchaseEvent,
        purchase(items=[_item(quantity=1.0)]),
        "items.0.quantity",
        "valid integer",
    ),
    (
        "quantity-zero",
        PurchaseEvent,
        purchase(items=[_item(quantity=0)]),
        "items.0.quantity",
        "greater than or equal to 1",
    ),
    ("rating-str", ReviewEvent, review(rating="5"), "rating", "valid integer"),
    ("member-int", ClickEvent, click(member_id=123), "member_id", "valid string"),
    ("member-empty", ClickEvent, click(member_id=""), "member_id", "at least 1 character"),
    ("total-str", PurchaseEvent, purchase(total="3.5"), "total", "valid number"),
    ("total-bool", PurchaseEvent, purchase(total=True), "total", "valid number"),
    (
        "order-missing",
        PurchaseEvent,
        {k: v for k, v in purchase().items() if k != "order_id"},
        "order_id",
        "Field required",
    ),
    (
        "event-id-missing",
        ReviewEvent,
        {k: v for k, v in review().items() if k != "event_id"},
        "event_id",
        "Field required",
    ),
    (
        "naive-ts",
        ClickEvent,
        click(occurred_at="2024-01-01T00:00:00"),
        "occurred_at",
        "timezone-aware",
    ),
    ("date-only", ClickEvent, click(occurred_at="2024-01-01"), "occurred_at", "timezone-aware"),
    ("number-ts", ClickEvent, click(occurred_at=1_714_557_600), "occurred_at", "ISO 8601"),
    ("float-ts", ClickEvent, click(occurred_at=1_714_557_600.5), "occurred_at", "ISO 8601"),
    ("numeric-string-ts", ClickEvent, click(occurred_at="1714557600"), "occurred_at", "ISO 8601"),
    ("garbage-ts", ClickEvent, click(occurred_at="yesterday"), "occurred_at", ""),
    (
        "ts-before-utc-range",  # raised OverflowError out of the decoder: a poison pill
        ClickEvent,
        click(occurred_at="0001-01-01T00:00:00+05:00"),
        "occurred_at",
        "outside the range",
    ),
    (
        "ts-after-utc-range",
        ClickEvent,
        click(occurred_at="9999-12-31T23:59:59-05:00"),
        "occurred_at",
        "outside the range",
    ),
    ("negative-total", PurchaseEvent, purchase(total=-1.0), "total", "greater than or equal to 0"),
    (
        "negative-unit-price",
        PurchaseEvent,
        purchase(items=[_item(unit_price=-0.01)]),
        "items.0.unit_price",
        "greater than or equal to 0",
    ),
    ("rating-0", ReviewEvent, review(rating=0), "rating", "greater than or equal to 1"),
    ("rating-6", ReviewEvent, review(rating=6), "rating", "less than or equal to 5"),
    (
        "text-long",
        ReviewEvent,
        review(text="x" * (MAX_TEXT_CHARS + 1)),
        "text",
        f"at most {MAX_TEXT_CHARS} characters",
    ),
    (
        "title-long",
        ReviewEvent,
        review(title="t" * (MAX_TITLE_CHARS + 1)),
        "title",
        f"at most {MAX_TITLE_CHARS} characters",
    ),
    (
        "item-title-long",
        PurchaseEvent,
        purchase(items=[_item(title="t" * (MAX_TITLE_CHARS + 1))]),
        "items.0.title",
        f"at most {MAX_TITLE_CHARS} characters",
    ),
    (
        "click-title-long",
        ClickEvent,
        click(title="t" * (MAX_TITLE_CHARS + 1)),
        "title",
        f"at most {MAX_TITLE_CHARS} characters",
    ),
    (
        "query-long",
        ClickEvent,
        click(action="search", product_id=None, query="q" * (MAX_QUERY_CHARS + 1)),
        "query",
        f"at most {MAX_QUERY_CHARS} characters",
    ),
    ("empty-items", PurchaseEvent, purchase(items=[]), "items", "at least 1 item"),
    ("currency-lower", PurchaseEvent, purchase(currency="usd"), "currency", "pattern"),
    ("currency-long", PurchaseEvent, purchase(currency="USDX"), "currency", "pattern"),
    ("bad-status", PurchaseEvent, purchase(status="pending"), "status", "'paid'"),
    ("bad-action", ClickEvent, click(action="hover"), "action", "'view'"),
    ("bad-verdict", Feedback, feedback(verdict="maybe"), "verdict", "'confirmed'"),
]


@pytest.mark.parametrize(
    ("model", "payload", "field", "message_part"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_invalid_field_is_named_with_reason(
    model: type[Envelope], payload: dict[str, Any], field: str, message_part: str
) -> None:
    result = failure(decode_event(raw(payload), model))
    assert result.error_type == "validation"
    assert fields(result) == [field], result.reason
    assert message_part in result.errors[0]["message"]
    # the one-line reason names the field and carries the message
    assert result.reason == f"{field}: {result.errors[0]['message']}"


def test_several_bad_fields_are_all_reported() -> None:
    payload = purchase(member_id=7, total="3.5", currency="usd")
    result = failure(decode_event(raw(payload), PurchaseEvent))
    assert sorted(fields(result)) == ["currency", "member_id", "total"]
    for name in ("member_id", "total", "currency"):
        assert f"{name}: " in result.reason


@pytest.mark.parametrize(
    ("model", "payload", "needed"),
    [
        (ClickEvent, click(action="view", product_id=None), "a view click needs a product_id"),
        (
            ClickEvent,
            click(action="add_to_cart", product_id=None),
            "a add_to_cart click needs a product_id",
        ),
        (ClickEvent, click(action="search", product_id=None), "a search click needs a query"),
        (
            ClickEvent,
            click(action="search", product_id=None, query=""),
            "a search click needs a query",
        ),
    ],
    ids=["view-no-product", "cart-no-product", "search-no-query", "search-empty-query"],
)
def test_click_action_needs_its_field(
    model: type[Envelope], payload: dict[str, Any], needed: str
) -> None:
    result = failure(decode_event(raw(payload), model))
    assert result.error_type == "validation"
    assert result.errors == [{"field": "(record)", "message": needed}]
    assert needed in result.reason


@pytest.mark.parametrize("version", [0, 2, 99])
def test_unknown_schema_version_is_the_only_error(version: int) -> None:
    # plenty else is wrong too, but the version explains it all
    payload = purchase(schema_version=version, member_id=5, total="3.5", items=[])
    result = failure(decode_event(raw(payload), PurchaseEvent))
    assert result.error_type == "validation"
    assert fields(result) == ["schema_version"]
    assert result.reason.startswith("schema_version: ")
    assert f"unsupported schema_version {version}" in result.reason
    supported = ", ".join(str(v) for v in sorted(SUPPORTED_SCHEMA_VERSIONS))
    assert f"(supported: {supported})" in result.reason
    assert "member_id" not in result.reason and "total" not in result.reason


def test_schema_version_as_string_is_rejected() -> None:
    result = failure(decode_event(raw(click(schema_version="1")), ClickEvent))
    assert fields(result) == ["schema_version"]


def test_supported_schema_version_explicitly_given_is_accepted() -> None:
    event = decode_event(raw(click(schema_version=1)), ClickEvent)
    assert isinstance(event, ClickEvent)


@pytest.mark.parametrize(
    ("model", "payload", "declared", "expected"),
    [
        (PurchaseEvent, purchase(type="click"), "click", "purchase"),
        (ClickEvent, click(type="review"), "review", "click"),
        (ReviewEvent, review(type="nonsense"), "nonsense", "review"),
        (Feedback, feedback(type=["feedback"]), ["feedback"], "feedback"),
        (ClickEvent, click(type={"a": 1}), {"a": 1}, "click"),
    ],
    ids=["click-on-purchase", "review-on-click", "unknown", "list", "object"],
)
def test_declared_type_must_match_the_topic(
    model: type[Envelope], payload: dict[str, Any], declared: Any, expected: str
) -> None:
    result = failure(decode_event(raw(payload), model))
    assert result.error_type == "validation"
    assert fields(result) == ["type"]
    assert result.reason.startswith("type: ")
    assert repr(declared) in result.reason
    assert repr(expected) in result.reason


def test_record_size_limit_is_exact() -> None:
    base = raw(click())

    def padded(total_size: int) -> bytes:
        # an ignored extra field pads the record to the requested size
        empty = raw({**click(), "pad": ""})
        return raw({**click(), "pad": "x" * (total_size - len(empty))})

    at_limit = padded(MAX_RECORD_BYTES)
    assert len(at_limit) == MAX_RECORD_BYTES > len(base)
    assert isinstance(decode_event(at_limit, ClickEvent), ClickEvent)

    over = padded(MAX_RECORD_BYTES + 1)
    assert len(over) == MAX_RECORD_BYTES + 1
    result = failure(decode_event(over, ClickEvent))
    assert result.error_type == "decode"
    assert str(MAX_RECORD_BYTES + 1) in result.reason
    assert f"{MAX_RECORD_BYTES}-byte limit" in result.reason

    # the size check comes before parsing: an oversized non-JSON blob is a size failure
    blob = failure(decode_event(b"\xff" * (MAX_RECORD_BYTES + 10), ClickEvent))
    assert "byte limit" in blob.reason


def test_long_text_at_the_limit_is_accepted() -> None:
    event = decode_event(
        raw(review(text="x" * MAX_TEXT_CHARS, title="t" * MAX_TITLE_CHARS)), ReviewEvent
    )
    assert isinstance(event, ReviewEvent)
    assert len(event.text) == MAX_TEXT_CHARS


# --------------------------------------------------------------------------- JSON Schema export


def _check_exported(directory: Path, written: list[Path]) -> None:
    expected = {f"{m.__name__}.schema.json" for m in EXPORTED}
    assert {p.name for p in directory.iterdir()} == expected
    assert {p.name for p in written} == expected
    assert len(written) == len(EXPORTED)
    for model in EXPORTED:
        schema = orjson.loads((directory / f"{model.__name__}.schema.json").read_bytes())
        assert schema["$schema"].startswith("https://json-schema.org/")
        assert schema["title"] == model.__name__
        props = set(schema["properties"])
        assert props == set(model.model_fields)
        if issubclass(model, Envelope):
            assert props >= ENVELOPE_FIELDS
            assert {"event_id", "member_id", "occurred_at"} <= set(schema["required"])
        else:
            assert "output_id" in props


def test_export_json_schemas(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "schemas"
    written = export_json_schemas(target)
    _check_exported(target, written)
    purchase_schema = orjson.loads((target / "PurchaseEvent.schema.json").read_bytes())
    assert purchase_schema["properties"]["total"]["minimum"] == 0
    assert set(purchase_schema["required"]) >= {"order_id", "items", "total"}
    # exporting again overwrites in place and gives the same bytes
    before = {p.name: p.read_bytes() for p in written}
    export_json_schemas(target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before


def test_cli_schemas_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from memberstream.cli.main import cli

    monkeypatch.delenv(CONFIG_ENV, raising=False)
    target = tmp_path / "out"
    result = CliRunner().invoke(cli, ["schemas", "export", str(target)])
    assert result.exit_code == 0, result.output
    printed = [line for line in result.output.splitlines() if line.strip()]
    written = [Path(line) for line in printed]
    assert all(p.is_file() for p in written)
    _check_exported(target, written)


# --------------------------------------------------------------------------- output ids


def test_deterministic_id() -> None:
    a = deterministic_id("tier", "m-1", "e-1")
    assert a == deterministic_id("tier", "m-1", "e-1")
    assert uuid.UUID(a).version == 5
    assert a != deterministic_id("tier", "m-1", "e-2")
    assert a != deterministic_id("profile", "m-1", "e-1")
    assert a != deterministic_id("tier", "m-1")
    # parts are separated, not just concatenated
    assert deterministic_id("ab", "c") != deterministic_id("a", "bc")
    # non-string parts are fine and stable
    assert deterministic_id("profile", "m", 3, "e") == deterministic_id("profile", "m", 3, "e")
    assert deterministic_id("profile", "m", 3, "e") != deterministic_id("profile", "m", 4, "e")


CONTRACTS = Path(__file__).resolve().parents[2] / "contracts" / "schemas"


def test_the_committed_schemas_match_the_code() -> None:
    """The consumer contract: a schema change that is not committed (and versioned
    by the compatibility rule) fails here."""
    from memberstream.schemas.export import schema_drift

    assert schema_drift(CONTRACTS) == []
    ids = {orjson.loads(p.read_bytes())["$id"] for p in CONTRACTS.glob("*.schema.json")}
    assert "urn:memberstream:schema:ClickEvent:v1" in ids
    assert "urn:memberstream:schema:MemberProfile:v2" in ids


def test_the_drift_check_names_a_changed_field_a_missing_file_and_a_stray_one(
    tmp_path: Path,
) -> None:
    import shutil

    from click.testing import CliRunner

    from memberstream.cli.main import cli
    from memberstream.schemas.export import schema_drift

    copy = tmp_path / "schemas"
    shutil.copytree(CONTRACTS, copy)
    path = copy / "ReviewEvent.schema.json"
    schema = orjson.loads(path.read_bytes())
    schema["properties"]["rating"]["maximum"] = 10  # someone widened ratings
    path.write_bytes(orjson.dumps(schema))
    (copy / "ClickEvent.schema.json").unlink()
    (copy / "Gone.schema.json").write_text("{}")
    assert schema_drift(copy) == [
        "ClickEvent.schema.json: not committed",
        "ReviewEvent.schema.json: fields rating differ from the code, still "
        "urn:memberstream:schema:ReviewEvent:v1",
        "Gone.schema.json: committed, but no such schema in the code",
    ]
    result = CliRunner().invoke(cli, ["schemas", "check", str(copy)])
    assert result.exit_code == 1 and "3 schemas differ from the code" in result.output
