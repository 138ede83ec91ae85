"""How the long-running commands log, and what keeps personal data out of their logs.

:func:`configure_logging` sets up the root logger of the collector, ``learn`` and
``replay``: one handler on stderr in ``logging.format`` (``--log-format`` overrides it).
The worker's handlers are Faust's; :class:`~memberstream.streams.worker_runtime.
MemberstreamWorker` passes each to :func:`format_handler`, which
:func:`configure_logging` uses too.

``text`` (the default): ``<time> <LEVEL> <logger>: <message>`` (the worker keeps Faust's
own line). ``json``: one object per line, ``{"timestamp": "2026-01-01T12:00:00.123Z",
"level": "INFO", "logger": "...", "message": "...", <fields>}``: the timestamp in UTC,
the structured fields a call passes as ``extra=`` beside them (never over them), and for
a logged exception ``exception_type`` and ``exception`` (the traceback as one string).

Redacted, in both formats (:class:`RedactPersonalData`, on every handler):

- fields (``extra=``, at any depth of a dict or list): a member id (``member_id``,
  ``member``, ``customer_id``, ``user_id``) becomes its keyed pseudonym (``m_`` and 24 hex
  digits, :func:`memberstream.domain.pii.pseudonymize`); a free text (``text``,
  ``title``, ``query``, ``review``, ``review_text``, ``body``, ``comment``) or contact
  data (``email``, ``phone``, ``address``) becomes ``<redacted>``;
- the message and the exception text: the same names written ``name=value`` or
  ``'name': value`` / ``"name": value`` (a dict or JSON object printed whole), a member id
  given as a field wherever it recurs, e-mail addresses (``<EMAIL>``), and the input a
  pydantic validation error quotes (``input_value=...``).

The pseudonyms' key is ``learning.member_key`` when one is set (a log line's pseudonym
is then the one the training samples carry), else a random key per process. A member
id or a text passed as a bare positional argument, with no name beside it, cannot be
recognized: the code passes them as fields, or not at all.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Collection
from datetime import UTC, datetime
from functools import lru_cache
from typing import IO, Any

import orjson

from memberstream.config import Settings
from memberstream.domain.pii import pseudonymize
from memberstream.errors import ConfigError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "<redacted>"
MEMBER_FIELDS = frozenset({"member_id", "member", "customer_id", "user_id"})
TEXT_FIELDS = frozenset(
    {"text", "title", "query", "review", "review_text", "body", "comment"}
    | {"email", "phone", "address"}
)

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}
_NAMES = "|".join(sorted(MEMBER_FIELDS | TEXT_FIELDS, key=len, reverse=True))
_VALUE = r"""(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;)}\]]+)"""
# name=value (a log line's own style; "name = value", a line of code, is left alone) and
# 'name': value or "name": value (a dict or a JSON object printed whole).
_NAMED = (
    re.compile(rf"(?<![\w.])(?P<q>)(?P<name>{_NAMES})(?P<sep>=){_VALUE}"),
    re.compile(rf"""(?<![\w.])(?P<q>['"])(?P<name>{_NAMES})(?P=q)(?P<sep>\s*:\s*){_VALUE}"""),
)
_PYDANTIC_INPUT = re.compile(r"input_value=.*?(?=, input_type=)", re.DOTALL)
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b"
)
_TRACEBACKS = logging.Formatter()


def log_key(settings: Settings) -> bytes:
    """The pseudonyms' key: ``learning.member_key`` when set, else one per process."""
    try:
        return settings.learning.member_key_bytes()
    except ConfigError:
        return _process_key()


@lru_cache(maxsize=1)
def _process_key() -> bytes:
    return os.urandom(32)


class RedactPersonalData(logging.Filter):
    """Rewrites a record so that no member id (in clear), text or e-mail leaves the
    process (see the module doc); lets every record through."""

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._redact(record)
        except Exception:  # a log call must never fail because of its redaction
            record.msg, record.args = "<log record not shown: it could not be redacted>", ()
            record.exc_info = record.exc_text = record.stack_info = None
            for name in [k for k in record.__dict__ if k not in _STANDARD]:
                delattr(record, name)
        return True

    def _redact(self, record: logging.LogRecord) -> None:
        ids: set[str] = set()
        for name in [k for k in record.__dict__ if k not in _STANDARD]:
            setattr(record, name, self.field(name, getattr(record, name), ids))
        record.msg, record.args = self.text(record.getMessage(), ids), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.text(record.exc_text, ids)
        if record.stack_info:
            record.stack_info = self.text(record.stack_info, ids)

    def field(self, name: str, value: Any, ids: set[str]) -> Any:
        """A field's value as it may be logged; member ids met are added to ``ids``."""
        if name in MEMBER_FIELDS and isinstance(value, str | int):
            ids.add(str(value))
            return pseudonymize(str(value), self.key)
        if name in TEXT_FIELDS and value is not None:
            return REDACTED
        if isinstance(value, dict):
            return {k: self.field(str(k), v, ids) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.field("", v, ids) for v in value]
        if isinstance(value, str):
            return self.text(value, ids)
        return value

    def text(self, text: str, ids: Collection[str] = ()) -> str:
        """A message or traceback with the named values, ids, e-mails and pydantic inputs
        redacted."""
        text = _PYDANTIC_INPUT.sub("input_value=" + REDACTED, text)
        for named in _NAMED:
            text = named.sub(self._named, text)
        for member_id in sorted(ids, key=len, reverse=True):
            if len(member_id) > 1:
                pattern = rf"(?<![\w-]){re.escape(member_id)}(?![\w-])"
                text = re.sub(pattern, pseudonymize(member_id, self.key), text)
        return _EMAIL.sub("<EMAIL>", text)

    def _named(self, m: re.Match[str]) -> str:
        value = m.group("value")
        quote = value[0] if value[:1] in ("'", '"') and len(value) > 1 else ""
        inner = value[1:-1] if quote else value
        name, q = m.group("name"), m.group("q")
        inner = pseudonymize(inner, self.key) if name in MEMBER_FIELDS else REDACTED
        return f"{q}{name}{q}{m.group('sep')}{quote}{inner}{quote}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module doc)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _STANDARD and not name.startswith("_"):
                out.setdefault(name, value)
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
            if record.exc_info[0] is not None:
                out["exception_type"] = record.exc_info[0].__name__
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # what orjson refuses (an int beyond 64 bits)
            return json.dumps(out, default=str, ensure_ascii=False)


def utc_iso(created: float) -> str:
    """``2026-01-01T12:00:00.123Z``."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a test runner swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def format_handler(handler: logging.Handler, settings: Settings) -> None:
    """``handler`` in ``logging.format`` (json: :class:`JsonFormatter`; text: the
    handler's own formatter) and behind the redaction filter, once."""
    if settings.logging.format == "json":
        handler.setFormatter(JsonFormatter())
    if not any(isinstance(f, RedactPersonalData) for f in handler.filters):
        handler.addFilter(RedactPersonalData(log_key(settings)))


def configure_logging(settings: Settings, level: str | int = "info") -> logging.Handler:
    """The root logger of a long-running command: one stderr handler (replacing the one
    an earlier call installed), formatted and redacted as :func:`format_handler` says;
    the Kafka client logs warnings and above."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    format_handler(handler, settings)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    return handler
