"""EASE: the closed form against hand computation and an independent ridge regression."""

from __future__ import annotations

import numpy as np
import pytest

from agent.retrieval.ease import interaction_matrix, load_ease
from agent.core.project import movielens_project
from agent.retrieval.interactions import make_split
from agent.retrieval.popularity import popularity_scores
from eval.metrics import evaluate
from finetune.retriever.ease import EaseConfig, choose_l2, ease_from_gram, train_ease
from tests.fakes.eval_data import rank_users
from tests.fakes.finetune_data import split_from_sequences


def test_two_items_by_hand():
    # users saw {0,1}, {0,1}, {0}, {1}: x0.x0 = 3, x1.x1 = 3, x0.x1 = 2; with l2 = 1 the ridge
    # regression of item 1 on item 0 (and vice versa) has coefficient 2 / (3 + 1) = 0.5
    X = np.array([[1, 1], [1, 1], [1, 0], [0, 1]], dtype=np.float64)
    B = ease_from_gram(X.T @ X, l2=1.0)
    assert B.dtype == np.float32
    np.testing.assert_allclose(B, [[0.0, 0.5], [0.5, 0.0]], atol=1e-6)


def test_closed_form_is_the_zero_diagonal_ridge_regression():
    rng = np.random.default_rng(0)
    X = (rng.random((30, 6)) < 0.4).astype(np.float64)
    l2 = 2.0
    B = ease_from_gram(X.T @ X, l2)
    assert np.all(np.diag(B) == 0)
    for j in range(6):  # column j regressed on all other columns, independently of the formula
        others = [i for i in range(6) if i != j]
        A = X[:, others]
        coef = np.linalg.solve(A.T @ A + l2 * np.eye(5), A.T @ X[:, j])
        np.testing.assert_allclose(B[others, j], coef, rtol=1e-4, atol=1e-6)


def small_split():
    return split_from_sequences(
        [[0, 1, 2, 3, 4], [1, 2, 3, 0, 5], [2, 3, 4, 5, 1], [0, 2, 4, 1, 3], [5, 4, 3, 2, 0]], n_items=6
    )


def test_scores_equal_history_row_times_B():
    split = small_split()
    model = train_ease(split, EaseConfig(l2=1.0))
    X = interaction_matrix(split.train, split.n_items)
    np.testing.assert_allclose(X @ model.B, model.score_matrix(split.train), atol=1e-6)
    for user in range(split.n_users):
        np.testing.assert_allclose(model.scores(split.train[user]), X[user] @ model.B, atol=1e-6)
    # a history is a set: order and repeats do not matter
    np.testing.assert_array_equal(model.scores([2, 0, 0]), model.scores([0, 2]))
    with pytest.raises(ValueError, match="0..5"):
        model.scores([6])


def test_training_never_sees_test_items_and_refit_adds_validation():
    split = small_split()
    X_train = interaction_matrix(split.train, split.n_items)
    plain = train_ease(split, EaseConfig(l2=3.0))
    np.testing.assert_allclose(plain.B, ease_from_gram(X_train.T @ X_train, 3.0))
    refit = train_ease(split, EaseConfig(l2=3.0, refit_on_val=True))
    X_refit = interaction_matrix([split.history(u, "test") for u in range(split.n_users)], split.n_items)
    np.testing.assert_allclose(refit.B, ease_from_gram(X_refit.T @ X_refit, 3.0))


def test_choose_l2_returns_a_grid_value_with_validation_metrics():
    split = small_split()
    best, table = choose_l2(split, grid=(10.0, 0.5, 2.0))
    assert list(table) == [0.5, 2.0, 10.0]
    assert best in table
    assert best == max(table, key=lambda v: (table[v]["NDCG@10"], -v))
    with pytest.raises(ValueError, match="greater than 0"):
        choose_l2(split, grid=(0.0,))


def test_save_load_round_trip_gives_identical_scores(tmp_path):
    split = small_split()
    model = train_ease(split, EaseConfig(l2=1.5))
    model.save(tmp_path / "ease")
    loaded = load_ease(tmp_path / "ease")
    assert loaded.config == model.config
    assert loaded.item_ids == split.item_ids
    np.testing.assert_array_equal(loaded.B, model.B)
    assert np.array_equal(rank_users(split, lambda u, h: loaded.scores(h)), rank_users(split, lambda u, h: model.scores(h)))
    with pytest.raises(FileNotFoundError, match="recsage train-retriever"):
        load_ease(tmp_path / "missing")


def test_config_rejects_bad_l2_and_has_help():
    with pytest.raises(ValueError, match="l2"):
        EaseConfig(l2=-1)
    assert set(EaseConfig.model_fields) == {"l2", "refit_on_val"}
    assert [line.split(" ")[0] for line in EaseConfig.help().splitlines()] == ["l2", "refit_on_val"]
    assert "validation" in EaseConfig.help()


@pytest.mark.integration
def test_ease_on_the_real_split_beats_popularity(shared_data):
    """EASE fitted on training only must clearly beat popularity on validation (cheap: one l2)."""
    movielens = shared_data / "ml-latest-small"
    split = make_split(movielens_project(movielens, store=movielens / "store"))
    model = train_ease(split, EaseConfig(l2=200.0))
    ease = evaluate(rank_users(split, lambda u, h: model.scores(h), "val"), ks=(10,))
    pop = popularity_scores(split, "val")
    popularity = evaluate(rank_users(split, lambda u, h: pop, "val"), ks=(10,))
    assert ease["NDCG@10"] > 1.3 * popularity["NDCG@10"]
    assert np.all(np.diag(model.B) == 0)
