"""``recsage chat`` (a REPL or one message) and ``recsage bench chat`` (tool choice and chat relevance)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from agent.cli.base import (
    bench,
    benchmark_movielens,
    chat_catalog,
    cli,
    project,
    project_options,
    report,
    settings,
)
from agent.core.errors import InputError, RecsageError

REPL_HELP = """commands: /image FILE [message]  /audio FILE [message]  /video FILE [message]  /history  /reset  /help  /quit
anything else is a message; the answer streams as it is produced."""


def build_agent(ctx, explain: bool | None = None, tool_choice: str | None = None, config=None):
    """A ChatAgent over a real Recommender, with per-command setting overrides; ``config``: these
    settings instead of the invocation's (``bench tasks`` builds one agent per profile)."""
    from agent.chat.agent import ChatAgent
    from agent.cli.recommend import query_reader
    from agent.recommend import Recommender

    config = config or settings(ctx)
    updates = {k: v for k, v in {"chat_explain": explain, "chat_tool_choice": tool_choice}.items() if v is not None}
    if updates:
        config = config.model_copy(update=updates)
    recommender, catalog = Recommender(project(ctx), config), chat_catalog(ctx)
    recommender.read_query = query_reader(ctx, catalog, config)  # as `recommend --query` (bench chat compares them)
    return ChatAgent(recommender, config, catalog=catalog, local_files=True)  # a local user may name files


def _chat_options(fn):
    fn = click.option("--explain/--no-explain", default=None,
                      help="Explain each pick (default: setting chat_explain).")(fn)
    fn = click.option("--tool-choice", type=click.Choice(["combined", "llm", "rules"]), default=None,
                      help="How tools are chosen (default: setting chat_tool_choice).")(fn)
    return fn


@cli.command("chat")
@project_options()
@click.argument("message", required=False)
@click.option("--user", default=None, help="A user id of the interactions log: recommendations follow their history too.")
@click.option("--image", type=click.Path(path_type=Path), default=None, help="Attach a photo (one-shot mode).")
@click.option("--audio", type=click.Path(path_type=Path), default=None, help="Attach a voice note (one-shot mode).")
@click.option("--video", type=click.Path(path_type=Path), default=None, help="Attach a video clip (one-shot mode).")
@click.option("--json", "as_json", is_flag=True, help="One-shot: print the answer, items and tool calls as JSON.")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None,
              help="One-shot: also write the answer, items and tool calls as JSON to this file.")
@_chat_options
@click.pass_context
def chat(ctx, message, user, image, audio, video, as_json, out_file, explain, tool_choice):
    """Chat about the catalog. With MESSAGE (or --image/--audio/--video) answer once; without, start a REPL."""
    agent = build_agent(ctx, explain, tool_choice)
    session = agent.session(user)
    if message is not None or image is not None or audio is not None or video is not None:
        events = session.send(message or "", image=image, audio=audio, video=video)
        if as_json or out_file:
            turn = collect(events)  # consumes the stream: without --json, print the collected answer
            if report(turn, as_json, out_file):
                click.echo(turn["answer"])
        else:
            print_events(events)
        return
    if as_json or out_file:
        raise InputError("--json and --out need a MESSAGE (one-shot mode); the REPL prints text")
    repl(session)


def collect(events) -> dict:
    """One turn's events as one JSON object: the final answer plus the tool calls that led to it."""
    calls: list[dict] = []
    for event in events:
        if event["type"] == "tool":
            calls.append({"name": event["name"], "arguments": event["arguments"]})
        elif event["type"] == "observation":
            calls[-1].update(observation=event["text"], ok=event["ok"])
        elif event["type"] == "done":
            return {"answer": event["answer"], "tool": event["tool"], "items": event["items"],
                    "request": event["request"], "calls": calls}
    raise RecsageError("the chat turn ended without an answer")


def print_events(events) -> None:
    """Tool calls to stderr (dim), answer tokens to stdout as they arrive."""
    for event in events:
        if event["type"] == "tool":
            click.secho(f"[{event['name']} {json.dumps(event['arguments'], ensure_ascii=False)}]", err=True, dim=True)
        elif event["type"] == "token":
            click.echo(event["text"], nl=False)
    click.echo()


def repl(session) -> None:
    try:
        import readline  # noqa: F401 - arrow keys and input history in the REPL
    except ImportError:  # pragma: no cover - not on every platform
        pass
    click.echo(REPL_HELP, err=True)
    while True:
        try:
            line = input("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        if not line:
            continue
        try:
            if repl_command(session, line):
                return
        except RecsageError as exc:
            click.echo(f"error: {exc}", err=True)


def repl_command(session, line: str) -> bool:
    """Run one REPL line; True means quit."""
    if not line.startswith("/"):
        print_events(session.send(line))
        return False
    name, _, rest = line.partition(" ")
    if name in ("/quit", "/exit"):
        return True
    if name == "/reset":
        session.reset()
        click.echo("(conversation reset)", err=True)
    elif name == "/history":
        for turn in session.history:
            click.echo(f"{turn['role']}: {turn['content']}")
    elif name in ("/image", "/audio", "/video"):
        parts = shlex.split(rest)
        if not parts:
            raise InputError(f"{name} needs a file: {name} FILE [message]")
        media = {name[1:]: Path(parts[0])}
        print_events(session.send(" ".join(parts[1:]), **media))
    else:
        click.echo(REPL_HELP, err=True)
    return False


@bench.command("chat")
@project_options()
@click.option("--turns", "turns_file", type=click.Path(path_type=Path), default=None,
              help="Scripted turns (message -> intended tool); default eval/data/chat_turns.jsonl.")
@click.option("--requests", "requests_file", type=click.Path(path_type=Path), default=None,
              help="Chat requests with relevance rules; default eval/data/chat_requests.jsonl.")
@click.option("--modes", default="combined,llm,rules", show_default=True, help="Tool-choice modes to compare.")
@click.option("--skip-relevance", is_flag=True, help="Only measure tool choice.")
@click.option("--json", "as_json", is_flag=True, help="Print all results as JSON to stdout (instead of the tables).")
@click.option("--out", "out_file", type=click.Path(path_type=Path), default=None, help="Write all results here (JSON).")
@_chat_options
@click.pass_context
def bench_chat(ctx, turns_file, requests_file, modes, skip_relevance, as_json, out_file,
               explain, tool_choice):
    """Tool-choice accuracy on scripted turns, and precision@10 of chat answers against BM25, in one run."""
    from eval.bench.chat import bench_chat as run

    movielens = None if skip_relevance else benchmark_movielens(project(ctx))  # the judge reads MovieLens tags
    agent = build_agent(ctx, explain if explain is not None else False, tool_choice)
    results = run(agent, movielens, turns_file, requests_file,
                  [m.strip() for m in modes.split(",") if m.strip()], relevance=not skip_relevance)
    if report(results, as_json, out_file):
        print_chat_bench(results)


def print_chat_bench(results: dict) -> None:
    """The tool-choice table and its misses, then the chat-vs-BM25 relevance table and paired tests."""
    from rich.table import Table

    from agent.core.console import table_console

    console = table_console()
    choice = results["tool_choice"]
    table = Table("mode", "turns", "intended tool", "always registered",
                  title=f"tool choice (LLM scoring p50 {choice['llm_seconds_p50']:.2f} s/turn)")
    for mode, r in choice["modes"].items():
        table.add_row(mode, str(choice["n_turns"]), f"{r['accuracy']:.0%}", str(r["always_registered"]))
    console.print(table)
    for mode, r in choice["modes"].items():
        for e in r["errors"]:
            console.print(f"  {mode} {e['id']}: {e['message']!r} expected {e['expected']}, picked {e['picked']}")
    if "relevance" not in results:
        return
    rel = results["relevance"]
    table = Table("system", "requests", "P@10 (95% CI)", "NDCG@10 (95% CI)", "p50 s/request",
                  title="chat relevance (requests of eval/data/chat_requests.jsonl)")
    for name, r in rel["results"].items():
        p, n = r["metrics"]["P@10"], r["metrics"]["NDCG@10"]
        table.add_row(name, str(r["n_requests"]), f"{p['mean']:.3f} ({p['ci_low']:.3f}-{p['ci_high']:.3f})",
                      f"{n['mean']:.3f} ({n['ci_low']:.3f}-{n['ci_high']:.3f})", f"{r['latency_s']['p50']:.2f}")
    console.print(table)
    labels = {"chat_vs_bm25": "chat - bm25", "recommend_vs_chat": "recommend - chat",
              "recommend_user_vs_chat_user": "recommend --user - chat --user"}
    for key, label in labels.items():
        for metric, c in rel.get(key, {}).items():
            console.print(f"{label} {metric}: {c['mean_diff']:+.3f} (95% CI {c['ci_low']:+.3f}..{c['ci_high']:+.3f}, "
                          f"p={c['p_value']:.3f})")
