"""Run and qrels files in ranx's JSON layout, keyed by original MovieLens ids.

Writing runs to disk lets any system's output be re-scored later, by us or by ranx, without
re-running the model; original ids (strings) keep the files meaningful outside this split.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from agent.core.io import read_json, write_json
from agent.retrieval.interactions import Split, SplitName
from eval.metrics import NOT_RANKED

RunDict = dict[str, dict[str, float]]
QrelsDict = dict[str, dict[str, int]]


def top_k_run(
    split: Split,
    scorer: Callable[[int, np.ndarray], np.ndarray],
    split_name: SplitName = "test",
    k: int = 50,
    users: Iterable[int] | None = None,
) -> RunDict:
    """Each user's top ``k`` unseen items with their scores, as {userId: {movieId: score}}.

    History is removed before the cut, as in ``rank_of_target``, so the file holds exactly what the
    protocol ranks; items scored -inf (unscorable) are left out. Ties are ordered by dense item id
    (stable sort); note that ranx does not promise an order among equal scores, while
    ``rank_of_target`` ranks them pessimistically, so scores with ties can differ slightly.
    """
    run: RunDict = {}
    chosen = range(split.n_users) if users is None else users
    for user in chosen:
        history = split.history(user, split_name)
        scores = np.array(scorer(user, history), dtype=np.float64)
        if np.isnan(scores).any():
            raise ValueError(f"scores for user {split.user_ids[user]} contain NaN; use -inf instead")
        scores[history] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        top = top[np.isfinite(scores[top])]
        run[split.user_ids[user]] = {split.item_ids[i]: float(scores[i]) for i in top}
    return run


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


def write_qrels(path: Path, qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Write qrels as JSON that ``ranx.Qrels.from_file(path)`` reads."""
    write_json(path, _nested(qrels, int), indent=0)


def read_qrels(path: Path) -> QrelsDict:
    """Read qrels written by ``write_qrels`` (or by ranx's ``Qrels.save``)."""
    return _nested(read_json(path), int)


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
