"""The learning loop's metrics move with its runs: a real (tiny) interest run the gate
refuses, one skipped for too few samples, one that fails; served like the worker's."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from memberstream.cli.commands import learning
from memberstream.config import Settings
from memberstream.core.learning import TrainResult, train_task
from memberstream.domain.samples import Sample
from memberstream.ml.inference import load_taxonomy
from memberstream.ml.training.sample_store import Collected, SampleStore
from memberstream.streams.metrics import MetricsServer
from memberstream.streams.training_metrics import TrainerMetrics, decision_label
from tests.unit.text_doubles import DIM, WordHashEncoder

T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Encoder(WordHashEncoder):
    dim = DIM


def tiny_settings(tmp_path: Path) -> Settings:
    return Settings(
        learning={
            "samples_dir": str(tmp_path / "samples"),
            "registry_dir": str(tmp_path / "registry"),
            "gate": {"min_samples": 20},
        },
        inference={"encoder": {"model_dir": str(tmp_path / "encoder")}},
    )


def collect_interest_samples(settings: Settings, n: int = 60) -> None:
    categories = load_taxonomy(settings).ids[:3]
    rows = [
        Sample(
            sample_id=f"interest:o{i}:1",
            event_id=f"e{i}",
            kind="interest",
            label=categories[i % 3],
            label_source="behaviour",
            event_time=T0 + timedelta(minutes=i),
            member="m_x",
            text=f"item {i} of kind {i % 3}",
            language="en",
        )
        for i in range(n)
    ]
    store = SampleStore(settings.learning.samples_dir)
    store.write([Collected(r, "t", 0, i) for i, r in enumerate(rows)], {("t", 0): n})


def samples(metrics: TrainerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: TrainerMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, TrainerMetrics]:
    """``learn``'s per-task step with the real trainer on a stand-in encoder."""
    settings = tiny_settings(tmp_path)

    def train(settings: Settings, task: str) -> TrainResult:
        return train_task(settings, task, encoder=Encoder())

    monkeypatch.setattr(learning, "train_and_announce", train)
    return settings, TrainerMetrics(settings, clock=lambda: 1_700_000_000.0)


def test_a_run_moves_the_runs_duration_samples_and_gate_figures(trained) -> None:  # type: ignore[no-untyped-def]
    settings, metrics = trained
    collect_interest_samples(settings)
    metrics.observe_collected({"interest": 60})
    result = learning._timed_run(settings, "interest", metrics, keep_going=True)
    assert result is not None
    decision = decision_label(result.decision)
    assert decision in ("promoted", "rejected")
    runs = "memberstream_training_runs_total"
    assert value(metrics, runs, task="interest", decision=decision) == 1.0
    assert value(metrics, "memberstream_training_last_run_seconds", task="interest") > 0  # type: ignore[operator]
    at = value(metrics, "memberstream_training_last_run_timestamp_seconds", task="interest")
    assert at == 1_700_000_000.0
    assert value(metrics, "memberstream_training_samples", task="interest", set="total") == 60
    assert value(metrics, "memberstream_training_samples", task="interest", set="train") == 48
    for model in ("candidate", "production"):
        for part in ("validation", "regression"):
            labels = {"task": "interest", "set": part, "model": model, "metric": "macro_f1"}
            figure = value(metrics, "memberstream_training_gate", **labels)
            assert figure == result.figures[part][model]
    collected = "memberstream_training_collected_samples_total"
    assert value(metrics, collected, task="interest") == 60
    assert "process_resident_memory_bytes" in metrics.render().decode()


def test_a_skipped_run_clears_the_gate_figures_of_the_task(trained) -> None:  # type: ignore[no-untyped-def]
    settings, metrics = trained
    metrics.gate["interest"] = {("validation", "candidate", "macro_f1"): 0.5}  # an older run
    learning._timed_run(settings, "interest", metrics, keep_going=True)  # no samples at all
    runs = "memberstream_training_runs_total"
    assert value(metrics, runs, task="interest", decision="skipped") == 1.0
    assert not any(name == "memberstream_training_gate" for name, _ in samples(metrics))


def test_a_failed_run_is_counted_and_the_loop_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = tiny_settings(tmp_path)
    metrics = TrainerMetrics(settings)

    def broken(settings: Settings, task: str) -> TrainResult:
        raise OSError("registry volume gone")

    monkeypatch.setattr(learning, "train_and_announce", broken)
    assert learning._timed_run(settings, "sentiment", metrics, keep_going=True) is None
    runs = "memberstream_training_runs_total"
    assert value(metrics, runs, task="sentiment", decision="failed") == 1.0
    with pytest.raises(OSError):  # a single cycle (no --every) still fails as before
        learning._timed_run(settings, "sentiment", None, keep_going=False)


def test_the_live_version_is_an_info_metric_and_the_endpoint_serves_it(tmp_path: Path) -> None:
    metrics = TrainerMetrics(tiny_settings(tmp_path))
    promoted: dict[str, Any] = {"version": "interest-0007"}
    result = TrainResult("interest", "promoted", "better", production_before="interest-0006")
    result.promotion = promoted
    metrics.observe_run(result, 2.0)
    refused = TrainResult("sentiment", "refused", "worse", production_before="sentiment-0003")
    metrics.observe_run(refused, 1.0)
    info = "memberstream_training_live_model_info"
    assert value(metrics, info, task="interest", version="interest-0007") == 1.0
    assert value(metrics, info, task="sentiment", version="sentiment-0003") == 1.0
    runs = "memberstream_training_runs_total"
    assert value(metrics, runs, task="sentiment", decision="rejected") == 1.0
    server = MetricsServer(metrics, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
            assert b'memberstream_training_live_model_info{task="interest"' in r.read()
    finally:
        server.stop()
