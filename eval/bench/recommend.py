"""``recsage bench recommend`` (seconds per stage of ``recommend``, with and without explanations) and
``recsage bench explain`` (how explanations were produced, and how many pass the checker)."""

from __future__ import annotations

from collections import Counter

from agent.core.timing import percentiles
from eval.harness import sample_users

BENCH_STAGES = ("request", "retrieve", "rerank", "evidence", "explain", "total")


def bench_users(recommender, users: int, seed: int) -> list[str]:
    """A seeded sample of ``users`` userIds of the recommender's protocol split."""
    split = recommender.retriever.split
    return [split.user_ids[u] for u in sample_users(split.n_users, users, seed)]


def run_users(recommender, users: list[str], label: str, **kwargs) -> list[dict]:
    """``recommend`` for each user (after one warm-up call), with a progress bar on stderr."""
    from agent.core.progress import progress

    recommender.recommend(user=users[0], **kwargs)  # warm-up: model loads are not a per-user cost
    return [recommender.recommend(user=u, **kwargs) for u in progress(users, label)]


def bench_recommend(recommender, users: list[str], k: int, query: str | None) -> list[dict]:
    """One row per (explain, stage): ``{"explain", "stage", "users", "p50_s", "p95_s", "max_s"}``; the
    stage seconds are the ones ``recommend`` reports (agent.core.timing.Stopwatch)."""
    rows = []
    for explain in (False, True):
        runs = run_users(recommender, users, f"explain={explain}", k=k, query=query, explain=explain)
        for stage in BENCH_STAGES:
            seconds = [r["timings"].get(stage, 0.0) for r in runs]
            p = percentiles(seconds)
            rows.append({"explain": explain, "stage": stage, "users": len(seconds), "p50_s": p["p50"],
                         "p95_s": p["p95"], "max_s": max(seconds)})
    return rows


def bench_explain(recommender, users: list[str], k: int) -> dict:
    """``{"summary": explanation_summary(...), "runs": every recommend output}`` for k explained picks per user."""
    runs = run_users(recommender, users, "explaining", k=k, explain=True)
    return {"summary": explanation_summary(runs), "runs": runs}


def explanation_summary(runs: list[dict]) -> dict:
    """Status counts, re-checked pass count, the most common first-try check failures, and the
    issue's three shares over delivered explanations, each re-checked from the saved evidence with
    today's checker (so an older run's JSON is measured by the same rule)."""
    from agent.explain.generate import STATUSES

    items = [item for run in runs for item in run["items"]]
    statuses = Counter(item["explanation_status"] for item in items)
    problems = Counter(p.split(":")[0] for item in items for p in item["explanation_check"]["earlier_problems"])
    return {
        "explanations": len(items),
        "statuses": {s: statuses.get(s, 0) for s in STATUSES},
        "passing": sum(item["explanation_check"]["passed"] for item in items),
        "check_failures": problems.most_common(),
        **grounding_shares(items),
    }


def grounding_shares(items: list[dict]) -> dict:
    """Shares of delivered explanations: generated and passing the checker, with no unsupported
    content word, citing a fact beyond title, year and genre; plus ten examples (one per user first)."""
    from agent.explain.check import (
        check,
        cited_refs,
        cites_beyond_basics,
        unsupported_content,
    )
    from agent.explain.evidence import Evidence

    rows = []
    for item in items:
        evidence = Evidence.from_json(item["id"], item["evidence"], item.get("title", ""), item.get("year"))
        text = item["explanation"]
        unsupported = unsupported_content(text, evidence)
        rows.append({"id": item["id"], "explanation": text, "status": item["explanation_status"],
                     "generated_passing": item["explanation_status"] == "generated" and check(text, evidence).ok,
                     "unsupported": unsupported,
                     "beyond_basics": cites_beyond_basics(cited_refs(text, evidence), evidence)})
    n = max(len(rows), 1)
    return {
        "generated_passing_share": sum(r["generated_passing"] for r in rows) / n,
        "no_unsupported_share": sum(not r["unsupported"] for r in rows) / n,
        "beyond_basics_share": sum(r["beyond_basics"] for r in rows) / n,
        "examples": rows[:: max(len(rows) // 10, 1)][:10],
    }
