"""The protocol on the real ml-latest-small: its size must match the published setup."""

from __future__ import annotations

import numpy as np
import pytest

from agent.retrieval.interactions import make_split
from agent.retrieval.popularity import popularity_scores
from eval.metrics import evaluate
from tests.fakes.eval_data import rank_users


@pytest.mark.integration
def test_real_split_matches_the_published_protocol(shared_data):
    movielens = shared_data / "ml-latest-small"
    split = make_split(movielens)

    stats = split.stats()
    # LlamaRec's preprocessing: 610 users, 3,650 items, 90,274 interactions
    assert stats["users"] == 610
    assert 3600 <= stats["items"] <= 3700
    assert stats["interactions"] == 90_274
    assert all(len(seq) >= 3 for seq in split.train)  # 5-core: >= 5 items per user
    assert all(split.val[u] != split.test[u] for u in range(split.n_users))

    # popularity must beat random ranking clearly (random NDCG@10 ~ 4.5 / n_items), or the
    # masking / target bookkeeping is broken
    pop = popularity_scores(split, "test")
    result = evaluate(rank_users(split, lambda user, history: pop, "test"), ks=(10,))
    random_ndcg = sum(1 / np.log2(r + 1) for r in range(1, 11)) / stats["items"]
    assert result["NDCG@10"] > 5 * random_ndcg
