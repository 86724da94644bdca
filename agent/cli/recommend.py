"""``recsage recommend`` (a thin wrapper over agent.recommend.Recommender), ``bench recommend`` and
``bench explain``."""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.base import (
    bench,
    cli,
    output_options,
    project,
    project_options,
    report,
    settings,
)
from agent.core.errors import InputError


def open_recommender(ctx, system: str = "hybrid", catalog=None):
    """The project's Recommender, reading typed queries as the chat does (``query_reader``)."""
    from agent.recommend import Recommender

    recommender = Recommender(project(ctx), settings(ctx), system=system)
    recommender.read_query = query_reader(ctx, catalog)
    return recommender


def query_reader(ctx, catalog=None, config=None):
    """query -> retrieval arguments, read as a chat reads its first message
    (agent.chat.state.read_query): the one reading behind `recommend --query` and
    ``/v1/recommend``. The chat catalog (``catalog``, or the project's) is built on the first query;
    ``config``: the settings it reads with (default: the invocation's)."""
    import threading

    from agent.chat.state import read_query
    from agent.cli.base import chat_catalog

    config, lock, built = config or settings(ctx), threading.Lock(), [catalog]

    def read(query: str) -> dict:
        with lock:  # the server reads from several threads; the catalog is built once
            if built[0] is None:
                built[0] = chat_catalog(ctx)
        return read_query(query, built[0], config)

    return read


@cli.command()
@project_options()
@click.option("--user", "user_id", default=None, help="A user id of the interactions log.")
@click.option("--history", default=None, help="Comma-separated item ids, oldest first (a new user).")
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--query", default=None, help="Free text that steers the candidates.")
@click.option("--image", type=click.Path(path_type=Path), default=None,
              help="A photo (e.g. a poster): its OCR text steers the candidates.")
@click.option("--audio", type=click.Path(path_type=Path), default=None,
              help="A voice note: its (VAD-gated) transcript steers the candidates.")
@click.option("--video", type=click.Path(path_type=Path), default=None,
              help="A video (e.g. a trailer): its on-screen text and speech steer the candidates.")
@click.option("--explain", is_flag=True, help="Explain each pick from its evidence (checked; see README).")
@click.option("--rerank/--no-rerank", default=None,
              help="LLM-rerank the top candidates (default: settings rerank_requests / rerank_sequential).")
@click.option("--genre", "genres", multiple=True,
              help="Keep items of this genre (repeat: any of them); shorthand for --facet genres=GENRE.")
@click.option("--facet", "facets", multiple=True, metavar="NAME=VALUE",
              help="Keep items with this facet value, e.g. category=Shoes (repeat: any value of a facet, every facet).")
@click.option("--year-min", type=int, default=None)
@click.option("--year-max", type=int, default=None)
@click.option("--exclude", default=None, help="Comma-separated item ids never to recommend.")
@click.option("--system", default="hybrid", show_default=True, help="Retriever for history-based candidates.")
@output_options
@click.pass_context
def recommend(ctx, user_id, history, k, query, image, audio, video, explain, rerank, genres, facets,
              year_min, year_max, exclude, system, as_json, out_file):
    """Recommend unseen items for a user, a history or a request (text, photo, voice note, video), optionally explained."""
    from agent.retrieval.retriever import Filters, facet_filters

    if user_id and history:
        raise InputError("give one of --user ID or --history ID,ID,..., not both")
    if not (user_id or history or query or image or audio or video):
        raise InputError("give --user ID, --history ID,ID,... or a request (--query, --image, --audio, --video)")
    filters = Filters(facet_filters(genres, facets), year_min, year_max)  # a bad --facet fails before loading
    out = open_recommender(ctx, system).recommend(
        user=user_id or None, history=history.split(",") if history else None, k=k, query=query, image=image,
        audio=audio, video=video, filters=filters,
        exclude=[i.strip() for i in (exclude or "").split(",") if i.strip()], explain=explain, rerank=rerank,
        understand=True)
    if not report(out, as_json, out_file):
        return
    for name, text in out["request_text"].items():
        click.echo(f"{name}: {text}", err=True)
    for item in out["items"]:
        facets = ", ".join(v for values in item["facets"].values() for v in values)
        click.echo(f"{item['rank']:3}. {item['title']} ({item['year']}) [{facets}]  {item['score']:.3f}")
        if item["explanation"]:
            click.echo(f"     {item['explanation']}  [{item['explanation_status']}; cites {', '.join(item['cites'])}]")


@bench.command("recommend")
@project_options()
@click.option("--users", type=int, default=50, show_default=True)
@click.option("-k", "k", type=int, default=5, show_default=True)
@click.option("--query", default=None, help="The same request text for every user (default: history only).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the user sample.")
@output_options
@click.pass_context
def bench_recommend(ctx, users, k, query, seed, as_json, out_file):
    """p50/p95 seconds per stage of `recommend`, with and without --explain (models loaded first)."""
    from eval.bench.recommend import bench_recommend as run
    from eval.bench.recommend import bench_users

    recommender = open_recommender(ctx)
    rows = run(recommender, bench_users(recommender, users, seed), k, query)
    if not report(rows, as_json, out_file):
        return
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("explain", "stage", "users", "p50 s", "p95 s", "max s",
                  title=f"recommend latency per stage, k={k}" + (f", query {query!r}" if query else ", history only"))
    for r in rows:
        table.add_row("yes" if r["explain"] else "no", r["stage"], str(r["users"]), f"{r['p50_s']:.3f}",
                      f"{r['p95_s']:.3f}", f"{r['max_s']:.3f}")
    table_console().print(table)


@bench.command("explain")
@project_options()
@click.option("--users", type=int, default=100, show_default=True)
@click.option("-k", "k", type=int, default=10, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the user sample.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary and every explanation and check as JSON.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), help="Write every explanation and check here.")
@click.pass_context
def bench_explain(ctx, users, k, seed, as_json, out_file):
    """Explain k picks for each of N test users: shares generated/repaired/template, checker pass rate."""
    from eval.bench.recommend import bench_explain as run
    from eval.bench.recommend import bench_users

    recommender = open_recommender(ctx)
    chosen = bench_users(recommender, users, seed)
    result = run(recommender, chosen, k)
    if not report(result, as_json, out_file):
        return
    from rich.table import Table

    from agent.core.console import table_console

    summary = result["summary"]
    table = Table("status", "explanations", "share", title=f"explanations for {len(chosen)} users, k={k}")
    for status, count in summary["statuses"].items():
        table.add_row(status, str(count), f"{count / summary['explanations']:.1%}")
    table.add_row("delivered passing the checker", str(summary["passing"]),
                  f"{summary['passing'] / summary['explanations']:.1%}")
    for key, label in (("generated_passing_share", "generated and passing (target >= 80%)"),
                       ("no_unsupported_share", "no unsupported content word (target >= 95%)"),
                       ("beyond_basics_share", "cites a fact beyond title/year/genre (target >= 70%)")):
        table.add_row(label, str(round(summary[key] * summary["explanations"])), f"{summary[key]:.1%}")
    table_console().print(table)
    for problem, count in summary["check_failures"][:8]:
        click.echo(f"check failure before the delivered text: {problem} ({count})")
    for example in summary["examples"]:
        click.echo(f"[{example['status']}] {example['explanation']}")
