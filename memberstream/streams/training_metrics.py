"""Prometheus metrics of the periodic learning loop (``memberstream learn --every``).

A registry of its own (the worker's and the collector's are
:class:`~memberstream.streams.metrics.WorkerMetrics`), served by the same
:class:`~memberstream.streams.metrics.MetricsServer` on ``metrics.port``:

- ``memberstream_training_runs_total{task,decision}``: ``promoted``, ``rejected`` (the
  gate refused the candidate), ``skipped`` (too few samples), ``passed`` (the gate
  passed it, promotion turned off) or ``failed`` (the run raised);
- ``memberstream_training_last_run_seconds{task}`` and
  ``memberstream_training_last_run_timestamp_seconds{task}`` (when it ended, Unix time);
- ``memberstream_training_samples{task,set}``: the samples the last run used (``total``,
  ``train``, ``validation``);
- ``memberstream_training_gate{task,set,model,metric}``: the gate's figures of the last
  run (``set`` validation or regression, ``model`` candidate or production, ``metric``
  macro_f1 or what the task is judged by);
- ``memberstream_training_collected_samples_total{task}``: samples the cycles collected;
- ``memberstream_training_live_model_info{task,version}``: the production version of each
  task after the last run (value 1);
- the process's CPU and memory (``process_*``).

``/healthz`` answers 200 while the process lives (the loop sleeps for hours between
cycles; a stuck cycle shows as an old ``last_run_timestamp``), ``/readyz`` likewise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.process_collector import ProcessCollector

from memberstream.config import Settings

DECISIONS = {"promoted": "promoted", "refused": "rejected", "skipped": "skipped"}


def decision_label(decision: str) -> str:
    """A :class:`~memberstream.core.learning.TrainResult` decision as a label value."""
    if decision.startswith("passed"):
        return "passed"
    return DECISIONS.get(decision, decision)


class TrainerMetrics:
    """The learning loop's metrics; ``learn`` calls ``observe_*`` after each step."""

    def __init__(self, settings: Settings, clock: Any = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "memberstream_training_runs",
            "Training runs, by task and decision",
            ["task", "decision"],
            registry=r,
        )
        self.last_seconds = Gauge(
            "memberstream_training_last_run_seconds",
            "Duration of the task's last training run",
            ["task"],
            registry=r,
        )
        self.last_at = Gauge(
            "memberstream_training_last_run_timestamp_seconds",
            "When the task's last training run ended (Unix time)",
            ["task"],
            registry=r,
        )
        self.samples = Gauge(
            "memberstream_training_samples",
            "Samples the task's last run used, by set (total, train, validation)",
            ["task", "set"],
            registry=r,
        )
        self.collected = Counter(
            "memberstream_training_collected_samples",
            "Samples the learning cycles collected, per task",
            ["task"],
            registry=r,
        )
        self.gate: dict[str, dict[tuple[str, str, str], float]] = {}
        """task -> (set, model, metric) -> the figure, of the task's last run."""
        self.live: dict[str, str] = {}
        ProcessCollector(registry=r)
        r.register(_LastRuns(self))

    def observe_collected(self, samples: Mapping[str, int]) -> None:
        for task, n in samples.items():
            self.collected.labels(task).inc(n)

    def observe_run(self, result: Any, seconds: float) -> None:
        """A finished run: a :class:`~memberstream.core.learning.TrainResult`."""
        task = result.task
        self._ended(task, decision_label(result.decision), seconds)
        for name, n in result.samples.items():
            self.samples.labels(task, name).set(n)
        self.gate[task] = gate_figures(result.figures)
        live = result.production_before
        if result.promotion is not None:
            live = result.promotion.get("version", live)
        if live:
            self.live[task] = str(live)

    def observe_failure(self, task: str, seconds: float) -> None:
        self._ended(task, "failed", seconds)

    def _ended(self, task: str, decision: str, seconds: float) -> None:
        self.runs.labels(task, decision).inc()
        self.last_seconds.labels(task).set(seconds)
        self.last_at.labels(task).set(self.clock())

    # -- what the server asks -------------------------------------------------------------

    def healthy(self) -> bool:
        return True

    def ready(self) -> bool:
        return True

    def render(self) -> bytes:
        return generate_latest(self.registry)


def gate_figures(figures: Mapping[str, Any]) -> dict[tuple[str, str, str], float]:
    """(set, model, metric) -> value of the gate's figures (none for a skipped run; a
    figure that is not a finite number left out)."""
    metric = str(figures.get("metric", "macro_f1"))
    metrics = {"validation": metric, "regression": str(figures.get("regression_metric", metric))}
    out: dict[tuple[str, str, str], float] = {}
    for part, name in metrics.items():
        for model, value in (figures.get(part) or {}).items():
            if isinstance(value, int | float) and math.isfinite(value):
                out[(part, str(model), name)] = float(value)
    return out


class _LastRuns:
    """The gate's figures and the live versions, as the last runs left them."""

    def __init__(self, metrics: TrainerMetrics) -> None:
        self.m = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        gate = GaugeMetricFamily(
            "memberstream_training_gate",
            "The gate's figures of the task's last run (candidate and production, on the "
            "validation window and the regression set)",
            labels=["task", "set", "model", "metric"],
        )
        for task, figures in sorted(self.m.gate.items()):
            for (part, model, metric), value in sorted(figures.items()):
                gate.add_metric([task, part, model, metric], value)
        yield gate
        info = GaugeMetricFamily(
            "memberstream_training_live_model_info",
            "The production version of each task after the last run (value 1)",
            labels=["task", "version"],
        )
        for task, version in sorted(self.m.live.items()):
            info.add_metric([task, version], 1.0)
        yield info
