"""``memberstream dlq list|show|redrive``: what went to the dead-letter topic, and sending
it back once fixed."""

from __future__ import annotations

import base64

import click
import orjson

from memberstream.cli.commands.context import iso_time, settings_from


def _letters(ctx: click.Context, since: str | None, reason: str | None, topic: str | None):  # type: ignore[no-untyped-def]
    from memberstream.streams.dead_letter_ops import read_dead_letters
    from memberstream.streams.topic_check import run, wait_for_broker

    settings = settings_from(ctx)
    run(wait_for_broker(settings, on_wait=lambda m: click.echo(m, err=True)))
    letters = run(read_dead_letters(settings, iso_time(since)))
    if reason:
        letters = [s for s in letters if reason.lower() in s.letter.reason.lower()]
    if topic:
        letters = [s for s in letters if s.letter.source_topic == topic]
    return settings, letters


_SINCE = click.option("--since", help="Only letters written at or after this time (ISO-8601).")
_REASON = click.option("--reason", help="Only letters whose reason contains this text.")
_TOPIC = click.option("--topic", help="Only letters from this source topic.")


@click.group()
def dlq() -> None:
    """The dead-letter topic: list, show, redrive."""


@dlq.command("list")
@_SINCE
@_REASON
@_TOPIC
@click.option("--examples", default=3, show_default=True, help="Letter ids shown per group.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per group.")
@click.pass_context
def dlq_list(
    ctx: click.Context,
    since: str | None,
    reason: str | None,
    topic: str | None,
    examples: int,
    as_json: bool,
) -> None:
    """Dead letters grouped by source topic, error type and reason (numbers and quoted
    values blanked), largest group first, with example ids for `dlq show`."""
    from memberstream.streams.dead_letter_ops import group_letters

    _, letters = _letters(ctx, since, reason, topic)
    groups = group_letters(letters)
    if as_json:
        for g in groups:
            row = {
                "source_topic": g.source_topic,
                "error_type": g.error_type,
                "reason": g.reason,
                "count": len(g.letters),
                "examples": [s.id for s in g.letters[:examples]],
            }
            click.echo(orjson.dumps(row).decode())
        return
    click.echo(f"{len(letters):,} dead letters in {len(groups)} groups")
    for g in groups:
        redriven = sum(1 for s in g.letters if s.letter.redrive_of)
        extra = f", {redriven} failed again after a redrive" if redriven else ""
        click.echo(f"{len(g.letters):>7,}  {g.source_topic}  {g.error_type}: {g.reason}{extra}")
        for s in g.letters[:examples]:
            click.echo(f"           {s.id}  (offset {s.letter.offset})")


@dlq.command("show")
@click.argument("letter_id")
@click.pass_context
def dlq_show(ctx: click.Context, letter_id: str) -> None:
    """One dead letter (an id or a unique prefix): where it came from, why, and its
    key and value (as text when they are UTF-8, else base64)."""
    from memberstream.streams.dead_letter_ops import find_letter

    _, letters = _letters(ctx, None, None, None)
    try:
        stored = find_letter(letters, letter_id)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    data = stored.letter.model_dump(mode="json")
    for field in ("key", "value"):
        raw = data.pop(f"{field}_b64")
        if raw is None:
            data[field] = None
            continue
        blob = base64.b64decode(raw)
        try:
            data[field] = blob.decode("utf-8")
        except UnicodeDecodeError:
            data[f"{field}_b64"] = raw
    data["dlq_position"] = f"{stored.dlq_partition}@{stored.dlq_offset}"
    click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


@dlq.command("redrive")
@_SINCE
@_REASON
@_TOPIC
@click.option("--id", "ids", multiple=True, help="Only these letters (repeatable).")
@click.option("--again", is_flag=True, help="Also letters of records that failed after a redrive.")
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send nothing.")
@click.pass_context
def dlq_redrive(
    ctx: click.Context,
    since: str | None,
    reason: str | None,
    topic: str | None,
    ids: tuple[str, ...],
    again: bool,
    dry_run: bool,
) -> None:
    """Send dead letters' raw records back to their source topics (after fixing what
    made them fail), each with a header naming its dead letter.

    Idempotent: letters already sent back (their header is found on the source topic)
    are skipped. A record that fails again lands in the DLQ once more, marked
    redrive_of, and is not sent again without --again. Letters whose value was cut to
    the DLQ's cap cannot be sent back whole and are refused.
    """
    from memberstream.streams.dead_letter_ops import redrive
    from memberstream.streams.topic_check import run

    settings, letters = _letters(ctx, since, reason, topic)
    if ids:
        letters = [s for s in letters if any(s.id.startswith(i) for i in ids)]
    report = run(redrive(settings, letters, dry_run=dry_run, again=again))
    verb = "would send" if dry_run else "sent"
    click.echo(
        f"{verb} {len(report.sent):,}; already sent before {len(report.already):,}; "
        f"failed again after a redrive (use --again) {len(report.failed_again):,}; "
        f"cut to the DLQ cap, not sendable {len(report.truncated):,}"
    )
