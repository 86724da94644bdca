"""Ranking every user's held-out item under the leave-one-out protocol (agent.retrieval.interactions).

``ranks_from_matrix`` ranks a whole (n_users, n_items) score matrix at once: it masks the visible
history and counts ties against the target, exactly as ``eval.metrics.rank_of_target`` does for one
user; a test keeps them equal.
"""

from __future__ import annotations

import numpy as np

from agent.retrieval.interactions import Split, SplitName


def history_mask(split: Split, split_name: SplitName) -> np.ndarray:
    """(n_users, n_items) bool, True for each user's visible history when predicting ``split_name``."""
    mask = np.zeros((split.n_users, split.n_items), dtype=bool)
    for user in range(split.n_users):
        mask[user, split.history(user, split_name)] = True
    return mask


def targets(split: Split, split_name: SplitName) -> np.ndarray:
    """Every user's held-out item for ``split_name``, in dense user order."""
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
