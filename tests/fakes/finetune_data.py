"""Tiny synthetic splits for the retriever tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agent.retrieval.interactions import Split


def split_from_sequences(sequences: Sequence[Sequence[int]], n_items: int) -> Split:
    """A leave-one-out Split from per-user item sequences already in time order (dense ids)."""
    seqs = [np.asarray(s, dtype=np.int64) for s in sequences]
    assert all(len(s) >= 3 for s in seqs)
    return Split(
        user_ids=[str(u) for u in range(len(seqs))],
        item_ids=[str(i) for i in range(n_items)],
        user_index={str(u): u for u in range(len(seqs))},
        item_index={str(i): i for i in range(n_items)},
        train=[s[:-2] for s in seqs],
        val=np.array([s[-2] for s in seqs], dtype=np.int64),
        test=np.array([s[-1] for s in seqs], dtype=np.int64),
    )


def cycle_split(n_items: int = 20, n_users: int = 60, length: int = 8, seed: int = 0) -> Split:
    """Every user walks the same hidden cyclic order of items from a different start.

    The next item is a deterministic function of the last one, so a sequential model must learn to
    rank it first; an order-blind model cannot, because the history is a set of neighbours on
    both sides of the target in the cycle only if it wraps (length < n_items prevents that).
    """
    rng = np.random.default_rng(seed)
    cycle = rng.permutation(n_items)
    sequences = []
    for user in range(n_users):
        start = (user * 7) % n_items
        sequences.append([int(cycle[(start + t) % n_items]) for t in range(length)])
    return split_from_sequences(sequences, n_items)


def random_split(n_users: int = 12, n_items: int = 15, seed: int = 0) -> Split:
    """Users with 4-8 distinct random items each: enough structure for fusion and weight tests."""
    rng = np.random.default_rng(seed)
    return split_from_sequences([rng.permutation(n_items)[: rng.integers(4, 9)] for _ in range(n_users)], n_items)


class HistoryRetriever:
    """Hybrid scores that depend on the history: item i scores (i * (offset + sum of history)) mod
    ``modulus``, so some targets miss the top; what a Ray actor or the one-process job ranks alike."""

    def __init__(self, split, offset: int = 1, modulus: int = 17):
        self.split, self.offset, self.modulus = split, offset, modulus

    def scores(self, system, history, split_name="test"):
        return ((np.arange(self.split.n_items) * (self.offset + int(np.sum(history)))) % self.modulus).astype(np.float64)
