"""Target ranks with named movies removed, Recall@k per target, paired differences."""

import pytest

from eval.conversations.scoring import paired_recall, recall_summary, target_ranks
from eval.metrics import NOT_RANKED


def test_ranks_skip_named_movies_and_repeats():
    assert target_ranks(["1", "9", "9", "3", "4"], targets=("3", "4", "7"), named=("1",)) == [2, 3, NOT_RANKED]


def test_recall_is_the_share_of_targets_within_k():
    summary = recall_summary([1, 5, 20, NOT_RANKED], ks=(1, 10, 50))
    assert summary["Recall@1"]["mean"] == 0.25
    assert summary["Recall@10"]["mean"] == 0.5
    assert summary["Recall@50"]["mean"] == 0.75
    for row in summary.values():
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]


def test_paired_difference_on_the_same_targets():
    diff = paired_recall([1, 1, 1, 30], [NOT_RANKED, 1, 20, 2], ks=(10,))["Recall@10"]
    assert diff["mean_diff"] == pytest.approx((1 + 0 + 1 - 1) / 4)
    assert diff["ci_low"] <= diff["mean_diff"] <= diff["ci_high"] and 0 < diff["p_value"] <= 1
