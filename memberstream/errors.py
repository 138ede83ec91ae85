"""Errors memberstream expects and explains: one message, a hint, an exit code.

The command line prints ``error: <message>`` and ``hint: <hint>`` on stderr, with
no traceback (``--debug`` or ``MEMBERSTREAM_DEBUG=1`` shows it), and exits with
the error's code. The codes follow ``sysexits.h`` where one fits:

==== ===================== =============================================================
code class                 meaning
==== ===================== =============================================================
0                          success
1                          a command's own failure (click's ``ClickException``)
2                          usage error: unknown option, bad option value (click)
66   ModelError            a model the command needs is missing or unusable (EX_NOINPUT)
69   KafkaUnavailableError no Kafka answered at the bootstrap address (EX_UNAVAILABLE)
70   BatchFailed           the worker gave up on a batch (EX_SOFTWARE); also any
                           unexpected exception, which is a bug and keeps its traceback
75   TimedOut              a send, flush or wait that could not complete in time
                           (EX_TEMPFAIL: retrying later may work)
77   AuthError             Kafka refused the credentials or the TLS handshake, or an ACL
                           denied an operation (EX_NOPERM)
78   ConfigError           an unknown, misspelled or invalid setting (EX_CONFIG)
79   TopicsNotReady        a topic is missing or has the wrong partition count or cleanup
                           policy (just past the sysexits range, so it is unambiguous)
143                        the worker was still stopping ``shutdown_timeout_s`` after
                           SIGTERM and exited anyway, as a SIGTERM would (130 for SIGINT)
==== ===================== =============================================================

This module imports nothing from the rest of the package, so any module can
raise these errors.
"""

from __future__ import annotations

EX_USAGE = 2
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_NOPERM = 77
EX_CONFIG = 78
EX_TOPICS = 79


class MemberstreamError(Exception):
    """An expected failure: a message saying what is wrong, a hint saying what to do."""

    exit_code: int = 1
    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(MemberstreamError):
    """A setting that is unknown, misspelled or invalid (env var, config file or argument)."""

    exit_code = EX_CONFIG
    hint = (
        "settings come from MEMBERSTREAM_* env vars (nested fields with __) and the "
        "--config TOML file; see Configuration in the README"
    )


class KafkaUnavailableError(MemberstreamError):
    """No Kafka broker answered at the configured bootstrap address."""

    exit_code = EX_UNAVAILABLE
    hint = (
        "start the development broker with `memberstream broker start`, or point "
        "KAFKA_BOOTSTRAP_SERVERS at a running Kafka"
    )


class AuthError(MemberstreamError):
    """Kafka refused the connection's credentials, TLS handshake or permissions."""

    exit_code = EX_NOPERM
    hint = (
        "check the [kafka] settings (security_protocol, sasl_mechanism, sasl_username, "
        "sasl_password, ssl_cafile) and the principal's ACLs"
    )


class TopicsNotReady(MemberstreamError):
    """A topic the worker reads or writes is missing or not configured as it must be."""

    exit_code = EX_TOPICS
    hint = "create missing topics with `memberstream topics create`"

    def __init__(
        self, message: str, hint: str | None = None, problems: list[str] | None = None
    ) -> None:
        super().__init__(message, hint)
        self.problems = list(problems or [])


class ModelError(MemberstreamError):
    """A model the command needs is missing or cannot be loaded."""

    exit_code = EX_NOINPUT
    hint = (
        "fetch the default model with `make models` (or `memberstream models fetch`), point "
        "MEMBERSTREAM_INFERENCE__ENCODER__MODEL_DIR at a model directory, or run without "
        "a text model with MEMBERSTREAM_INFERENCE__ENABLED=false"
    )


class InputError(MemberstreamError):
    """An input file the command reads holds a bad record (named by its line)."""

    exit_code = EX_DATAERR
    hint = "fix the line (one JSON object per line; see the command's --help)"


class BatchFailed(MemberstreamError):
    """The worker gave up on a batch; its offsets were not committed, so it is redone."""

    exit_code = EX_SOFTWARE
    hint = "the batch is redone when the worker restarts; the log above says why it failed"


class TimedOut(MemberstreamError):
    """A send, flush or wait that could not complete in time."""

    exit_code = EX_TEMPFAIL
    hint = "Kafka may be overloaded or partly down; check the brokers and try again"


__all__ = [
    "EX_CONFIG",
    "EX_NOINPUT",
    "EX_NOPERM",
    "EX_SOFTWARE",
    "EX_TEMPFAIL",
    "EX_TOPICS",
    "EX_UNAVAILABLE",
    "EX_USAGE",
    "AuthError",
    "BatchFailed",
    "ConfigError",
    "KafkaUnavailableError",
    "MemberstreamError",
    "ModelError",
    "TimedOut",
    "TopicsNotReady",
]
