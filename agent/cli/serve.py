"""Server commands: ``recsage serve`` (HTTP API + web chat) and ``recsage bench serve``."""

from __future__ import annotations

import math
from pathlib import Path

import click

from agent.cli.base import bench, cli, movielens_option, report, settings, store_option
from agent.core.errors import RecsageError
from agent.core.timing import Stopwatch


def build_app(ctx, store_dir: Path, movielens: Path | None, token: str | None):
    """The app over the real Recommender and ChatAgent (models load on first use)."""
    from agent.chat.agent import ChatAgent
    from agent.recommend import Recommender
    from agent.server.app import create_app

    config = settings(ctx)
    recommender = Recommender(store_dir, movielens, config)
    return create_app(recommender, ChatAgent(recommender, config), config, token=token)


def warm_up(app) -> None:
    """One chat turn through the app's agent: the LLM, embedder and retriever load in one thread
    (transformers' lazy imports can fail when several request threads load models at once)."""
    session = app.state.recsage.chat_agent.session()
    for event in session.send("a funny animated movie"):
        if event.get("type") == "error":
            raise RecsageError(f"warm-up chat failed: {event}")


@cli.command()
@store_option
@movielens_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--token", envvar="RECSAGE_TOKEN", default=None,
              help="Bearer token every /v1 request must send (env RECSAGE_TOKEN); required beyond loopback.")
@click.option("--warm/--no-warm", default=True, show_default=True,
              help="Answer one chat before accepting requests, so models are loaded once, not by the first users.")
@click.pass_context
def serve(ctx, store_dir, movielens, host, port, token, warm):
    """HTTP API (/v1/recommend, /v1/chat, OpenAI-compatible /v1/chat/completions, /docs) and the web chat at /."""
    import uvicorn

    from agent.server.app import check_bind

    check_bind(host, token)
    app = build_app(ctx, store_dir, movielens, token)
    if warm:
        clock = Stopwatch()
        click.echo("loading models (one warm-up chat) ...", err=True)
        warm_up(app)
        click.echo(f"models ready in {clock.totals()['total']:.1f} s", err=True)
    click.echo(f"recsage on http://{host}:{port}/ (API docs at /docs){' with a bearer token' if token else ''}",
               err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


@bench.command("serve")
@store_option
@movielens_option
@click.option("--concurrency", type=click.IntRange(1, 200), default=20, show_default=True,
              help="Chats sent at the same moment.")
@click.option("--rounds", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Repeat the burst; latencies pool over rounds.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary with every chat's timings as JSON.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None,
              help="Write every chat's timings here (JSON).")
@click.pass_context
def bench_serve(ctx, store_dir, movielens, concurrency, rounds, as_json, out_file):
    """Concurrent chats over loopback through /v1/chat/completions (streamed): success, p50/p95 latency."""
    from eval.bench.serve import run_bench

    app = build_app(ctx, store_dir, movielens, token=None)
    summary = run_bench(app, concurrency, rounds)
    if report(summary, as_json, out_file):
        print_serve_summary(summary)
    if summary["failed"]:
        raise RecsageError(f"{summary['failed']} of {summary['chats']} chats failed; first error: "
                           f"{summary['errors'][0]}")


def _seconds(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def print_serve_summary(s: dict) -> None:
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("concurrency", "chats", "ok", "failed", "answers with items", "first token p50 s", "first token p95 s",
                  "total p50 s", "total p95 s", "total max s", "burst wall s",
                  title=f"recsage serve: concurrent streamed chats over loopback (warm-up chat {s['warmup_s']:.1f} s)")
    table.add_row(str(s["concurrency"]), str(s["chats"]), str(s["succeeded"]), str(s["failed"]), str(s["with_items"]),
                  _seconds(s["first_token_s"]["p50"]), _seconds(s["first_token_s"]["p95"]), _seconds(s["total_s"]["p50"]),
                  _seconds(s["total_s"]["p95"]), _seconds(s["total_s"]["max"]), ", ".join(f"{w:.1f}" for w in s["burst_wall_s"]))
    table_console().print(table)
