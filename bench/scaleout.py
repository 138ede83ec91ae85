"""Scaling out: events/s with 1, 2 and 4 worker processes in one consumer group.

``python -m bench.scaleout [--events N] [--workers 1,2,4] [--partitions 8] [--rounds R]``

Each run gets a fresh namespace with ``--partitions`` partitions per topic,
pre-produces the same N PURCHASE events (``bench.throughput``'s workload), starts
the given number of ``memberstream worker`` processes in one group (each with its
own state directory, as separate hosts would have) and samples the group's
committed offsets until every event is committed. The rate is the slope between
10% and 90% committed, so the start-up and the first rebalance are left out.
Worker counts alternate within each round. Everything runs on this one machine,
broker included: with fewer cores than workers the figures are a lower bound on
what separate hosts would reach. Results: ``DIR/scaleout.json`` and ``DIR/scaleout.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.throughput import (
    ROOT,
    GroupOffsets,
    create_topics,
    fresh_namespace,
    machine_info,
    produce_all,
    purchase_records,
    run_id,
    sample_until_done,
    slope_rate,
    wait_for_kafka,
)
from memberstream.config import Settings
from memberstream.streams.worker_process import WorkerProcess


class WorkerGroup:
    """Several worker processes of one consumer group, stopped together."""

    def __init__(self, settings: Settings, count: int, log_dir: Path) -> None:
        self.workers = []
        for i in range(count):
            own = settings.model_copy(deep=True)
            own.data_dir = settings.data_dir / f"worker-{i}"  # a host of its own
            log = log_dir / f"workers{count}-{i}-{run_id(settings)}.log"
            self.workers.append(WorkerProcess(own, log))

    def start(self) -> WorkerGroup:
        for worker in self.workers:
            worker.settings.data_dir.mkdir(parents=True, exist_ok=True)
            worker.start()
        return self

    @property
    def running(self) -> bool:
        return all(w.running for w in self.workers)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        codes = [w.stop(timeout_s) for w in self.workers]
        return max((c for c in codes if c is not None), default=None)

    def log_tail(self, lines: int = 40) -> str:
        return "\n\n".join(w.log_tail(lines) for w in self.workers)


async def measure(
    count: int, records: list[tuple[bytes, bytes]], args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    async with fresh_namespace(args.bootstrap, args.partitions, tmp) as settings:
        await create_topics(settings)
        topic = settings.topics.purchases
        await produce_all(settings, topic, records)
        async with GroupOffsets(settings, settings.app_id, [topic]) as offsets:
            started = time.monotonic()
            group = WorkerGroup(settings, count, tmp / "logs").start()
            try:
                samples = await sample_until_done(
                    offsets, group, len(records), started, args.timeout
                )
            finally:
                await asyncio.to_thread(group.stop)
    return {"workers": count, "rate": slope_rate(samples, len(records)), "wall_s": samples[-1][0]}


async def run(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    await wait_for_kafka(Settings(kafka_bootstrap_servers=args.bootstrap))
    print(f"generating {args.events:,} purchase events ...", flush=True)
    records = purchase_records(args.events)
    runs = []
    for round_no in range(1, args.rounds + 1):
        for count in args.workers:
            result = {"round": round_no, **await measure(count, records, args, tmp)}
            print(
                f"round {round_no}: {count} worker(s) {result['rate']:8,.0f} events/s "
                f"(wall {result['wall_s']:.1f} s)",
                flush=True,
            )
            runs.append(result)
    return runs


def summarize(runs: list[dict[str, Any]], workers: list[int]) -> dict[str, Any]:
    rates = {n: statistics.median(r["rate"] for r in runs if r["workers"] == n) for n in workers}
    one = rates[workers[0]]
    return {
        "median_rate": rates,
        "speedup": {n: rate / one for n, rate in rates.items()},
        "per_worker": {n: rate / n for n, rate in rates.items()},
    }


def markdown(info: dict[str, Any], summary: dict[str, Any], args: argparse.Namespace) -> str:
    rows = [
        "| workers | median events/s | x one worker | events/s per worker |",
        "|---:|---:|---:|---:|",
    ]
    for n, rate in summary["median_rate"].items():
        rows.append(
            f"| {n} | {rate:,.0f} | {summary['speedup'][n]:.2f} | {summary['per_worker'][n]:,.0f} |"
        )
    return "\n".join(
        [
            "# Scaling out: worker processes in one consumer group",
            "",
            f"{args.events:,} PURCHASE events, {args.partitions} partitions, {args.rounds} "
            f"round(s), {info['cpu_count']} CPUs shared by the workers and the broker, "
            f"Python {info['python']}, {info['when']}. Rate: slope of committed offsets "
            "between 10% and 90%.",
            "",
            *rows,
            "",
            "On one machine the workers share its cores with each other and the broker, so "
            "past the core count a worker adds little here: these are lower bounds for "
            "workers on separate hosts. See the README's sizing notes for what to expect "
            "per core.",
            "",
            f"Reproduce: `python -m bench.scaleout --events {args.events} --workers "
            f"{','.join(map(str, args.workers))} --partitions {args.partitions} "
            f"--rounds {args.rounds}`",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaleout",
        description="Events/s with 1, 2, 4 worker processes in one consumer group.",
    )
    parser.add_argument("--events", type=int, default=60_000, help="events per run")
    parser.add_argument(
        "--workers",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[1, 2, 4],
        help="worker counts, comma-separated (default 1,2,4)",
    )
    parser.add_argument("--partitions", type=int, default=8, help="partitions per topic")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if max(args.workers) > args.partitions:
        parser.error("more workers than partitions: the extra ones would sit idle")
    info = machine_info(argparse.Namespace(**vars(args), before=None))
    tmp = Path(tempfile.mkdtemp(prefix="memberstream-bench-scaleout-"))
    runs = asyncio.run(run(args, tmp))
    summary = summarize(runs, args.workers)
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"info": info, "runs": runs, **summary}
    (args.out / "scaleout.json").write_text(json.dumps(doc, indent=2) + "\n")
    text = markdown(info, summary, args)
    (args.out / "scaleout.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
