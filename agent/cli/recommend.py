"""``recsage recommend`` (a thin wrapper over agent.recommend.Recommender), ``bench recommend`` and
``bench explain``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click

from agent.cli.main import _emit_json, _settings, bench, cli
from agent.cli.retrieval import _movielens_option, _store_option
from agent.core.errors import InputError

BENCH_STAGES = ("request", "retrieve", "rerank", "evidence", "explain", "total")


def _recommender(ctx, store_dir, movielens, system: str = "hybrid"):
    from agent.recommend import Recommender

    return Recommender(store_dir, movielens, _settings(ctx), system=system)


@cli.command()
@_store_option
@_movielens_option
@click.option("--user", "user_id", default=None, help="A MovieLens userId.")
@click.option("--history", default=None, help="Comma-separated item ids, oldest first (a new user).")
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--query", default=None, help="Free text that steers the candidates.")
@click.option("--image", type=click.Path(path_type=Path), default=None,
              help="A photo (e.g. a poster): its OCR text steers the candidates.")
@click.option("--audio", type=click.Path(path_type=Path), default=None,
              help="A voice note: its (VAD-gated) transcript steers the candidates.")
@click.option("--explain", is_flag=True, help="Explain each pick from its evidence (checked; see README).")
@click.option("--rerank/--no-rerank", default=None,
              help="LLM-rerank the top candidates (default: settings rerank_requests / rerank_sequential).")
@click.option("--genre", "genres", multiple=True, help="Keep items of this genre (repeat: any of them).")
@click.option("--year-min", type=int, default=None)
@click.option("--year-max", type=int, default=None)
@click.option("--exclude", default=None, help="Comma-separated item ids never to recommend.")
@click.option("--system", default="hybrid", show_default=True, help="Retriever for history-based candidates.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def recommend(ctx, store_dir, movielens, user_id, history, k, query, image, audio, explain, rerank, genres,
              year_min, year_max, exclude, system, as_json):
    """Recommend unseen items for a user, a history or a request (text, photo, voice note), optionally explained."""
    from agent.retrieval.retriever import Filters

    if user_id and history:
        raise InputError("give one of --user ID or --history ID,ID,..., not both")
    if not (user_id or history or query or image or audio):
        raise InputError("give --user ID, --history ID,ID,... or a request (--query, --image, --audio)")
    out = _recommender(ctx, store_dir, movielens, system).recommend(
        user=user_id or None, history=history.split(",") if history else None, k=k, query=query, image=image,
        audio=audio, filters=Filters(tuple(genres), year_min, year_max),
        exclude=[i.strip() for i in (exclude or "").split(",") if i.strip()], explain=explain, rerank=rerank)
    if as_json:
        _emit_json(out)
        return
    for name, text in out["request_text"].items():
        click.echo(f"{name}: {text}", err=True)
    for item in out["items"]:
        click.echo(f"{item['rank']:3}. {item['title']} ({item['year']}) [{', '.join(item['genres'])}]  {item['score']:.3f}")
        if item["explanation"]:
            click.echo(f"     {item['explanation']}  [{item['explanation_status']}; cites {', '.join(item['cites'])}]")


def _bench_users(recommender, users: int, seed: int) -> list[str]:
    from eval.harness import sample_users

    if users <= 0:
        raise InputError(f"--users must be a positive integer, got {users}")
    split = recommender.retriever.split
    return [split.user_ids[u] for u in sample_users(split.n_users, users, seed)]


def _run_users(recommender, users: list[str], label: str, **kwargs) -> list[dict]:
    from rich.progress import track

    recommender.recommend(user=users[0], **kwargs)  # warm-up: model loads are not a per-user cost
    return [recommender.recommend(user=u, **kwargs)
            for u in track(users, description=label, console=_stderr(), transient=True)]


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


@bench.command("recommend")
@_store_option
@_movielens_option
@click.option("--users", type=int, default=50, show_default=True)
@click.option("-k", "k", type=int, default=5, show_default=True)
@click.option("--query", default=None, help="The same request text for every user (default: history only).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the user sample.")
@click.pass_context
def bench_recommend(ctx, store_dir, movielens, users, k, query, seed):
    """p50/p95 seconds per stage of `recommend`, with and without --explain (models loaded first)."""
    import numpy as np
    from rich.table import Table

    from agent.core.console import table_console

    recommender = _recommender(ctx, store_dir, movielens)
    chosen = _bench_users(recommender, users, seed)
    table = Table("explain", "stage", "users", "p50 s", "p95 s", "max s",
                  title=f"recommend latency per stage, k={k}" + (f", query {query!r}" if query else ", history only"))
    for explain in (False, True):
        runs = _run_users(recommender, chosen, f"explain={explain}", k=k, query=query, explain=explain)
        for stage in BENCH_STAGES:
            seconds = [r["timings"].get(stage, 0.0) for r in runs]
            p50, p95 = np.percentile(seconds, [50, 95])
            table.add_row("yes" if explain else "no", stage, str(len(seconds)), f"{p50:.3f}", f"{p95:.3f}",
                          f"{max(seconds):.3f}")
    table_console().print(table)


@bench.command("explain")
@_store_option
@_movielens_option
@click.option("--users", type=int, default=100, show_default=True)
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the user sample.")
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Write every explanation and check here.")
@click.pass_context
def bench_explain(ctx, store_dir, movielens, users, k, seed, json_file):
    """Explain k picks for each of N test users: shares generated/repaired/template, checker pass rate."""
    from rich.table import Table

    from agent.core.console import table_console

    recommender = _recommender(ctx, store_dir, movielens)
    chosen = _bench_users(recommender, users, seed)
    runs = _run_users(recommender, chosen, "explaining", k=k, explain=True)
    summary = explanation_summary(runs)
    table = Table("status", "explanations", "share", title=f"explanations for {len(chosen)} users, k={k}")
    for status, count in summary["statuses"].items():
        table.add_row(status, str(count), f"{count / summary['explanations']:.1%}")
    table.add_row("delivered passing the checker", str(summary["passing"]),
                  f"{summary['passing'] / summary['explanations']:.1%}")
    table_console().print(table)
    for problem, count in summary["check_failures"][:8]:
        click.echo(f"check failure before the delivered text: {problem} ({count})")
    if json_file:
        Path(json_file).write_text(json.dumps({"summary": summary, "runs": runs}, indent=1, default=str))


def explanation_summary(runs: list[dict]) -> dict:
    """Status counts, re-checked pass count and the most common first-try check failures."""
    from agent.explain.generate import STATUSES

    items = [item for run in runs for item in run["items"]]
    statuses = Counter(item["explanation_status"] for item in items)
    problems = Counter(p.split(":")[0] for item in items for p in item["explanation_check"]["earlier_problems"])
    return {
        "explanations": len(items),
        "statuses": {s: statuses.get(s, 0) for s in STATUSES},
        "passing": sum(item["explanation_check"]["passed"] for item in items),
        "check_failures": problems.most_common(),
    }
