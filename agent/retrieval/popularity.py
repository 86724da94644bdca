"""Baselines that any learned model must beat on the protocol before its number means anything."""

from __future__ import annotations

import numpy as np

from agent.retrieval.interactions import Split, SplitName


def popularity_scores(split: Split, split_name: SplitName = "test") -> np.ndarray:
    """Interaction count of every item in what is visible when predicting ``split_name``.

    Counts come from the training sequences, plus the validation items at test time, since those
    are history then; the held-out targets of the split being scored never count, or the baseline
    would see the answers. The same vector serves every user (history masking makes it personal).
    """
    visible = [split.history(u, split_name) for u in range(split.n_users)]
    items = np.concatenate(visible) if visible else np.empty(0, dtype=np.int64)
    return np.bincount(items, minlength=split.n_items).astype(np.float64)
