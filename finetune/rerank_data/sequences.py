"""Sliding-window training rows for the sequential task (history -> next item), pointwise yes/no.

Each window is a prefix of one user's *training* sequence (validation and test targets are never
read): the history is ``train[:t]``, the target is ``train[t]``. Candidates come from the same
hybrid retriever that serves test time, over the window's history with its items masked; a window
whose target is not among the top ``depth`` candidates teaches nothing a reranker could use and is
dropped. The target is the "yes" row; the hard negatives are other candidates, sampled from the
same top list. Prompts come from the reranker itself (same template, same history titles as
:mod:`eval.rerank_seq`), so training sees token for token what evaluation scores.

Caveat, in the data card too: the retriever was fitted on these very training sequences, so the
target sits higher in the training windows' candidate lists than a test target does.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import numpy as np

from agent.rerank.prompt import SEQUENTIAL_REQUEST
from eval.rerank_seq import history_titles

MIN_HISTORY = 3


def sample_windows(train: list[np.ndarray], n: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` (user, t) pairs, users drawn uniformly, t uniform in [MIN_HISTORY, len - 1]."""
    rng = random.Random(seed)
    users = [u for u, seq in enumerate(train) if len(seq) > MIN_HISTORY]
    if not users:
        raise ValueError(f"no training sequence is longer than {MIN_HISTORY} items")
    return [(u, rng.randrange(MIN_HISTORY, len(train[u]))) for u in (rng.choice(users) for _ in range(n))]


def window_candidates(retriever, window: tuple[int, int], depth: int) -> list[str]:
    """The hybrid retriever's top ``depth`` item ids for one window's history, its items masked:
    the model work of a window (``finetune data --engine ray`` runs it on actors)."""
    split = retriever.split
    user, t = window
    history = np.asarray(split.train[user][:t])
    scores = np.asarray(retriever.scores("hybrid", history, "val"), dtype=np.float64).copy()
    scores[history] = -np.inf
    return [split.item_ids[i] for i in np.argsort(-scores, kind="stable")[:depth]]


def build_sequence_rows(retriever, reranker, cards: dict[str, str], titles: list[str], n_windows: int,
                        depth: int = 20, negatives: int = 3, seed: int = 0,
                        candidates: Callable[[list[tuple[int, int]]], list[list[str]]] | None = None,
                        ) -> tuple[list[dict], dict]:
    """Pointwise rows and a data card for ``n_windows`` sampled windows. ``candidates`` maps the
    windows to their :func:`window_candidates` (default: here, one after the other); the sampling
    of negatives stays in this one loop, so the rows do not depend on where candidates came from."""
    split = retriever.split
    windows = sample_windows(split.train, n_windows, seed)
    tops = (candidates or (lambda ws: [window_candidates(retriever, w, depth) for w in ws]))(windows)
    rng = random.Random(seed)
    rows: list[dict] = []
    counts: Counter = Counter()
    target_ranks: list[int] = []
    for (user, t), top in zip(windows, tops, strict=True):
        target = split.item_ids[int(split.train[user][t])]
        if target not in top:
            counts["target_not_in_candidates"] += 1
            continue
        target_ranks.append(top.index(target) + 1)
        others = rng.sample([i for i in top if i != target], k=min(negatives, depth - 1))
        labelled = [(target, "yes")] + [(i, "no") for i in others]
        rng.shuffle(labelled)
        recent = history_titles(titles, np.asarray(split.train[user][:t]))
        rows += [{"prompt": reranker.pointwise_prompt(SEQUENTIAL_REQUEST, cards.get(i, i), recent), "answer": a}
                 for i, a in labelled]
        counts["windows_kept"] += 1
    card = {
        "task": "sequential: next item of a training-sequence prefix, pointwise yes/no",
        "source": "training part of the leave-one-out split only (no validation or test targets)",
        "windows_sampled": n_windows,
        "windows_kept": counts["windows_kept"],
        "dropped_target_not_in_top": counts["target_not_in_candidates"],
        "candidates": f"hybrid retriever top {depth} (history masked)",
        "negatives_per_window": negatives,
        "rows": len(rows),
        "yes_rows": sum(r["answer"] == "yes" for r in rows),
        "median_target_rank_in_candidates": float(np.median(target_ranks)) if target_ranks else None,
        "caveat": "the retriever was fitted on these sequences: training targets rank higher than test targets",
    }
    return rows, card
