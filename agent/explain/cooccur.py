"""The collaborative link between a history item and a pick: how many people interacted with both.

Counted once per split over the training histories (the interactions the retriever learnt from,
never a user's held-out validation or test item), as a sparse user x item matrix whose column
products are the co-occurrence counts. The split is duck-typed (``train`` per-user item arrays and
``n_items``: agent.retrieval.interactions.Split) because explanations do not depend on retrieval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse


class CoOccurrence:
    """``count(a, b)``: users whose training history holds both dense items ``a`` and ``b``."""

    def __init__(self, split):
        rows = np.concatenate([np.full(len(items), u) for u, items in enumerate(split.train)] or [np.zeros(0)])
        cols = np.concatenate([np.asarray(items) for items in split.train] or [np.zeros(0)])
        matrix = sparse.csc_matrix((np.ones(len(rows), dtype=np.float32), (rows.astype(int), cols.astype(int))),
                                   shape=(len(split.train), split.n_items))
        matrix.sum_duplicates()
        matrix.data[:] = 1.0  # a repeated interaction is still one person
        self._matrix = matrix

    def counts(self, pick: int, history: Sequence[int]) -> np.ndarray:
        """Co-occurrence count of ``pick`` with each history item, in history order."""
        if len(history) == 0:
            return np.zeros(0, dtype=int)
        both = self._matrix[:, list(history)].T @ self._matrix[:, [pick]]
        return np.asarray(both.toarray()).ravel().astype(int)

    def strongest(self, pick: int, history: Sequence[int]) -> tuple[int, int] | None:
        """(history position, count) of the history item most people share with ``pick``; the most
        recent wins a tie (it is the one the viewer remembers). None without a shared person."""
        counts = self.counts(pick, history)
        if len(counts) == 0 or counts.max() == 0:
            return None
        best = len(counts) - 1 - int(np.argmax(counts[::-1]))
        return best, int(counts[best])
