"""``recsage bench retrieve``: per-user latency, history -> top 50 candidates, per retrieval system."""

from __future__ import annotations

from agent.core.timing import percentiles
from agent.retrieval.retriever import SYSTEMS
from eval.bench import timed
from eval.harness import sample_users

TOP = 50


def bench_retrieve(retriever, users: int) -> list[dict]:
    """One row per system: ``{"system", "users", "p50_ms", "p95_ms", "max_ms"}`` (scores + Chroma fetch)."""
    chosen = sample_users(retriever.split.n_users, users)
    hist = [retriever.user_history(retriever.split.user_ids[u]) for u in chosen]
    rows = []
    for system in SYSTEMS:
        retriever.recommend(hist[0], TOP, system=system)  # warm-up: loads models and vectors once
        times = [1000 * timed(retriever.recommend, h, TOP, system=system)[1] for h in hist]
        p = percentiles(times)
        rows.append({"system": system, "users": len(times), "p50_ms": p["p50"], "p95_ms": p["p95"],
                     "max_ms": max(times)})
    return rows
