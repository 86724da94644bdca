"""Small hand-made interaction frames for the eval tests, and ranking users through a per-user scorer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eval.metrics import rank_of_target


def frame(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """(user, item, timestamp) rows as an interaction frame (string ids, as loaded) with a dummy rating."""
    return pd.DataFrame(
        [(str(u), str(m), int(t), 3.0) for u, m, t in rows], columns=["user", "item", "timestamp", "rating"]
    )


def rank_users(split, scorer, split_name: str = "test", users=None) -> np.ndarray:
    """1-based rank of each user's target among all items, with the visible history masked, asking
    ``scorer(user, history) -> one score per dense item`` user by user (the protocol of
    ``eval.protocol.ranks_from_matrix``, for models tested through a per-user scorer)."""
    chosen = range(split.n_users) if users is None else users
    ranks = []
    for user in chosen:
        history = split.history(user, split_name)
        scores = np.asarray(scorer(user, history))
        if scores.shape != (split.n_items,):
            raise ValueError(f"scorer returned shape {scores.shape}, expected ({split.n_items},)")
        ranks.append(rank_of_target(scores, split.target(user, split_name), history))
    return np.array(ranks, dtype=np.int64)
