"""Server commands: ``recsage serve`` (HTTP API + web chat), ``recsage bench serve`` (concurrent chats)
and ``recsage bench abuse`` (hostile requests)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from agent.cli.base import (
    bench,
    chat_catalog,
    cli,
    output_options,
    project,
    project_options,
    report,
    settings,
)
from agent.core.errors import RecsageError
from agent.core.timing import Stopwatch


def build_app(ctx, token: str | None, session_store: str | None = None, **overrides):
    """The app over the real Recommender and ChatAgent (models load on first use); ``session_store``
    and ``overrides`` replace the settings of those names."""
    from agent.chat.agent import ChatAgent
    from agent.cli.recommend import query_reader
    from agent.recommend import Recommender
    from agent.server.app import create_app

    config = settings(ctx)
    if session_store is not None:
        overrides["session_store"] = session_store
    if overrides:
        config = config.with_overrides(**overrides)
    recommender, catalog = Recommender(project(ctx), config), chat_catalog(ctx)
    recommender.read_query = query_reader(ctx, catalog)  # /v1/recommend reads its query as `recommend --query`
    return create_app(recommender, ChatAgent(recommender, config, catalog=catalog), config, token=token)


def warm_up(app) -> None:
    """One chat turn through the app's agent: the LLM, embedder and retriever load in one thread
    (transformers' lazy imports can fail when several request threads load models at once)."""
    session = app.state.recsage.chat_agent.session()
    for event in session.send("a funny animated movie"):
        if event.get("type") == "error":
            raise RecsageError(f"warm-up chat failed: {event}")


@cli.command()
@project_options()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to bind; anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--token", envvar="RECSAGE_TOKEN", default=None,
              help="Bearer token every /v1 request must send (env RECSAGE_TOKEN); required beyond loopback.")
@click.option("--warm/--no-warm", default=True, show_default=True,
              help="Answer one chat before accepting requests, so models are loaded once, not by the first users.")
@click.option("--session-store", envvar="RECSAGE_SESSION_STORE", default=None, metavar="memory|redis://HOST:PORT/DB",
              help="Where chat sessions live (overrides the session_store setting; env RECSAGE_SESSION_STORE): "
                   "replicas sharing one Redis continue each other's conversations.")
@click.pass_context
def serve(ctx, host, port, token, warm, session_store):
    """HTTP API (/v1/recommend, /v1/chat, OpenAI-compatible /v1/chat/completions, /docs) and the web chat at /."""
    from agent.server.app import check_bind

    check_bind(host, token)
    app = build_app(ctx, token, session_store)
    if warm:
        clock = Stopwatch()
        click.echo("loading models (one warm-up chat) ...", err=True)
        warm_up(app)
        click.echo(f"models ready in {clock.totals()['total']:.1f} s", err=True)
    click.echo(f"recsage on http://{host}:{port}/ (API docs at /docs){' with a bearer token' if token else ''}",
               err=True)
    run_server(app, host, port, settings(ctx))


def run_server(app, host: str, port: int, config, log_level: str = "info") -> None:
    """uvicorn with the server's own time limits: idle connections close after ``keep_alive_s``, and
    SIGTERM cancels what still runs after ``shutdown_timeout_s`` (chat turns stop at their next step)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_keep_alive=config.keep_alive_s,
                timeout_graceful_shutdown=config.shutdown_timeout_s)


@bench.command("serve")
@project_options()
@click.option("--concurrency", type=click.IntRange(1, 200), default=20, show_default=True,
              help="Chats sent at the same moment.")
@click.option("--rounds", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Repeat the burst; latencies pool over rounds.")
@click.option("--mode", type=click.Choice(["both", "batched", "serial"]), default="both", show_default=True,
              help="Model queues on (batched), off (serial: the serve_batching = false path), or both in one "
                   "run, serial first, with the ratio.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary with every chat's timings as JSON.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None,
              help="Write every chat's timings here (JSON).")
@click.pass_context
def bench_serve(ctx, concurrency, rounds, mode, as_json, out_file):
    """Concurrent chats over loopback through /v1/chat/completions (streamed): success, first-token and
    total p50/p95 latency, with the model queues off and on."""
    from eval.bench.serve import MODES, compare_modes

    modes = tuple(MODES) if mode == "both" else (mode,)
    summary = compare_modes(lambda batching: build_app(ctx, token=None, serve_batching=batching),
                            concurrency, rounds, modes)
    if report(summary, as_json, out_file):
        print_serve_summary(summary)
    if summary["failed"]:
        raise RecsageError(f"{summary['failed']} of {summary['chats']} chats failed; first error: "
                           f"{summary['errors'][0]}")


def _seconds(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}"


def print_serve_summary(s: dict) -> None:
    """One row per mode (of :func:`eval.bench.serve.compare_modes`), then serial / batched."""
    from rich.table import Table

    from agent.core.console import table_console

    first = next(iter(s["modes"].values()))
    table = Table("mode", "ok", "with items", "stream open p50 s", "first token p50 s", "first token p95 s",
                  "total p50 s", "total p95 s", "total max s", "burst wall s", "rows per forward",
                  title=f"recsage serve: {s['concurrency']} concurrent streamed chats over loopback (warm-up chat "
                        f"{first['warmup_s']:.1f} s); ratio s÷b = serial ÷ batched")
    for mode, r in s["modes"].items():
        table.add_row(mode, f"{r['succeeded']}/{r['chats']}", str(r["with_items"]), _seconds(r["opened_s"]["p50"]),
                      _seconds(r["first_token_s"]["p50"]), _seconds(r["first_token_s"]["p95"]),
                      _seconds(r["total_s"]["p50"]), _seconds(r["total_s"]["p95"]), _seconds(r["total_s"]["max"]),
                      ", ".join(f"{w:.1f}" for w in r["burst_wall_s"]), _rows_per_forward(r["queues"]))
    if "ratio" in s:
        ratio = s["ratio"]
        table.add_row("ratio s÷b", "", "", "", _times(ratio["first_token_s p50"]),
                      _times(ratio["first_token_s p95"]), _times(ratio["total_s p50"]), _times(ratio["total_s p95"]),
                      "", "", "")
    table_console().print(table)
    table_console().print(_stage_table(s["modes"]))


def _stage_table(modes: dict):
    """Where a turn's time goes, as the server measured it: p50 per stage, and per queue the mean
    seconds a job waited and a gathered forward ran."""
    from rich.table import Table

    stages = sorted({name for r in modes.values() for name in r.get("stages_s", {})})
    table = Table("mode", *(f"{name} p50 s" for name in stages), "queue wait per job s", "seconds per forward",
                  title="where the time goes (server side)")
    for mode, r in modes.items():
        queues = r.get("queues", {})
        table.add_row(mode, *(_seconds(r["stages_s"].get(name, {}).get("p50")) for name in stages),
                      _per(queues, "wait_s", "jobs"), _per(queues, "forward_s", "forwards"))
    return table


def _per(queues: dict, total: str, count: str) -> str:
    return ", ".join(f"{name} {q[total] / q[count]:.2f}" for name, q in queues.items() if q.get(count)) or "-"


def _times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _rows_per_forward(queues: dict) -> str:
    """Per queue: rows per gathered forward (1.0 means no two requests shared one)."""
    parts = [f"{name} {q['rows'] / q['forwards']:.1f}" for name, q in queues.items() if q.get("forwards")]
    return ", ".join(parts) or "-"


@bench.command("abuse")
@project_options()
@output_options
@click.pass_context
def bench_abuse(ctx, as_json, out_file):
    """Hostile requests against a real `recsage serve` on loopback: status, seconds, server peak memory."""
    import tempfile

    from agent.core.project import project_toml
    from eval.bench.abuse import run_abuse

    resolved = project(ctx)
    with tempfile.TemporaryDirectory(prefix="recsage-abuse-") as folder:
        project_file = Path(folder) / "recsage.toml"  # the server process reads the resolved project
        project_file.write_text(project_toml(resolved), encoding="utf-8")
        summary = run_abuse(project_file, ctx.find_root().params.get("config_file"))
    if report(summary, as_json, out_file):
        print_abuse_summary(summary)
    if not summary["all_ok"]:
        bad = [r["attack"] for r in summary["attacks"] if not r["ok"]]
        raise RecsageError(f"{len(bad)} attack(s) got a 5xx, leaked, or cost too much: {'; '.join(bad)}")


def print_abuse_summary(s: dict) -> None:
    from rich.table import Table

    from agent.core.console import table_console

    table = Table("attack", "expected", "status", "seconds", "server peak RSS MB", "growth MB", "ok", "note",
                  title="recsage serve under hostile requests (one server process, loopback)")
    for r in s["attacks"]:
        table.add_row(r["attack"], r["expect"], str(r["status"]), f"{r['seconds']:.2f}", f"{r['peak_rss_mb']:.0f}",
                      f"{r['rss_growth_mb']:.0f}", "yes" if r["ok"] else "NO", r["note"])
    table_console().print(table)
    chat = s["normal_chat_s"]
    click.echo(f"normal chat: {chat['before']:.2f} s before the attacks, {chat['after']:.2f} s after")
