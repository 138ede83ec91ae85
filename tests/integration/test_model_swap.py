"""Hot swap through the real broker: a promotion announced on model.updates takes over
between two batches of a running worker; a rollback restores the previous version's
outputs; a worker that starts later runs the announced version from its first record."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from memberstream.cli.main import cli
from memberstream.config import Settings
from memberstream.config.learning import LearningSettings
from memberstream.ml.registry import ModelRegistry
from memberstream.ml.sentiment import SentimentHead, load_sentiment_head
from memberstream.schemas.events import ReviewEvent
from memberstream.streams.kafka_io import read_json
from memberstream.streams.worker_process import WorkerProcess, settings_env
from memberstream.testing import produce_records, raw_records, wait_processed

from .conftest import make_namespace

pytestmark = pytest.mark.integration

TEXTS = [
    "Great kettle, boils fast and looks lovely.",
    "Broke after two days, very disappointed.",
    "这个耳机音质很好，物超所值。",
    "快递太慢了，包装也破了。",
    "It is okay, nothing special.",
]


def reviews(batch: int, n: int, start: datetime) -> list[ReviewEvent]:
    return [
        ReviewEvent(
            event_id=f"swap-{batch}-{i}",
            member_id=f"m{i % 7}",
            occurred_at=start + timedelta(minutes=i),
            product_id=f"p{i % 3}",
            rating=1 + (i % 5),
            text=TEXTS[i % len(TEXTS)],
        )
        for i in range(n)
    ]


def other_head(head: SentimentHead) -> SentimentHead:
    """The same head with its positive bias raised: different bytes, a different version."""
    arrays = head.arrays()
    bias = np.array(arrays["b"], dtype=np.float32)
    bias[:, 2] += 0.5
    return SentimentHead(
        arrays["W"],
        bias,
        ngram_weights=head.ngram_weights,
        lexicon_weights=head.lexicon_weights,
        lexicon=head.lexicon,
        en_ngrams=head.en_ngrams,
        zh_ngrams=head.zh_ngrams,
    )


def cli_run(settings: Settings, args: list[str]) -> str:
    result = CliRunner().invoke(cli, args, env=settings_env(settings), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def profile_versions(settings: Settings) -> list[tuple[str, str]]:
    """(last_event_id, model_version) of every profile record, in topic order per partition."""
    records = asyncio.run(read_json(settings, settings.topics.member_profiles, idle_timeout_s=3))
    return [(r["last_event_id"], r["model_version"]) for r in records]


@pytest.fixture
def swap_namespace(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    settings = make_namespace(kafka_bootstrap, tmp_path)
    settings.learning = LearningSettings(
        samples_dir=tmp_path / "samples",
        registry_dir=tmp_path / "registry",
        member_key=SecretStr("k"),
    )
    return settings


def test_promotion_swaps_between_batches_and_rollback_restores(
    swap_namespace: Settings, tmp_path: Path
) -> None:
    settings = swap_namespace
    model_dir = settings.inference.encoder.resolved_model_dir()
    base = load_sentiment_head(model_dir)
    assert base is not None, "no sentiment head: run `make models`"
    alt = other_head(base)
    alt_dir = tmp_path / "alt"
    alt.save(alt_dir)
    alt_version = load_sentiment_head(alt_dir).version  # type: ignore[union-attr]
    assert alt_version != base.version

    registry = ModelRegistry(settings.learning.registry_dir)
    common = dict(
        parent=None,
        encoder_version="test",
        data_window={},
        samples={},
        metrics={},
        code_version="test",
    )
    name = "sentiment_head.npz"
    v_base = registry.register("sentiment", {name: model_dir / name}, **common)  # type: ignore[arg-type]
    v_alt = registry.register("sentiment", {name: alt_dir / name}, **common)  # type: ignore[arg-type]
    registry.promote("sentiment", v_base.version)

    t0 = datetime(2025, 5, 1, tzinfo=UTC)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        first = reviews(1, 40, t0)
        produce_records(settings, raw_records(settings, first))
        wait_processed(settings, worker, 180)
        out = cli_run(settings, ["models", "promote", "sentiment", v_alt.version])
        assert "announced" in out
        _wait_for_log(worker, "-> ", contains=alt_version, timeout_s=60)
        second = reviews(2, 40, t0 + timedelta(days=1))
        produce_records(settings, raw_records(settings, second))
        wait_processed(settings, worker, 180)
        out = cli_run(settings, ["models", "rollback", "sentiment"])
        assert "rolled back" in out
        _wait_for_log(worker, "-> ", contains=base.version, timeout_s=60, after=alt_version)
        third = reviews(3, 40, t0 + timedelta(days=2))
        produce_records(settings, raw_records(settings, third))
        wait_processed(settings, worker, 180)
    finally:
        worker.stop()

    versions = dict(profile_versions(settings))
    by_batch = {1: set(), 2: set(), 3: set()}
    for event_id, version in versions.items():
        by_batch[int(event_id.split("-")[1])].add(version.rsplit("+", 1)[-1])
    assert by_batch[1] == {base.version}, by_batch
    assert by_batch[2] == {alt_version}, by_batch
    assert by_batch[3] == {base.version}, by_batch  # the rollback restored the first head
    # every member's profile moved on in every batch: nothing lost
    assert {e.split("-")[1] for e in versions} == {"1", "2", "3"}


def _wait_for_log(
    worker: WorkerProcess,
    marker: str,
    contains: str,
    timeout_s: float,
    after: str | None = None,
) -> None:
    """Until the worker logs a swap line naming ``contains`` (after the one naming ``after``)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = [
            ln
            for ln in worker.log_path.read_text(errors="replace").splitlines()
            if "swapped sentiment" in ln
        ]
        if after is not None:
            idx = [i for i, ln in enumerate(lines) if after in ln.split(marker)[-1]]
            lines = lines[idx[0] + 1 :] if idx else []
        if any(contains in ln.split(marker)[-1] for ln in lines):
            return
        assert worker.running, worker.diagnosis()
        time.sleep(0.5)
    raise AssertionError(f"no swap to {contains} within {timeout_s}s\n{worker.diagnosis()}")


def test_a_worker_started_after_a_promotion_runs_it_from_the_first_record(
    swap_namespace: Settings, tmp_path: Path
) -> None:
    settings = swap_namespace
    model_dir = settings.inference.encoder.resolved_model_dir()
    base = load_sentiment_head(model_dir)
    assert base is not None
    alt = other_head(base)
    alt.save(tmp_path / "alt")
    alt_version = load_sentiment_head(tmp_path / "alt").version  # type: ignore[union-attr]
    registry = ModelRegistry(settings.learning.registry_dir)
    mv = registry.register(
        "sentiment",
        {"sentiment_head.npz": tmp_path / "alt" / "sentiment_head.npz"},
        parent=None,
        encoder_version="test",
        data_window={},
        samples={},
        metrics={},
        code_version="test",
    )
    cli_run(settings, ["models", "promote", "sentiment", mv.version])
    produce_records(
        settings, raw_records(settings, reviews(1, 30, datetime(2025, 5, 1, tzinfo=UTC)))
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        wait_processed(settings, worker, 180)
    finally:
        worker.stop()
    versions = {v.rsplit("+", 1)[-1] for _, v in profile_versions(settings)}
    assert versions == {alt_version}


def test_learn_runs_a_cycle_and_announces_what_the_gate_promotes(
    swap_namespace: Settings,
) -> None:
    """`memberstream learn --task interest` on synthetic traffic: samples collected, a
    candidate registered with the gate's figures, and an announcement exactly when the
    gate promoted it."""
    import itertools

    from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
    from memberstream.streams.model_updates import latest_updates

    settings = swap_namespace
    settings.learning.gate.min_samples = 50
    events = itertools.islice(
        SyntheticWorkload(WorkloadConfig(seed=21, members=120, days=60)).events(), 6000
    )
    produce_records(settings, raw_records(settings, events))
    out = cli_run(settings, ["learn", "--task", "interest"])
    assert "collected" in out and "task interest:" in out, out
    registry = ModelRegistry(settings.learning.registry_dir)
    (candidate,) = registry.versions("interest")
    assert candidate.manifest["samples"]["total"] >= 50
    gate = candidate.manifest["metrics"]["gate"]
    assert set(gate["validation"]) == {"candidate", "production"}
    announced = asyncio.run(latest_updates(settings))
    if gate["promote"]:
        assert "promoted:" in out
        assert announced["interest"].version == candidate.version
        assert registry.production("interest") == candidate
    else:
        assert "refused" in out and "interest" not in announced
        assert registry.production("interest") is None
