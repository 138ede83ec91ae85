"""What every CLI command shares: the settings (loaded on first use), and the turning
of expected failures into ``error:`` and ``hint:`` lines with their exit code."""

from __future__ import annotations

import os
import tomllib
import traceback
from datetime import datetime
from typing import IO, Any

import click
from pydantic import ValidationError

from memberstream.config import CONFIG_ENV, Settings, config_error, load_settings
from memberstream.errors import (
    AuthError,
    ConfigError,
    KafkaUnavailableError,
    MemberstreamError,
    ModelError,
    TimedOut,
    TopicsNotReady,
)

DEBUG_ENV = "MEMBERSTREAM_DEBUG"


def settings_from(ctx: click.Context) -> Settings:
    """The settings for this invocation (so `--help` works even with bad settings).

    The root group stores ``--config``; the first command that needs settings
    loads them. A bad, unknown or misspelled setting becomes a ConfigError
    naming the setting and where it came from (env var or config file).
    """
    obj = ctx.find_root().obj
    if "settings" not in obj:
        config = obj.get("config")
        try:
            obj["settings"] = load_settings(config)
        except ValidationError as exc:
            raise config_error(exc, config) from exc
        except tomllib.TOMLDecodeError as exc:
            path = config or os.environ.get(CONFIG_ENV)
            raise ConfigError(
                f"config file {path} is not valid TOML: {exc}",
                hint="fix the file's syntax (https://toml.io)",
            ) from exc
        except FileNotFoundError as exc:
            raise ConfigError(
                str(exc), hint=f"point --config or {CONFIG_ENV} at an existing TOML file"
            ) from exc
        if obj.get("log_format"):  # --log-format wins over the setting
            obj["settings"].logging.format = obj["log_format"]
    return obj["settings"]  # type: ignore[no-any-return]


def setup_logging(ctx: click.Context, level: str = "info") -> Settings:
    """Logging of a long-running command (collect, learn, replay) at ``level``: the
    format of ``logging.format`` or ``--log-format``, personal data redacted
    (:mod:`memberstream.streams.logs`; the worker applies the same to Faust's handlers)."""
    from memberstream.streams.logs import configure_logging

    settings = settings_from(ctx)
    configure_logging(settings, level)
    return settings


def debug_on(ctx: click.Context | None) -> bool:
    """``--debug`` or ``MEMBERSTREAM_DEBUG=1``: show tracebacks of expected failures."""
    obj = ctx.find_root().obj if ctx is not None else None
    if isinstance(obj, dict) and obj.get("debug"):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _bootstrap(ctx: click.Context) -> str:
    obj = ctx.find_root().obj
    settings = obj.get("settings") if isinstance(obj, dict) else None
    return settings.kafka_bootstrap_servers if settings is not None else "the bootstrap address"


def explain(exc: BaseException, ctx: click.Context) -> MemberstreamError | None:
    """The expected failure ``exc`` stands for (None: unexpected, a bug)."""
    from aiokafka.errors import (
        KafkaConnectionError,
        KafkaTimeoutError,
        UnknownTopicOrPartitionError,
    )

    from memberstream.cli.devbroker import BrokerError
    from memberstream.ml.encoder import EncoderError
    from memberstream.streams.topic_check import AUTH_ERRORS

    if isinstance(exc, MemberstreamError):  # kafka_io's KafkaUnavailable, KafkaAuthError too
        return exc
    if isinstance(exc, AUTH_ERRORS):
        return AuthError(
            f"Kafka at {_bootstrap(ctx)} refused the connection: {type(exc).__name__}: {exc}"
        )
    if isinstance(exc, KafkaConnectionError):
        return KafkaUnavailableError(f"no connection to Kafka at {_bootstrap(ctx)}: {exc}")
    if isinstance(exc, KafkaTimeoutError):
        return TimedOut(f"Kafka at {_bootstrap(ctx)} did not answer in time: {exc}")
    if isinstance(exc, UnknownTopicOrPartitionError):
        return TopicsNotReady(f"a topic does not exist: {exc}")
    if isinstance(exc, EncoderError):
        return ModelError(str(exc))
    if isinstance(exc, BrokerError):
        return KafkaUnavailableError(
            f"the development broker: {exc}",
            hint="see `memberstream broker status`, or set KAFKA_BOOTSTRAP_SERVERS to use "
            "another Kafka",
        )
    return None


class Failure(click.ClickException):
    """An expected failure on its way out: ``error:`` and ``hint:`` lines, its exit code."""

    def __init__(self, error: MemberstreamError, cause: BaseException, debug: bool) -> None:
        super().__init__(error.message)
        self.error = error
        self.cause = cause
        self.debug = debug
        self.exit_code = error.exit_code

    def show(self, file: IO[Any] | None = None) -> None:
        out = file if file is not None else click.get_text_stream("stderr")
        if self.debug:
            out.write("".join(traceback.format_exception(self.cause)))
        click.echo(f"error: {self.error.message}", file=out)
        if self.error.hint:
            hint = self.error.hint.replace("\n", "\n      ")  # aligned under the first line
            click.echo(f"hint: {hint}", file=out)


class MemberstreamGroup(click.Group):
    """A command group that turns expected failures of its commands into a
    :class:`Failure` (click prints it and exits with its code)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            error = explain(exc, ctx)
            if error is None:
                raise
            raise Failure(error, exc, debug_on(ctx)) from exc


def iso_time(value: str | None) -> datetime | None:
    """An option's ISO-8601 time with a zone (None stays None); a usage error otherwise."""
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time") from None
    if t.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no timezone (add Z or +00:00)")
    return t


def serve_metrics(settings: Any, metrics: Any) -> Any:
    """Start the process's /metrics, /healthz and /readyz endpoint (none when
    ``metrics.port`` is 0). A port in use is logged and the process goes on without
    the endpoint: several workers on one host (tests, a laptop) must not stop each
    other, and in a pod the missing readiness endpoint keeps it out of service, which
    shows."""
    if not settings.metrics.port:
        return None
    import logging

    from memberstream.streams.metrics import MetricsServer

    try:
        server = MetricsServer(metrics, settings.metrics.host, settings.metrics.port).start()
    except OSError as exc:
        logging.getLogger("memberstream.metrics").error(
            "metrics endpoint %s:%d not started: %s (set MEMBERSTREAM_METRICS__PORT to a free "
            "port, or 0 for none)",
            settings.metrics.host,
            settings.metrics.port,
            exc.strerror,
        )
        return None
    click.echo(f"metrics: http://{settings.metrics.host}:{server.port}/metrics", err=True)
    return server
