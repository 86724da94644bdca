"""Three baselines a conversational recommender has to beat on the same turns.

- popularity: the most interacted-with items, the same list for every turn;
- bm25: Okapi BM25 (agent.retrieval.bm25) over each item's title, facets and tags, queried with
  everything the seeker has said so far;
- item-cosine: item-to-item cosine over co-occurrence in the interactions log (two items are
  similar when the same users interacted with both), summed over the movies named so far.

A ranker takes a :class:`Case` and a depth and returns catalog ids, best first; the harness removes
the movies named so far, so a ranker returns ``depth`` ids beyond them. Items a baseline cannot score
(no shared word, no co-occurrence) are left out rather than filled in from another baseline, so
each row measures one idea.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from agent.ingest.catalog import Item
from agent.retrieval.bm25 import Bm25Index, catalog_bm25_docs
from agent.retrieval.interactions import natural_key

if TYPE_CHECKING:
    import pandas as pd

    from eval.conversations.dialogues import RecommenderTurn


@dataclass(frozen=True)
class Case:
    """A recommender turn with its movies mapped to catalog ids."""

    turn: RecommenderTurn
    named: tuple[str, ...]
    """Catalog ids of the movies named before the turn (those that map), first mention order."""
    targets: tuple[str, ...]
    """Catalog ids of the movies the turn names first (those that map and were not named before)."""


Ranker = Callable[[Case, int], list[str]]


def _top(ids: list[str], scores: np.ndarray, depth: int) -> list[str]:
    """The ``depth`` best ids with a positive score; ties keep catalog order (stable sort)."""
    order = np.argsort(-scores, kind="stable")[:depth]
    return [ids[i] for i in order if scores[i] > 0]


def popularity_ranker(interactions: pd.DataFrame) -> Ranker:
    """Items by number of events in the log, most first (ties in natural id order)."""
    counts = interactions["item"].astype(str).value_counts()
    ranked = sorted(counts.index, key=lambda i: (-int(counts[i]), natural_key(i)))

    def rank(case: Case, depth: int) -> list[str]:
        return ranked[: depth + len(case.named)]
    return rank


def bm25_ranker(items: Iterable[Item]) -> Ranker:
    """BM25 over title, facets and tags, queried with the seeker's words so far."""
    index = Bm25Index(catalog_bm25_docs(items))

    def rank(case: Case, depth: int) -> list[str]:
        text = case.turn.seeker_text()
        return [i for i, _ in index.search(text, depth + len(case.named))] if text.strip() else []
    return rank


class ItemCosine:
    """cos(i, j) = |U_i & U_j| / sqrt(|U_i| |U_j|) over the sets of users who interacted with each item."""

    def __init__(self, interactions: pd.DataFrame):
        from scipy import sparse

        frame = interactions[["user", "item"]].astype(str).drop_duplicates()
        self.ids = sorted(frame["item"].unique(), key=natural_key)
        self.index = {item: n for n, item in enumerate(self.ids)}
        users = {user: n for n, user in enumerate(frame["user"].unique())}
        rows = frame["item"].map(self.index).to_numpy()
        cols = frame["user"].map(users).to_numpy()
        self.matrix = sparse.csr_matrix((np.ones(len(frame)), (rows, cols)), shape=(len(self.ids), len(users)))
        self.norms = np.sqrt(np.asarray(self.matrix.sum(axis=1)).ravel())

    def scores(self, named: Iterable[str]) -> np.ndarray:
        """Summed cosine to the named items (those in the log) for every item of the log."""
        rows = [self.index[i] for i in dict.fromkeys(named) if i in self.index]
        if not rows:
            return np.zeros(len(self.ids))
        co = np.asarray((self.matrix[rows] @ self.matrix.T).todense())
        cosine = co / np.outer(self.norms[rows], self.norms)
        return cosine.sum(axis=0)

    def __call__(self, case: Case, depth: int) -> list[str]:
        return _top(self.ids, self.scores(case.named), depth + len(case.named))


BASELINES = ("popularity", "bm25", "item-cosine")


def build_baselines(names: Iterable[str], items: list[Item], interactions: pd.DataFrame) -> dict[str, Ranker]:
    """The named baselines over one catalog and its interactions log."""
    build = {"popularity": lambda: popularity_ranker(interactions), "bm25": lambda: bm25_ranker(items),
             "item-cosine": lambda: ItemCosine(interactions)}
    return {name: build[name]() for name in names}
