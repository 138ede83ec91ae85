"""``memberstream models list|show|promote|rollback``: the model registry by hand."""

from __future__ import annotations

from typing import Any

import click
import orjson

from memberstream.cli.commands.context import settings_from
from memberstream.cli.commands.learning import announce_entry

TASKS = ("sentiment", "interest", "anomaly")


def _gate(mv_manifest: dict[str, Any]) -> str:
    gate = (mv_manifest.get("metrics") or {}).get("gate")
    if not gate:
        return mv_manifest.get("origin", "")
    v = gate.get("validation", {})
    verdict = "passed" if gate.get("promote") else "refused"
    cand, prod = v.get("candidate"), v.get("production")
    if isinstance(cand, float) and isinstance(prod, float):
        return f"gate {verdict}: {cand:.4f} vs {prod:.4f}"
    return f"gate {verdict}"


@click.command("list")
@click.option("--task", type=click.Choice(TASKS), help="Only this task.")
@click.pass_context
def list_versions(ctx: click.Context, task: str | None) -> None:
    """Every registered version, oldest first; * marks production."""
    from memberstream.core.learning import registry_of

    registry = registry_of(settings_from(ctx))
    versions = registry.versions(task)
    if not versions:
        click.echo(f"no versions in {registry.root}")
        return
    production = {t: registry.production(t) for t in TASKS}
    for mv in versions:
        live = production.get(mv.task)
        mark = "*" if live is not None and live.version == mv.version else " "
        samples = mv.manifest.get("samples") or {}
        n = samples.get("total")
        click.echo(
            f"{mark} {mv.version:<24} {mv.created_at[:19]}  "
            f"{'' if n is None else f'{n:>7,} samples  '}{_gate(mv.manifest)}"
        )


@click.command("show")
@click.argument("task", type=click.Choice(TASKS))
@click.argument("version", required=False)
@click.pass_context
def show_version(ctx: click.Context, task: str, version: str | None) -> None:
    """A version's manifest (default: production), its lineage and the promotion log."""
    from memberstream.core.learning import registry_of

    registry = registry_of(settings_from(ctx))
    mv = registry.production(task) if version is None else registry.get(task, version)
    if mv is None:
        raise click.ClickException(f"no {task} version is in production in {registry.root}")
    click.echo(orjson.dumps(mv.manifest, option=orjson.OPT_INDENT_2).decode())
    lineage, parent = [mv.version], mv.parent
    while parent:
        lineage.append(parent)
        try:
            parent = registry.get(task, parent).parent
        except Exception:
            break
    click.echo("lineage: " + " <- ".join(lineage))
    for entry in registry.history(task)[-10:]:
        click.echo(
            f"  {entry['at'][:19]} {entry['action']:<8} {entry['version']} "
            f"(was {entry.get('replaced')}) {entry.get('reason', '')}"
        )


def _check_for(ctx: click.Context, task: str) -> Any:
    """The worker's own loader on the version, with the configured encoder's dimension."""
    from memberstream.ml.inference import load_taxonomy
    from memberstream.ml.registry import load_check
    from memberstream.ml.settings import read_manifest_fields

    settings = settings_from(ctx)
    meta = read_manifest_fields(settings.inference.encoder.resolved_model_dir()) or {}
    dim = meta.get("dim") if isinstance(meta.get("dim"), int) else None
    return load_check(task, dim, taxonomy=load_taxonomy(settings))


@click.command("promote")
@click.argument("task", type=click.Choice(TASKS))
@click.argument("version")
@click.option("--reason", default="by hand", show_default=True)
@click.pass_context
def promote_version(ctx: click.Context, task: str, version: str, reason: str) -> None:
    """Make VERSION production (after checking the worker can load it) and announce it."""
    from memberstream.core.learning import registry_of

    settings = settings_from(ctx)
    entry = registry_of(settings).promote(
        task, version, check=_check_for(ctx, task), reason=reason, actor="cli"
    )
    if entry["action"] == "unchanged":
        click.echo(f"{entry['version']} is already in production")
        return
    update = announce_entry(settings, entry)
    click.echo(f"promoted {entry['version']} (was {entry.get('replaced')})")
    if update is not None:
        click.echo(f"announced on {settings.topics.model_updates}")


@click.command("rollback")
@click.argument("task", type=click.Choice(TASKS))
@click.option("--reason", default="rollback", show_default=True)
@click.pass_context
def rollback_version(ctx: click.Context, task: str, reason: str) -> None:
    """Restore the version that was in production before the current one, and announce it."""
    from memberstream.core.learning import registry_of

    settings = settings_from(ctx)
    entry = registry_of(settings).rollback(
        task, check=_check_for(ctx, task), reason=reason, actor="cli"
    )
    announce_entry(settings, entry)
    click.echo(f"rolled back {entry.get('replaced')} -> {entry['version']} (announced)")


COMMANDS = (list_versions, show_version, promote_version, rollback_version)
