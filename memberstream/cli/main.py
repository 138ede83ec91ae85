"""The ``memberstream`` command line.

Every command reads the same settings (env vars with the ``MEMBERSTREAM_``
prefix, ``KAFKA_BOOTSTRAP_SERVERS``, and an optional TOML file given with
``--config`` or ``MEMBERSTREAM_CONFIG``).

Expected failures (bad settings, Kafka down, missing topics, a missing model)
print ``error: ...`` and ``hint: ...`` on stderr and exit with the code listed
in :mod:`memberstream.errors`, without a traceback unless ``--debug`` (or
``MEMBERSTREAM_DEBUG=1``). Anything else is a bug: its traceback is printed
and the exit status is 70.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import click
import orjson

from memberstream import __version__
from memberstream.cli.commands.broker import broker
from memberstream.cli.commands.context import (
    DEBUG_ENV,
    MemberstreamGroup,
    serve_metrics,
    settings_from,
)
from memberstream.cli.commands.demo import demo
from memberstream.cli.commands.dlq import dlq
from memberstream.cli.commands.inspect import config_group, lag
from memberstream.cli.commands.learning import collect, learn, train
from memberstream.cli.commands.models import models
from memberstream.cli.commands.registry_cli import COMMANDS as REGISTRY_COMMANDS
from memberstream.cli.commands.replay import replay
from memberstream.cli.commands.textbatch import score, summarize
from memberstream.errors import EX_SOFTWARE, TopicsNotReady
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import (
    create_topics,
    iter_topic,
    produce_events,
)
from memberstream.streams.topic_check import (
    check_topics,
    preflight,
    run,
    topic_exists,
    wait_for_broker,
)

LOG_LEVELS = ["debug", "info", "warning", "error", "critical"]


def _quiet_kafka_logs(debug: bool) -> None:
    """Without --debug, aiokafka's connection errors stay off the terminal (the command's
    own error says what went wrong); once a worker configures logging they show there."""
    logger = logging.getLogger("aiokafka")
    quiet = [h for h in logger.handlers if isinstance(h, logging.NullHandler)]
    if debug:
        for handler in quiet:
            logger.removeHandler(handler)
    elif not quiet:
        logger.addHandler(logging.NullHandler())


def _on_wait(message: str) -> None:
    click.echo(message, err=True)


@click.group(cls=MemberstreamGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "--version", prog_name="memberstream", message="%(prog)s %(version)s"
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="MEMBERSTREAM_CONFIG",
    help="TOML settings file; env vars override it.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar=DEBUG_ENV,
    help="Show the traceback of an error (also MEMBERSTREAM_DEBUG=1).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    help="Log format of the long-running commands (worker, collect, learn, replay); "
    "default: the logging.format setting (text).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None, debug: bool, log_format: str | None) -> None:
    """memberstream: real-time member intelligence on Kafka.

    Consumes click, purchase and review events, keeps per-member state, and
    publishes membership tiers, member profiles and dead letters back to Kafka.

    Kafka: KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092). For a local
    broker, run `memberstream broker start`.
    """
    ctx.obj = {"config": config, "debug": debug, "log_format": log_format}
    _quiet_kafka_logs(debug)


@cli.command()
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="faust/worker log level",
)
@click.pass_context
def worker(ctx: click.Context, log_level: str) -> None:
    """Run a stream worker (consume inputs, update state, produce outputs).

    Scale out by starting more workers with the same settings: partitions
    are shared among them. Stop with Ctrl-C or SIGTERM; offsets of processed
    records are committed on the way out.

    Before it starts, the worker checks that Kafka answers (within
    startup_timeout_s) and that every topic it reads and writes exists with
    the configured partitions and cleanup policy; it never relies on the
    broker creating topics (`memberstream topics create` does).
    """
    from memberstream.streams.app import build_app
    from memberstream.streams.worker_runtime import MemberstreamWorker, tune_gc

    settings = settings_from(ctx)
    run(preflight(settings, on_wait=_on_wait))  # a refusal is just its error and hint
    click.echo(
        f"memberstream worker settings: {orjson.dumps(settings.describe()).decode()}", err=True
    )
    app = build_app(settings)  # an EncoderError becomes a ModelError with its hint
    worker = MemberstreamWorker(
        app, loglevel=log_level, shutdown_timeout_s=settings.shutdown_timeout_s, settings=settings
    )
    serve_metrics(settings, app.memberstream_metrics)
    tune_gc()
    worker.execute_from_commandline()


@cli.group()
def topics() -> None:
    """Manage memberstream's Kafka topics."""


@topics.command("create")
@click.pass_context
def topics_create(ctx: click.Context) -> None:
    """Create every topic (idempotent); compacted topics get cleanup.policy=compact."""
    settings = settings_from(ctx)
    run(wait_for_broker(settings, on_wait=_on_wait))
    result = asyncio.run(create_topics(settings))
    for name, status in result.items():
        click.echo(f"{status:8} {name} ({settings.partitions} partitions)")


@topics.command("check")
@click.pass_context
def topics_check(ctx: click.Context) -> None:
    """Check every topic the worker reads and writes: it exists, with the configured
    partitions and cleanup policy (what the worker checks before it starts).

    Prints one line per topic; exits 0 when all are fine, 79 otherwise.
    """
    settings = settings_from(ctx)
    run(wait_for_broker(settings, on_wait=_on_wait))
    report = run(check_topics(settings))
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        raise report.error(listed=True)


@topics.command("describe")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic.")
@click.pass_context
def topics_describe(ctx: click.Context, as_json: bool) -> None:
    """Every topic the worker reads and writes: role, partitions, replication,
    cleanup policy, retention and min.insync.replicas, and how each differs from what
    the settings expect (partitions, policy, retention of labels.feedback, replication).

    Exits 0 when nothing drifts, 79 when something the worker checks is wrong.
    """
    settings = settings_from(ctx)
    run(wait_for_broker(settings, on_wait=_on_wait))
    report = run(check_topics(settings))
    for t in report.topics:
        if as_json:
            row = {
                "topic": t.name,
                "role": t.role,
                "partitions": t.partitions,
                "configs": t.configs,
                "drift": [*t.problems, *t.drift],
            }
            click.echo(orjson.dumps(row).decode())
        else:
            for line in t.describe_lines():
                click.echo(line)
    if not report.ok:
        raise report.error(listed=True)


@cli.group()
def schemas() -> None:
    """Event and output schemas."""


@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def schemas_export(directory: Path) -> None:
    """Write JSON Schema files for every event and output into DIRECTORY."""
    from memberstream.schemas.export import export_json_schemas

    for path in export_json_schemas(directory):
        click.echo(str(path))


@schemas.command("check")
@click.argument(
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("contracts/schemas"),
)
def schemas_check(directory: Path) -> None:
    """Compare the committed schemas in DIRECTORY (default contracts/schemas) with the
    code's; exit 1 listing each difference. After a deliberate change, export again and
    follow the compatibility rule (README: Schemas and compatibility)."""
    from memberstream.schemas.export import schema_drift

    problems = schema_drift(directory)
    for problem in problems:
        click.echo(problem)
    if problems:
        raise click.ClickException(
            f"{len(problems)} schemas differ from the code; after a deliberate change run "
            f"`memberstream schemas export {directory}` and bump the schema version if the "
            "change is breaking"
        )
    click.echo(f"{directory}: every schema matches the code")


def _events_from_file(path: Path) -> Iterator[Envelope]:
    from memberstream.schemas.codec import parse_any_event

    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield parse_any_event(orjson.loads(line))
            except Exception as exc:
                raise click.ClickException(f"{path}:{lineno}: {exc}") from exc


def _dataset_events(name: str, seed: int) -> Iterator[Envelope]:
    if name == "cdnow":
        from memberstream.datasets.cdnow import iter_cdnow_events

        return iter_cdnow_events()
    from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig

    return SyntheticWorkload(WorkloadConfig(seed=seed)).events()


@cli.command()
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSONL file, one event per line, each with a 'type' field.",
)
@click.option(
    "--dataset",
    type=click.Choice(["cdnow", "synthetic"]),
    help="cdnow: the real CDNOW purchase log; synthetic: seeded generated traffic.",
)
@click.option("--seed", default=7, show_default=True, help="seed for --dataset synthetic")
@click.option("--limit", type=int, help="send at most N events")
@click.option("--rate", type=float, help="events per second (default: as fast as possible)")
@click.pass_context
def produce(
    ctx: click.Context,
    file_: Path | None,
    dataset: str | None,
    seed: int,
    limit: int | None,
    rate: float | None,
) -> None:
    """Send events to their input topics, keyed by member_id.

    A --file is validated whole before anything is sent; a bad line stops
    the command with its line number.
    """
    if (file_ is None) == (dataset is None):
        raise click.UsageError("give exactly one of --file or --dataset")
    settings = settings_from(ctx)
    if file_ is not None:
        checked = sum(1 for _ in _events_from_file(file_))  # a bad line stops us before sending
        click.echo(f"{file_}: {checked:,} valid events", err=True)
        events = _events_from_file(file_)
    else:
        events = _dataset_events(dataset, seed)  # type: ignore[arg-type]
    if limit is not None:
        events = itertools.islice(events, limit)

    def progress(n: int) -> None:
        click.echo(f"  sent {n:,} events", err=True)

    run(wait_for_broker(settings, on_wait=_on_wait))
    report = asyncio.run(produce_events(settings, events, rate=rate, progress=progress))
    click.echo(f"sent {report.sent:,} events in {report.seconds:.1f}s ({report.rate:,.0f}/s)")


@cli.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="start at the earliest offset")
@click.option("--limit", type=int, help="stop after N records")
@click.option(
    "--timeout",
    type=float,
    default=5.0,
    show_default=True,
    help="stop after S seconds without a record",
)
@click.pass_context
def consume(
    ctx: click.Context, topic: str, from_beginning: bool, limit: int | None, timeout: float
) -> None:
    """Print records of TOPIC, one JSON object per line.

    JSON values are printed as they are; other values are wrapped as
    {"key": ..., "value_b64": ...}. Reads without a consumer group.
    """
    settings = settings_from(ctx)
    run(wait_for_broker(settings, on_wait=_on_wait))
    if not run(topic_exists(settings, topic)):
        raise TopicsNotReady(
            f"topic {topic} does not exist on Kafka at {settings.kafka_bootstrap_servers}",
            hint="check the name; `memberstream topics check` lists memberstream's topics",
        )

    async def read() -> None:
        records = iter_topic(settings, topic, from_beginning, timeout, limit)
        async for key, value, _, _ in records:
            sys.stdout.buffer.write(_printable(key, value) + b"\n")
        sys.stdout.flush()

    asyncio.run(read())


def _printable(key: bytes | None, value: bytes | None) -> bytes:
    try:
        if value is not None:
            orjson.loads(value)
            return value
    except orjson.JSONDecodeError:
        pass
    import base64

    return orjson.dumps(
        {
            "key": None if key is None else key.decode("utf-8", "replace"),
            "value_b64": None if value is None else base64.b64encode(value).decode(),
        }
    )


cli.add_command(broker)
cli.add_command(collect)
cli.add_command(lag)
cli.add_command(dlq)
cli.add_command(replay)
cli.add_command(config_group)
cli.add_command(train)
cli.add_command(learn)
cli.add_command(demo)
cli.add_command(models)
for _command in REGISTRY_COMMANDS:
    models.add_command(_command)
cli.add_command(score)
cli.add_command(summarize)


def main() -> None:
    """Entry point: click handles usage errors and expected failures (see
    :class:`MemberstreamGroup`); anything else is a bug, shown with its traceback."""
    try:
        cli.main(prog_name="memberstream")
    except Exception:
        traceback.print_exc()
        print(
            "error: unexpected failure: this is a bug in memberstream; please report it "
            "with the traceback above",
            file=sys.stderr,
        )
        sys.exit(EX_SOFTWARE)
