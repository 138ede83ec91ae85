"""``memberstream replay``: a time range of the inputs again, into a namespace of its own
(a backfill after a fix, a new model, a new tier rule) or by rewinding the worker."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import orjson

from memberstream.cli.commands.context import setup_logging

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _when(value: str | None, option: str) -> int | None:
    """An option's time as epoch milliseconds: ISO-8601 with a zone, or -N[smhd] (ago)."""
    if value is None:
        return None
    rel = _RELATIVE.match(value.strip())
    if rel:
        ago = timedelta(seconds=float(rel.group(1)) * _UNIT_S[rel.group(2)])
        return int((datetime.now(UTC) - ago).timestamp() * 1000)
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: give an ISO-8601 time with a zone (2026-11-29T00:00:00Z) or a "
            "time ago (-24h, -30m, -7d)",
            param_hint=option,
        ) from None
    if t.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no timezone (add Z or +00:00)", param_hint=option)
    return int(t.timestamp() * 1000)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@click.command()
@click.option("--from", "from_", required=True, help="Start: ISO-8601 time, or -24h, -7d (ago).")
@click.option("--to", help="End (exclusive); default: the end of each partition when planned.")
@click.option(
    "--topics",
    help="Comma-separated input topics; default: clicks, purchases, reviews and feedback.",
)
@click.option("--into", "namespace", help="Replay into this namespace (its own topics and state).")
@click.option("--live", is_flag=True, help="Rewind the stopped worker's group to --from instead.")
@click.option("--rate", type=float, help="At most this many records per second.")
@click.option("--dry-run", is_flag=True, help="Show the plan (offsets, records) and stop.")
@click.option("--no-diff", is_flag=True, help="Skip the comparison with the live outputs.")
@click.option("--samples", default=3, show_default=True, help="Changed records shown per kind.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the report here.")
@click.pass_context
def replay(
    ctx: click.Context,
    from_: str,
    to: str | None,
    topics: str | None,
    namespace: str | None,
    live: bool,
    rate: float | None,
    dry_run: bool,
    no_diff: bool,
    samples: int,
    json_path: str | None,
) -> None:
    """Replay the input records of a time range.

    \b
    The range, per partition: from the first record with a timestamp at or after
    --from to the first at or after --to, never past the end offsets read when the
    replay is planned (it stops there even while producers keep writing).

    \b
    --into NAMESPACE  runs the worker's processing core over the range and produces
                      to NAMESPACE.<output topic>, with the consumer group
                      <app_id>.replay.NAMESPACE and state under
                      <data_dir>/replay/NAMESPACE. The live outputs are untouched.
                      Records are merged in timestamp order and cut into fixed
                      batches, so the same range replayed twice gives identical
                      outputs. The state starts empty: history before --from is not
                      applied. Interrupted (Ctrl-C, a crash), the same command
                      resumes; a finished one only reports. At the end it prints
                      what differs from the live outputs the same records caused.
    --live            rewinds the worker's committed offsets to --from, for workers
                      that are stopped (refused otherwise). The live state skips every
                      record it already applied, so nothing is counted or published
                      twice; records it never applied (state restored from an older
                      copy) are applied. It recomputes nothing: for new code or models
                      use --into. --to does not apply (the worker reads to the end).

    \b
    Examples:
      memberstream replay --from -24h --into backfill-1 --dry-run
      memberstream replay --from 2026-11-28T00:00:00Z --to 2026-11-29T00:00:00Z \\
          --into nov28 --json nov28.json
      memberstream lag --group <app_id>.replay.nov28
    """
    from memberstream.streams.replay import prepare, rewind_live
    from memberstream.streams.topic_check import run, wait_for_broker

    if bool(namespace) == live:
        raise click.UsageError("give one of --into NAMESPACE or --live")
    if live and to:
        raise click.UsageError(
            "--live takes no --to: a rewound worker reads on to the end of each partition"
        )
    settings = setup_logging(ctx, "warning")  # progress is printed; logs say what went wrong
    from_ms = _when(from_, "--from")
    to_ms = _when(to, "--to")
    assert from_ms is not None
    if to_ms is not None and to_ms <= from_ms:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    names = [t.strip() for t in topics.split(",")] if topics else settings.topics.ingest()
    unknown = [t for t in names if t not in settings.topics.ingest()]
    if unknown:
        raise click.BadParameter(
            f"{', '.join(unknown)}: not an input topic of this worker "
            f"({', '.join(settings.topics.ingest())})",
            param_hint="--topics",
        )
    run(wait_for_broker(settings, on_wait=lambda m: click.echo(m, err=True)))

    if live:
        from memberstream.streams.replay import plan_range

        spans = run(plan_range(settings, names, from_ms, None))
        rewinds = run(rewind_live(settings, spans, dry_run))
        verb = "would rewind" if dry_run else "rewound"
        click.echo(f"group {settings.app_id}: {verb} {len(rewinds)} partition(s)")
        for r in rewinds:
            have = "-" if r.committed is None else f"{r.committed:,}"
            click.echo(f"  {r.topic}[{r.partition}]  committed {have} -> {r.to:,}")
        if not dry_run and rewinds:
            click.echo("start the workers; records the state already applied are skipped")
        return

    assert namespace is not None
    ns, plan, resuming = run(prepare(settings, namespace, from_ms, to_ms, names))
    _print_plan(plan, ns, namespace, resuming)
    if dry_run:
        return
    report = _run_replay(settings, ns, plan, rate)
    result: dict[str, Any] = {
        "namespace": namespace,
        "group": ns.app_id,
        "plan": plan.to_json(),
        "records": report.records,
        "resumed_from": report.resumed_from,
        "seconds": round(report.seconds, 2),
        "rate": round(report.records / report.seconds, 1) if report.seconds else None,
        "stats": vars(report.stats),
    }
    if not no_diff:
        result["diff"] = _print_diff(settings, ns, report.plan, samples)
    if json_path:
        with open(json_path, "wb") as f:
            f.write(orjson.dumps(result, option=orjson.OPT_INDENT_2))
        click.echo(f"report: {json_path}")


def _print_plan(plan: Any, ns: Any, namespace: str, resuming: bool) -> None:
    state = "resuming" if resuming else "new"
    click.echo(f"replay {ns.app_id} ({state}): {plan.records:,} records in range")
    for s in plan.spans:
        if s.size:
            click.echo(f"  {s.topic}[{s.partition}]  offsets {s.start:,}..{s.end:,}  ({s.size:,})")
    click.echo(f"  outputs to {namespace}.<topic>, state in {ns.data_dir}")


def _run_replay(settings: Any, ns: Any, plan: Any, rate: float | None) -> Any:
    from memberstream.ml.inference import stage_from_settings
    from memberstream.streams.replay import ReplayProgress, replay_into
    from memberstream.streams.topic_check import run

    stage = stage_from_settings(ns) if ns.inference.enabled else None

    def show(p: ReplayProgress) -> None:
        share = p.done / p.total if p.total else 1.0
        click.echo(
            f"replay: {p.done:,}/{p.total:,} ({share:.1%})  {p.rate:,.0f} records/s  "
            f"ETA {_duration(p.eta_s)}",
            err=True,
        )

    started = time.monotonic()
    try:
        report = run(replay_into(settings, ns, plan, stage, rate, show))
    except KeyboardInterrupt:
        click.echo(
            "replay interrupted: run the same command again to resume "
            f"(after {time.monotonic() - started:.0f} s)",
            err=True,
        )
        raise SystemExit(130) from None
    st = report.stats
    click.echo(
        f"replayed {report.records:,} records in {report.seconds:.1f} s "
        f"({report.records / max(report.seconds, 1e-9):,.0f}/s): "
        f"{st.accepted:,} applied, {st.duplicates:,} duplicates, {st.dead_letters:,} dead "
        f"letters, {st.tier_changes:,} tier changes, {st.interest_changes:,} interest changes, "
        f"{st.flags:,} flags, {st.summaries:,} summaries"
    )
    return report


def _print_diff(settings: Any, ns: Any, plan: Any, samples: int) -> dict[str, Any]:
    from memberstream.streams.replay import diff_with_live
    from memberstream.streams.topic_check import run

    diffs = run(diff_with_live(settings, ns, plan, samples))
    click.echo("against the live outputs of the same records:")
    click.echo(
        f"  {'kind':<26}{'live':>8}{'replay':>8}{'same':>8}{'changed':>9}"
        f"{'only live':>11}{'only replay':>13}"
    )
    for kind, d in diffs.items():
        click.echo(
            f"  {kind:<26}{d.live:>8,}{d.replay:>8,}{d.same:>8,}{d.changed:>9,}"
            f"{d.only_live:>11,}{d.only_replay:>13,}"
            + (f"  ({d.not_comparable:,} not comparable)" if d.not_comparable else "")
        )
    for kind, d in diffs.items():
        if d.changed_fields:
            fields = ", ".join(f"{k} {n:,}" for k, n in d.changed_fields.items())
            click.echo(f"  {kind} changed fields: {fields}")
        for sample in d.samples:
            click.echo(f"    {orjson.dumps(sample).decode()[:400]}")
    return {kind: d.to_json() for kind, d in diffs.items()}
