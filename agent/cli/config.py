"""``recsage config``: every setting with its help text, and the values this invocation uses."""

from __future__ import annotations

import click

from agent.cli.base import cli, output_options, report, settings


@cli.command("config")
@output_options
@click.pass_context
def config_cmd(ctx, as_json, out_file):
    """Every setting (TOML key) with its type, default and help; --json gives the values in effect
    (defaults, then `recsage --config FILE`, then --threads)."""
    from agent.core.config import Settings

    values = settings(ctx).model_dump(mode="json")
    if report(values, as_json, out_file):
        click.echo(Settings.help())
