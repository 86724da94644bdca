"""``recsage chat`` (a REPL or one message) and ``recsage bench chat`` (tool choice and chat relevance)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from agent.cli.main import _emit_json, _settings, bench, cli
from agent.cli.retrieval import _movielens_option, _store_option
from agent.core.errors import InputError, RecsageError

REPL_HELP = """commands: /image FILE [message]  /audio FILE [message]  /history  /reset  /help  /quit
anything else is a message; the answer streams as it is produced."""


def build_agent(ctx, store_dir, movielens, explain: bool | None = None, tool_choice: str | None = None):
    """A ChatAgent over a real Recommender, with per-command setting overrides."""
    from agent.chat.agent import ChatAgent
    from agent.recommend import Recommender

    settings = _settings(ctx)
    updates = {k: v for k, v in {"chat_explain": explain, "chat_tool_choice": tool_choice}.items() if v is not None}
    if updates:
        settings = settings.model_copy(update=updates)
    return ChatAgent(Recommender(store_dir, movielens, settings), settings)


def _chat_options(fn):
    fn = click.option("--explain/--no-explain", default=None,
                      help="Explain each pick (default: setting chat_explain).")(fn)
    fn = click.option("--tool-choice", type=click.Choice(["combined", "llm", "rules"]), default=None,
                      help="How tools are chosen (default: setting chat_tool_choice).")(fn)
    return fn


@cli.command("chat")
@_store_option
@_movielens_option
@click.argument("message", required=False)
@click.option("--user", default=None, help="A MovieLens userId: recommendations follow their history too.")
@click.option("--image", type=click.Path(path_type=Path), default=None, help="Attach a photo (one-shot mode).")
@click.option("--audio", type=click.Path(path_type=Path), default=None, help="Attach a voice note (one-shot mode).")
@click.option("--json", "as_json", is_flag=True, help="One-shot: print the answer, items and tool calls as JSON.")
@_chat_options
@click.pass_context
def chat(ctx, store_dir, movielens, message, user, image, audio, as_json, explain, tool_choice):
    """Chat about movies. With MESSAGE (or --image/--audio) answer once; without, start a REPL."""
    agent = build_agent(ctx, store_dir, movielens, explain, tool_choice)
    session = agent.session(user)
    if message is not None or image is not None or audio is not None:
        events = session.send(message or "", image=image, audio=audio)
        if as_json:
            _emit_json(collect(events))
        else:
            print_events(events)
        return
    if as_json:
        raise InputError("--json needs a MESSAGE (one-shot mode); the REPL prints text")
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
    elif name in ("/image", "/audio"):
        parts = shlex.split(rest)
        if not parts:
            raise InputError(f"{name} needs a file: {name} FILE [message]")
        media = {name[1:]: Path(parts[0])}
        print_events(session.send(" ".join(parts[1:]), **media))
    else:
        click.echo(REPL_HELP, err=True)
    return False


@bench.command("chat")
@_store_option
@_movielens_option
@click.option("--turns", "turns_file", type=click.Path(path_type=Path), default=None,
              help="Scripted turns (message -> intended tool); default eval/data/chat_turns.jsonl.")
@click.option("--requests", "requests_file", type=click.Path(path_type=Path), default=None,
              help="Chat requests with relevance rules; default eval/data/chat_requests.jsonl.")
@click.option("--modes", default="combined,llm,rules", show_default=True, help="Tool-choice modes to compare.")
@click.option("--skip-relevance", is_flag=True, help="Only measure tool choice.")
@click.option("--json", "json_file", type=click.Path(path_type=Path), default=None, help="Write all results here.")
@_chat_options
@click.pass_context
def bench_chat(ctx, store_dir, movielens, turns_file, requests_file, modes, skip_relevance, json_file,
               explain, tool_choice):
    """Tool-choice accuracy on scripted turns, and precision@10 of chat answers against BM25, in one run."""
    from eval.chat import run_bench

    agent = build_agent(ctx, store_dir, movielens, explain if explain is not None else False, tool_choice)
    results = run_bench(agent, movielens, turns_file, requests_file,
                        [m.strip() for m in modes.split(",") if m.strip()], relevance=not skip_relevance)
    if json_file:
        Path(json_file).write_text(json.dumps(results, indent=1, default=str))
