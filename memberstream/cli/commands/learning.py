"""``memberstream collect``, ``train`` and ``learn``: the learning loop's commands."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path

import click

from memberstream.cli.commands.context import settings_from

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _logging(level: str = "info") -> None:
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time") from None
    if t.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no timezone (add Z or +00:00)")
    return t


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
    _logging()
    click.echo(
        f"collect: group {collector_group(settings)} -> {settings.learning.samples_dir}",
        err=True,
    )
    result = run_collector(settings, until_caught_up=until_caught_up)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.samples.items())) or "none"
    click.echo(
        f"collected {sum(result.samples.values())} samples ({kinds}) from {result.records} "
        f"records in {result.seconds:.1f} s; {result.duplicates} duplicates dropped, "
        f"{result.skipped} records skipped"
    )
