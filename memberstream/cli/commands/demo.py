"""``memberstream demo``: the whole pipeline end to end on the real CDNOW purchase log,
plus a seeded synthetic click, purchase and review stream for interest tiers."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import SecretStr

from memberstream.cli.commands.context import settings_from
from memberstream.config import Settings, TopicNames
from memberstream.errors import (
    EX_CONFIG,
    EX_NOINPUT,
    EX_NOPERM,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_TOPICS,
    EX_UNAVAILABLE,
    MemberstreamError,
    TimedOut,
)
from memberstream.schemas.events import Envelope
from memberstream.streams.kafka_io import (
    create_topics,
    delete_topics,
    produce_events,
    produce_raw,
    read_json,
    wait_caught_up,
)
from memberstream.streams.topic_check import run, wait_for_broker
from memberstream.streams.worker_process import WorkerProcess

if TYPE_CHECKING:
    from memberstream.datasets.anomalies import AnomalyInjector

KNOWN_EXIT_CODES = {
    EX_CONFIG,
    EX_NOINPUT,
    EX_NOPERM,
    EX_SOFTWARE,
    EX_TEMPFAIL,
    EX_TOPICS,
    EX_UNAVAILABLE,
}

BAD_RECORDS: list[tuple[bytes | None, bytes]] = [
    (b"cdnow-00001", b'{"event_id": "bad-1", "member_id": "cdnow-00001", '),
    (
        b"cdnow-00002",
        b'{"event_id": "bad-2", "member_id": "cdnow-00002", '
        b'"occurred_at": "1997-01-01T10:00:00", "order_id": "x", "total": 5.0, '
        b'"items": [{"product_id": "cd", "title": "CD", "category": "music", '
        b'"quantity": 1, "unit_price": 5.0}]}',
    ),
    (b"cdnow-00003", b"\xff\xfe not utf-8"),
]


def _demo_settings(base: Settings, run_id: str, data_dir: Path) -> Settings:
    names = {k: f"{v}.{run_id}" for k, v in TopicNames().model_dump().items()}
    return base.model_copy(
        update={
            "app_id": f"memberstream-demo-{run_id}",
            "topics": TopicNames(**names),
            "data_dir": data_dir,
        }
    )


def _ensure_broker(settings: Settings) -> None:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        click.echo(f"Kafka: {settings.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)")
        run(wait_for_broker(settings, on_wait=lambda m: click.echo(m, err=True)))
        return
    from memberstream.cli.devbroker import DevBroker

    bootstrap = DevBroker(settings.broker, echo=click.echo).start()
    click.echo(f"Kafka: development broker at {bootstrap}")


@click.command()
@click.option("--limit", type=int, help="send only the first N CDNOW purchases")
@click.option(
    "--synthetic",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="also send N seeded synthetic click, purchase and review events (English and "
    "Chinese titles, queries and reviews) for interest tiers; 0: CDNOW only",
)
@click.option(
    "--anomalies/--no-anomalies",
    default=True,
    show_default=True,
    help="inject labeled anomalies (bot sessions, card testing, account takeovers, "
    "copy-paste reviews, review bombing) into the synthetic events",
)
@click.option(
    "--learn/--no-learn",
    default=True,
    show_default=True,
    help="run one learning cycle: send the real labeled platform-traffic reviews, collect "
    "samples, train and gate a sentiment candidate, promote it and watch the worker swap it in",
)
@click.option("--examples", default=5, show_default=True, help="tier changes to show")
@click.option("--timeout", default=600.0, show_default=True, help="seconds to wait for the worker")
@click.option("--keep", is_flag=True, help="keep this run's topics (deleted by default)")
@click.pass_context
def demo(
    ctx: click.Context,
    limit: int | None,
    synthetic: int,
    anomalies: bool,
    learn: bool,
    examples: int,
    timeout: float,
    keep: bool,
) -> None:
    """Run the pipeline end to end and print a report.

    Starts the development broker unless KAFKA_BOOTSTRAP_SERVERS is set,
    creates a fresh set of topics for this run, starts a worker, sends the
    69,659 real CDNOW purchases (1997-1998), three malformed records and
    --synthetic seeded click, purchase and review events, waits until the
    worker has processed everything, and reports: events in, dead letters,
    the membership-tier distribution and some tier changes, interest tiers
    and some interest changes, throughput, anomaly flags (one of each kind
    with its evidence, and how many injected incidents were found), and
    product review summaries with their pros and cons (the reviews of the
    packaged reference set are sent too). With --learn (the default) it then
    runs one learning cycle on the real labeled reviews it sent: samples
    collected, a sentiment candidate trained and gated, the promotion announced
    and swapped into the running worker. The run's topics are deleted
    afterwards unless --keep. Needs the exported models (`make models`).
    """
    from memberstream.datasets.cdnow import iter_cdnow_events

    base = settings_from(ctx)
    _ensure_broker(base)
    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix=f"memberstream-demo-{run_id}-"))
    settings = _demo_settings(base, run_id, work / "state")
    settings.learning = settings.learning.model_copy(
        update={
            "samples_dir": work / "samples",
            "registry_dir": work / "registry",
            "member_key": SecretStr(uuid.uuid4().hex),
        }
    )
    topics = settings.topics
    asyncio.run(create_topics(settings))
    click.echo(f"Topics created with suffix .{run_id}; worker log: {work / 'worker.log'}")

    worker = WorkerProcess(settings, work / "worker.log").start()
    try:
        try:
            worker.wait_alive(3.0)
        except RuntimeError as exc:
            raise _worker_failed(worker, work / "worker.log") from exc
        events = iter_cdnow_events()
        if limit is not None:
            events = itertools.islice(events, limit)
        click.echo("Sending CDNOW purchases ...")
        started = time.monotonic()
        sent = asyncio.run(
            produce_events(
                settings,
                events,
                progress=lambda n: click.echo(f"  sent {n:,}"),
                progress_every=20_000,
            )
        ).sent
        asyncio.run(produce_raw(settings, topics.purchases, BAD_RECORDS))
        click.echo(f"Sent {sent:,} purchases and {len(BAD_RECORDS)} malformed records.")
        click.echo(
            "Sending the reference set's product reviews (24 products, English and Chinese) ..."
        )
        sent += asyncio.run(produce_events(settings, _reference_reviews())).sent
        injector = None
        if synthetic:
            click.echo(f"Sending {synthetic:,} synthetic clicks, purchases and reviews ...")
            stream, injector = _synthetic(synthetic, anomalies)
            sent += asyncio.run(produce_events(settings, stream)).sent
        later: list[Envelope] = []
        if learn:
            from memberstream.cli.commands.demo_learning import labeled_traffic

            now, later_reviews = labeled_traffic()
            later = list(later_reviews)
            click.echo(
                f"Sending {len(now):,} real labeled reviews (English and Chinese, the "
                "platform-traffic part of the labeled corpora) for the learning cycle ..."
            )
            sent += asyncio.run(produce_events(settings, now)).sent
        click.echo("Waiting for the worker to catch up ...")
        last = [0.0]

        def on_poll(lag: int) -> None:
            if time.monotonic() - last[0] > 5:
                last[0] = time.monotonic()
                click.echo(f"  {lag:,} records to go")
            if not worker.running:
                raise click.ClickException(f"worker died:\n{worker.log_tail()}")

        try:
            asyncio.run(
                wait_caught_up(
                    settings,
                    settings.app_id,
                    topics.consumed(),
                    timeout,
                    1.0,
                    on_poll,
                )
            )
        except TimeoutError as exc:
            raise TimedOut(
                f"the worker did not catch up: {exc}",
                hint=f"raise --timeout (now {timeout:g} s); the worker log: {work / 'worker.log'}",
            ) from exc
        elapsed = time.monotonic() - started
        _report(settings, sent + len(BAD_RECORDS), elapsed, examples)
        _anomaly_report(settings, injector, examples)
        _summary_report(settings, examples)
        if learn:
            from memberstream.cli.commands.demo_learning import learning_cycle

            learning_cycle(settings, worker, later, timeout)  # type: ignore[arg-type]
    finally:
        worker.stop()
    if keep:
        click.echo(f"Kept topics *.{run_id} and {work}; read with `memberstream consume TOPIC`.")
    else:
        shutil.rmtree(work, ignore_errors=True)
        internal = [
            f"{settings.app_id}-{t}"
            for t in ("members-changelog", "products-changelog", "__assignor-__leader")
        ]
        asyncio.run(delete_topics(settings, topics.all() + internal))


def _worker_failed(worker: WorkerProcess, log: Path) -> MemberstreamError:
    """The worker exited during start-up: its own error (the log's last lines), its code."""
    code = worker.proc.returncode if worker.proc is not None else None
    tail = [line for line in worker.log_tail(8).splitlines() if line.strip()]
    reason = "\n".join(line for line in tail if line.startswith(("error:", "hint:"))) or (
        tail[-1] if tail else "no output"
    )
    error = MemberstreamError(
        f"the worker exited during start-up (status {code}):\n{reason}",
        hint=f"the worker log: {log}",
    )
    error.exit_code = code if code in KNOWN_EXIT_CODES else EX_SOFTWARE
    return error


def _synthetic(n: int, anomalies: bool) -> tuple[Iterator[Envelope], AnomalyInjector | None]:
    from memberstream.datasets.anomalies import AnomalyInjector, InjectionConfig
    from memberstream.datasets.synthetic import SyntheticWorkload, WorkloadConfig

    config = WorkloadConfig(seed=2024, members=max(100, n // 40), days=90)
    injector = AnomalyInjector(InjectionConfig(seed=2024, incidents_per_day=0.15))
    workload = SyntheticWorkload(config, injectors=[injector] if anomalies else [])
    return itertools.islice(workload.events(), n), injector if anomalies else None


def _reference_reviews() -> list[Envelope]:
    """The packaged reference set's reviews as review events, a few hours apart."""
    from datetime import UTC, datetime, timedelta

    from memberstream.ml.training.reference_set import load_reference_set
    from memberstream.schemas.events import ReviewEvent

    start = datetime(2024, 3, 1, tzinfo=UTC)
    events: list[Envelope] = []
    for product in load_reference_set():
        for i, r in enumerate(product.reviews):
            events.append(
                ReviewEvent(
                    event_id=f"demo-{r.review_id}",
                    member_id=f"ref-member-{r.review_id}",
                    occurred_at=start + timedelta(hours=5 * i),
                    product_id=product.product_id,
                    rating=r.rating,
                    text=r.text,
                    language=product.language,
                )
            )
    return events


def _summary_report(settings: Settings, examples: int) -> None:
    latest: dict[str, dict] = {}
    for s in asyncio.run(read_json(settings, settings.topics.product_review_summaries)):
        latest[s["product_id"]] = s  # one partition per product: topic order is time order
    click.echo(f"review summaries: {len(latest):,} products")
    versions = sorted({s["model_version"] for s in latest.values()})
    if versions:
        click.echo(f"  model: {', '.join(versions)}")
    shown = [s for pid, s in sorted(latest.items()) if pid.startswith("ref-")]
    picks = [s for s in shown if s["language"] == "en"][:2] + [
        s for s in shown if s["language"] == "zh"
    ][:1]
    for s in picks[: max(examples, 1)]:
        click.echo(
            f"  {s['product_id']} ({s['rating_count']} reviews, mean {s['rating_mean']:.1f}, "
            f"sentiment {s['sentiment']}):"
        )
        click.echo(f"    {s['summary']}")
        for label, points in (("+", s["pros"]), ("-", s["cons"])):
            for p in points:
                click.echo(
                    f"    {label} [{p['aspect']}] {p['text']}  ({', '.join(p['review_ids'])})"
                )


def _anomaly_report(settings: Settings, injector: AnomalyInjector | None, examples: int) -> None:
    from memberstream.domain.anomaly.evaluation import evaluate

    flags = {
        f["flag_id"]: f for f in asyncio.run(read_json(settings, settings.topics.member_anomalies))
    }
    kinds = Counter(f["kind"] for f in flags.values())
    summary = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())) or "none"
    click.echo(f"anomaly flags:    {len(flags):,}  ({summary})")
    if injector is not None:
        labels = injector.labels
        scores = evaluate(flags.values(), labels, 0).kinds.values()
        found = ", ".join(f"{s.kind} {s.found}/{s.incidents}" for s in scores if s.incidents)
        click.echo(f"  injected incidents: {len(labels)}; found per kind: {found}")
    by_kind: dict[str, dict] = {}
    for f in sorted(flags.values(), key=lambda f: (f["window_end"], f["flag_id"])):
        by_kind.setdefault(f["kind"], f)
    click.echo("one flag of each kind, with its evidence:")
    for f in by_kind.values():
        who = f"{f['subject']} {f['member_id'] or f['product_id']}"
        evidence = ", ".join(f["evidence"][:3]) + (" ..." if len(f["evidence"]) > 3 else "")
        details = ", ".join(f"{k}={v}" for k, v in list(f["details"].items())[:4])
        click.echo(
            f"  {f['window_end'][:16]} {f['kind']} on {who}: score {f['score']:g} >= "
            f"{f['threshold']:g}; {len(f['evidence'])} events ({evidence}); {details}"
        )


def _report(settings: Settings, events_in: int, elapsed: float, examples: int) -> None:
    topics = settings.topics
    dlq = asyncio.run(read_json(settings, topics.dlq))
    updates = asyncio.run(read_json(settings, topics.member_tiers))
    latest: dict[str, dict] = {}
    for profile in asyncio.run(read_json(settings, topics.member_profiles)):
        latest[profile["member_id"]] = profile
    tiers = Counter(p["tier"] for p in latest.values())
    unique_updates = {u["output_id"]: u for u in updates}

    click.echo("")
    click.echo("memberstream demo report")
    click.echo("========================")
    click.echo(f"events in:        {events_in:,}")
    click.echo(f"dead letters:     {len(dlq):,}")
    for record in dlq:
        click.echo(f"  offset {record['offset']}: {record['reason'][:90]}")
    click.echo(f"members:          {len(latest):,}")
    click.echo(f"tier changes:     {len(unique_updates):,}")
    click.echo("tier distribution (latest profiles):")
    for rule in settings.membership.tiers:
        n = tiers.get(rule.name, 0)
        share = n / max(len(latest), 1)
        click.echo(f"  {rule.name:10} {n:7,}  {share:6.1%}  {'#' * round(share * 50)}")
    click.echo("some tier changes:")
    shown = sorted(unique_updates.values(), key=lambda u: (u["as_of"], u["member_id"]))
    picks = [u for u in shown if u["direction"] == "downgrade"][: max(examples // 2, 1)]
    picks += [u for u in shown if u["direction"] == "upgrade"][: examples - len(picks)]
    for u in picks:
        click.echo(
            f"  {u['as_of'][:10]} {u['member_id']}: {u['previous_tier']} -> {u['tier']} "
            f"({u['reason']})"
        )
    _interest_report(settings, latest, examples)
    click.echo(
        f"throughput:       {events_in / elapsed:,.0f} events/s "
        f"({events_in:,} events in {elapsed:.1f}s, one worker)"
    )


def _moves(update: dict) -> str:
    parts = []
    for m in update["changes"]:
        if m["direction"] == "added":
            parts.append(f"+{m['category']} {m['tier']}")
        elif m["direction"] == "removed":
            parts.append(f"-{m['category']} (was {m['previous_tier']})")
        else:
            parts.append(f"{m['category']} {m['previous_tier']}->{m['tier']}")
    return ", ".join(parts)


def _interest_report(settings: Settings, latest: dict[str, dict], examples: int) -> None:
    updates = asyncio.run(read_json(settings, settings.topics.member_interest_tiers))
    unique = {u["output_id"]: u for u in updates}
    core = Counter(
        i["category"]
        for p in latest.values()
        for i in p.get("interests", [])
        if i["tier"] == "core"
    )
    with_core = sum(
        1 for p in latest.values() if any(i["tier"] == "core" for i in p.get("interests", []))
    )
    versions = sorted({u["model_version"] for u in unique.values()})
    click.echo(f"interest changes: {len(unique):,}  (model: {', '.join(versions) or '-'})")
    click.echo(f"members with a core interest: {with_core:,}; most common core categories:")
    for category, n in core.most_common(8):
        share = n / max(with_core, 1)
        click.echo(f"  {category:18} {n:7,}  {share:6.1%}  {'#' * round(share * 50)}")
    click.echo("some interest changes (synthetic members):")
    shifts = [
        u
        for u in sorted(unique.values(), key=lambda u: (u["as_of"], u["member_id"]))
        if any(m["previous_tier"] is not None for m in u["changes"])
        and not u["member_id"].startswith("cdnow")
    ]
    step = max(len(shifts) // max(examples, 1), 1)
    for u in shifts[::step][:examples]:
        click.echo(
            f"  {u['as_of'][:10]} {u['member_id']}: {_moves(u)} (after a {u['cause_event_type']})"
        )
