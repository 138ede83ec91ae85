"""The cheapest Faust agent with the passthrough's semantics: Faust's own ceiling.

``python -m bench.faust_floor --bootstrap B --app-id G --topics T1,T2 --output OUT --partitions P``

A Faust app configured like the memberstream worker (``build_app``: at-least-once,
``acks=-1``, ``linger_ms=5``, commit every 0.5 s, web disabled, earliest offsets)
but with store ``memory://``, no table and no decoding. Its one agent takes
``take_events(500, within=0.05)`` batches from the raw ``--topics`` and sends
every event's key and value unchanged to ``--output`` through
``app.producer.send`` (enqueue, don't await delivery), one output per input
like ``bench.passthrough``. Faust flushes the producer before it commits.
Whatever this reaches is the most any Faust agent can reach on the machine.
SIGTERM or SIGINT: Faust commits what was acked and exits.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import faust
from faust.types import StreamT

from memberstream.config import Settings, TopicNames
from memberstream.streams.app import make_faust_app, raw_inputs

# Same values as memberstream.streams.app.build_app with the bench's settings.
COMMIT_INTERVAL_S = 0.5
SESSION_TIMEOUT_S = 30.0
MAX_BATCH = 500
MAX_WAIT_S = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.faust_floor",
        description="Bare Faust forwarding agent (benchmark floor for any Faust agent).",
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--app-id", required=True, help="Faust app id (= consumer group id)")
    parser.add_argument("--topics", required=True, help="clicks,purchases,reviews topics")
    parser.add_argument("--output", required=True, help="topic every record is copied to")
    parser.add_argument("--partitions", type=int, required=True, help="partitions per topic")
    parser.add_argument(
        "--commit-interval",
        type=float,
        default=COMMIT_INTERVAL_S,
        help="seconds between commits (default %(default)s)",
    )
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=SESSION_TIMEOUT_S,
        help="consumer session timeout in seconds (default %(default)s)",
    )
    parser.add_argument(
        "--max-batch", type=int, default=MAX_BATCH, help="take_events size (%(default)s)"
    )
    parser.add_argument(
        "--max-wait", type=float, default=MAX_WAIT_S, help="take_events within (%(default)s)"
    )
    parser.add_argument(
        "--datadir", type=Path, default=None, help="Faust data dir (default: a new temp dir)"
    )
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="records produced per input record (default %(default)s): the marginal cost "
        "of an output in a Faust agent",
    )
    return parser.parse_args(argv)


def floor_settings(args: argparse.Namespace) -> Settings:
    """The worker's settings for this run, so the floor app is configured identically."""
    topics = args.topics.split(",")
    if len(topics) != 3:
        raise SystemExit(f"--topics needs clicks,purchases,reviews; got {args.topics!r}")
    clicks, purchases, reviews = topics
    settings = Settings(
        kafka_bootstrap_servers=args.bootstrap,
        app_id=args.app_id,
        partitions=args.partitions,
        store="memory://",
        data_dir=args.datadir or Path(tempfile.mkdtemp(prefix="faust-floor-")),
        session_timeout_s=args.session_timeout,
        topics=TopicNames(clicks=clicks, purchases=purchases, reviews=reviews),
    )
    settings.batch.commit_interval_s = args.commit_interval
    return settings


def build_floor_app(args: argparse.Namespace) -> faust.App:
    settings = floor_settings(args)
    app = make_faust_app(settings)
    inputs = raw_inputs(app, settings)
    output = args.output
    copies = args.copies

    @app.agent(inputs, name="forward", concurrency=1)
    async def forward(stream: StreamT) -> None:
        send = app.producer.send
        async for events in stream.take_events(args.max_batch, within=args.max_wait):
            for event in events:
                message = event.message
                for _ in range(copies):
                    await send(output, message.key, message.value, None, None, None)

    return app


def main(argv: list[str] | None = None) -> None:
    app = build_floor_app(parse_args(argv))
    worker = faust.Worker(app, loglevel="info")
    # With a spinner, faust sets the root logger to DEBUG (~10% of the throughput).
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
