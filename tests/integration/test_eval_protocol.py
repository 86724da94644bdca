"""The protocol on the real ml-latest-small: its size must match the published setup."""

from __future__ import annotations

import numpy as np
import pytest

from agent.core.project import movielens_project, read_project
from agent.retrieval.interactions import make_split, split_with_report
from agent.retrieval.popularity import popularity_scores
from eval.export_generic import export_generic
from eval.metrics import evaluate
from tests.fakes.eval_data import rank_users


@pytest.mark.integration
def test_real_split_matches_the_published_protocol(shared_data):
    movielens = shared_data / "ml-latest-small"
    split = make_split(movielens_project(movielens, store=movielens / "store"))

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


@pytest.mark.integration
def test_movielens_as_a_generic_catalog_gives_the_same_split(shared_data, tmp_path):
    """MovieLens written as JSON lines with prefixed ids and other column names, plus an events CSV
    with ISO times, read through a project file with no MovieLens loader: the same protocol."""
    movielens = shared_data / "ml-latest-small"
    generic = read_project(export_generic(movielens, tmp_path / "generic"))
    assert generic.catalog.resolved_format() == "jsonl"
    ours, report = split_with_report(generic)
    theirs = make_split(movielens_project(movielens, store=tmp_path / "store"))

    assert ours.stats() == theirs.stats() == {"users": 610, "items": 3650, "interactions": 90_274}
    assert report.rows == report.kept == 100_836 and not report.skipped  # ml-latest-small is clean
    assert ours.item_ids == ["ml" + i for i in theirs.item_ids]
    assert ours.user_ids == ["u" + u for u in theirs.user_ids]
    for mine, reference in zip(ours.train, theirs.train, strict=True):
        assert np.array_equal(mine, reference)  # dense ids line up, so the sequences are the same
    assert np.array_equal(ours.val, theirs.val) and np.array_equal(ours.test, theirs.test)
