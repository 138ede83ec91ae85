"""A day of the demo's traffic replayed into a namespace: timing, determinism, resume, diff.

``python -m bench.replay [--events 60000] [--days 7] [--keep]``

1. The demo's synthetic traffic (the generator and anomaly injector of ``make demo``,
   scaled to ``--events`` over ``--days``) is produced into a fresh namespace with
   each record's timestamp at its event time, shifted so the newest event lies an hour
   ago: the topics look as if the platform had published the traffic as it happened.
   The input topics keep their records (retention.ms=-1).
2. A worker processes it all (the live outputs); its rate is the live figure.
3. ``memberstream replay --from D --to D+1d --into day-a`` replays the busiest whole
   day, timed, with the diff against the live outputs; again into ``day-b`` (the two
   must be identical record for record); and a third time into ``day-c``, killed in the
   middle of the day (outputs acknowledged, state not committed) and resumed: its
   distinct outputs must equal ``day-a``'s.

Writes ``bench/results/replay.json`` and ``replay.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from bench.throughput import run_info, sample_until_done, save_results, slope_rate
from memberstream.config import Settings
from memberstream.datasets.anomalies import AnomalyInjector, InjectionConfig
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.schemas.codec import encode
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import GroupOffsets, delete_topics, topic_for
from memberstream.streams.replay import OUTPUT_FIELDS, namespace_settings
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import new_namespace, run_cli, topic_records, wait_processed

RESULTS = Path(__file__).parent / "results"
OUTPUTS = [f for f in OUTPUT_FIELDS if f != "product_reviews"]


def traffic(events: int, days: float) -> list[Envelope]:
    """The demo's synthetic recipe (seed, member count per event, injector), over ``days``."""
    # the demo has a member per 40 events over 90 days; as many members per day here
    config = WorkloadConfig(seed=2024, members=max(100, int(events / 40 * 90 / days)), days=days)
    injector = AnomalyInjector(InjectionConfig(seed=2024, incidents_per_day=0.15 * 90 / days))
    return list(itertools.islice(SyntheticWorkload(config, injectors=[injector]).events(), events))


async def produce_at_event_time(settings: Settings, events: list[Envelope], shift_ms: int) -> None:
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), acks="all", linger_ms=10, enable_idempotence=True
    )
    await producer.start()
    try:
        pending = []
        for e in events:
            ts = int(e.occurred_at.timestamp() * 1000) + shift_ms
            pending.append(
                await producer.send(
                    topic_for(e, settings), encode(e), key=e.member_id.encode(), timestamp_ms=ts
                )
            )
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def keep_forever(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        await admin.alter_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, t, configs={"retention.ms": "-1"})
                for t in settings.topics.ingest()
            ]
        )
    finally:
        await admin.close()


def cli(
    settings: Settings, *args: str, env: dict[str, str] | None = None
) -> tuple[int, str, float]:
    started = time.monotonic()
    done = run_cli(settings, *args, env=env, timeout_s=3600)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def outputs(settings: Settings, ns: Settings) -> dict[str, list[tuple[bytes, bytes]]]:
    return {f: topic_records(settings, getattr(ns.topics, f)) for f in OUTPUTS}


async def live_run(settings: Settings, n: int, log: Path) -> tuple[float, float]:
    """Run a worker over the pre-produced inputs: (seconds to the last commit, steady
    rate between 10% and 90% committed, as ``bench.throughput`` measures it)."""
    async with GroupOffsets(settings, settings.app_id, settings.topics.inputs()) as offsets:
        started = time.monotonic()
        worker = WorkerProcess(settings, log).start()
        try:
            samples = await sample_until_done(offsets, worker, n, started, 1800)
            await asyncio.to_thread(wait_processed, settings, worker, 600)
        finally:
            await asyncio.to_thread(worker.stop)
    return samples[-1][0], slope_rate(samples, n)


def busiest_day(events: list[Envelope], shift_ms: int) -> tuple[int, int, int]:
    """(start ms, end ms, events) of the whole UTC day with most events, in record time."""
    days = Counter((int(e.occurred_at.timestamp() * 1000) + shift_ms) // 86_400_000 for e in events)
    complete = sorted(days)[1:-1] or sorted(days)  # not the first or the last (partial) day
    day = max(complete, key=lambda d: days[d])
    return day * 86_400_000, (day + 1) * 86_400_000, days[day]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--keep", action="store_true", help="keep the topics")
    args = parser.parse_args(argv)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    work = Path(tempfile.mkdtemp(prefix="memberstream-bench-replay-"))
    settings = new_namespace(bootstrap, work, store="rocksdb://")
    settings.batch.commit_interval_s = 2.8
    prefix = settings.topics.clicks.removesuffix("events.clicks")
    asyncio.run(keep_forever(settings))

    events = traffic(args.events, args.days)
    newest = max(e.occurred_at for e in events)
    shift_ms = int((datetime.now(UTC) - timedelta(hours=1) - newest).total_seconds() * 1000)
    print(f"producing {len(events):,} events over {args.days:g} days of record time ...")
    asyncio.run(produce_at_event_time(settings, events, shift_ms))

    print("live worker: processing everything ...")
    live_s, live_rate = asyncio.run(live_run(settings, len(events), work / "worker.log"))

    day_from, day_to, day_events = busiest_day(events, shift_ms)
    span = ("--from", iso(day_from), "--to", iso(day_to))
    runs: dict[str, Any] = {}
    for name in ("day-a", "day-b"):
        report_path = work / f"{name}.json"
        rc, out, seconds = cli(settings, "replay", *span, "--into", prefix + name,
                               "--json", str(report_path))  # fmt: skip
        if rc != 0:
            raise SystemExit(f"replay {name} failed ({rc}):\n{out}")
        print(out)
        runs[name] = {"seconds": seconds, "report": orjson.loads(report_path.read_bytes())}
    a = outputs(settings, namespace_settings(settings, prefix + "day-a"))
    b = outputs(settings, namespace_settings(settings, prefix + "day-b"))
    identical = a == b

    kill_at = max(2, day_events // settings.batch.max_batch // 2)
    killed_rc, _, killed_s = cli(
        settings, "replay", *span, "--into", prefix + "day-c", "--no-diff",
        env={"MEMBERSTREAM_FAILPOINTS": f"replay_outputs:{kill_at}"},
    )  # fmt: skip
    rc, out, resumed_s = cli(settings, "replay", *span, "--into", prefix + "day-c", "--no-diff")
    if rc != 0:
        raise SystemExit(f"resumed replay failed ({rc}):\n{out}")
    c = outputs(settings, namespace_settings(settings, prefix + "day-c"))
    resumed_equal = {f: set(r) for f, r in c.items()} == {f: set(r) for f, r in a.items()}
    extra = sum(len(c[f]) - len(a[f]) for f in OUTPUTS)

    report_a = runs["day-a"]["report"]
    result = {
        "events": len(events),
        "days": args.days,
        "live": {"seconds": round(live_s, 1), "steady_records_per_s": round(live_rate, 1)},
        "day": {"from": iso(day_from), "to": iso(day_to), "events": day_events},
        "replay": {
            name: {
                "command_seconds": round(r["seconds"], 1),
                "replay_seconds": r["report"]["seconds"],
                "records": r["report"]["records"],
                "records_per_s": r["report"]["rate"],
            }
            for name, r in runs.items()
        },
        "replay_vs_live_rate": round(report_a["rate"] / live_rate, 2),
        "identical_a_b": identical,
        "outputs_a": {f: len(r) for f, r in a.items()},
        "resume": {
            "killed_at_batch": kill_at,
            "killed_rc": killed_rc,
            "killed_after_s": round(killed_s, 1),
            "resumed_s": round(resumed_s, 1),
            "distinct_outputs_equal": resumed_equal,
            "records_produced_twice": extra,
        },
        "stats": report_a["stats"],
        "diff": report_a["diff"],
    }
    save_results(RESULTS, "replay", run_info("bench.replay", argv), result, markdown(result))
    if not args.keep:
        names = [*settings.topics.all()]
        for name in ("day-a", "day-b", "day-c"):
            names += [getattr(namespace_settings(settings, prefix + name).topics, f)
                      for f in OUTPUT_FIELDS]  # fmt: skip
        asyncio.run(delete_topics(settings, names))


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "# Replay: a day of the demo's traffic into a namespace",
        "",
        f"{r['events']:,} events of the demo's synthetic traffic over {r['days']:g} days of "
        f"record time; the busiest day, {r['day']['from'][:10]}, holds {r['day']['events']:,}.",
        "",
        "| | seconds | records | records/s |",
        "|---|---:|---:|---:|",
        f"| live worker, all {r['events']:,} events | {r['live']['seconds']} | {r['events']:,} "
        f"| {r['live']['steady_records_per_s']:,.0f} (steady, 10-90%) |",
    ]
    for name, x in r["replay"].items():
        lines.append(
            f"| `replay --into {name}` (command / replay) | {x['command_seconds']} / "
            f"{x['replay_seconds']} | {x['records']:,} | {x['records_per_s']:,.0f} |"
        )
    lines += [
        "",
        f"Replay rate / live rate: **{r['replay_vs_live_rate']}** (same run, same machine).",
        f"day-a and day-b identical record for record: **{r['identical_a_b']}**.",
        f"day-c killed by its failpoint in batch {r['resume']['killed_at_batch']} (rc "
        f"{r['resume']['killed_rc']}) and resumed: "
        f"distinct outputs equal to day-a's: **{r['resume']['distinct_outputs_equal']}** "
        f"({r['resume']['records_produced_twice']} records produced twice by the rerun batch).",
        "",
        "Against the live outputs of the same records (the replay starts without the "
        "history before the day):",
        "",
        "| kind | live | replay | same | changed | only live | only replay | not comparable |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, d in r["diff"].items():
        lines.append(
            f"| {kind} | {d['live']:,} | {d['replay']:,} | {d['same']:,} | {d['changed']:,} | "
            f"{d['only_live']:,} | {d['only_replay']:,} | {d['not_comparable']:,} |"
        )
    changed = {k: d["changed_fields"] for k, d in r["diff"].items() if d["changed_fields"]}
    if changed:
        lines += ["", "Fields that changed: " + "; ".join(
            f"{k}: " + ", ".join(f"{f} {n}" for f, n in v.items()) for k, v in changed.items()
        )]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
