"""Log format and redaction: a record goes out as one JSON object with its fields, no
member id in clear, no text, no e-mail; text stays the default; the worker's handlers
(Faust's) get the same treatment."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import faust
import pytest
from pydantic import BaseModel, ValidationError

from memberstream.cli.commands.context import settings_from
from memberstream.cli.main import cli
from memberstream.config import Settings
from memberstream.domain.pii import pseudonymize
from memberstream.streams.logs import (
    REDACTED,
    JsonFormatter,
    configure_logging,
    format_handler,
    log_key,
)
from memberstream.streams.worker_runtime import MemberstreamWorker

KEY = "log-test-key"
MEMBER = "cdnow-00042"
PSEUDONYM = pseudonymize(MEMBER, KEY.encode())


def settings(fmt: str = "json") -> Settings:
    return Settings(logging={"format": fmt}, learning={"member_key": KEY})


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own whose one handler is formatted and redacted like the commands'."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    format_handler(handler, settings())
    logger = logging.getLogger("memberstream.test_logs.json")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, out
    logger.removeHandler(handler)
    logger.propagate = True


def lines(out: io.StringIO) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_record_goes_out_as_one_json_object_with_its_fields(logged) -> None:  # type: ignore[no-untyped-def]
    logger, out = logged
    logger.info("batch done: %d records", 120, extra={"topic": "events.clicks", "partition": 3})
    (line,) = lines(out)
    assert line["level"] == "INFO"
    assert line["logger"] == "memberstream.test_logs.json"
    assert line["message"] == "batch done: 120 records"
    assert (line["topic"], line["partition"]) == ("events.clicks", 3)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])
    at = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - at).total_seconds()) < 60


def test_an_exception_is_a_field_and_fields_never_replace_the_record_own(logged) -> None:  # type: ignore[no-untyped-def]
    logger, out = logged
    try:
        raise ValueError("offset 17 out of range")
    except ValueError:
        logger.exception("batch failed", extra={"level": "x", "path": Path("/var/lib/ms")})
    (line,) = lines(out)
    assert line["level"] == "ERROR" and line["message"] == "batch failed"
    assert line["exception_type"] == "ValueError"
    assert "Traceback" in line["exception"] and "offset 17 out of range" in line["exception"]
    assert line["path"] == "/var/lib/ms"  # what JSON cannot hold, as text


def test_member_ids_emails_and_texts_are_redacted_in_messages_and_fields(logged) -> None:  # type: ignore[no-untyped-def]
    logger, out = logged
    logger.warning(
        "tier change member_id=%s (contact jane.doe@example.com)",
        MEMBER,
        extra={"title": "Wireless headphones", "query": "headphones for jane"},
    )
    logger.warning("held back for %s", MEMBER, extra={"member_id": MEMBER})
    logger.warning("bad record %s", {"member_id": MEMBER, "text": "Call me on 555 0100"})
    logger.info("event", extra={"event": {"member_id": MEMBER, "review_text": "Loved it"}})
    first, second, third, fourth = lines(out)
    text = out.getvalue()
    for secret in (MEMBER, "jane", "example.com", "Wireless", "555 0100", "Loved"):
        assert secret not in text
    assert first["message"] == f"tier change member_id={PSEUDONYM} (contact <EMAIL>)"
    assert first["title"] == first["query"] == REDACTED
    # a member id given as a field is replaced where it recurs in the message too
    assert second["member_id"] == PSEUDONYM
    assert second["message"] == f"held back for {PSEUDONYM}"
    assert third["message"] == f"bad record {{'member_id': '{PSEUDONYM}', 'text': '{REDACTED}'}}"
    assert fourth["event"] == {"member_id": PSEUDONYM, "review_text": REDACTED}


def test_a_validation_error_does_not_carry_the_input_into_the_log(logged) -> None:  # type: ignore[no-untyped-def]
    class Review(BaseModel):
        rating: int

    logger, out = logged
    record = {"rating": "great, write to bob@mail.example.org"}
    try:
        Review.model_validate(record)  # the traceback shows this line, not the record
    except ValidationError:
        logger.exception("record refused")
    (line,) = lines(out)
    assert "input_value=<redacted>" in line["exception"]
    assert "great" not in line["exception"] and "bob" not in line["exception"]


def test_text_is_the_default_and_is_redacted_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert Settings().logging.format == "text"
    handler = configure_logging(settings("text"), "info")
    try:
        logging.getLogger("memberstream.test_logs.text").info("member_id=%s", MEMBER)
    finally:
        logging.getLogger().removeHandler(handler)
    (line,) = capsys.readouterr().err.splitlines()
    assert not line.startswith("{")
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d,\d{{3}} INFO memberstream.test_logs.text: "
        rf"member_id={PSEUDONYM}",
        line,
    )
    assert not isinstance(handler.formatter, JsonFormatter)


def test_the_format_comes_from_the_environment_or_the_cli_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEMBERSTREAM_LOGGING__FORMAT", "json")
    assert Settings().logging.format == "json"
    monkeypatch.delenv("MEMBERSTREAM_LOGGING__FORMAT")
    ctx = click.Context(cli, obj={"config": None, "debug": False, "log_format": "json"})
    assert settings_from(ctx).logging.format == "json"
    with pytest.raises(ValidationError):
        Settings(logging={"format": "xml"})


def test_without_a_member_key_pseudonyms_use_a_key_of_the_process() -> None:
    keyless = Settings()
    assert log_key(keyless) == log_key(keyless) != KEY.encode()
    assert log_key(settings()) == KEY.encode()


def test_the_worker_formats_and_redacts_the_handlers_faust_sets_up() -> None:
    app = faust.App("test-logs", store="memory://", autodiscover=False, web_enabled=False)
    worker = MemberstreamWorker(app, shutdown_timeout_s=1, settings=settings(), loglevel="info")
    assert worker.quiet  # no banner among the JSON lines
    root = logging.Logger("faust-root-stand-in")
    out = io.StringIO()
    root.addHandler(logging.StreamHandler(out))
    worker.on_setup_root_logger(root, logging.INFO)
    root.error("state of member_id=%s not written", MEMBER)
    (line,) = lines(out)
    assert line["message"] == f"state of member_id={PSEUDONYM} not written"
