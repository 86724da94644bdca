"""Ranking users under the protocol: per user with a scorer, or a whole score matrix at once."""

from __future__ import annotations

import numpy as np
import pytest

from agent.retrieval.interactions import split_from_interactions
from eval.metrics import rank_of_target
from eval.protocol import ranks_from_matrix
from tests.fakes.eval_data import frame
from tests.fakes.finetune_data import split_from_sequences


def test_ranks_mask_history():
    df = frame([(1, 1, 0), (1, 2, 1), (1, 3, 2), (1, 4, 3)])
    split = split_from_interactions(df)
    # the history (items 1..3) outscores the target, but it is masked: the target ranks first
    ranks = ranks_from_matrix(split, np.array([[9.0, 8.0, 7.0, 1.0]]), "test")
    assert ranks.tolist() == [1]
    # at validation time item 3 is the target and item 4 (the future) is not masked
    ranks = ranks_from_matrix(split, np.array([[9.0, 8.0, 7.0, 7.5]]), "val")
    assert ranks.tolist() == [2]
    with pytest.raises(ValueError, match="shape"):
        ranks_from_matrix(split, np.zeros((1, 3)), "test")


def test_ranks_from_matrix_equals_rank_of_target_with_ties():
    rng = np.random.default_rng(0)
    split = split_from_sequences([rng.permutation(15)[: rng.integers(4, 9)] for _ in range(12)], 15)
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 4, size=(split.n_users, split.n_items)).astype(float)  # many ties
    for name in ("val", "test"):
        expected = [rank_of_target(scores[u], split.target(u, name), split.history(u, name))
                    for u in range(split.n_users)]
        np.testing.assert_array_equal(ranks_from_matrix(split, scores, name), expected)
