"""Cost per million events of the processing core on the demo's traffic, per model path.

``python -m bench.cost [--events 20000] [--rounds 2]``

The demo's synthetic traffic (its generator and anomaly injector) goes through the
worker's processing core in-process (:class:`~memberstream.core.offline.OfflineRun`,
the batchers the agents run), once per model path, alternating for ``--rounds``:

- ``use-int8``: the default encoder (multilingual USE, quantized, from its wheel);
- ``minilm-int8`` and ``minilm-fp32``: all-MiniLM-L6-v2 exported both ways;
- ``no-model``: the text model off (rules and state only), the floor.

CPU seconds are the process's (``time.process_time``: every thread, the model's
included) over the feed, the same measure the worker exports as
``memberstream_cpu_seconds_per_1k_events``; money at ``metrics.core_hour_price``.
Kafka's own cost (the broker, the clients' I/O) is not in these figures: the
worker's metric includes the clients, not the broker. With a GPU lent, add
``--gpu`` to run the fp32 paths on CUDA and count the model's seconds at
``metrics.gpu_hour_price``.

Writes ``bench/results/cost.json`` and ``cost.md``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

from bench.throughput import run_info, save_results
from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.datasets.anomalies import AnomalyInjector, InjectionConfig
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.ml.inference import stage_from_settings
from memberstream.ml.settings import MODELS_HOME
from memberstream.schemas.events import Envelope
from memberstream.streams.metrics import CostMeter

RESULTS = Path(__file__).parent / "results"
PATHS: dict[str, dict[str, Any]] = {
    "use-int8": {},
    "minilm-int8": {"model_dir": "all-MiniLM-L6-v2", "variant": "int8"},
    "minilm-fp32": {"model_dir": "all-MiniLM-L6-v2", "variant": "fp32"},
    "no-model": {"enabled": False},
}


def demo_traffic(n: int) -> list[Envelope]:
    """The demo's synthetic recipe (``memberstream demo --synthetic N``)."""
    config = WorkloadConfig(seed=2024, members=max(100, n // 40), days=90)
    injector = AnomalyInjector(InjectionConfig(seed=2024, incidents_per_day=0.15))
    workload = SyntheticWorkload(config, injectors=[injector])
    return list(itertools.islice(workload.events(), n))


def settings_for(path: str, gpu: bool) -> Settings:
    s = Settings()
    spec = PATHS[path]
    if spec.get("enabled") is False:
        s.inference.enabled = False
        return s
    if "model_dir" in spec:
        s.inference.encoder.model_dir = MODELS_HOME / spec["model_dir"]
    if "variant" in spec:
        s.inference.encoder.variant = spec["variant"]
    s.inference.encoder.providers = "cuda" if gpu else "cpu"
    return s


def measure(path: str, events: list[Envelope], gpu: bool) -> dict[str, float]:
    settings = settings_for(path, gpu)
    stage = stage_from_settings(settings) if settings.inference.enabled else None
    run = OfflineRun(settings, stage)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run.feed(events)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    model = 0.0 if stage is None else stage.stats.model_seconds
    return {"cpu_s": cpu, "wall_s": wall, "model_s": model}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--gpu", action="store_true", help="run the model paths on CUDA")
    args = parser.parse_args(argv)
    events = demo_traffic(args.events)
    prices = Settings().metrics
    meter = CostMeter(prices.core_hour_price, prices.gpu_hour_price)
    runs: dict[str, list[dict[str, float]]] = {p: [] for p in PATHS}
    for r in range(args.rounds):
        for path in PATHS:
            got = measure(path, events, args.gpu)
            runs[path].append(got)
            print(f"round {r + 1} {path}: cpu {got['cpu_s']:.1f} s, wall {got['wall_s']:.1f} s")
    rows = {}
    for path, samples in runs.items():
        cpu = statistics.median(s["cpu_s"] for s in samples)
        gpu_s = statistics.median(s["model_s"] for s in samples) if args.gpu else 0.0
        rows[path] = {
            "cpu_s": round(cpu, 2),
            "wall_s": round(statistics.median(s["wall_s"] for s in samples), 2),
            "cpu_s_per_1k_events": round(meter.per_1k(cpu, len(events)), 3),
            "events_per_cpu_s": round(len(events) / cpu, 1),
            "cost_per_million_events": round(meter.cost_per_million(cpu, gpu_s, len(events)), 4),
        }
    floor = rows["no-model"]["cpu_s"]
    for row in rows.values():
        row["vs_no_model"] = round(row["cpu_s"] / floor, 2)
    result = {
        "events": len(events),
        "rounds": args.rounds,
        "gpu": args.gpu,
        "core_hour_price": prices.core_hour_price,
        "gpu_hour_price": prices.gpu_hour_price,
        "currency": prices.currency,
        "paths": rows,
    }
    save_results(RESULTS, "cost", run_info("bench.cost", argv), result, markdown(result))


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Cost per million events, per model path",
        "",
        f"The demo's synthetic traffic ({r['events']:,} events) through the processing core "
        f"in one process, median of {r['rounds']} alternating rounds; CPU seconds of the "
        f"process (every thread). Prices: {r['core_hour_price']} {r['currency']} per core-hour"
        + (f", {r['gpu_hour_price']} per GPU-hour" if r["gpu"] else "")
        + ". The broker is not included.",
        "",
        "| path | CPU s | CPU s per 1k events | events per CPU-second | cost per 1M events "
        "| CPU vs no model |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for path, row in r["paths"].items():
        lines.append(
            f"| {path} | {row['cpu_s']} | {row['cpu_s_per_1k_events']} | "
            f"{row['events_per_cpu_s']:,.0f} | {row['cost_per_million_events']:.4f} "
            f"{r['currency']} | {row['vs_no_model']}x |"
        )
    if not r["gpu"]:
        lines += ["", "No GPU was lent to this run: the GPU path is not measured."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
