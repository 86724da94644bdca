"""Chat benchmarks: does the agent pick the intended tool, and are its answers relevant?

1. Tool choice: scripted turns (eval/data/chat_turns.jsonl: a message, optionally what was shown
   before and who the user is, and the tool a person would expect). Every mode's pick is checked
   to be a registered tool, and its accuracy is reported for LLM-only, rules-only and combined.
2. Chat relevance: natural-language requests (eval/data/chat_requests.jsonl, same format and
   relevance rules as eval/data/requests.jsonl) sent to a fresh chat session each; precision@10 of
   the answer's items against BM25 over titles, facets (genres) and tags, with a paired test.
"""

from __future__ import annotations

import importlib.resources
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.core.errors import InputError
from agent.core.io import NonBlankStr, iter_json_objects, validation_reason
from agent.core.progress import progress

DATA = Path(str(importlib.resources.files("eval") / "data"))
DEFAULT_TURNS = DATA / "chat_turns.jsonl"
DEFAULT_CHAT_REQUESTS = DATA / "chat_requests.jsonl"


class Turn(BaseModel):
    """One scripted chat turn and the tool a person would expect it to use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NonBlankStr
    message: NonBlankStr
    tool: NonBlankStr
    shown: tuple[str, ...] = Field((), description="Titles shown in the previous answer, if any.")
    user: str | None = Field(None, description="The session's MovieLens user, if any.")


def load_turns(path: Path = DEFAULT_TURNS) -> list[Turn]:
    """Read scripted turns; any bad row stops the load with every error listed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"turns file not found: {path} (the bundled one is {DEFAULT_TURNS})")
    turns, errors = [], []
    for line_no, row, problem in iter_json_objects(path):
        try:
            if problem is not None:
                raise ValueError(problem)
            turns.append(Turn.model_validate(row))
        except ValidationError as exc:
            errors.append(f"{path}:{line_no}: {validation_reason(exc)}")
        except ValueError as exc:
            errors.append(f"{path}:{line_no}: {exc}")
    if errors:
        raise InputError(f"{len(errors)} bad row(s) in {path}:\n" + "\n".join(errors[:20]))
    if not turns:
        raise InputError(f"no turns in {path}")
    return turns


def tool_choice_accuracy(agent, turns: list[Turn], modes: list[str]) -> dict:
    """Per mode: accuracy, whether every pick was a registered tool, and per-turn picks.

    The LLM scores each turn once; every mode is decided from the same scores."""
    from agent.chat.tool_choice import MODES, combine, rule_scores

    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise InputError(f"unknown tool-choice mode(s) {unknown}; choose from {', '.join(MODES)}")
    tools = agent.tools
    missing = sorted({t.tool for t in turns} - set(tools))
    if missing:
        raise InputError(f"turns expect tools that are not registered: {missing}")
    chooser = agent.chooser
    picks: dict[str, list[str]] = {m: [] for m in modes}
    seconds = []
    for turn in progress(turns, "tool choice"):
        feasible = _turn_state_tools(turn, agent, tools)
        start = time.perf_counter()
        llm = chooser.llm_scores(feasible, turn.message, list(turn.shown), turn.user) if set(modes) - {"rules"} else {}
        seconds.append(time.perf_counter() - start)
        rules = rule_scores(feasible, turn.message)
        for mode in modes:
            picks[mode].append(combine(feasible, llm, rules, mode, chooser.rule_weight).name)
    out = {"n_turns": len(turns), "llm_seconds_p50": float(np.median(seconds)), "modes": {}}
    for mode in modes:
        correct = [p == t.tool for p, t in zip(picks[mode], turns, strict=True)]
        out["modes"][mode] = {
            "accuracy": float(np.mean(correct)),
            "always_registered": all(p in tools for p in picks[mode]),
            "errors": [{"id": t.id, "message": t.message, "expected": t.tool, "picked": p}
                       for p, t, ok in zip(picks[mode], turns, correct, strict=True) if not ok],
        }
    return out


def _turn_state_tools(turn: Turn, agent, tools) -> dict:
    """The tools a chat session would let the chooser pick for this turn (same state rules)."""
    from agent.chat.slots import extract_slots
    from agent.chat.state import ChatState

    state = ChatState(user=turn.user, shown=[{"id": f"shown{i}", "title": t} for i, t in enumerate(turn.shown)])
    slots = extract_slots(turn.message, agent.catalog, paths=True)  # as in the local REPL it measures
    state.update(slots)
    return state.feasible(tools, slots)


def chat_ranker(agent, users: dict[str, str] | None = None):
    """text -> the item ids of a fresh chat session's answer (what `recsage chat --json` returns);
    with ``users``, the session is the text's user's (`recsage chat --user U`)."""

    def rank(text: str) -> list[str]:
        session = agent.session(None if users is None else users[text])
        done = [e for e in session.send(text) if e["type"] == "done"][-1]
        return [str(item["id"]) for item in done["items"]]

    return rank


def chat_relevance(agent, movielens: Path, requests_file: Path = DEFAULT_CHAT_REQUESTS) -> dict:
    """Precision@10 / NDCG@10 of chat answers, of BM25 and of `recommend --query` over the same
    requests, then of chat and `recommend --query` again with a user of the protocol split per
    request (the same user for both), with paired tests against BM25 and between the two doors."""
    from agent.ingest.catalog import load_movielens
    from agent.retrieval.bm25 import bm25_ranker
    from eval.requests import (
        compare,
        evaluate_requests,
        load_relevance_catalog,
        load_requests,
        recommend_ranker,
        request_users,
    )

    requests = load_requests(requests_file)
    judge = load_relevance_catalog(movielens)
    users = request_users([r.text for r in requests], agent.recommender)
    rankers = {
        "bm25": bm25_ranker(load_movielens(movielens).items),
        "chat": chat_ranker(agent),
        "recommend": recommend_ranker(agent.recommender),
        "chat --user": chat_ranker(agent, users),
        "recommend --user": recommend_ranker(agent.recommender, users),
    }
    results = {name: evaluate_requests(requests, ranker, judge, progress=True) for name, ranker in rankers.items()}
    metrics = ("P@10", "NDCG@10")
    return {"results": results,
            "chat_vs_bm25": {m: asdict(compare(results["chat"], results["bm25"], metric=m)) for m in metrics},
            "recommend_vs_chat": {m: asdict(compare(results["recommend"], results["chat"], metric=m)) for m in metrics},
            "recommend_user_vs_chat_user": {m: asdict(compare(results["recommend --user"], results["chat --user"],
                                                              metric=m)) for m in metrics}}
