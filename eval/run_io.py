"""Run files in ranx's JSON layout and qrels, keyed by original MovieLens ids.

Writing runs to disk lets any system's output be re-scored later, by us or by ranx, without
re-running the model; original ids (strings) keep the files meaningful outside this split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from agent.core.io import read_json, write_json
from agent.retrieval.interactions import Split, SplitName
from eval.metrics import NOT_RANKED

RunDict = dict[str, dict[str, float]]
QrelsDict = dict[str, dict[str, int]]


def top_k_items(split: Split, scores: np.ndarray, history: np.ndarray, k: int) -> dict[str, float]:
    """One user's top ``k`` unseen items with their scores, as {movieId: score}: one row of a run.

    History is removed before the cut, as in ``rank_of_target``, so the file holds exactly what the
    protocol ranks; items scored -inf (unscorable) are left out. Ties are ordered by dense item id
    (stable sort); note that ranx does not promise an order among equal scores, while
    ``rank_of_target`` ranks them pessimistically, so scores with ties can differ slightly.
    """
    scores = np.array(scores, dtype=np.float64)  # a copy: the history is overwritten below
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; give unscorable items -inf instead")
    scores[history] = -np.inf
    top = np.argsort(-scores, kind="stable")[:k]
    return {split.item_ids[i]: float(scores[i]) for i in top if np.isfinite(scores[i])}


def qrels_for(split: Split, split_name: SplitName = "test") -> QrelsDict:
    """The single relevant item per user, as {userId: {movieId: 1}}."""
    return {
        split.user_ids[u]: {split.item_ids[split.target(u, split_name)]: 1}
        for u in range(split.n_users)
    }


def _nested(data: Mapping, value: Callable) -> dict:
    """{query: {doc: value}} with string ids, as ranx's files hold them."""
    return {str(q): {str(d): value(v) for d, v in docs.items()} for q, docs in data.items()}


def write_run(path: Path, run: Mapping[str, Mapping[str, float]]) -> None:
    """Write a run as JSON that ``ranx.Run.from_file(path)`` reads."""
    write_json(path, _nested(run, float), indent=0)


def read_run(path: Path) -> RunDict:
    """Read a run written by ``write_run`` (or by ranx's ``Run.save``)."""
    return _nested(read_json(path), float)


def ranks_from_run(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    """Pessimistic 1-based rank of each qrels user's relevant item within the run, in qrels order.

    A target missing from a user's (truncated) list gets NOT_RANKED, i.e. it scores 0 at every
    cut-off, which is right for cut-offs up to the run's length and only for those.
    """
    ranks = []
    for user, relevant in qrels.items():
        if len(relevant) != 1:
            raise ValueError(f"user {user} has {len(relevant)} relevant items; leave-one-out needs 1")
        (target,) = relevant
        docs = run.get(user, {})
        if target not in docs:
            ranks.append(NOT_RANKED)
            continue
        score = docs[target]
        ranks.append(1 + sum(1 for d, s in docs.items() if d != target and s >= score))
    return np.array(ranks, dtype=np.int64)
