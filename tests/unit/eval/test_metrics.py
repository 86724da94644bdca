"""Metrics against hand-computed values, tie and mask handling, and the comparison statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eval.metrics import (
    NOT_RANKED,
    bootstrap_ci,
    evaluate,
    mrr_from_ranks,
    ndcg_from_ranks,
    paired_test,
    rank_of_target,
    recall_from_ranks,
)


def _at(metric, rank: int, k: int) -> float:
    """One user's metric@k with the relevant item at ``rank``."""
    return float(metric([rank], k)[0])


def test_rank_one_is_perfect():
    assert _at(ndcg_from_ranks, 1, 10) == 1.0
    assert _at(recall_from_ranks, 1, 10) == 1.0
    assert _at(mrr_from_ranks, 1, 10) == 1.0


def test_rank_three_by_hand():
    assert _at(ndcg_from_ranks, 3, 10) == pytest.approx(1 / math.log2(4))  # = 0.5
    assert _at(ndcg_from_ranks, 3, 10) == pytest.approx(0.5)
    assert _at(mrr_from_ranks, 3, 10) == pytest.approx(1 / 3)
    assert _at(recall_from_ranks, 3, 10) == 1.0


def test_rank_two_ndcg_by_hand():
    assert _at(ndcg_from_ranks, 2, 5) == pytest.approx(1 / math.log2(3))


def test_cut_off_is_inclusive_and_beyond_it_scores_zero():
    assert _at(recall_from_ranks, 3, 3) == 1.0
    assert _at(mrr_from_ranks, 3, 3) == pytest.approx(1 / 3)
    for metric in (ndcg_from_ranks, recall_from_ranks, mrr_from_ranks):
        assert _at(metric, 3, 2) == 0.0
        assert _at(metric, 3, 1) == 0.0


def test_absent_target_scores_zero_even_with_a_large_cut_off():
    for metric in (ndcg_from_ranks, recall_from_ranks, mrr_from_ranks):
        assert _at(metric, NOT_RANKED, 100) == 0.0


def test_cut_off_must_be_positive():
    with pytest.raises(ValueError, match="k must be >= 1"):
        _at(ndcg_from_ranks, 1, 0)


def test_evaluate_averages_hand_computed_ranks():
    result = evaluate([1, 3, 100], ks=(1, 10))
    assert set(result) == {"NDCG@1", "NDCG@10", "Recall@1", "Recall@10", "MRR@1", "MRR@10"}
    assert result["NDCG@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert result["Recall@10"] == pytest.approx(2 / 3)
    assert result["MRR@10"] == pytest.approx((1 + 1 / 3) / 3)
    assert result["NDCG@1"] == result["Recall@1"] == result["MRR@1"] == pytest.approx(1 / 3)


def test_evaluate_default_cut_offs_and_not_ranked():
    result = evaluate([NOT_RANKED, 1])
    assert {key.split("@")[1] for key in result} == {"1", "5", "10", "20", "50"}
    assert result["Recall@50"] == 0.5


def test_evaluate_rejects_zero_based_ranks():
    with pytest.raises(ValueError, match="1-based"):
        evaluate([0, 1])


# --- rank_of_target ------------------------------------------------------------------------------


def test_rank_counts_better_items():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
    assert rank_of_target(scores, 1, []) == 1
    assert rank_of_target(scores, 2, []) == 3
    assert rank_of_target(scores, 0, []) == 5


def test_ties_rank_the_target_pessimistically():
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1])
    # item 2 ties with items 0 and 3 and is below item 1: it goes after all of them
    assert rank_of_target(scores, 2, []) == 4
    assert rank_of_target(scores, 0, []) == 4


def test_constant_scores_rank_the_target_last():
    assert rank_of_target(np.zeros(10), 4, []) == 10
    assert rank_of_target(np.zeros(10), 4, [0, 1]) == 8


def test_masked_items_do_not_count():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    assert rank_of_target(scores, 2, [0, 1]) == 1
    assert rank_of_target(scores, 2, iter([0])) == 2  # any iterable


def test_target_is_never_masked():
    scores = np.array([0.9, 0.8, 0.7])
    assert rank_of_target(scores, 1, [0, 1]) == 1


def test_minus_infinity_scores_tie_with_an_unscorable_target():
    scores = np.array([-np.inf, -np.inf, 1.0])
    assert rank_of_target(scores, 0, []) == 3


def test_nan_and_bad_targets_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        rank_of_target(np.array([0.1, np.nan]), 0, [])
    with pytest.raises(ValueError, match="outside"):
        rank_of_target(np.array([0.1, 0.2]), 2, [])


# --- statistics ----------------------------------------------------------------------------------


def test_bootstrap_of_constant_values_is_a_point():
    assert bootstrap_ci(np.full(50, 0.25)) == pytest.approx((0.25, 0.25))


def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    values = np.random.default_rng(1).random(500)
    low, high = bootstrap_ci(values, n=2000, seed=3)
    assert low < values.mean() < high
    # the standard error of a uniform mean over 500 users is ~0.013: a 95% interval ~ +-0.025
    assert 0.03 < high - low < 0.07
    assert bootstrap_ci(values, n=2000, seed=3) == (low, high)


def test_paired_test_of_identical_systems_finds_nothing():
    values = np.random.default_rng(2).random(100)
    result = paired_test(values, values.copy(), n=2000)
    assert result.mean_diff == 0.0
    assert result.ci_low == result.ci_high == 0.0
    assert result.p_value == 1.0


def test_paired_test_detects_a_consistent_small_gain():
    rng = np.random.default_rng(3)
    b = rng.random(200)
    a = b + 0.01 + rng.normal(0, 0.001, 200)  # tiny gain, but for every user
    result = paired_test(a, b, n=2000)
    assert result.mean_diff == pytest.approx(0.01, abs=0.001)
    assert result.ci_low > 0
    assert result.p_value == pytest.approx(1 / 2001)


def test_paired_test_is_antisymmetric_and_calibrated_under_noise():
    rng = np.random.default_rng(4)
    a, b = rng.random(300), rng.random(300)
    ab, ba = paired_test(a, b, n=2000), paired_test(b, a, n=2000)
    assert ab.mean_diff == pytest.approx(-ba.mean_diff)
    assert ab.p_value == pytest.approx(ba.p_value, abs=0.03)
    assert ab.ci_low < ab.mean_diff < ab.ci_high
    # pure noise: the p-value should be unremarkable
    assert ab.p_value > 0.01


def test_paired_test_needs_aligned_users():
    with pytest.raises(ValueError, match="aligned"):
        paired_test([0.1, 0.2], [0.1])
