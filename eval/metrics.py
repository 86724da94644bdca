"""Leave-one-out ranking metrics, and the statistics to compare systems honestly.

With exactly one relevant item per user every metric is a function of that item's 1-based rank,
so the per-user functions work on ranks. The definitions match ranx (``ndcg@k``, ``recall@k``, ``mrr@k``) for one relevant item; a test checks
that on random runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

NOT_RANKED = sys.maxsize
"""Rank of a target that a ranked list does not contain: beyond every cut-off."""

DEFAULT_KS = (1, 5, 10, 20, 50)


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"cut-off k must be >= 1, got {k}")


def _as_ranks(ranks: Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.asarray(ranks, dtype=np.int64)
    if array.size and array.min() < 1:
        raise ValueError("ranks are 1-based: every rank must be >= 1")
    return array


def ndcg_from_ranks(ranks: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k: 1/log2(rank + 1) inside the cut-off, else 0.

    The ideal DCG with one relevant item is 1 (it at rank 1), so no normalisation is left; binary
    relevance makes the Burges and Järvelin gains identical.
    """
    _check_k(k)
    r = _as_ranks(ranks)
    inside = r <= k
    out = np.zeros(r.shape, dtype=np.float64)
    out[inside] = 1.0 / np.log2(r[inside] + 1.0)
    return out


def recall_from_ranks(ranks: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Per-user Recall@k: with one relevant item it is the hit rate (1 if rank <= k)."""
    _check_k(k)
    return (_as_ranks(ranks) <= k).astype(np.float64)


def mrr_from_ranks(ranks: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Per-user MRR@k: 1/rank inside the cut-off, else 0 (truncated, as ranx computes it)."""
    _check_k(k)
    r = _as_ranks(ranks)
    inside = r <= k
    out = np.zeros(r.shape, dtype=np.float64)
    out[inside] = 1.0 / r[inside]
    return out


METRICS: dict[str, Callable[[Sequence[int] | np.ndarray, int], np.ndarray]] = {
    "NDCG": ndcg_from_ranks,
    "Recall": recall_from_ranks,
    "MRR": mrr_from_ranks,
}


def rank_of_target(scores: np.ndarray, target: int, masked: Iterable[int] = ()) -> int:
    """1-based rank of ``target`` among all items by descending score, ``masked`` items removed.

    Ties count against the target (pessimistic): the rank is 1 + the number of other unmasked
    items whose score is >= the target's. A model that gives every item the same score thus ranks
    the target last, not first, so constant or collapsed scores cannot earn a metric by accident.
    The target itself is never masked, even if listed in ``masked``: a masked target could not be
    ranked at all. NaN scores are refused because NaN compares false and would silently help.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-d (one per item), got shape {scores.shape}")
    if not 0 <= target < scores.shape[0]:
        raise ValueError(f"target {target} outside 0..{scores.shape[0] - 1}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; give unscorable items -inf instead")
    beats = scores >= scores[target]
    masked_idx = np.fromiter(masked, dtype=np.int64)
    if masked_idx.size:
        beats[masked_idx] = False
    beats[target] = False
    return 1 + int(np.count_nonzero(beats))


def evaluate(ranks: Sequence[int] | np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean of every metric at every cut-off, keyed like "NDCG@10" (the published table's names)."""
    r = _as_ranks(ranks)
    if r.size == 0:
        raise ValueError("no ranks to evaluate")
    return {f"{name}@{k}": float(fn(r, k).mean()) for name, fn in METRICS.items() for k in ks}


def _resample_means(values: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n`` bootstrap resamples, in chunks so memory stays small for many users."""
    means = np.empty(n, dtype=np.float64)
    chunk = max(1, 2_000_000 // max(1, values.size))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        idx = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[idx].mean(axis=1)
    return means


def bootstrap_ci(
    per_user_values: Sequence[float] | np.ndarray, n: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over users.

    With a few hundred users a metric's sampling error is as large as many published gaps, so
    every reported mean should carry this interval.
    """
    values = np.asarray(per_user_values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no values to bootstrap")
    means = _resample_means(values, n, np.random.default_rng(seed))
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedResult:
    """Outcome of comparing system a with system b on the same users (difference = a - b)."""

    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float


def paired_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n: int = 10000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedResult:
    """Paired comparison of two systems' per-user values.

    Pairing removes the between-user variance (some users are easy for every system), which is
    what makes small real gaps detectable when two separate intervals overlap. The interval is a
    paired bootstrap of the per-user differences; the p-value is a two-sided sign-flip
    permutation test (under H0 each difference is equally likely to have either sign), with the
    +1 correction so it is never 0.
    """
    a_arr = np.asarray(a, dtype=np.float64)
    b_arr = np.asarray(b, dtype=np.float64)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"a and b must be 1-d and aligned per user, got {a_arr.shape} and {b_arr.shape}")
    if a_arr.size == 0:
        raise ValueError("no values to compare")
    diff = a_arr - b_arr
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    low, high = bootstrap_ci(diff, n=n, seed=seed, level=level)
    extreme = 0
    chunk = max(1, 2_000_000 // diff.size)
    for start in range(0, n, chunk):
        size = min(chunk, n - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, diff.size))
        permuted = np.abs((signs * diff).mean(axis=1))
        extreme += int(np.count_nonzero(permuted >= abs(observed) - 1e-12))
    return PairedResult(observed, low, high, (extreme + 1) / (n + 1))
