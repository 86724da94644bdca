"""`recsage bench tasks` on the real small models and a real store (the shared text-only
``movielens_store``, no trained retriever: the requests go to hybrid text search): two requests,
the default profile, every row measured."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_recsage

pytestmark = pytest.mark.integration


def test_bench_tasks_measures_every_task_on_real_models(movielens_store):
    store, movielens = movielens_store
    out = run_recsage("--threads", "2", "bench", "tasks", "--store", store, "--movielens", movielens,
                      "--requests", "2", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    rows = {r["task"]: r for r in data["rows"]}
    assert list(rows) == ["request understanding", "tool choice (combined, list prompt)", "retrieval (candidates)",
                          "rerank top 20", "explanations top 5", "recommend -k 5 --explain", "chat turn"]
    assert all(r["profile"] == "default" and r["n"] == 2 and 0 <= r["p50_s"] <= r["p95_s"] for r in rows.values())
    assert rows["rerank top 20"]["p50_s"] > 0 and rows["explanations top 5"]["p50_s"] > 0  # the LLM ran
    # each request's total holds its explanations, each chat turn its tool choice (p50 of two = their mean)
    assert rows["recommend -k 5 --explain"]["p50_s"] >= rows["explanations top 5"]["p50_s"]
    assert rows["chat turn"]["p50_s"] >= rows["tool choice (combined, list prompt)"]["p50_s"]
    assert (rows["recommend -k 5 --explain"]["budget_s"], rows["chat turn"]["budget_s"]) == (3.0, 4.0)
    assert rows["chat turn"]["within_budget"] in ("yes", "no") and rows["rerank top 20"]["within_budget"] is None
    assert rows["tool choice (combined, list prompt)"]["model"] == "llm + rules"
    assert data["requests"] == ["I want to laugh tonight: a silly comedy from the 2000s",
                                "could you suggest a tense submarine or navy thriller?"]
