"""The one z-score and fusion: per-user z-scores over unmasked items, weighted sums."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.retrieval.fusion import fuse_matrices, standardize, zscore, zscore_rows
from eval.protocol import history_mask, ranks_from_matrix
from tests.fakes.eval_data import rank_users
from tests.fakes.finetune_data import random_split


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


def test_standardize_degenerate_cases_give_no_opinion():
    # the reranker's and text search's z-score: nothing to spread -> zeros, never NaN
    assert standardize(np.array([])).size == 0
    np.testing.assert_array_equal(standardize(np.array([3.0])), [0.0])
    np.testing.assert_array_equal(standardize(np.array([1.0, 1.0 + 1e-14]), min_std=1e-12), [0.0, 0.0])
    assert standardize(np.array([1.0, 1.0 + 1e-14]))[1] > 0  # without a floor any spread counts
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(standardize(np.array([1.0, np.nan, 2.0])), np.zeros(3))
        np.testing.assert_array_equal(standardize(np.array([1.0, -np.inf, 2.0])), np.zeros(3))
    np.testing.assert_allclose(standardize(np.array([1.0, 3.0])), [-1.0, 1.0])


def test_weighted_sum_of_zscores_by_hand():
    a = np.array([0.0, 1.0, 2.0, 10.0])  # item 3 masked -> stats over [0, 1, 2]: mean 1, std sqrt(2/3)
    b = np.array([4.0, 4.0, 1.0, -5.0])  # stats over [4, 4, 1]: mean 3, std sqrt(2)
    mask = np.array([[False, False, False, True]])
    fused = fuse_matrices({"a": zscore_rows(a[None], mask), "b": zscore_rows(b[None], mask)}, {"a": 1.0, "b": 0.5})[0]
    sa, sb = math.sqrt(2 / 3), math.sqrt(2)
    expected = [-1 / sa + 0.5 * 1 / sb, 0 + 0.5 * 1 / sb, 1 / sa + 0.5 * -2 / sb]
    np.testing.assert_allclose(fused[:3], expected)
    # scale and shift of one system do not change the fusion (that is the point of z-scores)
    rescaled = fuse_matrices({"a": zscore_rows(100 * a[None] - 3, mask), "b": zscore_rows(b[None], mask)},
                             {"a": 1.0, "b": 0.5})[0]
    np.testing.assert_allclose(rescaled[:3], expected)
    # a system without weight does not count
    np.testing.assert_allclose(fuse_matrices({"a": zscore_rows(a[None], mask)}, {"b": 1.0})[0], np.zeros(4))


def test_zscore_rows_matches_zscore_per_user():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(5, 9))
    mask = rng.random((5, 9)) < 0.3
    mask[:, 0] = False
    z = zscore_rows(scores, mask)
    for row in range(5):
        np.testing.assert_allclose(z[row], zscore(scores[row], np.flatnonzero(mask[row])))


def test_serving_fusion_per_user_ranks_like_the_matrix_fusion_of_weight_selection():
    split = random_split(seed=4)
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(2, split.n_users, split.n_items))
    weights = {"a": 1.0, "b": 0.3}

    def serving(user, history):  # what Retriever.hybrid computes for one user
        return weights["a"] * zscore(a[user], history) + weights["b"] * zscore(b[user], history)

    per_user = rank_users(split, serving, "test")
    mask = history_mask(split, "test")
    fused = fuse_matrices({"a": zscore_rows(a, mask), "b": zscore_rows(b, mask)}, weights)
    np.testing.assert_array_equal(ranks_from_matrix(split, fused, "test", mask), per_user)
