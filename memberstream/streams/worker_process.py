"""Run ``memberstream worker`` as a child process with given settings.

The demo, the benchmark and the integration tests use it: a real process can be
stopped cleanly (SIGTERM) or killed (SIGKILL) like a production worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from memberstream.config import Settings


def _unmask(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    """``dumped`` (``model.model_dump(mode="json")``) with its secrets in clear:
    the JSON dump writes every ``SecretStr`` as ``**********``."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr | SecretBytes):
            secret = value.get_secret_value()
            dumped[name] = secret.decode() if isinstance(secret, bytes) else secret
        elif isinstance(value, BaseModel) and isinstance(dumped.get(name), dict):
            _unmask(value, dumped[name])
        elif isinstance(value, list | tuple) and isinstance(dumped.get(name), list):
            for item, out in zip(value, dumped[name], strict=False):
                if isinstance(item, BaseModel) and isinstance(out, dict):
                    _unmask(item, out)
    return dumped


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce ``settings`` in a child process.

    Only values that differ from the defaults are passed (a child of an older
    checkout, e.g. a benchmark's before figure, then meets no setting it does not
    know). Secrets (the SASL password) go through in clear, so the child can log
    in: the environment is handed to the child only, never printed.
    """
    env: dict[str, str] = {}
    dumped = settings.model_dump(mode="json", exclude_defaults=True)
    for name, value in _unmask(settings, dumped).items():
        env[f"MEMBERSTREAM_{name.upper()}"] = (
            json.dumps(value) if isinstance(value, dict | list) else str(value)
        )
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    return env


class WorkerProcess:
    """A worker child process; its output goes to ``log_path``. ``env`` adds variables
    that are not settings (e.g. ``MEMBERSTREAM_FAILPOINTS``); ``source`` runs the
    ``memberstream`` package of another checkout (a benchmark's before figure)."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        env: dict[str, str] | None = None,
        source: Path | None = None,
        command: tuple[str, ...] = ("worker", "--log-level", "info"),
    ) -> None:
        """``command``: the ``memberstream`` subcommand and its options (e.g. ``collect``)."""
        self.settings = settings
        self.command = command
        self.log_path = log_path
        self.extra_env = env or {}
        self.source = source
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEMBERSTREAM_")}
        env.update(settings_env(self.settings))
        env.pop("MEMBERSTREAM_CONFIG", None)
        env.update(self.extra_env)
        if self.source is not None:
            env["PYTHONPATH"] = str(self.source)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "memberstream", *self.command],
                cwd=self.source,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout_s``)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to commit or flush."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def diagnosis(self, tail: int = 60, notable: int = 40) -> str:
        """For a failure report: the log's warnings and errors, then its last lines."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"(no worker log at {self.log_path})"
        flagged = [ln for ln in lines if "[WARNING]" in ln or "[ERROR]" in ln][-notable:]
        return "\n".join(
            [
                f"worker log {self.log_path}: {len(lines)} lines, running={self.running}",
                f"-- last {len(flagged)} warnings/errors --",
                *flagged,
                f"-- last {tail} lines --",
                *lines[-tail:],
            ]
        )

    def wait_alive(self, seconds: float) -> None:
        """Fail early when the worker dies during start-up."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"worker exited during start-up:\n{self.log_tail()}")
            time.sleep(0.1)
