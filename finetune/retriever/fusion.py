"""Score fusion: per-user z-scores of every system, summed with weights chosen on validation.

Different retrievers score on unrelated scales (softmax logits, EASE reconstructions, cosine
similarities), so a raw sum lets whichever has the widest range win. Standardising each system's
scores per user over the items that can still be recommended (history masked) puts them on one
scale; the weights then say how much each system is trusted. Weights are chosen on the validation
targets only, so the test number stays an honest estimate.

Everything here is generic over any number of systems; a system is either a score matrix
(n_users, n_items) for one split or a scorer ``(user, history) -> scores`` as in agent.retrieval.interactions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from eval.metrics import evaluate
from agent.retrieval.interactions import Scorer, Split, SplitName

SystemInput = np.ndarray | Callable[[int, np.ndarray], np.ndarray]


def _finite_or_floor(scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Replace -inf/+inf (e.g. "unscorable") by the lowest/highest finite kept score; refuse NaN."""
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; give unscorable items -inf (or a low score) instead")
    if np.isfinite(scores).all():
        return scores
    finite = scores[keep & np.isfinite(scores)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    return np.where(np.isneginf(scores), low, np.where(np.isposinf(scores), high, scores))


def zscore(scores: np.ndarray, masked: Sequence[int] | np.ndarray = ()) -> np.ndarray:
    """One user's scores standardised over the unmasked items: (s - mean) / std.

    Mean and (population) standard deviation ignore the ``masked`` items (the user's history),
    because those are never recommended and would otherwise shift the scale; masked items still
    get a value on the same scale. A system with constant scores gives all zeros (it has no
    opinion) rather than dividing by zero. Infinite scores are clipped to the finite range.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-d (one per item), got shape {s.shape}")
    keep = np.ones(s.shape, dtype=bool)
    masked_idx = np.asarray(masked, dtype=np.int64)
    if masked_idx.size:
        keep[masked_idx] = False
    if not keep.any():
        raise ValueError("every item is masked: nothing left to standardise over")
    s = _finite_or_floor(s, keep)
    mean, std = s[keep].mean(), s[keep].std()
    return np.zeros_like(s) if std == 0 else (s - mean) / std


def zscore_rows(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``zscore`` of every row of a (n_users, n_items) matrix; ``mask`` is True where masked."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != mask.shape:
        raise ValueError(f"scores {s.shape} and mask {mask.shape} differ in shape")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; give unscorable items -inf (or a low score) instead")
    if not np.isfinite(s).all():
        s = np.stack([_finite_or_floor(row, ~m) for row, m in zip(s, mask)])
    keep = ~mask
    n = keep.sum(axis=1, keepdims=True)
    if (n == 0).any():
        raise ValueError("a user has every item masked: nothing left to standardise over")
    mean = np.where(keep, s, 0.0).sum(axis=1, keepdims=True) / n
    var = np.where(keep, (s - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / n
    std = np.sqrt(var)
    return np.where(std == 0, 0.0, (s - mean) / np.where(std == 0, 1.0, std))


def fuse(score_arrays: Sequence[np.ndarray], weights: Sequence[float],
         masked: Sequence[int] | np.ndarray = ()) -> np.ndarray:
    """Weighted sum of per-user z-scores of several systems' scores for one user.

    Masked items come out as -inf so that any top-k cut skips them.
    """
    if len(score_arrays) != len(weights):
        raise ValueError(f"{len(score_arrays)} score arrays but {len(weights)} weights")
    if not score_arrays:
        raise ValueError("nothing to fuse: pass at least one score array")
    total = sum(w * zscore(s, masked) for s, w in zip(score_arrays, weights) if w != 0)
    fused = np.zeros(len(score_arrays[0])) + total
    masked_idx = np.asarray(masked, dtype=np.int64)
    if masked_idx.size:
        fused[masked_idx] = -np.inf
    return fused


def history_mask(split: Split, split_name: SplitName) -> np.ndarray:
    """(n_users, n_items) bool, True for each user's visible history when predicting ``split_name``."""
    mask = np.zeros((split.n_users, split.n_items), dtype=bool)
    for user in range(split.n_users):
        mask[user, split.history(user, split_name)] = True
    return mask


def targets(split: Split, split_name: SplitName) -> np.ndarray:
    return np.array([split.target(u, split_name) for u in range(split.n_users)], dtype=np.int64)


def ranks_from_matrix(split: Split, scores: np.ndarray, split_name: SplitName,
                      mask: np.ndarray | None = None) -> np.ndarray:
    """Vectorised ``eval.metrics.rank_of_target`` for all users: same pessimistic tie rule.

    rank = 1 + number of other unmasked items scoring >= the target. -inf scores are allowed
    (they lose to every finite target score), NaN is refused as in rank_of_target.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (split.n_users, split.n_items):
        raise ValueError(f"score matrix has shape {s.shape}, expected ({split.n_users}, {split.n_items})")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; give unscorable items -inf instead")
    mask = history_mask(split, split_name) if mask is None else mask
    tgt = targets(split, split_name)
    rows = np.arange(split.n_users)
    beats = s >= s[rows, tgt][:, None]
    beats &= ~mask
    beats[rows, tgt] = False
    return 1 + beats.sum(axis=1).astype(np.int64)


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


def fuse_matrices(zscored: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted sum of already z-scored matrices (names missing from ``weights`` count 0)."""
    first = next(iter(zscored.values()))
    total = np.zeros_like(first)
    for name, z in zscored.items():
        w = float(weights.get(name, 0.0))
        if w:
            total += w * z
    return total


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


def fused_scorer(systems: Mapping[str, Scorer], weights: Mapping[str, float]) -> Scorer:
    """A scorer for ``agent.retrieval.interactions.rank_users`` that fuses ``systems`` with ``weights``.

    The history passed to the scorer is the mask, exactly as the protocol masks it.
    """
    names = [n for n in systems if weights.get(n, 0.0)]
    if not names:
        raise ValueError("every weight is zero: nothing to fuse")

    def score(user: int, history: np.ndarray) -> np.ndarray:
        return fuse([systems[n](user, history) for n in names], [weights[n] for n in names], history)

    return score


def fuse_score_matrices(split: Split, matrices: Mapping[str, np.ndarray], weights: Mapping[str, float],
                        split_name: SplitName) -> np.ndarray:
    """Fused (n_users, n_items) scores for ``split_name`` from per-system score matrices.

    The same computation as ``fused_scorer`` user by user, but vectorised; history items are -inf.
    """
    unknown = set(weights) - set(matrices)
    if unknown:
        raise ValueError(f"weights for unknown systems {sorted(unknown)}; systems are {list(matrices)}")
    mask = history_mask(split, split_name)
    zscored = {n: zscore_rows(score_matrix(split, m, split_name), mask)
               for n, m in matrices.items() if weights.get(n, 0.0)}
    if not zscored:
        raise ValueError("every weight is zero: nothing to fuse")
    fused = fuse_matrices(zscored, weights)
    fused[mask] = -np.inf
    return fused
