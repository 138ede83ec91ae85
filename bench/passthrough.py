"""The simplest at-least-once consume-and-produce loop, as a baseline for the worker.

``python -m bench.passthrough --bootstrap B --group G --topics T1,T2 --output OUT``

Reads ``--topics`` as consumer group ``--group`` and writes every record's key
and value unchanged to ``--output``. Every ``--commit-interval`` seconds it
flushes the producer and then commits the consumed offsets (the discipline
faust's at_least_once guarantee uses). SIGTERM or SIGINT: flush, commit, exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from memberstream.config import Settings

COMMIT_INTERVAL_S = 0.5
POLL_TIMEOUT_MS = 100


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.passthrough",
        description="Plain aiokafka consume-and-produce loop (benchmark baseline).",
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--group", required=True, help="consumer group id")
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--output", required=True, help="topic every record is copied to")
    parser.add_argument(
        "--commit-interval",
        type=float,
        default=COMMIT_INTERVAL_S,
        help="seconds between flush+commit (default %(default)s)",
    )
    return parser.parse_args(argv)


async def checkpoint(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
    """Everything consumed so far has been sent: make it durable, then commit it."""
    await producer.flush()
    await consumer.commit()


async def pump(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    output: str,
    commit_interval_s: float,
    stop: asyncio.Event,
) -> None:
    """Copy records until ``stop`` is set; flush and commit every ``commit_interval_s``."""
    last_commit = time.monotonic()
    dirty = False
    while not stop.is_set():
        batches = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS)
        for records in batches.values():
            for rec in records:
                await producer.send(output, rec.value, key=rec.key)  # enqueue, don't await delivery
            dirty = dirty or bool(records)
        if dirty and time.monotonic() - last_commit >= commit_interval_s:
            await checkpoint(consumer, producer)
            dirty = False
            last_commit = time.monotonic()
    await checkpoint(consumer, producer)


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    topics = [t for t in args.topics.split(",") if t]
    # --bootstrap, and the security settings (MEMBERSTREAM_KAFKA__*) from the environment
    kafka = Settings(kafka_bootstrap_servers=args.bootstrap).kafka_client_kwargs()
    consumer = AIOKafkaConsumer(
        *topics,
        **kafka,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(**kafka, acks="all", linger_ms=5)
    await producer.start()
    try:
        await consumer.start()
        try:
            await pump(consumer, producer, args.output, args.commit_interval, stop)
        finally:
            await consumer.stop()
    finally:
        await producer.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
