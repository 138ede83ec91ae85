"""``memberstream broker``: start, stop and inspect the local development Kafka."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from memberstream.cli.devbroker import BrokerError, DevBroker
from memberstream.config import BrokerSettings, load_settings

T = TypeVar("T")

EXIT_STOPPED = 3


def _broker(ctx: click.Context, secure: bool = False) -> DevBroker:
    config: Path | None = ctx.obj.get("config") if ctx.obj else None
    try:
        settings: BrokerSettings = load_settings(config_file=config).broker
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise click.ClickException(f"invalid settings: {exc}") from exc
    if secure:
        settings = settings.model_copy(update={"secure": True})
    return DevBroker(settings, echo=click.echo)


def _run(action: Callable[[], T]) -> T:
    """Turn a BrokerError into a one-line message on stderr and exit status 1."""
    try:
        return action()
    except BrokerError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(1) from None


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    help="""Run a local Apache Kafka broker for development.

    A single-node Kafka (KRaft mode, no ZooKeeper, no Docker) on 127.0.0.1:9092,
    run on the JVM from jars Maven fetches once from Maven Central. It needs
    Java 17+ and Maven 3.8+. Data, logs and config live under
    ~/.cache/memberstream/broker (settings: MEMBERSTREAM_BROKER__HOME,
    MEMBERSTREAM_BROKER__PORT, ...).

    With --secure (or MEMBERSTREAM_BROKER__SECURE=true) the client port speaks
    SASL_SSL: TLS with a certificate from a local CA (made with the JDK's
    keytool), SCRAM users admin and memberstream (passwords generated into
    <home>/secrets/, mode 0600), and Kafka's KRaft authorizer with ACLs. Run it
    beside the plaintext one with its own MEMBERSTREAM_BROKER__HOME, __PORT and
    __CONTROLLER_PORT.

    This broker is for development only. To use any other Kafka, leave it
    stopped and set KAFKA_BOOTSTRAP_SERVERS=host:port.
    """,
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML settings file (same as MEMBERSTREAM_CONFIG).",
)
@click.pass_context
def broker(ctx: click.Context, config: Path | None) -> None:
    ctx.ensure_object(dict)
    if config is not None or "config" not in ctx.obj:  # keep a root-level --config
        ctx.obj["config"] = config


@broker.command(
    short_help="Start the broker and wait until it is ready.",
    help="""Start the broker in the background and wait until it accepts connections.

    Fetches the jars on first use and formats storage on first start. Does
    nothing if the broker is already running. The last line printed is the
    bootstrap address (host:port). A secure broker also prints the environment
    variables that connect memberstream to it (passwords stay in their files).
    """,
)
@click.option("--fresh", is_flag=True, help="Delete all topics and data before starting.")
@click.option(
    "--secure",
    is_flag=True,
    help="TLS + SASL/SCRAM + ACLs (same as MEMBERSTREAM_BROKER__SECURE=true).",
)
@click.pass_context
def start(ctx: click.Context, fresh: bool, secure: bool) -> None:
    dev = _broker(ctx, secure)
    bootstrap = _run(lambda: dev.start(fresh=fresh))
    click.echo(bootstrap)


@broker.command(
    short_help="Stop the broker cleanly.",
    help="""Stop the broker (clean shutdown; killed if it does not exit in time).

    Data is kept; the next start resumes with the same topics.
    """,
)
@click.option(
    "--timeout",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to wait for a clean shutdown before SIGKILL.",
)
@click.pass_context
def stop(ctx: click.Context, timeout: float) -> None:
    dev = _broker(ctx)
    _run(lambda: dev.stop(timeout=timeout))


@broker.command(
    short_help="Show whether the broker is running (exit 0) or not (exit 3).",
    help=f"""Show whether the broker runs, its pid, bootstrap address and log file.

    Exit status 0 when running, {EXIT_STOPPED} when stopped.
    """,
)
@click.pass_context
def status(ctx: click.Context) -> None:
    dev = _broker(ctx)
    st = _run(dev.status)
    if st.running:
        state = "running" if st.listening else "running (starting: port not accepting yet)"
    else:
        state = "stopped"
    click.echo(f"broker:    {state}")
    click.echo(f"pid:       {st.pid if st.pid is not None else '-'}")
    click.echo(f"bootstrap: {st.bootstrap}")
    click.echo(f"security:  {'SASL_SSL (SCRAM, TLS, ACLs)' if st.secure else 'PLAINTEXT'}")
    click.echo(f"home:      {st.home}")
    click.echo(f"log file:  {st.log_file}")
    if not st.running:
        ctx.exit(EXIT_STOPPED)
