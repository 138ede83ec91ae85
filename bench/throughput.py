"""Worker throughput against a plain aiokafka passthrough and a bare Faust agent.

``python -m bench.throughput [--events N] [--rounds R] [--bootstrap B] [--out DIR]``

Each run gets a fresh namespace (topics, consumer group, state directory),
pre-produces the same N encoded PURCHASE events, then starts the contender as a
child process and samples its group's committed offsets every ~0.2 s. The rate
is the slope between 10% and 90% committed (interpolated on the commit onsets),
which leaves out start-up and the tail. Three contenders: the plain aiokafka
passthrough (baseline), the faust floor (``bench.faust_floor``: the cheapest
Faust agent with the passthrough's semantics, i.e. the ceiling for any Faust
agent) and the worker. They alternate (passthrough, faust-floor, worker, ...)
for R rounds so drift on a noisy machine hits all alike. Results go to
``DIR/throughput.json`` and ``DIR/throughput.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from memberstream.config import Settings, TopicNames
from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig
from memberstream.schemas.codec import encode
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import (
    GroupOffsets,
    create_topics,
    produce_events,
    wait_caught_up,
    wait_for_kafka,
)
from memberstream.streams.worker_process import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent
COMMIT_INTERVAL_S = 0.5
POLL_S = 0.2
TARGET_RATIO = 0.25  # the worker at no less than this x the bare Faust agent
GOAL_RATIO = 0.5
GOAL_KEY = "worker/faust-floor"
COARSE_STEPS = 5  # fewer partial commit levels than this: the slope is rough
GOAL = f"worker >= {TARGET_RATIO} x faust-floor (goal {GOAL_RATIO})"
CONTENDERS = ("passthrough", "faust-floor", "worker")
# (numerator, denominator, what the ratio means); the first one is the goal's
RATIOS = (
    ("worker", "faust-floor", "the worker's own cost on top of Faust's"),
    ("faust-floor", "passthrough", "ceiling for any Faust agent"),
    ("worker", "passthrough", "the worker against plain aiokafka"),
    ("worker-before", "faust-floor", "the worker before the change"),
    ("worker", "worker-before", "speed-up over the code before the change"),
)

Record = tuple[bytes, bytes]  # key, value
Sample = tuple[float, int]  # seconds since the child started, records committed


# --- workload ----------------------------------------------------------------------------------


def purchase_records(n: int, seed: int = 7) -> list[Record]:
    """The first ``n`` synthetic PURCHASE events, encoded once and keyed by member_id."""
    members, days = max(2000, n // 6), 240.0  # ~6 purchases per member over 240 days
    while True:
        workload = SyntheticWorkload(WorkloadConfig(seed=seed, members=members, days=days))
        events = list(itertools.islice(workload.events(kinds={"purchase"}), n))
        if len(events) == n:
            return [(e.member_id.encode("utf-8"), encode(e)) for e in events]
        days *= 2


async def produce_all(settings: Settings, topic: str, records: list[Record]) -> float:
    """Send ``records`` with one fast producer; return the seconds it took."""
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


# --- namespaces --------------------------------------------------------------------------------


def make_namespace(bootstrap: str, partitions: int, state_root: Path) -> Settings:
    """Settings with topics, a consumer group / app id and a state dir of their own."""
    run = uuid.uuid4().hex[:10]
    names = {k: f"bench.{run}.{v}" for k, v in TopicNames().model_dump().items()}
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        app_id=f"memberstream-bench-{run}",
        topics=TopicNames(**names),
        data_dir=state_root / f"state-{run}",
        store="rocksdb://",
        partitions=partitions,
    )
    settings.batch.commit_interval_s = COMMIT_INTERVAL_S
    state_root.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    return settings


@contextlib.asynccontextmanager
async def fresh_namespace(
    bootstrap: str, partitions: int, root: Path, keep_topics: bool = False
) -> AsyncIterator[Settings]:
    """A namespace for one run; its state dir and (unless ``keep_topics``) topics go after."""
    settings = make_namespace(bootstrap, partitions, root / "state")
    try:
        yield settings
    finally:
        shutil.rmtree(settings.data_dir, ignore_errors=True)
        if not keep_topics:
            with contextlib.suppress(KafkaError):
                await delete_namespace(settings)


async def events_through(
    settings: Settings,
    events: Sequence[Envelope],
    start: Callable[[], Child],
    timeout_s: float,
    until_consumed: bool = False,
) -> list[Sample]:
    """Pre-produce ``events`` into the namespace, start the contender, sample committed
    input offsets until every event is committed, and stop it. ``until_consumed`` also
    waits until the group has caught up on every topic it reads (the product agent's)."""
    await create_topics(settings)
    await produce_events(settings, events)
    async with GroupOffsets(settings, settings.app_id, settings.topics.inputs()) as offs:
        started = time.monotonic()
        child = start()
        try:
            samples = await sample_until_done(offs, child, len(events), started, timeout_s)
            if until_consumed:
                await wait_caught_up(
                    settings, settings.app_id, settings.topics.consumed(), timeout_s
                )
        finally:
            await asyncio.to_thread(child.stop)
    return samples


def run_id(settings: Settings) -> str:
    return settings.app_id.rsplit("-", 1)[-1]


async def delete_namespace(settings: Settings) -> None:
    """Delete every topic of the run (inputs, outputs, faust's changelog and assignor)."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if run_id(settings) in t]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


# --- contenders --------------------------------------------------------------------------------


class Child(Protocol):
    @property
    def running(self) -> bool: ...

    def stop(self, timeout_s: float = 30.0) -> int | None: ...

    def log_tail(self, lines: int = 40) -> str: ...


class ModuleProcess(WorkerProcess):
    """``python -m <module> <args>`` as a child, stopped and logged like the worker."""

    module = ""

    def args(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> ModuleProcess:
        cmd = [sys.executable, "-m", self.module, *self.args()]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self


def consume_produce_args(settings: Settings, output: str) -> list[str]:
    """Arguments of a plain consume-and-produce child: the namespace's inputs into ``output``."""
    return [
        "--bootstrap",
        settings.kafka_bootstrap_servers,
        "--group",
        settings.app_id,
        "--topics",
        ",".join(settings.topics.inputs()),
        "--output",
        output,
    ]


class PassthroughProcess(ModuleProcess):
    """``python -m bench.passthrough`` on the namespace's inputs, into its tiers topic."""

    module = "bench.passthrough"

    def args(self) -> list[str]:
        s = self.settings
        return [
            *consume_produce_args(s, s.topics.member_tiers),
            "--commit-interval",
            str(s.batch.commit_interval_s),
        ]


class FaustFloorProcess(ModuleProcess):
    """``python -m bench.faust_floor``: the worker's broker settings, a forward-only agent."""

    module = "bench.faust_floor"
    copies = 1

    def args(self) -> list[str]:
        s = self.settings
        return [
            "--bootstrap",
            s.kafka_bootstrap_servers,
            "--app-id",
            s.app_id,
            "--topics",
            ",".join(s.topics.inputs()),
            "--output",
            s.topics.member_tiers,
            "--partitions",
            str(s.partitions),
            "--commit-interval",
            str(s.batch.commit_interval_s),
            "--session-timeout",
            str(s.session_timeout_s),
            "--max-batch",
            str(s.batch.max_batch),
            "--max-wait",
            str(s.batch.max_wait_s),
            "--datadir",
            str(s.data_dir),
            "--copies",
            str(self.copies),
        ]


@dataclass(frozen=True)
class RunOptions:
    """How the worker contenders run: under a profiler, and from which checkout."""

    profile_dir: Path | None = None  # py-spy's collapsed stacks of each worker run go here
    before: Path | None = None  # a checkout of the code before a change: "worker-before"


class ProfiledWorker(WorkerProcess):
    """A worker with py-spy attached to it; the profile is written when it stops.

    py-spy attaches by pid rather than wrapping the command: it writes its file on
    SIGINT, and the worker must still get its own SIGTERM to shut down as usual.
    """

    def __init__(self, *args: Any, profile_path: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profile_path = profile_path
        self.spy: subprocess.Popen[bytes] | None = None

    def start(self) -> ProfiledWorker:
        super().start()
        assert self.proc is not None
        self.profile_path.parent.mkdir(parents=True, exist_ok=True)
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        cmd = [spy, "record", "--format", "raw", "--rate", "200", "--nonblocking"]
        cmd += ["--output", str(self.profile_path), "--pid", str(self.proc.pid)]
        self.spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.spy is not None and self.spy.poll() is None:
            self.spy.send_signal(signal.SIGINT)
            try:
                self.spy.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.spy.kill()
        return super().stop(timeout_s)


def start_contender(
    name: str, settings: Settings, log_path: Path, options: RunOptions, round_no: int
) -> Child:
    if name in ("worker", "worker-before"):
        source = options.before if name == "worker-before" else None
        if options.profile_dir is None:
            return WorkerProcess(settings, log_path, source=source).start()
        out = options.profile_dir / f"{name}-{round_no}.txt"
        return ProfiledWorker(settings, log_path, source=source, profile_path=out).start()
    if name == "faust-floor":
        return FaustFloorProcess(settings, log_path).start()
    if name.startswith("faust-floor-x"):  # K records produced per input record
        floor = FaustFloorProcess(settings, log_path)
        floor.copies = int(name.removeprefix("faust-floor-x"))
        return floor.start()
    return PassthroughProcess(settings, log_path).start()


# --- measurement -------------------------------------------------------------------------------


async def committed_or_zero(offsets: GroupOffsets) -> int:
    try:
        return await offsets.committed()
    except KafkaError as exc:  # e.g. the coordinator is still loading the new group
        if not exc.retriable:
            raise
        return 0


async def sample_until_done(
    offsets: GroupOffsets, child: Child, n: int, started: float, timeout_s: float
) -> list[Sample]:
    """(t, committed) every ``POLL_S`` until all ``n`` records are committed."""
    samples: list[Sample] = [(0.0, 0)]
    for tick in itertools.count(1):
        committed = await committed_or_zero(offsets)
        now = time.monotonic() - started
        samples.append((round(now, 3), committed))
        if committed >= n:
            return samples
        if not child.running:
            raise RuntimeError(f"contender exited early:\n{child.log_tail()}")
        if now > timeout_s:
            raise TimeoutError(f"{committed}/{n} committed after {timeout_s:.0f}s")
        await asyncio.sleep(max(started + tick * POLL_S - time.monotonic(), 0.0))
    raise AssertionError("unreachable")


def commit_onsets(samples: list[Sample]) -> list[Sample]:
    """(t, level) where each new non-zero committed level was first seen.

    Commits are steps (one every 0.5 s), so the curve to interpolate on runs through
    the step onsets. The zero level is left out: "nothing committed yet" says nothing
    about when work began, and interpolating from it would credit the first commit's
    records to the last poll interval alone.
    """
    onsets: list[Sample] = []
    for t, committed in samples:
        if committed > (onsets[-1][1] if onsets else 0):
            onsets.append((t, committed))
    return onsets


def crossing_time(points: list[Sample], level: float) -> float:
    """When the committed count reached ``level``, interpolated between ``points``
    (clamped to the first and last point)."""
    if level <= points[0][1]:
        return points[0][0]
    for (t0, c0), (t1, c1) in itertools.pairwise(points):
        if c0 < level <= c1:
            return t0 + (t1 - t0) * (level - c0) / (c1 - c0)
    return points[-1][0]


def slope_rate(samples: list[Sample], n: int, low: float = 0.1, high: float = 0.9) -> float:
    """Events/s between ``low`` and ``high`` of ``n`` committed, on the commit onsets.

    Where everything was committed in one step there is no slope: the whole-run
    average (start-up included) is returned instead, a lower bound.
    """
    points = commit_onsets(samples)
    lo = min(max(low * n, points[0][1]), points[-1][1])
    hi = min(max(high * n, points[0][1]), points[-1][1])
    if hi <= lo:
        return points[-1][1] / points[-1][0]
    return (hi - lo) / (crossing_time(points, hi) - crossing_time(points, lo))


def log_levels(path: Path) -> tuple[int, int]:
    """(ERROR lines, WARNING lines) in a child's log."""
    errors = warnings = 0
    with path.open(errors="replace") as log:
        for line in log:
            errors += "[ERROR]" in line
            warnings += "[WARNING]" in line
    return errors, warnings


@dataclass
class RunResult:
    contender: str
    round: int
    rate: float  # events/s between 10% and 90% committed
    wall_s: float  # child start to everything committed
    samples: int
    commit_steps: int  # distinct partial commit levels seen: few means a coarse rate
    produce_s: float
    exit_code: int | None
    log_errors: int  # "[ERROR]" lines in the child's log: a healthy run has none
    log_warnings: int
    trace: list[Sample]  # the (t, committed) samples themselves


async def measure(
    contender: str,
    round_no: int,
    settings: Settings,
    records: list[Record],
    log_dir: Path,
    timeout_s: float,
    options: RunOptions,
) -> RunResult:
    """One run: fresh namespace, pre-produce, start the contender, sample, stop it."""
    await create_topics(settings)
    topic = settings.topics.purchases
    produce_s = await produce_all(settings, topic, records)
    log_path = log_dir / f"{contender}-{round_no}-{run_id(settings)}.log"
    async with GroupOffsets(settings, settings.app_id, [topic]) as offsets:
        started = time.monotonic()
        child = start_contender(contender, settings, log_path, options, round_no)
        try:
            samples = await sample_until_done(offsets, child, len(records), started, timeout_s)
        finally:
            code = await asyncio.to_thread(child.stop)
    return run_result(contender, round_no, samples, len(records), produce_s, code, log_path)


def run_result(
    contender: str,
    round_no: int,
    samples: list[Sample],
    n: int,
    produce_s: float,
    exit_code: int | None,
    log_path: Path,
) -> RunResult:
    errors, warnings = log_levels(log_path)
    return RunResult(
        contender=contender,
        round=round_no,
        rate=slope_rate(samples, n),
        wall_s=samples[-1][0],
        samples=len(samples),
        commit_steps=len({c for _, c in samples if 0 < c < n}),
        produce_s=produce_s,
        exit_code=exit_code,
        log_errors=errors,
        log_warnings=warnings,
        trace=samples,
    )


async def run_one(
    contender: str, round_no: int, records: list[Record], args: argparse.Namespace, tmp: Path
) -> RunResult:
    async with fresh_namespace(args.bootstrap, args.partitions, tmp, args.keep_topics) as ns:
        options = RunOptions(args.profile, args.before)
        return await measure(contender, round_no, ns, records, tmp / "logs", args.timeout, options)


async def run_all(
    records: list[Record], args: argparse.Namespace, tmp: Path, report: Callable[[RunResult], None]
) -> list[RunResult]:
    await wait_for_kafka(Settings(kafka_bootstrap_servers=args.bootstrap))
    results = []
    for round_no in range(1, args.rounds + 1):
        for contender in contenders(args):
            result = await run_one(contender, round_no, records, args, tmp)
            report(result)
            results.append(result)
    return results


# --- summary -----------------------------------------------------------------------------------


def contenders(args: argparse.Namespace) -> list[str]:
    """The contenders of a round, in the order they run."""
    names = list(args.contenders)
    if args.before is not None and "worker-before" not in names:
        names.append("worker-before")
    return names


def rates_of(results: list[RunResult], contender: str) -> list[float]:
    return [r.rate for r in results if r.contender == contender]


def ratio_of(
    results: list[RunResult], stats: dict[str, Any], num: str, den: str, meaning: str
) -> dict[str, Any]:
    """``num``/``den`` of the medians and per round (each round pairs its own runs)."""
    per_round = {
        r.round: r.rate / d.rate
        for r, d in itertools.product(results, results)
        if r.contender == num and d.contender == den and r.round == d.round
    }
    return {
        "of_medians": stats[num]["median"] / stats[den]["median"],
        "per_round": per_round,
        "meaning": meaning,
    }


def summarize(results: list[RunResult]) -> dict[str, Any]:
    names = list(dict.fromkeys(r.contender for r in results))
    stats = {}
    for name in names:
        rates = rates_of(results, name)
        stats[name] = {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}
    ratios = {
        f"{n}/{d}": ratio_of(results, stats, n, d, m)
        for n, d, m in RATIOS
        if n in stats and d in stats
    }
    goal = ratios.get(GOAL_KEY)
    return {
        "contenders": stats,
        "ratios": ratios,
        "fewest_commit_steps": min(r.commit_steps for r in results),
        "goal": GOAL,
        "target_met": None if goal is None else goal["of_medians"] >= TARGET_RATIO,
        "goal_met": None if goal is None else goal["of_medians"] >= GOAL_RATIO,
    }


def run_info(module: str, argv: list[str] | None) -> dict[str, Any]:
    """When, where and how a benchmark ran, for its results file."""
    return {
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, Python "
        f"{platform.python_version()}",
        "loadavg_at_start": os.getloadavg(),
        "command": " ".join([f"python -m {module}", *(sys.argv[1:] if argv is None else argv)]),
    }


def save_results(
    out: Path, name: str, info: dict[str, Any], result: dict[str, Any], md: str
) -> None:
    """``out/name.json`` (info and result) and ``out/name.md`` (the table)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"info": info, **result}, indent=2))
    (out / f"{name}.md").write_text(md)
    print(f"wrote {out / (name + '.json')} and {out / (name + '.md')}")


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "faust": version("faust-streaming"),
        "aiokafka": version("aiokafka"),
        "kafka_bootstrap": args.bootstrap,
        "events": args.events,
        "rounds": args.rounds,
        "partitions": args.partitions,
        "before": before_commit(args.before),
        "commit_interval_s": COMMIT_INTERVAL_S,
        "worker_store": "rocksdb://",
        "faust_floor": "bench.faust_floor: worker's faust settings, store memory://, one agent "
        "forwarding each take_events(500, 0.05) event via app.producer.send",
        "poll_s": POLL_S,
        "rate_method": "slope between 10% and 90% of events committed, interpolated on "
        "commit onsets (first sample at each new committed level)",
    }


def before_commit(checkout: Path | None) -> str | None:
    """The short commit id of the ``--before`` checkout (its path when not a git tree)."""
    if checkout is None:
        return None
    done = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else str(checkout)


REPRODUCE = (
    "Reproduce: `python -m bench.throughput --events {events} --rounds {rounds}{before_arg}` "
    "(`make bench` runs it with the defaults)."
)


def coarse_note(steps: int) -> list[str]:
    if steps >= COARSE_STEPS:
        return []
    return [
        f"Note: a run saw only {steps} partial commits, so its rate is coarse; "
        "raise --events for a finer figure.",
        "",
    ]


def verdict(summary: dict[str, Any]) -> str:
    if summary["goal_met"] is None:
        return "not measured (the run lacks the worker or the floor)"
    if summary["goal_met"]:
        return "target and goal met"
    if summary["target_met"]:
        return "target met, goal not met"
    return "**target not met**"


def reading(summary: dict[str, Any]) -> str:
    """Two or three sentences on what the ratios mean, from the numbers of this run."""
    ratios = summary["ratios"]
    lines = []
    if "faust-floor/passthrough" in ratios:
        fp = ratios["faust-floor/passthrough"]["of_medians"]
        lines.append(
            f"A Faust agent that only forwards records (`bench/faust_floor.py`) reaches "
            f"{fp:.2f} x the passthrough here, the ceiling for any Faust agent."
        )
    if GOAL_KEY in ratios:
        wf = ratios[GOAL_KEY]["of_medians"]
        lines.append(
            f"The worker reaches {wf:.2f} x that floor ({verdict(summary)}): per event it "
            f"takes {1 / wf:.1f} x the floor's time, the difference being memberstream's own "
            "work (decoding, member state, table, outputs)."
        )
    if "worker/worker-before" in ratios:
        speedup = ratios["worker/worker-before"]["of_medians"]
        lines.append(f"Against the code before the change, in the same run: {speedup:.2f} x.")
    return " ".join(lines)


def markdown(info: dict[str, Any], summary: dict[str, Any]) -> str:
    rows = [
        "| contender | median events/s | min | max | x faust-floor |",
        "|---|---:|---:|---:|---:|",
    ]
    stats = summary["contenders"]
    base = stats.get("faust-floor", {}).get("median")
    for name, s in stats.items():
        nums = f"{s['median']:,.0f} | {s['min']:,.0f} | {s['max']:,.0f}"
        rel = f"{s['median'] / base:.2f}" if base else "-"
        rows.append(f"| {name} | {nums} | {rel} |")
    ratio_rows = [
        "| ratio | of medians | per round | meaning |",
        "|---|---:|---|---|",
    ]
    for key, r in summary["ratios"].items():
        per_round = ", ".join(f"{v:.2f}" for v in r["per_round"].values())
        meaning = r["meaning"]
        if key == GOAL_KEY:
            meaning = f"{GOAL}: {verdict(summary)}"
        ratio_rows.append(f"| {key} | {r['of_medians']:.2f} | {per_round} | {meaning} |")
    before = info.get("before")
    return "\n".join(
        [
            "# Throughput: memberstream worker vs a bare Faust agent and aiokafka",
            "",
            f"{info['events']:,} PURCHASE events, {info['rounds']} alternating rounds, "
            f"{info['partitions']} partitions, commit every {info['commit_interval_s']} s, "
            f"{info['cpu_count']} CPUs, Python {info['python']}, {info['when']}.",
            "Rate: events/s between 10% and 90% of the events committed. "
            "faust-floor: `bench/faust_floor.py`, a Faust app with the worker's settings whose "
            "one agent forwards each `take_events(500, 0.05)` event with `app.producer.send`."
            + (f" worker-before: the worker of commit `{before}`, same run." if before else ""),
            "",
            *rows,
            "",
            *ratio_rows,
            "",
            f"Reading: {reading(summary)}",
            "",
            *coarse_note(summary["fewest_commit_steps"]),
            REPRODUCE.format(**info, before_arg=" --before CHECKOUT" if info.get("before") else ""),
            "",
        ]
    )


def write_results(out: Path, info: dict[str, Any], results: list[RunResult]) -> dict[str, Any]:
    summary = summarize(results)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": info, "runs": [asdict(r) for r in results], **summary}
    (out / "throughput.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "throughput.md").write_text(markdown(info, summary))
    return summary


# --- command line ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m bench.throughput",
        description="Events/s of the memberstream worker vs a plain aiokafka passthrough "
        "and a bare Faust agent.",
    )
    parser.add_argument("--events", type=int, default=60_000, help="events per run (%(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (%(default)s)")
    parser.add_argument(
        "--bootstrap",
        default=defaults.kafka_bootstrap_servers,
        help="Kafka bootstrap servers (default from settings / KAFKA_BOOTSTRAP_SERVERS: "
        "%(default)s)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results dir")
    parser.add_argument(
        "--partitions", type=int, default=defaults.partitions, help="partitions per topic"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per run")
    parser.add_argument("--keep-topics", action="store_true", help="don't delete run topics")
    parser.add_argument(
        "--contenders",
        type=lambda v: [c.strip() for c in v.split(",") if c.strip()],
        default=list(CONTENDERS),
        help="comma-separated subset of " + ",".join(CONTENDERS) + " (default: all); "
        "faust-floor-xK (K in 1-9) is the floor producing K records per input",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of an earlier commit (e.g. `git worktree add /tmp/before <sha>`): "
        "its worker runs as the contender worker-before in the same rounds",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record each worker run with py-spy (collapsed stacks) into this directory; "
        "summarize with `python -m bench.profile_summary DIR`",
    )
    args = parser.parse_args(argv)
    unknown = {c for c in args.contenders if not re.fullmatch(r"faust-floor-x[1-9]", c)}
    unknown -= set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    if args.before is not None and not (args.before / "memberstream").is_dir():
        parser.error(f"--before {args.before}: no memberstream package there")
    if args.events < 10 or args.rounds < 1:
        parser.error("need --events >= 10 and --rounds >= 1")
    return args


def print_run(result: RunResult) -> None:
    print(
        f"round {result.round} {result.contender:>11}: {result.rate:>9,.0f} events/s "
        f"(wall {result.wall_s:.1f} s, {result.samples} samples, "
        f"{result.commit_steps} partial commits)",
        flush=True,
    )
    if result.log_errors:
        print(f"  warning: {result.log_errors} ERROR lines in its log", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # retried NotLeaderForPartition warnings while fresh topics elect leaders
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    info = machine_info(args)
    print(f"generating {args.events:,} purchase events ...", flush=True)
    records = purchase_records(args.events)
    tmp = Path(tempfile.mkdtemp(prefix="memberstream-bench-"))
    print(f"child logs: {tmp / 'logs'}", flush=True)
    results = asyncio.run(run_all(records, args, tmp, print_run))
    summary = write_results(args.out, info, results)
    print(markdown(info, summary))
    print(f"wrote {args.out / 'throughput.json'} and {args.out / 'throughput.md'}")


if __name__ == "__main__":
    main()
