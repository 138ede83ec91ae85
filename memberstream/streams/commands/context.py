"""Settings shared by every CLI command, loaded on first use."""

from __future__ import annotations

import click

from memberstream.config import Settings, load_settings


def settings_from(ctx: click.Context) -> Settings:
    """The settings for this invocation (so `--help` works even with bad settings).

    The root group stores ``--config``; the first command that needs settings
    loads them, and a bad value becomes a one-line error naming the setting.
    """
    obj = ctx.find_root().obj
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config"))
        except Exception as exc:  # pydantic's message names the bad setting
            raise click.ClickException(f"invalid settings: {exc}") from exc
    return obj["settings"]  # type: ignore[no-any-return]
