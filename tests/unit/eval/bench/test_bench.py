"""The benchmark loops return plain data timed with agent.core.timing (the CLI prints it)."""

from types import SimpleNamespace

import numpy as np
import pytest

from agent.core.errors import InputError
from eval.bench import timed
from eval.bench.recommend import (
    BENCH_STAGES,
    bench_recommend,
    bench_users,
    explanation_summary,
)
from eval.bench.retrieve import SYSTEMS, bench_retrieve


def test_timed_returns_the_result_and_its_seconds():
    result, seconds = timed(sorted, [3, 1, 2])
    assert result == [1, 2, 3] and 0 <= seconds < 1


class FakeRetriever:
    def __init__(self, n_users=10):
        self.split = SimpleNamespace(n_users=n_users, user_ids=[str(u) for u in range(n_users)])
        self.calls = []

    def user_history(self, user_id):
        return [user_id]

    def recommend(self, history, k, system):
        self.calls.append((system, k))


def test_bench_retrieve_one_row_per_system_with_warm_up():
    retriever = FakeRetriever()
    rows = bench_retrieve(retriever, users=4)
    assert [r["system"] for r in rows] == list(SYSTEMS)
    assert all(r["users"] == 4 and 0 <= r["p50_ms"] <= r["p95_ms"] <= r["max_ms"] for r in rows)
    assert len(retriever.calls) == len(SYSTEMS) * 5 and {k for _, k in retriever.calls} == {50}


class FakeRecommender:
    def __init__(self):
        self.retriever = FakeRetriever(20)
        self.calls = []

    def recommend(self, user, **kwargs):
        self.calls.append((user, kwargs))
        return {"timings": {"retrieve": 0.01 * (int(user) + 1), "total": 0.02}, "items": []}


def test_bench_recommend_percentiles_per_stage_with_and_without_explain():
    recommender = FakeRecommender()
    users = bench_users(recommender, 5, seed=0)
    assert len(users) == 5 and users == bench_users(recommender, 5, seed=0)
    rows = bench_recommend(recommender, users, k=3, query=None)
    assert [(r["explain"], r["stage"]) for r in rows] == [(e, s) for e in (False, True) for s in BENCH_STAGES]
    retrieve = next(r for r in rows if r["stage"] == "retrieve")
    expected = np.percentile([0.01 * (int(u) + 1) for u in users], [50, 95])
    assert retrieve["p50_s"] == pytest.approx(expected[0]) and retrieve["p95_s"] == pytest.approx(expected[1])
    assert next(r for r in rows if r["stage"] == "rerank")["max_s"] == 0.0  # a stage a run skipped counts 0 s
    assert len(recommender.calls) == 2 * (5 + 1)  # a warm-up call per pass
    with pytest.raises(InputError, match="--users"):
        bench_users(recommender, 0, seed=0)


EVIDENCE = {"title": "Heat", "year": 1995, "facets": ["genres"], "history": [], "request": [],
            "card": [{"ref": "genres", "text": "Action, Crime"}, {"ref": "tags", "text": "heist"}],
            "co": {"id": "1", "title": "Ronin", "year": 1998, "count": 41}}


def test_explanation_summary_counts_statuses_passes_and_first_try_failures():
    def item(status, passed, problems, text):
        return {"id": "6", "title": "Heat", "year": 1995, "evidence": EVIDENCE, "explanation": text,
                "explanation_status": status, "explanation_check": {"passed": passed, "earlier_problems": problems}}

    runs = [{"items": [item("generated", True, [], "41 people who watched Ronin also watched Heat, a crime heist film."),
                       item("repaired", True, ["cites: unknown ref x"], "Heat is a crime film.")]},
            {"items": [item("template", False, ["cites: y", "length: 3"], "Heat is a gripping crime film.")]}]
    summary = explanation_summary(runs)
    assert summary["explanations"] == 3 and summary["passing"] == 2
    assert summary["statuses"]["generated"] == summary["statuses"]["repaired"] == summary["statuses"]["template"] == 1
    assert summary["check_failures"][0] == ("cites", 2)
    # only the first is generated and grounded; the third says "gripping"; only the first cites the
    # count (and a tag) beyond title and genre
    assert summary["generated_passing_share"] == pytest.approx(1 / 3)
    assert summary["no_unsupported_share"] == pytest.approx(2 / 3)
    assert summary["beyond_basics_share"] == pytest.approx(1 / 3)
    assert [e["unsupported"] for e in summary["examples"]] == [[], [], ["gripping"]]


def test_a_non_positive_user_count_is_bad_input_not_a_crash():
    from agent.core.errors import InputError
    from eval.harness import sample_users

    with pytest.raises(InputError, match="--users must be a positive integer, got 0"):
        sample_users(10, 0)
    assert sample_users(3, None) == [0, 1, 2] and sample_users(3, 5) == [0, 1, 2]
