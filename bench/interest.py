"""The inference stage end to end: worker vs the encoder's limit vs a naive consumer, and latency.

``python -m bench.interest [--events N] [--naive-events M] [--rounds R] [--latency-s S]``

On a seeded synthetic click + purchase + review stream (the same records for
every contender), alternating for R rounds:

- limit: the raw batched encoder on exactly the texts the worker has to embed
  (the stream cut into the worker's 500-event batches, identical texts once per
  batch, product titles once per product) — model seconds only, no Kafka, no
  state. Expressed in events/s: the fastest any worker with this model could go.
- worker: ``memberstream worker`` through the broker (fresh namespace, records
  pre-produced), events/s as the slope of committed offsets between 10% and 90%.
- naive: ``bench.naive_consumer`` (aiokafka + sentence-transformers, one text per
  model call) on the first M records, measured the same way.

Then latency: one worker runs live while the stream is sent at half the worker's
median rate with ``occurred_at`` stamped at send time; latency is each interest
tier update's Kafka timestamp minus its event time (``as_of``), p50 and p99.

Results: ``DIR/interest.json`` and ``DIR/interest.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.throughput import (
    GroupOffsets,
    ModuleProcess,
    before_commit,
    consume_produce_args,
    events_through,
    fresh_namespace,
    run_id,
    sample_until_done,
    slope_rate,
)
from memberstream.config import Settings
from memberstream.core.member.processor import MemberProcessor
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.ml.encoder import choose_providers
from memberstream.ml.inference import stage_from_settings
from memberstream.schemas.codec import encode
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import (
    create_topics,
    iter_records,
    topic_for,
    wait_for_kafka,
)
from memberstream.streams.worker_process import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
GOAL_LIMIT = 0.7
GOAL_NAIVE = 10.0


def workload(n: int, seed: int = 5) -> list[Envelope]:
    config = WorkloadConfig(seed=seed, members=max(200, n // 30), days=60)
    return list(itertools.islice(SyntheticWorkload(config).events(), n))


# --- contenders ----------------------------------------------------------------------------


def encoder_limit(events: list[Envelope], settings: Settings) -> dict[str, Any]:
    """Model seconds for the texts the worker would embed, batch by batch, cache included.

    Like the worker's rate, the rate counts the batches between 10% and 90% of the
    stream, so the cold title cache at the start weighs on neither.
    """
    stage = stage_from_settings(settings)
    assert stage is not None
    processor = MemberProcessor(settings, None, stage.model_version)
    batch = settings.batch.max_batch
    items_total = 0
    mid_events, mid_seconds = 0, 0.0
    lo, hi = 0.1 * len(events), 0.9 * len(events)
    for start in range(0, len(events), batch):
        chunk = events[start : start + batch]
        items = [t for e in chunk for t in processor.texts(e)]
        items_total += len(items)
        before = stage.stats.model_seconds
        stage.score_now(items)
        if start >= lo and start + len(chunk) <= hi:
            mid_events += len(chunk)
            mid_seconds += stage.stats.model_seconds - before
    st = stage.stats
    stage.close()
    return {
        "rate": mid_events / mid_seconds,
        "rate_whole_stream": len(events) / st.model_seconds,
        "model_s": st.model_seconds,
        "texts_encoded": st.texts_encoded,
        "text_items": items_total,
        "texts_per_s": st.texts_encoded / st.model_seconds,
        "model_version": stage.model_version,
        "variant": getattr(stage.encoder, "variant", None),
        "providers": getattr(stage.encoder, "providers", None),
    }


class NaiveProcess(ModuleProcess):
    module = "bench.naive_consumer"

    def args(self) -> list[str]:
        return consume_produce_args(self.settings, self.settings.topics.member_interest_tiers)


async def through_kafka(
    name: str, events: list[Envelope], args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    async with fresh_namespace(args.bootstrap, args.partitions, tmp) as settings:
        if name == "worker-no-model":
            settings.inference.enabled = False
        log_path = tmp / "logs" / f"{name}-{run_id(settings)}.log"
        if name == "worker-before":
            start = WorkerProcess(settings, log_path, source=args.before).start
        elif name.startswith("worker"):
            start = WorkerProcess(settings, log_path).start
        else:
            start = NaiveProcess(settings, log_path).start
        samples = await events_through(settings, events, start, args.timeout)
        return {"rate": slope_rate(samples, len(events)), "wall_s": samples[-1][0]}


# --- latency -------------------------------------------------------------------------------


async def send_live(settings: Settings, events: list[Envelope], rate: float) -> float:
    """Send ``events`` at ``rate``/s, each stamped with the wall clock as its event time."""
    producer = AIOKafkaProducer(**settings.kafka_client_kwargs(), linger_ms=1)
    await producer.start()
    started = time.monotonic()
    try:
        for i, event in enumerate(events):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            live = event.model_copy(update={"occurred_at": datetime.now(UTC)})
            await producer.send(
                topic_for(live, settings), encode(live), key=live.member_id.encode()
            )
        await producer.flush()
    finally:
        await producer.stop()
    return time.monotonic() - started


async def read_with_timestamps(settings: Settings, topic: str) -> list[tuple[int, dict]]:
    """(Kafka timestamp in ms, JSON value) of every record now in ``topic``."""
    records = iter_records(settings, topic, to_end=True)
    return [(r.timestamp, json.loads(r.value)) async for r in records]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def latency(
    events: list[Envelope], rate: float, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    async with fresh_namespace(args.bootstrap, args.partitions, tmp) as settings:
        log_path = tmp / "logs" / f"latency-{run_id(settings)}.log"
        n = min(len(events) - 1, int(rate * args.latency_s))
        await create_topics(settings)
        worker = WorkerProcess(settings, log_path).start()
        try:
            topics = settings.topics.inputs()
            await send_live(settings, events[:1], 1.0)  # warm-up: wait until it is committed
            async with GroupOffsets(settings, settings.app_id, topics) as o:
                await sample_until_done(o, worker, 1, time.monotonic(), args.timeout)
                sent_s = await send_live(settings, events[1 : n + 1], rate)
                await sample_until_done(o, worker, n + 1, time.monotonic(), args.timeout)
        finally:
            await asyncio.to_thread(worker.stop)
        updates = await read_with_timestamps(settings, settings.topics.member_interest_tiers)
        ms = [
            ts - datetime.fromisoformat(u["as_of"]).timestamp() * 1000
            for ts, u in updates
            if u["cause_event_id"] != events[0].event_id
        ]
        return {
            "rate_sent": n / sent_s,
            "events": n,
            "updates": len(ms),
            "p50_ms": percentile(ms, 0.5),
            "p99_ms": percentile(ms, 0.99),
            "max_ms": max(ms),
        }


# --- run and report ------------------------------------------------------------------------


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    base = Settings(kafka_bootstrap_servers=args.bootstrap)
    await wait_for_kafka(base)
    events = workload(args.events)
    naive_events = events[: args.naive_events]
    rounds: list[dict[str, Any]] = []
    for r in range(1, args.rounds + 1):
        limit = await asyncio.to_thread(encoder_limit, events, base)
        print(
            f"round {r} limit:  {limit['rate']:8.0f} events/s ({limit['texts_per_s']:.0f} texts/s)"
        )
        worker = await through_kafka("worker", events, args, tmp)
        print(f"round {r} worker: {worker['rate']:8.0f} events/s")
        before = None
        if args.before is not None:
            before = await through_kafka("worker-before", events, args, tmp)
            print(f"round {r} worker before the change: {before['rate']:8.0f} events/s")
        bare = await through_kafka("worker-no-model", events, args, tmp)
        print(f"round {r} worker, no model: {bare['rate']:8.0f} events/s")
        naive = await through_kafka("naive", naive_events, args, tmp)
        print(f"round {r} naive:  {naive['rate']:8.0f} events/s")
        rounds.append(
            {
                "round": r,
                "limit": limit,
                "worker": worker,
                "bare": bare,
                "naive": naive,
                **({} if before is None else {"before": before}),
            }
        )
    worker_median = statistics.median(x["worker"]["rate"] for x in rounds)
    low = await latency(workload(args.events, seed=6), args.low_rate, args, tmp)
    print(
        f"latency at {low['rate_sent']:.0f} events/s: "
        f"p50 {low['p50_ms']:.0f} ms, p99 {low['p99_ms']:.0f} ms"
    )
    lat = await latency(workload(args.events, seed=6), worker_median / 2, args, tmp)
    print(
        f"latency at {lat['rate_sent']:.0f} events/s: "
        f"p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms"
    )
    return {"rounds": rounds, "latency": lat, "latency_low_rate": low}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    rounds = result["rounds"]

    def med(path: tuple[str, str]) -> float:
        return statistics.median(r[path[0]][path[1]] for r in rounds)

    per_round_limit = [r["worker"]["rate"] / r["limit"]["rate"] for r in rounds]
    per_round_naive = [r["worker"]["rate"] / r["naive"]["rate"] for r in rounds]
    before: dict[str, Any] = {}
    if all("before" in r for r in rounds):
        before = {
            "before_rate": med(("before", "rate")),
            "before_vs_limit": statistics.median(
                r["before"]["rate"] / r["limit"]["rate"] for r in rounds
            ),
            "speedup_per_round": [r["worker"]["rate"] / r["before"]["rate"] for r in rounds],
        }
    return {
        **before,
        "limit_rate": med(("limit", "rate")),
        "limit_texts_per_s": med(("limit", "texts_per_s")),
        "worker_rate": med(("worker", "rate")),
        "naive_rate": med(("naive", "rate")),
        "bare_rate": med(("bare", "rate")),
        "limit_rate_whole_stream": med(("limit", "rate_whole_stream")),
        "worker_vs_limit": statistics.median(per_round_limit),
        "worker_vs_limit_per_round": per_round_limit,
        "worker_vs_naive": statistics.median(per_round_naive),
        "worker_vs_naive_per_round": per_round_naive,
        "latency": result["latency"],
        "latency_low_rate": result["latency_low_rate"],
    }


def markdown(info: dict[str, Any], result: dict[str, Any], s: dict[str, Any]) -> str:
    first = result["rounds"][0]["limit"]
    lat = s["latency"]
    low = s["latency_low_rate"]

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = [
        "# Inference stage end to end: worker vs encoder limit vs naive consumer",
        "",
        f"{info['events']:,} synthetic click + purchase + review events (naive: first "
        f"{info['naive_events']:,}), {info['rounds']} alternating rounds, {info['cpu_count']} "
        f"CPUs, Python {info['python']}, {info['when']}. Encoder `{first['model_version']}`, "
        f"variant {first['variant']}, providers {first['providers']}. "
        f"Per {info['events']:,} events the worker embeds {first['texts_encoded']:,} texts "
        f"({first['text_items']:,} text items before per-batch dedupe and the title cache).",
        "",
        "| contender | median events/s | per round |",
        "|---|---:|---|",
    ]
    for key, label in (
        ("limit", "encoder limit (model time only)"),
        ("worker", "worker through Kafka"),
        ("bare", "worker through Kafka, inference disabled"),
        ("naive", "naive aiokafka + sentence-transformers"),
        ("before", f"worker before the change (`{info.get('before')}`)"),
    ):
        if key + "_rate" not in s:
            continue
        per = ", ".join(f"{r[key]['rate']:.0f}" for r in result["rounds"])
        lines.append(f"| {label} | {s[key + '_rate']:.0f} | {per} |")
    model_share = 1 / s["limit_rate"] / (1 / s["worker_rate"])
    lines += [
        "",
        f"Per event the worker spends {1e6 / s['worker_rate']:.0f} µs; the model's share of "
        f"that is {1e6 / s['limit_rate']:.0f} µs ({model_share:.0%}) and the same worker "
        f"without a text model needs {1e6 / s['bare_rate']:.0f} µs. The rest is per-record "
        "work that does not depend on the model: Faust's own per-record cost (about 90 µs "
        "here, see throughput.md), decoding, member state and producing outputs.",
        "",
        "| goal | this run | |",
        "|---|---|---|",
        f"| worker >= {GOAL_LIMIT} x encoder limit | {s['worker_vs_limit']:.2f} "
        f"(rounds: {', '.join(f'{x:.2f}' for x in s['worker_vs_limit_per_round'])}) | "
        f"{met(s['worker_vs_limit'] >= GOAL_LIMIT)} |",
        f"| worker >= {GOAL_NAIVE:.0f} x naive consumer | {s['worker_vs_naive']:.1f}x "
        f"(rounds: {', '.join(f'{x:.1f}' for x in s['worker_vs_naive_per_round'])}) | "
        f"{met(s['worker_vs_naive'] >= GOAL_NAIVE)} |",
        *(
            [
                f"| (before the change: {s['before_vs_limit']:.2f} x encoder limit; worker / "
                f"before per round: {', '.join(f'{x:.2f}' for x in s['speedup_per_round'])}) "
                "| | |"
            ]
            if "before_rate" in s
            else []
        ),
        "",
        f"Latency, event time to interest-tier update on Kafka, at {lat['rate_sent']:.0f} events/s "
        f"(half the worker's median rate), {lat['events']:,} events live, {lat['updates']:,} "
        f"updates: **p50 {lat['p50_ms']:.0f} ms, p99 {lat['p99_ms']:.0f} ms** "
        f"(max {lat['max_ms']:.0f} ms). It includes the batch wait (max_wait 0.05 s) and the "
        "producer's linger, not the commit interval. At a light "
        f"{low['rate_sent']:.0f} events/s ({low['updates']:,} updates): "
        f"p50 {low['p50_ms']:.0f} ms, "
        f"p99 {low['p99_ms']:.0f} ms (max {low['max_ms']:.0f} ms). Near half the pre-produced "
        "rate, live batches are small (a 50 ms wait gathers ~60 events), so per-batch costs "
        "weigh more than in the backlog measurement and records queue.",
        "",
        f"GPU: {info['gpu']}",
        "",
        f"Reproduce: `python -m bench.interest --events {info['events']} --naive-events "
        f"{info['naive_events']} --rounds {info['rounds']}"
        + (" --before CHECKOUT" if info.get("before") else "")
        + "`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--naive-events", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-s", type=float, default=20.0)
    parser.add_argument(
        "--low-rate", type=float, default=100.0, help="events/s of the light-load latency run"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of an earlier commit; its worker runs in the same rounds",
    )
    args = parser.parse_args(argv)
    providers = choose_providers("auto")
    info = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "events": args.events,
        "naive_events": args.naive_events,
        "rounds": args.rounds,
        "before": before_commit(args.before),
        "gpu": (
            "CUDA available; see providers above"
            if providers[0] == "CUDAExecutionProvider"
            else "no GPU available to this run (ONNX Runtime providers: CPU only)"
        ),
    }
    tmp = Path(tempfile.mkdtemp(prefix="memberstream-bench-interest-"))
    try:
        result = asyncio.run(run(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize(result)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"info": info, "summary": summary, **result}
    (args.out / "interest.json").write_text(json.dumps(payload, indent=2) + "\n")
    text = markdown(info, result, summary)
    (args.out / "interest.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
