"""``recsage bench chat``: tool-choice accuracy on scripted turns and, unless skipped, chat relevance
against BM25 and against `recommend --query` (with and without a user; all measured by eval.chat),
in one run."""

from __future__ import annotations

from pathlib import Path

from eval.chat import (
    DEFAULT_CHAT_REQUESTS,
    DEFAULT_TURNS,
    chat_relevance,
    load_turns,
    tool_choice_accuracy,
)


def bench_chat(agent, movielens: Path | None, turns_file: Path | None, requests_file: Path | None, modes: list[str],
               relevance: bool = True) -> dict:
    """``{"tool_choice": ..., "relevance": ...}`` (``relevance`` only when asked for: it needs the
    MovieLens folder, whose tags judge the chat's answers)."""
    out = {"tool_choice": tool_choice_accuracy(agent, load_turns(turns_file or DEFAULT_TURNS), modes)}
    if relevance:
        out["relevance"] = chat_relevance(agent, movielens, requests_file or DEFAULT_CHAT_REQUESTS)
    return out
