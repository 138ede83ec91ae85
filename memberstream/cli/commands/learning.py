"""``memberstream collect``, ``train`` and ``learn``: the learning loop's commands."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from memberstream.cli.commands.context import iso_time, settings_from, setup_logging

if TYPE_CHECKING:
    from memberstream.config import Settings
    from memberstream.core.learning import TrainResult
    from memberstream.schemas.outputs import ModelUpdate
    from memberstream.streams.training_metrics import TrainerMetrics

log = logging.getLogger("memberstream.learn")


@click.command()
@click.option(
    "--until-caught-up",
    is_flag=True,
    help="Stop once every partition reaches the end offsets it had at start "
    "(for a periodic job); default: run until SIGTERM.",
)
@click.option(
    "--samples-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the Parquet shards go (default: learning.samples_dir).",
)
@click.pass_context
def collect(ctx: click.Context, until_caught_up: bool, samples_dir: Path | None) -> None:
    """Turn the stream into labeled samples for training.

    Reads the input topics, labels.feedback, member.anomalies and model.updates as its
    own consumer group (<app_id>-collector) and writes Parquet shards under
    learning.samples_dir, partitioned by label kind and event date:

    \b
      sentiment  review text labeled by its stars (1-2 negative, 3 neutral,
                 4-5 positive); an analyst's review_sentiment feedback wins
      interest   a paid item's title labeled with its category, when the member
                 viewed that category in the interest window before the order
      anomaly    an analyst's verdict on a flag, with what the flag measured

    Personal data in texts (emails, phones, cards, ids, URLs, handles) is masked and
    member ids are replaced by a keyed hash (learning.member_key, a secret) before
    anything is written. Shards are written atomically before offsets are committed:
    a kill at any point loses no sample and writes none twice.
    """
    from memberstream.streams.collector_runner import collector_group, run_collector

    settings = settings_from(ctx)
    if samples_dir is not None:
        settings.learning.samples_dir = samples_dir
    settings.learning.member_key_bytes()  # refuse early, before connecting
    setup_logging(ctx)
    click.echo(
        f"collect: group {collector_group(settings)} -> {settings.learning.samples_dir}",
        err=True,
    )
    metrics = None
    if not until_caught_up:  # a long-running collector: /metrics, /healthz, /readyz
        from memberstream.cli.commands.context import serve_metrics
        from memberstream.streams.metrics import WorkerMetrics

        metrics = WorkerMetrics(settings)
        serve_metrics(settings, metrics)
    result = run_collector(settings, until_caught_up=until_caught_up, metrics=metrics)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.samples.items())) or "none"
    click.echo(
        f"collected {sum(result.samples.values())} samples ({kinds}) from {result.records} "
        f"records in {result.seconds:.1f} s; {result.duplicates} duplicates dropped, "
        f"{result.skipped} records skipped"
    )


def announce_entry(settings: Settings, entry: dict[str, Any]) -> ModelUpdate | None:
    """Publish a registry promotion/rollback entry on model.updates (None: nothing changed)."""
    from memberstream.core.learning import registry_of
    from memberstream.schemas.outputs import ModelUpdate, deterministic_id
    from memberstream.streams.model_updates import announce
    from memberstream.streams.topic_check import run

    if entry["action"] not in ("promote", "rollback"):
        return None
    mv = registry_of(settings).get(entry["task"], entry["version"])
    update = ModelUpdate(
        output_id=deterministic_id("model-update", entry["task"], entry["version"], entry["at"]),
        task=entry["task"],
        version=mv.version,
        previous_version=entry.get("replaced"),
        action=entry["action"],
        location=str(mv.path.resolve()),
        files=dict(mv.manifest["files"]),
        encoder_version=str(mv.manifest.get("encoder_version", "")),
        announced_at=datetime.now(UTC),
    )
    run(announce(settings, update))
    return update


def _pct(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return "-"


def print_train_result(result: TrainResult) -> None:
    figures = result.figures
    click.echo(f"task {result.task}: {result.decision}: {result.reason}")
    if result.samples:
        click.echo("samples: " + ", ".join(f"{k} {v:,}" for k, v in result.samples.items()))
    if result.window.get("cutoff"):
        w = result.window
        click.echo(
            f"window: train {w['since']} .. {w['cutoff']}, validate {w['cutoff']} .. {w['until']}"
        )
    if "validation" in figures:
        metric = figures.get("metric", "macro_f1")
        v, r = figures["validation"], figures["regression"]
        click.echo(
            f"{metric}: validation window candidate {_pct(v['candidate'])} vs production "
            f"{_pct(v['production'])}; regression set "
            f"{figures.get('regression_metric', metric)} {_pct(r['candidate'])} vs "
            f"{_pct(r['production'])} (margin {figures['margin']}, tolerance "
            f"{figures['regression_tolerance']})"
        )
    if result.candidate is not None:
        click.echo(f"candidate: {result.candidate.version} ({result.candidate.path})")
    if result.promotion is not None:
        click.echo(
            f"promoted: {result.promotion['version']} (was {result.promotion.get('replaced')})"
        )


_TASK = click.Choice(["sentiment", "interest", "anomaly"])


def train_and_announce(settings: Settings, task: str, **options: Any) -> TrainResult:
    """Train ``task`` (options of :func:`~memberstream.core.learning.train_task`), print
    the outcome, and announce a promotion on model.updates."""
    from memberstream.core.learning import train_task

    result = train_task(settings, task, progress=lambda m: click.echo(m, err=True), **options)
    print_train_result(result)
    if result.promotion is not None:
        update = announce_entry(settings, result.promotion)
        if update is not None:
            click.echo(f"announced on {settings.topics.model_updates}: {update.version}")
    return result


@click.command()
@click.option(
    "--task", "tasks", type=_TASK, multiple=True, required=True, help="What to train (repeatable)."
)
@click.option("--since", help="Only samples at or after this event time (ISO-8601 with zone).")
@click.option("--until", help="Only samples before this event time.")
@click.option(
    "--no-promote",
    is_flag=True,
    help="Register and gate the candidate but leave production as it is.",
)
@click.option(
    "--json",
    "as_json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the result as JSON here.",
)
@click.pass_context
def train(
    ctx: click.Context,
    tasks: tuple[str, ...],
    since: str | None,
    until: str | None,
    no_promote: bool,
    as_json: Path | None,
) -> None:
    """Train a candidate head on the collected samples and let the gate decide.

    Samples are split by event time: the newest learning.gate.validation_fraction
    validates, the older part trains (nothing newer leaks into training). The
    candidate is registered in learning.registry_dir with its figures; it is promoted,
    and announced on model.updates for the workers to swap in, only if it beats
    production on the validation window by learning.gate.margin (macro-F1; AUC for
    anomaly) and loses at most learning.gate.regression_tolerance on the fixed
    regression set.

    \b
      sentiment  the bootstrap recipe refitted on bootstrap + collected reviews
      interest   a correction of the zero-shot category head fitted to the
                 collected (title, category) pairs
      anomaly    the learned anomaly score refitted on its synthetic bootstrap
                 stream + analysts' verdicts on flags (confirmed 1, false_positive
                 0, each weighing learning.anomaly.analyst_weight synthetic
                 orders); regression set: the bootstrap's held-out orders
    """
    settings = setup_logging(ctx, "warning")
    results = []
    for task in tasks:
        result = train_and_announce(
            settings, task, since=iso_time(since), until=iso_time(until), promote=not no_promote
        )
        results.append(result)
    if as_json is not None:
        as_json.write_bytes(
            orjson.dumps([_result_json(r) for r in results], option=orjson.OPT_INDENT_2)
        )


def _result_json(r: TrainResult) -> dict[str, Any]:
    return {
        "task": r.task,
        "decision": r.decision,
        "reason": r.reason,
        "candidate": None if r.candidate is None else r.candidate.version,
        "production_before": r.production_before,
        "promotion": r.promotion,
        "figures": r.figures,
        "samples": r.samples,
        "window": r.window,
    }


def _duration(value: str | None) -> float | None:
    """'24h', '30m', '90s' or seconds."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        unit = units.get(value[-1])
        seconds = float(value) if unit is None else float(value[:-1]) * unit
    except (ValueError, IndexError):
        raise click.BadParameter(f"{value!r}: give a duration such as 24h, 30m or 600") from None
    if seconds <= 0:
        raise click.BadParameter(f"{value!r}: must be positive")
    return seconds


@click.command()
@click.option(
    "--task",
    "tasks",
    type=_TASK,
    multiple=True,
    default=("sentiment", "interest"),
    show_default=True,
    help="What to train each cycle (repeatable).",
)
@click.option(
    "--every", help="Run a cycle every so often (e.g. 24h); default: one cycle, then exit."
)
@click.option(
    "--json",
    "as_json",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the last cycle's result as JSON here.",
)
@click.pass_context
def learn(
    ctx: click.Context, tasks: tuple[str, ...], every: str | None, as_json: Path | None
) -> None:
    """One learning cycle: collect -> train -> gate -> promote -> announce.

    Collects samples until the collector's group has caught up with the end offsets it
    saw at start, then trains each task on everything collected (see `memberstream
    train`), promotes what the gate passes and announces it on model.updates, where
    running workers pick it up between two batches. Once (for a Kubernetes CronJob), or
    --every 24h in a loop. Exit status 0 whether or not a candidate was promoted.
    Add --task anomaly to refit the learned anomaly score on the analysts' verdicts.
    """
    from memberstream.streams.collector_runner import run_collector

    settings = settings_from(ctx)
    settings.learning.member_key_bytes()
    period = _duration(every)
    setup_logging(ctx, "warning")
    metrics = None if period is None else _serve_trainer_metrics(settings)
    while True:
        started = time.monotonic()
        click.echo("learn: collecting samples up to the current end of the topics", err=True)
        collected = run_collector(settings, until_caught_up=True)
        click.echo(
            f"learn: collected {sum(collected.samples.values()):,} new samples "
            f"({', '.join(f'{k} {n:,}' for k, n in sorted(collected.samples.items())) or 'none'})"
        )
        if metrics is not None:
            metrics.observe_collected(collected.samples)
        results = []
        for task in tasks:
            result = _timed_run(settings, task, metrics, keep_going=period is not None)
            if result is not None:
                results.append(result)
        if as_json is not None:
            payload = {
                "collected": collected.samples,
                "results": [_result_json(r) for r in results],
            }
            as_json.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2))
        if period is None:
            return
        wait = max(0.0, period - (time.monotonic() - started))
        click.echo(f"learn: next cycle in {wait / 3600:.1f} h", err=True)
        time.sleep(wait)


def _serve_trainer_metrics(settings: Settings) -> TrainerMetrics:
    """The periodic loop's /metrics and /healthz (see
    :mod:`memberstream.streams.training_metrics`); a port in use is logged, not fatal."""
    from memberstream.cli.commands.context import serve_metrics
    from memberstream.streams.training_metrics import TrainerMetrics

    metrics = TrainerMetrics(settings)
    serve_metrics(settings, metrics)
    return metrics


def _timed_run(
    settings: Settings, task: str, metrics: TrainerMetrics | None, *, keep_going: bool
) -> TrainResult | None:
    """One task's run, timed into ``metrics``. A run that raises is counted as failed;
    the periodic loop (``keep_going``) logs it and goes on with the next task and cycle
    (None), a single cycle raises it as before."""
    started = time.monotonic()
    try:
        result = train_and_announce(settings, task)
    except Exception:
        if metrics is not None:
            metrics.observe_failure(task, time.monotonic() - started)
        if not keep_going:
            raise
        log.exception("learn: training %s failed; the next cycle tries again", task)
        return None
    if metrics is not None:
        metrics.observe_run(result, time.monotonic() - started)
    return result
