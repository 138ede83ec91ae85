"""Anomaly detectors: precision and recall per kind, and what they cost the worker.

``python -m bench.anomalies [--members 2000] [--days 60] [--incidents-per-day 1] [--rounds 1]``

A seeded synthetic stream (normal traffic plus injected, labeled incidents of
every scenario: bot sessions, card testing, account takeovers, copy-paste
reviews, review bombing) is produced once per run into a fresh namespace.
Then, alternating for R rounds:

- detectors on: ``memberstream worker`` with the default settings (and the
  learned scorer in the model directory); its member.anomalies records are
  matched to the labels (:mod:`memberstream.domain.anomaly.evaluation`);
- detectors off: the same worker with ``anomaly.enabled=false``.

Events/s is the slope of committed input offsets between 10% and 90%, as in
``bench.throughput``. ``--offline`` skips Kafka and computes the flags with the
worker's processors in one process (quick, for tuning thresholds).

Results: ``DIR/anomalies.json`` and ``DIR/anomalies.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.throughput import (
    events_through,
    fresh_namespace,
    run_id,
    run_info,
    save_results,
    slope_rate,
)
from memberstream.config import Settings
from memberstream.core.offline import OfflineRun
from memberstream.core.roles import ANOMALIES
from memberstream.datasets.anomalies import AnomalyInjector, InjectionConfig
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.domain.anomaly.evaluation import Evaluation, evaluate
from memberstream.ml.inference import stage_from_settings
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import (
    read_json,
    wait_for_kafka,
)
from memberstream.streams.worker_process import WorkerProcess

GOAL_PRECISION = 0.9
GOAL_RECALL = 0.8
GOAL_COST = 0.30


def build_stream(args: argparse.Namespace) -> tuple[list[Envelope], AnomalyInjector]:
    injector = AnomalyInjector(
        InjectionConfig(
            seed=args.seed, incidents_per_day=args.incidents_per_day, warmup_days=args.warmup_days
        )
    )
    config = WorkloadConfig(seed=args.seed, members=args.members, days=args.days)
    events = list(SyntheticWorkload(config, injectors=[injector]).events())
    return events, injector


def offline_flags(events: list[Envelope], settings: Settings) -> tuple[list[dict], float]:
    run = OfflineRun(settings, stage_from_settings(settings))
    started = time.monotonic()
    for i, event in enumerate(events, 1):
        run.apply(event)
        if i % 20_000 == 0:
            print(f"  offline: {i:,}/{len(events):,} events, {time.monotonic() - started:.0f}s")
    return run.outputs[ANOMALIES], len(events) / (time.monotonic() - started)


async def through_kafka(
    events: list[Envelope], detectors: bool, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    async with fresh_namespace(args.bootstrap, args.partitions, tmp) as settings:
        settings.anomaly.enabled = detectors
        name = "on" if detectors else "off"
        log_path = tmp / "logs" / f"detectors-{name}-{run_id(settings)}.log"
        samples = await events_through(
            settings,
            events,
            WorkerProcess(settings, log_path).start,
            args.timeout,
            until_consumed=True,
        )
        topic = settings.topics.member_anomalies
        flags = await read_json(settings, topic)
        return {"rate": slope_rate(samples, len(events)), "wall_s": samples[-1][0], "flags": flags}


def unique_flags(flags: list[dict]) -> tuple[list[dict], int]:
    """Flags by id (a repeat must carry the same payload), and how many records repeated."""
    by_id: dict[str, dict] = {}
    for flag in flags:
        seen = by_id.setdefault(flag["flag_id"], flag)
        if seen != flag:
            raise AssertionError(f"two different payloads share flag id {flag['flag_id']}")
    return list(by_id.values()), len(flags) - len(by_id)


async def run_kafka(
    events: list[Envelope], args: argparse.Namespace, tmp: Path
) -> tuple[list[dict], dict[str, Any]]:
    await wait_for_kafka(Settings(kafka_bootstrap_servers=args.bootstrap))
    rounds = []
    flags: list[dict] = []
    for r in range(1, args.rounds + 1):
        on = await through_kafka(events, True, args, tmp)
        print(f"round {r} detectors on:  {on['rate']:7.0f} events/s, {len(on['flags'])} flags")
        off = await through_kafka(events, False, args, tmp)
        print(f"round {r} detectors off: {off['rate']:7.0f} events/s")
        if r == 1:
            flags = on["flags"]
        rounds.append({"round": r, "on": on["rate"], "off": off["rate"], "flags": len(on["flags"])})
    on_rate = statistics.median(x["on"] for x in rounds)
    off_rate = statistics.median(x["off"] for x in rounds)
    return flags, {
        "rounds": rounds,
        "on": on_rate,
        "off": off_rate,
        "cost": 1 - on_rate / off_rate,
        "ratios": [x["on"] / x["off"] for x in rounds],
    }


def markdown(info: dict[str, Any], result: dict[str, Any]) -> str:
    ev: dict[str, Any] = result["evaluation"]
    lines = [
        "# Anomaly detectors: precision, recall and cost",
        "",
        f"Recorded {info['recorded_at']} on {info['machine']}. Command: `{info['command']}`.",
        "",
        f"Stream: {result['events']:,} events (seed {result['seed']}, {result['members']:,} "
        f"members, {result['days']:g} days) with {result['incidents']} injected incidents "
        f"({result['injected_events']:,} events); flags from "
        f"{'the worker through Kafka' if result['mode'] == 'kafka' else 'the offline run'}.",
        "",
        "| kind | incidents | found | flags | false positives | precision | recall | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for k in ev["kinds"]:
        p = "-" if k["precision"] is None else f"{k['precision']:.3f}"
        r = "-" if k["recall"] is None else f"{k['recall']:.3f}"
        goal = ev["goals"].get(k["kind"])
        ok = "no incidents" if goal is None else "met" if goal else "NOT met"
        lines.append(
            f"| {k['kind']} | {k['incidents']} | {k['found']} | {k['flags']} | "
            f"{k['false_positives']} | {p} | {r} | {ok} |"
        )
    lines += [
        "",
        f"Goal per kind: precision >= {GOAL_PRECISION}, recall >= {GOAL_RECALL}.",
        f"Flags on normal traffic: {ev['flags_on_normal_traffic']} "
        f"({ev['normal_flags_per_10k']:.2f} per 10,000 normal events; budget "
        f"{ev['budget_per_10k']:g}); by kind: {ev['normal_flags_by_kind'] or 'none'}.",
        f"Flag records repeated on the topic (same id): {result['repeated_flag_records']}.",
    ]
    cost = result.get("throughput")
    if cost:
        lines += [
            "",
            "| worker | events/s (median) |",
            "|---|---:|",
            f"| detectors on | {cost['on']:,.0f} |",
            f"| detectors off | {cost['off']:,.0f} |",
            "",
            f"Cost of the detectors: {cost['cost']:.1%} (goal < {GOAL_COST:.0%}: "
            f"{'met' if cost['cost'] < GOAL_COST else 'NOT met'}); on/off per round: "
            + ", ".join(f"{x:.2f}" for x in cost["ratios"])
            + ".",
        ]
    return "\n".join(lines) + "\n"


def summarize_evaluation(e: Evaluation, budget: float) -> dict[str, Any]:
    return {
        "kinds": [s.as_dict() for s in e.kinds.values()],
        "goals": e.meets(GOAL_PRECISION, GOAL_RECALL),
        "flags_on_normal_traffic": e.flags_on_normal_traffic,
        "normal_flags_per_10k": e.normal_flags_per_10k,
        "normal_flags_by_kind": e.normal_flags_by_kind,
        "budget_per_10k": budget,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=2000)
    p.add_argument("--days", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--incidents-per-day", type=float, default=1.0)
    p.add_argument("--warmup-days", type=float, default=8.0, help="no incident before this")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--bootstrap", default=Settings().kafka_bootstrap_servers)
    p.add_argument("--offline", action="store_true", help="no Kafka: flags from the processors")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    events, injector = build_stream(args)
    labels = injector.labels
    injected = sum(len(lab.event_ids) for lab in labels)
    print(f"stream: {len(events):,} events, {len(labels)} incidents ({injected:,} events)")
    settings = Settings(kafka_bootstrap_servers=args.bootstrap)
    result: dict[str, Any] = {
        "events": len(events),
        "seed": args.seed,
        "members": args.members,
        "days": args.days,
        "incidents": len(labels),
        "injected_events": injected,
        "mode": "offline" if args.offline else "kafka",
    }
    if args.offline:
        flags, rate = offline_flags(events, settings)
        result["offline_events_per_s"] = rate
    else:
        with tempfile.TemporaryDirectory(prefix="bench-anomalies-") as tmp:
            flags, result["throughput"] = asyncio.run(run_kafka(events, args, Path(tmp)))
    flags, repeated = unique_flags(flags)
    result["repeated_flag_records"] = repeated
    evaluation = evaluate(flags, labels, len(events))
    result["evaluation"] = summarize_evaluation(
        evaluation, settings.anomaly.flag_budget_per_10k_events
    )
    result["sample_flags"] = sorted(flags, key=lambda f: (f["kind"], f["flag_id"]))[:3]
    info = run_info("bench.anomalies", argv) | {
        "partitions": args.partitions,
        "rounds": args.rounds,
        "rate_method": "slope between 10% and 90% of input records committed",
    }
    md = markdown(info, result)
    print(md)
    if not args.offline:
        save_results(args.out, "anomalies", info, result, md)


if __name__ == "__main__":
    main()
