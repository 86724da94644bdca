"""Recall@k on recommender turns, with bootstrap intervals and paired tests (eval.metrics).

One sample per target movie, as ReDial recommendation results are usually counted (a turn that
names two new movies gives two samples): its rank is its position in the system's list once the
movies named so far are removed, and Recall@k is the share of targets ranked within k. The
intervals treat targets as independent; targets of one dialogue are not quite, so they are a
little narrow.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from eval.metrics import NOT_RANKED, bootstrap_ci, paired_test, recall_from_ranks

KS = (1, 10, 50)


def target_ranks(ranked: Iterable[str], targets: Sequence[str], named: Iterable[str] = ()) -> list[int]:
    """1-based rank of each target in ``ranked`` without the ``named`` items (and repeats);
    :data:`eval.metrics.NOT_RANKED` for a target the list does not hold."""
    excluded = set(named)
    order = [i for i in dict.fromkeys(ranked) if i not in excluded]
    position = {item: n for n, item in enumerate(order, start=1)}
    return [position.get(t, NOT_RANKED) for t in targets]


def recall_summary(ranks: Sequence[int], ks: Sequence[int] = KS, seed: int = 0) -> dict[str, dict]:
    """``{"Recall@k": {"mean", "ci_low", "ci_high"}}``: the mean over targets and its 95% bootstrap interval."""
    out = {}
    for k in ks:
        hits = recall_from_ranks(ranks, k)
        low, high = bootstrap_ci(hits, seed=seed)
        out[f"Recall@{k}"] = {"mean": float(hits.mean()), "ci_low": low, "ci_high": high}
    return out


def paired_recall(a: Sequence[int], b: Sequence[int], ks: Sequence[int] = KS, seed: int = 0) -> dict[str, dict]:
    """System a minus system b on the same targets: the mean difference of Recall@k, its paired
    95% bootstrap interval and the sign-flip permutation p-value."""
    out = {}
    for k in ks:
        result = paired_test(recall_from_ranks(a, k), recall_from_ranks(b, k), seed=seed)
        out[f"Recall@{k}"] = {"mean_diff": result.mean_diff, "ci_low": result.ci_low,
                              "ci_high": result.ci_high, "p_value": result.p_value}
    return out


def ranks_array(ranks: Iterable[int]) -> np.ndarray:
    return np.asarray(list(ranks), dtype=np.int64)
