"""The reranker on the sequential protocol: placement of candidates, candidate orders, counting."""

from __future__ import annotations

import numpy as np
import pytest

from eval.harness import run_system
from eval.rerank_seq import RerankingRetriever, order_candidates
from tests.fakes.finetune_data import split_from_sequences


class ScoreRetriever:
    """Hybrid scores fixed per item: item i scores -i (item 0 best)."""

    def __init__(self, split):
        self.split = split

    def scores(self, system, history, split_name="test"):
        return -np.arange(self.split.n_items, dtype=np.float64)


class FavouriteReranker:
    """Order-blind: scores candidates by a fixed preference for high ids; records what it saw."""

    def __init__(self, outsider: str | None = None):
        self.seen, self.outsider = [], outsider

    def rerank(self, request, candidates, history_titles=()):
        self.seen.append([i for i, _ in candidates])
        ranked = sorted(((i, float(int(i))) for i, _ in candidates), key=lambda p: -p[1])
        return ranked + ([(self.outsider, 0.0)] if self.outsider else [])


@pytest.fixture
def split():
    return split_from_sequences([[10, 11, 12, 13, 14], [15, 16, 17, 18, 19]], n_items=20)


def wrap(split, reranker, **kw):
    titles = [f"Movie {i}" for i in range(split.n_items)]
    return RerankingRetriever(ScoreRetriever(split), reranker, {}, titles, depth=4, **kw)


def test_candidates_go_first_in_the_llm_order_and_the_rest_keep_retriever_order(split):
    wrapped = wrap(split, FavouriteReranker(), alpha=None)
    history = np.array([0, 2])
    scores = wrapped.scores("rerank", history)
    ranked = [i for i in np.argsort(-scores, kind="stable") if i not in history]
    # unseen top 4 by the retriever are 1, 3, 4, 5; the LLM prefers high ids
    assert ranked[:4] == [5, 4, 3, 1]
    assert ranked[4:8] == [6, 7, 8, 9]


def test_alpha_zero_keeps_the_retriever_order(split):
    scores = wrap(split, FavouriteReranker(), alpha=0.0).scores("rerank", np.array([0]))
    assert [i for i in np.argsort(-scores, kind="stable") if i != 0][:5] == [1, 2, 3, 4, 5]


def test_order_blind_reranker_scores_the_same_in_every_candidate_order(split):
    history = np.array([0])
    results = {}
    for order in ("retriever", "shuffled", "reversed"):
        reranker = FavouriteReranker()
        results[order] = wrap(split, reranker, order=order, seed=1).scores("rerank", history)
        if order == "reversed":
            assert reranker.seen[0] == ["4", "3", "2", "1"]
    assert np.array_equal(results["retriever"], results["shuffled"])
    assert np.array_equal(results["retriever"], results["reversed"])


def test_order_candidates_shuffles_a_permutation():
    ids = [str(i) for i in range(10)]
    shuffled = order_candidates(ids, "shuffled", np.random.default_rng(0))
    assert sorted(shuffled) == ids and shuffled != ids
    with pytest.raises(ValueError, match="candidate order"):
        order_candidates(ids, "random", np.random.default_rng(0))


def test_stats_count_items_outside_the_candidates_and_time(split):
    wrapped = wrap(split, FavouriteReranker(outsider="19"), alpha=None)
    result = run_system(wrapped, "rerank", "test", [0, 1], progress=False)
    stats = wrapped.stats()
    assert len(result.ranks) == 2
    assert stats["out_of_candidate_rate"] == pytest.approx(1 / 5)  # 1 of 5 returned per user
    assert stats["rerank_p50_s"] >= 0 and stats["depth"] == 4
