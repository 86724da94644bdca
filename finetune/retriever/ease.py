"""Fitting EASE (Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019).

A linear item-item model with a closed form: B = I - P / diag(P) with P = (X^T X + l2 I)^-1, which
is the ridge regression of every item column on all the others with the diagonal forced to zero
(an item may not explain itself). It is a strong, order-blind baseline and a useful second opinion
to fuse with a sequential model, and it trains in seconds. The fitted model and its scoring are
agent.retrieval.ease.

The model is fitted on training interactions only; validation chooses ``l2``. Optionally
(``refit_on_val``) the final model is refitted once on training + validation interactions, the usual
practice for a test number once hyperparameters are fixed; its validation metrics are then no
longer honest, because the validation targets were part of the fit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from pydantic import ConfigDict, Field

from agent.core.config import ConfigBase
from agent.retrieval.ease import EaseModel, interaction_matrix
from agent.retrieval.interactions import Split, SplitName
from eval.metrics import evaluate
from eval.protocol import ranks_from_matrix

DEFAULT_L2_GRID = (100.0, 200.0, 300.0, 500.0, 750.0, 1000.0, 1500.0, 2000.0)


class EaseConfig(ConfigBase):
    """Hyperparameters of EASE; ``l2`` is the only one that matters."""

    model_config = ConfigDict(frozen=True)

    l2: float = Field(
        500.0, gt=0,
        description="L2 regularisation added to the diagonal of the item Gram matrix X^T X. Larger values "
        "shrink B towards zero and favour popular co-occurrences; choose it on validation NDCG@10 "
        "(choose_l2); try values in 100..2000.",
    )
    refit_on_val: bool = Field(
        False,
        description="Fit on training + validation interactions (the test-time history) instead of training "
        "only. Use only after l2 was chosen on validation: validation metrics of a refitted model are "
        "optimistic because the validation targets were seen.",
    )


def ease_from_gram(gram: np.ndarray, l2: float) -> np.ndarray:
    """The closed form on a precomputed Gram matrix X^T X (float64), returned as float32.

    B = I - P diagMat(1 / diag(P)), i.e. B[i, j] = -P[i, j] / P[j, j] off the diagonal and 0 on it.
    """
    G = gram.astype(np.float64, copy=True)
    G[np.diag_indices_from(G)] += l2
    P = np.linalg.inv(G)
    B = -P / np.diag(P)[None, :]
    B[np.diag_indices_from(B)] = 0.0
    return B.astype(np.float32)


def _training_histories(split: Split, refit_on_val: bool) -> list[np.ndarray]:
    # refit: the test-time history (training + validation item); otherwise training only
    name: SplitName = "test" if refit_on_val else "val"
    return [split.history(u, name) for u in range(split.n_users)]


def train_ease(split: Split, config: EaseConfig | None = None) -> EaseModel:
    """Fit EASE on the split's training sequences (plus validation items if ``refit_on_val``).

    Test targets are never used. The inverse of a 3,650 x 3,650 matrix takes a few seconds.
    """
    config = config or EaseConfig()
    X = interaction_matrix(_training_histories(split, config.refit_on_val), split.n_items)
    return EaseModel(B=ease_from_gram(X.T @ X, config.l2), config=config.model_dump(), item_ids=list(split.item_ids))


def evaluate_scores(split: Split, scores: np.ndarray, split_name: SplitName,
                    ks: Sequence[int] = (1, 5, 10, 20, 50)) -> dict[str, float]:
    """Protocol metrics of a full (n_users, n_items) score matrix, history masked."""
    return evaluate(ranks_from_matrix(split, scores, split_name), ks=ks)


def choose_l2(split: Split, grid: Sequence[float] = DEFAULT_L2_GRID,
              metric: str = "NDCG@10") -> tuple[float, dict[float, dict[str, float]]]:
    """Pick ``l2`` by validation ``metric``: fit on training only, rank each user's validation item.

    Returns the best value and every value's validation metrics (ties go to the smaller l2, the
    first in grid order after sorting). The Gram matrix is computed once for the whole grid.
    """
    if not grid:
        raise ValueError("grid of l2 values is empty")
    histories = _training_histories(split, refit_on_val=False)
    X = interaction_matrix(histories, split.n_items)
    gram = X.T @ X
    table: dict[float, dict[str, float]] = {}
    for l2 in sorted(float(v) for v in grid):
        EaseConfig(l2=l2)  # validates
        B = ease_from_gram(gram, l2)
        table[l2] = evaluate_scores(split, (X @ B).astype(np.float32), "val")
    best = max(table, key=lambda v: (table[v][metric], -v))
    return best, table


def fit_with_selection(split: Split, grid: Sequence[float] = DEFAULT_L2_GRID,
                       refit_on_val: bool = False) -> tuple[EaseModel, dict]:
    """Choose ``l2`` on validation, then fit the final model; returns it and a small report."""
    start = time.perf_counter()
    best, table = choose_l2(split, grid)
    selection_s = time.perf_counter() - start
    start = time.perf_counter()
    model = train_ease(split, EaseConfig(l2=best, refit_on_val=refit_on_val))
    fit_s = time.perf_counter() - start
    report = {"l2": best, "grid": {str(k): v["NDCG@10"] for k, v in table.items()},
              "val": table[best], "selection_seconds": selection_s, "fit_seconds": fit_s}
    return model, report
