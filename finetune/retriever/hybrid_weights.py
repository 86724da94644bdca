"""Choosing the hybrid retriever's fusion weights on the validation targets only.

The fusion itself (per-user z-scores, weighted sum) is agent.retrieval.fusion, which serving uses;
here every user's validation scores are fused at once for each weight combination of a grid and
ranked under the protocol. Weights are chosen on the validation targets only, so the test number
stays an honest estimate. A system is either a score matrix (n_users, n_items) for one split or a
scorer ``(user, history) -> scores`` as in eval.protocol.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from agent.retrieval.fusion import fuse_matrices, zscore_rows
from agent.retrieval.interactions import Split, SplitName
from eval.metrics import evaluate
from eval.protocol import history_mask, ranks_from_matrix

HYBRID_GRID = {
    "sasrec": (1.0,),
    "ease": (0.0, 0.05, 0.1, 0.2),
    "content": (0.0, 0.1, 0.2, 0.3, 0.5),
}
"""The hybrid's candidate weights, tried on validation by ``recsage train-retriever``."""

FAST_GRID = {
    "ease": (0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 4.0),
    "content": (1.0,),
    "popularity": (0.0, 0.05, 0.1),
}
"""The candidate weights without SASRec (``train-retriever --models ease``). Content is the fixed
unit: its recency-weighted user vector carries the order SASRec would have read, and EASE's weight
relative to it ranges from a tenth to four times, so either may lead."""


def hybrid_grid(models) -> dict[str, tuple[float, ...]]:
    """The grid for the trained ``models``: with SASRec the full hybrid, else the fast one."""
    return HYBRID_GRID if "sasrec" in models else FAST_GRID

SystemInput = np.ndarray | Callable[[int, np.ndarray], np.ndarray]


def score_matrix(split: Split, system: SystemInput, split_name: SplitName) -> np.ndarray:
    """A system's (n_users, n_items) scores for ``split_name``: a matrix as is, or a scorer called."""
    if callable(system):
        rows = [np.asarray(system(u, split.history(u, split_name)), dtype=np.float64)
                for u in range(split.n_users)]
        return np.stack(rows)
    matrix = np.asarray(system, dtype=np.float64)
    if matrix.shape != (split.n_users, split.n_items):
        raise ValueError(f"score matrix has shape {matrix.shape}, expected ({split.n_users}, {split.n_items})")
    return matrix


def _expand_grid(names: Sequence[str], grid) -> list[dict[str, float]]:
    if isinstance(grid, Mapping):
        unknown = set(grid) - set(names)
        if unknown:
            raise ValueError(f"grid names {sorted(unknown)} are not systems; systems are {list(names)}")
        axes = [[float(v) for v in grid.get(n, (1.0,))] for n in names]
        return [dict(zip(names, combo)) for combo in itertools.product(*axes)]
    combos = [dict(c) for c in grid]
    for combo in combos:
        unknown = set(combo) - set(names)
        if unknown:
            raise ValueError(f"weights for unknown systems {sorted(unknown)}; systems are {list(names)}")
    return [{n: float(c.get(n, 0.0)) for n in names} for c in combos]


def choose_weights(
    split: Split,
    systems: Mapping[str, SystemInput],
    grid: Mapping[str, Sequence[float]] | Sequence[Mapping[str, float]],
    metric: str = "NDCG@10",
) -> tuple[dict[str, float], list[tuple[dict[str, float], dict[str, float]]]]:
    """Pick fusion weights by ``metric`` on the validation targets only.

    ``systems`` maps a name to its validation score matrix (rows = users, history = training) or a
    scorer. ``grid`` is either {name: candidate weights} (cartesian product; a system not named
    keeps weight 1) or an explicit list of {name: weight} (missing names weigh 0). Returns the
    best weights and (weights, validation metrics) for every combination, in grid order; ties go
    to the earliest combination, so put the simplest ones first.
    """
    if not systems:
        raise ValueError("no systems to fuse")
    names = list(systems)
    combos = _expand_grid(names, grid)
    if not combos:
        raise ValueError("empty weight grid")
    mask = history_mask(split, "val")
    zscored = {n: zscore_rows(score_matrix(split, s, "val"), mask) for n, s in systems.items()}
    table = []
    for weights in combos:
        if not any(weights.values()):
            continue  # all-zero weights rank nothing
        ranks = ranks_from_matrix(split, fuse_matrices(zscored, weights), "val", mask)
        table.append((weights, evaluate(ranks, ks=(1, 5, 10, 20))))
    if not table:
        raise ValueError("every weight combination in the grid is all zeros")
    best_index = max(range(len(table)), key=lambda i: (table[i][1][metric], -i))
    return table[best_index][0], table
