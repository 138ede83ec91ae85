"""Clear failures: one `error:` line (or a short list), a `hint:`, a distinct exit code,
no traceback unless --debug. No Kafka needed: the broker here is a closed port."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from memberstream import __version__, errors
from memberstream.cli.commands.context import explain
from memberstream.cli.main import cli, main
from memberstream.config import CONFIG_ENV

CLOSED = "127.0.0.1:1"  # nothing listens on port 1: connections are refused at once


def run_cli(args: list[str], **env: str | None) -> Result:
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MEMBERSTREAM_")}
    clean[CONFIG_ENV] = None
    clean["KAFKA_BOOTSTRAP_SERVERS"] = None
    clean.update(env)
    return CliRunner().invoke(cli, args, env=clean, catch_exceptions=False)


def no_kafka(**env: str | None) -> dict[str, str | None]:
    return {"KAFKA_BOOTSTRAP_SERVERS": CLOSED, "MEMBERSTREAM_STARTUP_TIMEOUT_S": "1", **env}


# --- the error classes ------------------------------------------------------------------

CLASSES = [
    errors.ConfigError,
    errors.KafkaUnavailableError,
    errors.TopicsNotReady,
    errors.AuthError,
    errors.ModelError,
    errors.BatchFailed,
    errors.TimedOut,
]


def test_exit_codes_are_distinct_and_documented() -> None:
    codes = {cls.__name__: cls.exit_code for cls in CLASSES}
    assert codes == {
        "ConfigError": 78,
        "KafkaUnavailableError": 69,
        "TopicsNotReady": 79,
        "AuthError": 77,
        "ModelError": 66,
        "BatchFailed": 70,
        "TimedOut": 75,
    }
    assert len(set(codes.values())) == len(codes)
    for cls in CLASSES:
        assert issubclass(cls, errors.MemberstreamError)
        assert cls.hint, cls.__name__
        assert f"{cls.exit_code}   {cls.__name__} " in (errors.__doc__ or ""), cls.__name__


def test_message_and_hint() -> None:
    error = errors.ConfigError("bad", hint="do this")
    assert str(error) == "bad"
    assert error.hint == "do this"
    assert errors.ConfigError("bad").hint == errors.ConfigError.hint  # the class default
    not_ready = errors.TopicsNotReady("t", problems=["a: missing"])
    assert not_ready.problems == ["a: missing"]


def test_library_errors_are_explained() -> None:
    from aiokafka.errors import (
        KafkaConnectionError,
        KafkaTimeoutError,
        SaslAuthenticationFailed,
    )

    from memberstream.cli.devbroker import BrokerError
    from memberstream.ml.encoder import EncoderError
    from memberstream.streams.kafka_io import KafkaUnavailable

    ctx = click.Context(cli, obj={})
    cases = {
        KafkaConnectionError("Unable to bootstrap"): 69,
        KafkaUnavailable("no Kafka at x"): 69,
        KafkaTimeoutError(): 75,
        SaslAuthenticationFailed("bad password"): 77,
        EncoderError("no model.onnx in /m"): 66,
        BrokerError("port 9092 already in use"): 69,
        errors.TopicsNotReady("x"): 79,
    }
    for exc, code in cases.items():
        explained = explain(exc, ctx)
        assert explained is not None and explained.exit_code == code, exc
    assert explain(ValueError("a bug"), ctx) is None


def test_kafka_io_auth_errors_are_auth_errors() -> None:
    from memberstream.streams import kafka_io

    auth = getattr(kafka_io, "KafkaAuthError", None)
    if auth is None:
        pytest.skip("kafka_io has no KafkaAuthError")
    explained = explain(auth("authentication failed: bad password"), click.Context(cli, obj={}))
    assert explained is not None and explained.exit_code == 77


# --- the command line -------------------------------------------------------------------


def test_version() -> None:
    result = run_cli(["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"memberstream {__version__}\n"
    assert __version__ == "0.1.0"


def test_bad_log_level_is_a_usage_error() -> None:
    result = run_cli(["worker", "--log-level", "loud"])
    assert result.exit_code == 2
    assert "Invalid value for '--log-level'" in result.stderr
    assert "'loud' is not one of 'debug', 'info', 'warning', 'error', 'critical'" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["worker", "--log-level", "WARNING"],  # log level case-insensitive: it got to Kafka
        ["topics", "create"],
        ["topics", "check"],
        ["produce", "--dataset", "synthetic", "--limit", "1"],
        ["consume", "events.clicks"],
    ],
    ids=["worker", "topics-create", "topics-check", "produce", "consume"],
)
def test_kafka_down_is_one_error_a_hint_and_exit_69(args: list[str]) -> None:
    started = time.monotonic()
    result = run_cli(args, **no_kafka())
    assert time.monotonic() - started < 15
    assert result.exit_code == 69, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if not line.startswith("waiting up to")]
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"error: no Kafka answered at {CLOSED} within 1 s")
    assert lines[1].startswith("hint: start the development broker with `memberstream broker")
    assert "KAFKA_BOOTSTRAP_SERVERS" in lines[1]


def test_unknown_env_setting_exit_78() -> None:
    result = run_cli(["topics", "check"], **no_kafka(MEMBERSTREAM_BATCH__MAX_BACH="3"))
    assert result.exit_code == 78, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        "error: unknown setting MEMBERSTREAM_BATCH__MAX_BACH (env var); "
        "did you mean MEMBERSTREAM_BATCH__MAX_BATCH?",
        "hint: rename or unset it; nested settings take a double underscore "
        "(MEMBERSTREAM_BATCH__MAX_BATCH=100), a whole section may be JSON "
        """(MEMBERSTREAM_TOPICS='{"clicks": "my.clicks"}')""",
    ]


def test_unknown_file_setting_exit_78(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[inference.encoder]\nmodeldir = '/m'\n")
    result = run_cli(["--config", str(path), "worker"], **no_kafka())
    assert result.exit_code == 78, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"error: unknown setting inference.encoder.modeldir (from config file {path}); "
        "did you mean inference.encoder.model_dir?",
        f"hint: fix or remove it in the config file {path}",
    ]


def test_invalid_setting_value_exit_78() -> None:
    result = run_cli(["produce", "--dataset", "cdnow"], MEMBERSTREAM_PARTITIONS="zero")
    assert result.exit_code == 78, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith(
        "error: invalid setting partitions (from env var MEMBERSTREAM_PARTITIONS): "
    )


def test_invalid_toml_exit_78(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[batch\n")
    result = run_cli(["--config", str(path), "topics", "check"])
    assert result.exit_code == 78
    assert f"error: config file {path} is not valid TOML" in result.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(how: str) -> None:
    args = ["--debug", "topics", "check"] if how == "flag" else ["topics", "check"]
    env = no_kafka(MEMBERSTREAM_DEBUG="1" if how == "env" else None)
    result = run_cli(args, **env)
    assert result.exit_code == 69
    assert "Traceback (most recent call last)" in result.stderr
    assert "KafkaUnavailableError" in result.stderr
    assert f"error: no Kafka answered at {CLOSED}" in result.stderr


def test_main_exit_code_for_expected_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMBERSTREAM_PARTITONS", "3")
    monkeypatch.setattr(sys, "argv", ["memberstream", "topics", "check"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 78
    err = capsys.readouterr().err
    assert err.startswith("error: unknown setting MEMBERSTREAM_PARTITONS")
    assert "Traceback" not in err


def test_unexpected_exception_is_a_bug_with_traceback_and_exit_70(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from memberstream.schemas import export

    def broken(directory: Path) -> list[Path]:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(export, "export_json_schemas", broken)
    monkeypatch.setattr(sys, "argv", ["memberstream", "schemas", "export", str(tmp_path)])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "ZeroDivisionError: oops" in err
    assert err.rstrip().splitlines()[-1].startswith("error: unexpected failure: this is a bug")


def test_models_info_missing_model_exit_66(tmp_path: Path) -> None:
    from memberstream.cli.commands.models import models

    result = CliRunner().invoke(models, ["info", "--model-dir", str(tmp_path / "none")])
    assert result.exit_code == 66
    assert "Traceback" not in result.output
    assert "memberstream models export" in result.output
