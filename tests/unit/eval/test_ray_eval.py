"""`eval --engine ray` without a cluster: the users split over several in-process actors
(tests/fakes/ray_pool.py) must give the one-process eval's ranks, run rows and reranker counts.
The cluster itself: tests/integration/test_ray_eval.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.core.errors import InputError
from agent.core.project import movielens_project
from agent.core.ray_cluster import RayOptions
from eval import ray_eval
from eval.harness import run_system
from eval.ray_eval import check_ray_eval, eval_on_ray, rerank_stats
from eval.rerank_seq import RerankingRetriever
from tests.fakes.finetune_data import HistoryRetriever, random_split
from tests.fakes.ray_pool import InProcessPool


class HighIdReranker:
    """Prefers high item ids; counts its calls (one per user, whatever the number of alphas)."""

    def __init__(self):
        self.calls = 0

    def rerank(self, request, candidates, history_titles=()):
        self.calls += 1
        return sorted(((i, float(int(i))) for i, _ in candidates), key=lambda p: -p[1])


def wrap(retriever, settings, order="retriever", seed=0, words=None):
    titles = [f"Movie {i}" for i in range(retriever.split.n_items)]
    return RerankingRetriever(retriever, HighIdReranker(), {}, titles, depth=4, alpha=settings.rerank_alpha,
                              order=order, seed=seed)


@pytest.fixture
def split():
    return random_split(n_users=9, n_items=15, seed=4)


@pytest.fixture
def pool(monkeypatch, split):
    pool = InProcessPool(actors=2, batch=2)
    monkeypatch.setattr(ray_eval, "map_in_order", pool)
    monkeypatch.setattr(ray_eval, "reranking_retriever", wrap)
    return pool


def actor_kwargs(split, settings):
    return {"project": movielens_project(Path("ml"), store=Path("store")), "settings": settings,
            "candidate_order": "retriever", "seed": 0, "opener": lambda project, settings: HistoryRetriever(split)}


def test_sharded_users_give_the_one_process_ranks_and_runs_for_every_row(split, pool, fake_settings):
    users = [0, 2, 3, 5, 6, 8]
    runs = [("hybrid", None), ("rerank", 0.5), ("rerank", 1.0)]
    local_retriever = wrap(HistoryRetriever(split), fake_settings)
    want = []
    for system, alpha in runs:
        if system == "rerank":
            local_retriever.alpha = alpha
        want.append(run_system(local_retriever, system, "test", users, progress=False))

    got, counts = eval_on_ray(split, runs, "test", users, actor_kwargs(split, fake_settings), RayOptions(),
                              progress=False)

    assert len(pool.actors) == 2 and len(pool.batches) == 3  # 6 users, 2 a batch, over 2 actors
    for mine, theirs in zip(got, want, strict=True):
        assert mine.system == theirs.system and mine.users == theirs.users == [str(u) for u in users]
        assert mine.ranks.tolist() == theirs.ranks.tolist()
        assert list(mine.run) == list(theirs.run) and mine.run == theirs.run
        assert mine.metrics == theirs.metrics
    assert got[1].ranks.tolist() != got[0].ranks.tolist()  # the reranker moved something: not a vacuous match
    # one LLM call per user across both alphas, as the local cache does; 4 candidates each
    assert sum(a.retriever.reranker.calls for a in pool.actors) == local_retriever.reranker.calls == len(users)
    assert len(counts["seconds"]) == len(users) and counts["returned"] == 4 * len(users) and counts["outside"] == 0


def test_the_rerank_entry_has_the_local_rows_shape_and_alpha(fake_settings):
    counts = {"seconds": [0.1, 0.3, 0.2], "returned": 12, "outside": 0}
    stats = rerank_stats(counts, fake_settings, "retriever", 0, alpha=0.5)
    local = wrap(HistoryRetriever(random_split()), fake_settings).stats()
    assert set(stats) == set(local)
    assert stats["alpha"] == 0.5 and stats["out_of_candidate_rate"] == 0.0 and stats["rerank_p50_s"] == 0.2


def test_a_shuffled_candidate_order_is_refused_on_ray():
    check_ray_eval("retriever")
    check_ray_eval("reversed")
    with pytest.raises(InputError, match="--candidate-order shuffled.*--engine local"):
        check_ray_eval("shuffled")
