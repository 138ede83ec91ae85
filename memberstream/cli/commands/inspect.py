"""``memberstream lag`` and ``memberstream config show``: what an operator looks at first."""

from __future__ import annotations

import json
import re
from typing import Any

import click
import orjson

from memberstream.cli.commands.context import settings_from


@click.command()
@click.option(
    "--group",
    "groups",
    multiple=True,
    help="A consumer group (repeatable); default: the worker's and the collector's.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per partition.")
@click.pass_context
def lag(ctx: click.Context, groups: tuple[str, ...], as_json: bool) -> None:
    """Records each consumer group has not committed yet, per partition and in total.

    By default the worker's group (app_id, on every topic it consumes) and the sample
    collector's (<app_id>-collector, on its topics); --group names any other (a replay's,
    say), on every partition it has committed on. A partition the group never
    committed on counts from offset 0.
    """
    from memberstream.streams.collector_runner import collector_group
    from memberstream.streams.kafka_io import group_partition_lag
    from memberstream.streams.topic_check import run, wait_for_broker

    settings = settings_from(ctx)
    run(wait_for_broker(settings, on_wait=lambda m: click.echo(m, err=True)))
    t = settings.topics
    wanted: list[tuple[str, str, list[str] | None]] = [(g, "", None) for g in groups]
    if not groups:
        wanted = [
            (settings.app_id, "worker", t.consumed()),
            (
                collector_group(settings),
                "collector",
                [*t.inputs(), t.feedback, t.member_anomalies, t.model_updates],
            ),
        ]
    for group, role, topics in wanted:
        rows = run(group_partition_lag(settings, group, topics))
        total = sum(r.lag for r in rows)
        if as_json:
            for r in rows:
                row = {"group": group, "topic": r.topic, "partition": r.partition}
                row |= {"committed": r.committed, "end": r.end, "lag": r.lag}
                click.echo(orjson.dumps(row).decode())
            continue
        label = f" ({role})" if role else ""
        click.echo(f"group {group}{label}: {total:,} records behind")
        for r in rows:
            committed = "-" if r.committed is None else f"{r.committed:,}"
            click.echo(
                f"  {r.topic}[{r.partition}]  committed {committed}  end {r.end:,}  lag {r.lag:,}"
            )


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(items) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def to_toml(data: dict[str, Any], prefix: str = "") -> list[str]:
    """``data`` as TOML lines, tables after plain keys; None values as comments."""
    lines = []
    tables = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif value is None:
            lines.append(f"# {_toml_key(key)} = (not set)")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables:
        name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        lines += ["", f"[{name}]", *to_toml(value, name)]
    return lines


@click.group("config")
def config_group() -> None:
    """The settings as this process resolves them."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of TOML.")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the resolved settings: defaults, overridden by the --config file, by
    MEMBERSTREAM_* env vars, in TOML (loadable with --config) or JSON. Secrets
    (passwords, the member key) print as **********."""
    settings = settings_from(ctx)
    data = settings.describe()
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo("\n".join(to_toml(data)).strip())
