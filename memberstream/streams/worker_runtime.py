"""Running the Faust worker process: bounded shutdown and bounded client logging.

* SIGTERM (or Ctrl-C) starts Faust's orderly stop; if anything hangs in it (a
  producer flush to a broker that is gone, a commit that never returns), the
  process still exits after ``shutdown_timeout_s``. Nothing is lost by that:
  whatever was not committed is processed again on restart.
* The Kafka client libraries log one error per reconnect attempt; a broker
  outage of half a minute made 150,000 lines. :class:`RepeatLimiter` lets each
  distinct message through once per interval and counts what it held back.
* :func:`tune_gc`: the cyclic garbage collector re-traverses every long-lived
  object (Faust, the Kafka clients, the model, the state cache) each time the
  per-event allocations trigger a collection; freezing what start-up built and
  collecting less often gave the worker 2-14% (``bench.throughput``, GC off: 5-19%).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from typing import Any

import faust

from memberstream.config import Settings
from memberstream.streams.logs import format_handler

log = logging.getLogger(__name__)

LIMITED_LOGGERS = ("aiokafka", "faust.transport", "kafka")
GC_THRESHOLDS = (50_000, 20, 100)
"""Allocations before a young collection (CPython's default 700), then how many young
(or middle) collections before an older one."""


def tune_gc() -> None:
    """Move everything allocated so far out of the collector's reach and collect less
    often; call once start-up has built the app (modules, model, clients)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


class RepeatLimiter(logging.Filter):
    """Pass a record from the Kafka client loggers at most once per ``interval_s`` per
    (logger, message template); the next one that passes says how many were held back."""

    def __init__(self, interval_s: float = 10.0, prefixes: tuple[str, ...] = LIMITED_LOGGERS):
        super().__init__()
        self.interval_s = interval_s
        self.prefixes = prefixes
        self._last: dict[tuple[str, Any], float] = {}
        self._held: dict[tuple[str, Any], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefixes):
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            self._last[key] = now
            if len(self._last) > 10_000:  # bounded: forget the oldest templates
                oldest = min(self._last, key=self._last.__getitem__)
                self._last.pop(oldest)
                self._held.pop(oldest, None)
            held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {self.interval_s:.0f}s]"
        return True


def install_repeat_limiter(logger: logging.Logger, interval_s: float = 10.0) -> RepeatLimiter:
    """Attach one limiter to every handler of ``logger`` (the root logger's handlers see
    the records of every library logger that propagates)."""
    limiter = RepeatLimiter(interval_s)
    for handler in logger.handlers:
        handler.addFilter(limiter)
    return limiter


class MemberstreamWorker(faust.Worker):
    """A Faust worker whose shutdown is bounded and whose client logs are rate-limited;
    with ``settings``, its log handlers take ``logging.format`` and the redaction of
    :mod:`memberstream.streams.logs`."""

    def __init__(
        self,
        app: faust.App,
        *,
        shutdown_timeout_s: float,
        settings: Settings | None = None,
        **kwargs: Any,
    ) -> None:
        if settings is not None and settings.logging.format == "json":
            kwargs.setdefault("quiet", True)  # no start-up banner among the JSON lines
        super().__init__(app, **kwargs)
        self.shutdown_timeout_s = shutdown_timeout_s
        self.settings = settings
        self._deadline: threading.Timer | None = None
        # Faust's terminal spinner sets the root logger to DEBUG, so every per-message
        # debug call in faust and aiokafka builds a log record (about 10% of CPU).
        self.spinner = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        install_repeat_limiter(logger)  # before the redaction: it counts by message template
        if self.settings is not None:
            for handler in logger.handlers:
                format_handler(handler, self.settings)

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        if self._deadline is None:
            self._deadline = threading.Timer(self.shutdown_timeout_s, self._exit_now, [signum])
            self._deadline.daemon = True
            self._deadline.start()
        super()._schedule_shutdown(signum)

    def _exit_now(self, signum: signal.Signals) -> None:
        log.critical(
            "still stopping %.0f s after %s (shutdown_timeout_s); exiting now. Records not "
            "committed are processed again on restart.",
            self.shutdown_timeout_s,
            signal.Signals(signum).name,
        )
        logging.shutdown()
        os._exit(128 + signum)  # as if the signal had ended the process
