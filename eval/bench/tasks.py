"""``recsage bench tasks``: one latency table per profile, task and model (p50/p95 seconds).

Every profile (the settings in effect, and a quality setting such as eval/data/quality.toml) gets
its own ChatAgent over its own Recommender, built the way `recsage chat` builds them, and answers
the same requests (the first N texts of eval/data/chat_requests.jsonl). Per request it measures:

- request understanding: ``read_request`` on the request as one user message (rules, plus the LLM's
  reading when the profile sets ``understanding = "llm"``);
- retrieval and the rerank of the top ``rerank_depth``: ``recommend(query=..., k=5, understand=True)``
  with reranking forced on and no explanations, its ``retrieve`` stage (hybrid text search or the
  fusion of the request's parts: BM25, the MiniLM query vector, the collaborative models) and its
  ``rerank`` stage;
- `recommend -k 5 --explain`: ``recommend(query=..., k=5, explain=True, understand=True)``, its
  ``explain`` stage (the top 5 explained) and its ``total``;
- a chat turn: a fresh session, ``send(text)`` to the ``done`` event, its ``tool_choice`` stage (the
  chooser alone on the request) and its ``total``.

The seconds are the stage timings the code records (agent.core.timing), except request
understanding, which is timed here with the same stopwatch. One warm-up request per profile (the
first text) is measured and dropped: model loads are not a per-request cost.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable, Iterable
from pathlib import Path

from agent.core.config import Settings, load_settings, read_toml
from agent.core.errors import InputError, RecsageError
from agent.core.timing import accumulate_seconds, percentiles

K = 5
"""`recommend -k 5 --explain`: the request the issue's budget is about."""
BUDGETS_S = {"recommend": 3.0, "chat": 4.0}
"""p50 budgets on 2 cores (issue 13): `recommend -k 5 --explain` and a chat turn."""
TASKS = ("understand", "understand_llm", "tool_choice", "retrieval", "rerank", "explain", "recommend", "chat")
"""The rows of one profile, in table order; ``understand_llm`` only where the LLM reads requests."""
QUALITY_FILE = Path(str(importlib.resources.files("eval") / "data" / "quality.toml"))
"""The documented quality setting (README, "Latency per model and task")."""


def request_texts(n: int, path: Path | None = None) -> list[str]:
    """The first ``n`` texts of the chat-relevance requests (the same for every profile)."""
    from eval.chat import DEFAULT_CHAT_REQUESTS
    from eval.requests import load_requests

    path = Path(path or DEFAULT_CHAT_REQUESTS)
    texts = [r.text for r in load_requests(path)]
    if not isinstance(n, int) or n < 1:
        raise InputError(f"--requests must be at least 1, got {n}")
    if n > len(texts):
        raise InputError(f"--requests {n} is more than the {len(texts)} requests of {path}: use at most {len(texts)}")
    return texts[:n]


def profile_settings(base: Settings, path: Path) -> Settings:
    """The settings in effect with a TOML file's keys in their place (a quality setting changes a few
    keys; the rest, e.g. the model home, stays as the invocation set it)."""
    given = read_toml(Path(path))
    kept = {key: value for key, value in base.model_dump(exclude_unset=True).items() if key not in given}
    return load_settings(Path(path), **kept)


def measure_request(agent, text: str) -> dict[str, float]:
    """Seconds per task (keys of :data:`TASKS`) for one request on one profile's agent."""
    from agent.chat.request import read_request

    settings, recommender = agent.settings, agent.recommender
    messages = [{"role": "user", "content": text}]
    seconds: dict[str, float] = {}
    with accumulate_seconds(seconds, "understand"):
        read_request(messages, agent.catalog)  # rules: the fast path every profile runs first
    if settings.understanding == "llm":
        with accumulate_seconds(seconds, "understand_llm"):
            read_request(messages, agent.catalog, settings)
    ranked = recommender.recommend(query=text, k=K, explain=False, rerank=True, understand=True)["timings"]
    full = recommender.recommend(query=text, k=K, explain=True, understand=True)["timings"]
    turn = chat_turn(agent, text)
    return {**seconds, "retrieval": ranked.get("retrieve", 0.0), "rerank": ranked.get("rerank", 0.0),
            "explain": full.get("explain", 0.0), "recommend": full["total"],
            "tool_choice": turn.get("tool_choice", 0.0), "chat": turn["total"]}


def chat_turn(agent, text: str) -> dict[str, float]:
    """A fresh session's first turn to its ``done`` event: that event's stage timings."""
    for event in agent.session().send(text):
        if event["type"] == "done":
            return event["timings"]
    raise RecsageError(f"the chat turn for {text!r} ended without a done event")


def measure_profile(agent, texts: list[str], progress: Callable[[Iterable, str], Iterable] | None = None,
                    label: str = "") -> dict[str, list[float]]:
    """Seconds per task over ``texts`` after one uncounted warm-up request (the first text)."""
    measure_request(agent, texts[0])
    samples: dict[str, list[float]] = {}
    for text in (progress(texts, label) if progress else texts):
        for task, value in measure_request(agent, text).items():
            samples.setdefault(task, []).append(value)
    return samples


def models(settings: Settings) -> dict[str, str]:
    """The model column of each task: the LLM role serving it, or "rules"."""
    role = settings.llm_role
    choice = {"rules": "rules", "llm": role("tool_choice"), "combined": f"{role('tool_choice')} + rules"}
    chat = [role("tool_choice")] if settings.chat_tool_choice != "rules" else []
    reading = [role("understand")] if settings.understanding == "llm" else []
    explained = [role("explain")] if settings.chat_explain else []
    return {
        "understand": "rules", "understand_llm": f"rules + {role('understand')}",
        "tool_choice": choice[settings.chat_tool_choice], "retrieval": "text_embedder",
        "rerank": role("rerank"), "explain": role("explain"),
        "recommend": _joined(["rules", *reading, role("rerank"), role("explain")]),
        "chat": _joined(["rules", *reading, *chat, role("rerank"), *explained]),
    }


def _joined(names: list[str]) -> str:
    return " + ".join(dict.fromkeys(names))


def task_labels(settings: Settings) -> dict[str, str]:
    return {
        "understand": "request understanding", "understand_llm": "request understanding (LLM reading)",
        "tool_choice": f"tool choice ({settings.chat_tool_choice}, {settings.chat_tool_prompt} prompt)",
        "retrieval": "retrieval (candidates)", "rerank": f"rerank top {settings.rerank_depth}",
        "explain": f"explanations top {K}", "recommend": f"recommend -k {K} --explain",
        "chat": "chat turn",
    }


def profile_rows(profile: str, settings: Settings, samples: dict[str, list[float]]) -> list[dict]:
    """One row per measured task: ``{profile, task, model, p50_s, p95_s, n, budget_s, within_budget}``;
    ``within_budget`` is "yes"/"no" where a budget applies (p50 against it), else None."""
    labels, names, rows = task_labels(settings), models(settings), []
    for task in TASKS:
        if task not in samples:
            continue
        p, budget = percentiles(samples[task]), BUDGETS_S.get(task)
        within = None if budget is None else ("yes" if p["p50"] <= budget else "no")
        rows.append({"profile": profile, "task": labels[task], "model": names[task], "p50_s": p["p50"],
                     "p95_s": p["p95"], "n": len(samples[task]), "budget_s": budget, "within_budget": within})
    return rows


def profile_summary(settings: Settings) -> dict:
    """What sets a profile apart, for the JSON output."""
    return {"task_models": dict(settings.task_models), "chat_tool_choice": settings.chat_tool_choice,
            "chat_tool_prompt": settings.chat_tool_prompt, "understanding": settings.understanding,
            "rerank_depth": settings.rerank_depth, "chat_explain": settings.chat_explain,
            "chat_explained_items": settings.chat_explained_items}


def bench_tasks(profiles: dict[str, Callable[[], object]], texts: list[str],
                progress: Callable[[Iterable, str], Iterable] | None = None) -> dict:
    """Every profile in turn (``name -> build()``, which returns its ChatAgent; one profile's models
    are dropped before the next is built) over the same ``texts``."""
    rows, summaries = [], {}
    for name, build in profiles.items():
        agent = build()
        samples = measure_profile(agent, texts, progress, name)
        summaries[name] = profile_summary(agent.settings)
        rows += profile_rows(name, agent.settings, samples)
        del agent
    return {"requests": list(texts), "warmup": "the first request once more per profile as a warm-up, not counted",
            "profiles": summaries, "rows": rows}
