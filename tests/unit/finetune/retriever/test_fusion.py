"""Fusion: per-user z-scores over unmasked items, weighted sums, weights chosen on validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.metrics import rank_of_target
from agent.retrieval.interactions import rank_users
from finetune.retriever.fusion import (
    choose_weights,
    fuse,
    fuse_score_matrices,
    fused_scorer,
    history_mask,
    ranks_from_matrix,
    zscore,
    zscore_rows,
)
from tests.fakes.finetune_data import split_from_sequences


def test_zscore_by_hand_ignores_masked_items_in_the_statistics():
    # unmasked [1, 2, 3]: mean 2, population std sqrt(2/3); the masked 4 is scaled the same way
    z = zscore(np.array([1.0, 2.0, 3.0, 4.0]), masked=[3])
    s = math.sqrt(2 / 3)
    np.testing.assert_allclose(z, [-1 / s, 0.0, 1 / s, 2 / s])


def test_zscore_of_constant_scores_is_zero_and_nan_is_refused():
    np.testing.assert_array_equal(zscore(np.full(4, 7.0)), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        zscore(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="masked"):
        zscore(np.array([1.0, 2.0]), masked=[0, 1])


def test_fuse_by_hand():
    a = np.array([0.0, 1.0, 2.0, 10.0])  # item 3 masked -> stats over [0, 1, 2]: mean 1, std sqrt(2/3)
    b = np.array([4.0, 4.0, 1.0, -5.0])  # stats over [4, 4, 1]: mean 3, std sqrt(2)
    fused = fuse([a, b], [1.0, 0.5], masked=[3])
    sa, sb = math.sqrt(2 / 3), math.sqrt(2)
    expected = [-1 / sa + 0.5 * 1 / sb, 0 + 0.5 * 1 / sb, 1 / sa + 0.5 * -2 / sb]
    np.testing.assert_allclose(fused[:3], expected)
    assert fused[3] == -np.inf
    # scale and shift of one system do not change the fusion (that is the point of z-scores)
    np.testing.assert_allclose(fuse([100 * a - 3, b], [1.0, 0.5], masked=[3])[:3], expected)
    with pytest.raises(ValueError, match="weights"):
        fuse([a, b], [1.0])


def test_zscore_rows_matches_zscore_per_user():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(5, 9))
    mask = rng.random((5, 9)) < 0.3
    mask[:, 0] = False
    z = zscore_rows(scores, mask)
    for row in range(5):
        np.testing.assert_allclose(z[row], zscore(scores[row], np.flatnonzero(mask[row])))


def random_split(n_users=12, n_items=15, seed=0):
    rng = np.random.default_rng(seed)
    return split_from_sequences([rng.permutation(n_items)[: rng.integers(4, 9)] for _ in range(n_users)], n_items)


def test_ranks_from_matrix_equals_rank_of_target_with_ties():
    split = random_split()
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, size=(split.n_users, split.n_items)).astype(float)  # many ties
    for name in ("val", "test"):
        expected = [rank_of_target(scores[u], split.target(u, name), split.history(u, name))
                    for u in range(split.n_users)]
        np.testing.assert_array_equal(ranks_from_matrix(split, scores, name), expected)


def test_choose_weights_prefers_the_informative_system_on_validation():
    split = random_split(n_users=20)
    rng = np.random.default_rng(3)
    oracle = rng.normal(size=(split.n_users, split.n_items))
    oracle[np.arange(split.n_users), split.val] = 10.0  # knows every validation target
    adversary = -oracle  # ranks it last
    weights, table = choose_weights(split, {"oracle": oracle, "adversary": adversary},
                                    {"adversary": [0.0, 0.5, 2.0]})
    assert weights == {"oracle": 1.0, "adversary": 0.0}
    assert [w["adversary"] for w, _ in table] == [0.0, 0.5, 2.0]
    assert table[0][1]["NDCG@1"] == 1.0
    # explicit list of combinations, and scorer callables instead of matrices
    scorers = {"oracle": lambda u, h: oracle[u], "adversary": lambda u, h: adversary[u]}
    weights, _ = choose_weights(split, scorers, [{"adversary": 1.0}, {"oracle": 1.0}])
    assert weights == {"oracle": 1.0, "adversary": 0.0}
    with pytest.raises(ValueError, match="unknown|not systems"):
        choose_weights(split, scorers, {"content": [1.0]})


def test_fused_scorer_and_matrix_fusion_agree_with_the_protocol():
    split = random_split(seed=4)
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(2, split.n_users, split.n_items))
    weights = {"a": 1.0, "b": 0.3}
    scorer = fused_scorer({"a": lambda u, h: a[u], "b": lambda u, h: b[u]}, weights)
    per_user = rank_users(split, scorer, "test")
    fused = fuse_score_matrices(split, {"a": a, "b": b}, weights, "test")
    assert np.all(fused[history_mask(split, "test")] == -np.inf)
    np.testing.assert_array_equal(ranks_from_matrix(split, fused, "test"), per_user)
