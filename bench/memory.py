"""Worker memory under a burst: RSS and lag while N events arrive as fast as possible.

``python -m bench.memory [--events 200000] [--bootstrap B] [--out DIR]``

A fresh namespace; the worker starts (real process, rocksdb store, the default
text model), then a producer sends N events of the synthetic mixed stream
(clicks, purchases, reviews) as fast as it can, while the benchmark samples the
worker's resident set size (``/proc/PID/status`` VmRSS) and its group's lag every
``--every`` seconds until the group has caught up. The claim under test is that
RSS reaches a plateau: Faust's stream buffers, the fetcher's prefetch, the
title cache and every per-key collection are bounded, so a deep backlog costs
lag, not memory. Results: ``DIR/memory.json`` (every sample) and ``DIR/memory.md``
(the curve, thinned, and the plateau figures).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import (
    GroupOffsets,
    create_topics,
    produce_events,
    wait_for_kafka,
)
from memberstream.streams.worker_process import WorkerProcess

from .throughput import ROOT, fresh_namespace, run_info, save_results


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def burst(n: int, seed: int) -> list[Envelope]:
    config = WorkloadConfig(seed=seed, members=max(1000, n // 40), days=90)
    return list(itertools.islice(SyntheticWorkload(config).events(), n))


async def sample(
    offsets: GroupOffsets, worker: WorkerProcess, started: float, every_s: float
) -> dict[str, Any]:
    assert worker.proc is not None
    lag = await offsets.lag()
    return {
        "t": round(time.monotonic() - started, 1),
        "rss_mb": round(rss_mb(worker.proc.pid), 1),
        "lag": lag,
    }


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    events = burst(args.events, args.seed)
    print(f"{len(events):,} events generated", flush=True)
    async with fresh_namespace(args.bootstrap, args.partitions, tmp) as settings:
        await wait_for_kafka(settings)
        await create_topics(settings)
        worker = WorkerProcess(settings, tmp / "worker.log").start()
        samples: list[dict[str, Any]] = []
        produced_at: float | None = None
        started = time.monotonic()
        try:
            async with GroupOffsets(settings, settings.app_id, settings.topics.inputs()) as offs:
                producing = asyncio.create_task(produce_events(settings, events))
                while True:
                    if not worker.running:
                        raise RuntimeError(f"worker died:\n{worker.log_tail()}")
                    row = await sample(offs, worker, started, args.every)
                    samples.append(row)
                    if producing.done() and produced_at is None:
                        produced_at = row["t"]
                        print(f"  all {len(events):,} produced at {produced_at:.0f} s", flush=True)
                    print(f"  t={row['t']:>6.1f}s rss={row['rss_mb']:7.1f} MB lag={row['lag']:,}")
                    if producing.done() and row["lag"] == 0:
                        break
                    if row["t"] > args.timeout:
                        raise TimeoutError(f"not caught up after {args.timeout} s")
                    await asyncio.sleep(args.every)
                await producing
        finally:
            await asyncio.to_thread(worker.stop)
    return summarize(samples, len(events), produced_at)


def summarize(samples: list[dict[str, Any]], n: int, produced_at: float | None) -> dict[str, Any]:
    rss = [s["rss_mb"] for s in samples]
    half = rss[len(rss) // 2 :]
    peak_lag = max(samples, key=lambda s: s["lag"])
    return {
        "events": n,
        "produced_at_s": produced_at,
        "caught_up_at_s": samples[-1]["t"],
        "rate_events_per_s": round(n / samples[-1]["t"]),
        "rss_start_mb": rss[0],
        "rss_max_mb": max(rss),
        "rss_median_second_half_mb": statistics.median(half),
        "rss_growth_second_half_mb": round(max(half) - min(half), 1),
        "peak_lag": peak_lag["lag"],
        "rss_at_peak_lag_mb": peak_lag["rss_mb"],
        "samples": samples,
    }


def markdown(info: dict[str, Any], r: dict[str, Any]) -> str:
    step = max(1, len(r["samples"]) // 25)
    thinned = r["samples"][::step]
    if thinned[-1] is not r["samples"][-1]:
        thinned.append(r["samples"][-1])
    lines = [
        "# Worker memory under a burst",
        "",
        f"`{info['command']}` — {info['machine']}, recorded {info['recorded_at']}.",
        "",
        f"{r['events']:,} synthetic events (clicks, purchases, reviews) produced as fast as "
        f"possible into a running worker (rocksdb store, default text model). All produced "
        f"after {r['produced_at_s']} s; caught up after {r['caught_up_at_s']} s "
        f"({r['rate_events_per_s']:,} events/s overall).",
        "",
        "| | |",
        "|---|---:|",
        f"| RSS at start | {r['rss_start_mb']:.0f} MB |",
        f"| RSS max | {r['rss_max_mb']:.0f} MB |",
        f"| RSS median, second half of the run | {r['rss_median_second_half_mb']:.0f} MB |",
        f"| RSS spread, second half | {r['rss_growth_second_half_mb']:.0f} MB |",
        f"| peak lag | {r['peak_lag']:,} events (RSS then {r['rss_at_peak_lag_mb']:.0f} MB) |",
        "",
        "| t (s) | RSS (MB) | lag (events) |",
        "|---:|---:|---:|",
        *[f"| {s['t']:.0f} | {s['rss_mb']:.0f} | {s['lag']:,} |" for s in thinned],
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=41)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--every", type=float, default=3.0, help="seconds between samples")
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--bootstrap", default="127.0.0.1:9092")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    info = run_info("bench.memory", argv)
    with tempfile.TemporaryDirectory(prefix="memberstream-bench-memory-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    save_results(args.out, "memory", info, result, markdown(info, result))


if __name__ == "__main__":
    main()
