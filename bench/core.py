"""The processing core alone: per-event cost of the ingest batcher without Kafka or Faust.

``python -m bench.core [--events N] [--stream purchase|mixed] [--rounds R] [--profile]``

Drives :class:`~memberstream.core.ingest.IngestBatcher` in process over the same
synthetic records the throughput benchmark produces (500-record batches, 4
partitions by member), with a dict as the state store and a sink that encodes each
output with orjson the way the real sink does, but sends nothing. Contenders, in
alternating rounds: the batcher with the text model (as the worker runs it), the
same without a text model, and both without the decoded-state cache. What this
isolates: the core's own cost per event, next to the worker's through Kafka
(``bench.throughput``), whose difference is Faust, the Kafka clients and the
table. ``--profile`` prints cProfile's top functions for the first contender.
Results: ``DIR/core.json`` and ``DIR/core.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import pstats
import statistics
import time
import zlib
from pathlib import Path
from typing import Any

import orjson

from bench.throughput import ROOT, run_info
from memberstream.config import Settings
from memberstream.core.in_memory import DictStore, MemoryItem, MemoryRecord
from memberstream.core.ingest import IngestBatcher
from memberstream.core.pipeline import member_batcher
from memberstream.core.roles import Emit
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.ml.inference import InferenceStage, load_taxonomy, stage_from_settings
from memberstream.schemas.codec import DecodeFailure, encode

BATCH = 500
PARTITIONS = 4


class EncodingSink:
    """Encodes outputs as the real sink does; sends nothing."""

    def __init__(self) -> None:
        self.outputs = 0
        self.bytes = 0

    async def emit(self, emit: Emit) -> None:
        self.outputs += 1
        self.bytes += len(orjson.dumps(emit.payload))

    async def dead_letter(self, message: MemoryRecord, failure: DecodeFailure) -> None:
        raise AssertionError(f"unexpected dead letter: {failure.reason}")

    async def drain(self) -> None:
        return None


def records(settings: Settings, stream: str, n: int) -> list[MemoryItem]:
    kinds = {"purchase"} if stream == "purchase" else {"click", "purchase", "review"}
    topics = {
        "click": settings.topics.clicks,
        "purchase": settings.topics.purchases,
        "review": settings.topics.reviews,
    }
    workload = SyntheticWorkload(WorkloadConfig(seed=7, members=max(2000, n // 6), days=240.0))
    offsets: dict[tuple[str, int], int] = {}
    items = []
    for event in itertools.islice(workload.events(kinds=kinds), n):
        topic = topics[event.type]
        key = event.member_id.encode()
        partition = zlib.crc32(key) % PARTITIONS
        offset = offsets.get((topic, partition), 0)
        offsets[topic, partition] = offset + 1
        items.append(MemoryItem(MemoryRecord(topic, partition, offset, key, encode(event))))
    return items


def batcher(settings: Settings, stage: InferenceStage | None, cache: int) -> IngestBatcher:
    """The worker's member batcher (the processing core's factory) over a dict."""
    settings = settings.model_copy(deep=True)
    settings.batch.state_cache_mb = cache / 2**20
    return member_batcher(settings, DictStore(), EncodingSink(), stage, load_taxonomy(settings))


def run_once(
    settings: Settings, items: list[MemoryItem], model: bool, cache: int, profile: bool = False
) -> dict[str, Any]:
    stage = stage_from_settings(settings, load_taxonomy(settings)) if model else None
    b = batcher(settings, stage, cache)

    async def drive() -> float:
        started = time.perf_counter()
        for start in range(0, len(items), BATCH):
            await b.process(items[start : start + BATCH])
        return time.perf_counter() - started

    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    seconds = asyncio.run(drive())
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    sink: EncodingSink = b.sink  # type: ignore[assignment]
    return {
        "seconds": seconds,
        "us_per_event": 1e6 * seconds / len(items),
        "events_per_s": len(items) / seconds,
        "outputs_per_event": sink.outputs / len(items),
        "output_bytes_mean": sink.bytes / max(sink.outputs, 1),
        "model_seconds": None if stage is None else stage.stats.model_seconds,
        "texts_encoded": None if stage is None else stage.stats.texts_encoded,
    }


CONTENDERS = {  # name: (text model, state cache in stored bytes)
    "core": (True, 16 * 2**20),
    "core, no text model": (False, 16 * 2**20),
    "core, no state cache": (True, 0),
    "core, no text model, no state cache": (False, 0),
}


def markdown(info: dict[str, Any], args: argparse.Namespace, stats: dict[str, Any]) -> str:
    rows = [
        "| contender | median µs/event | events/s | outputs/event | per round (µs) |",
        "|---|---:|---:|---:|---|",
    ]
    for name, s in stats.items():
        per = ", ".join(f"{x:.0f}" for x in s["per_round"])
        rows.append(
            f"| {name} | {s['median_us']:.0f} | {1e6 / s['median_us']:,.0f} | "
            f"{s['outputs_per_event']:.2f} | {per} |"
        )
    return "\n".join(
        [
            "# The processing core alone (no Kafka, no Faust)",
            "",
            f"{args.events:,} synthetic {args.stream} events, batches of {BATCH}, "
            f"{args.rounds} alternating rounds; {info['machine']}; {info['recorded_at']}.",
            "`IngestBatcher` with a dict as the state store and a sink that encodes outputs "
            "with orjson and sends nothing.",
            "",
            *rows,
            "",
            f"Reproduce: `python -m bench.core --events {args.events} --stream {args.stream} "
            f"--rounds {args.rounds}`",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.core", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--stream", choices=("purchase", "mixed"), default="purchase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="cProfile the first contender")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    settings = Settings()
    info = run_info("bench.core", argv)
    items = records(settings, args.stream, args.events)
    if args.profile:
        run_once(settings, items, *CONTENDERS["core"], profile=True)
        return
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    for round_no in range(1, args.rounds + 1):
        for name, (model, cache) in CONTENDERS.items():
            result = run_once(settings, items, model, cache)
            runs[name].append(result)
            print(f"round {round_no} {name}: {result['us_per_event']:.0f} µs/event", flush=True)
    stats = {
        name: {
            "median_us": statistics.median(r["us_per_event"] for r in rs),
            "per_round": [r["us_per_event"] for r in rs],
            "outputs_per_event": rs[0]["outputs_per_event"],
            "output_bytes_mean": rs[0]["output_bytes_mean"],
        }
        for name, rs in runs.items()
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "core" if args.stream == "purchase" else f"core-{args.stream}"
    (args.out / f"{name}.json").write_text(
        json.dumps({"info": info, "stream": args.stream, "runs": runs, "stats": stats}, indent=2)
    )
    text = markdown(info, args, stats)
    (args.out / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
