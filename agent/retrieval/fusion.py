"""The one z-score, and score fusion: per-user z-scores of every system, summed with weights.

Different retrievers score on unrelated scales (softmax logits, EASE reconstructions, cosine
similarities), so a raw sum lets whichever has the widest range win. Standardising each system's
scores per user over the items that can still be recommended (history masked) puts them on one
scale; the weights then say how much each system is trusted. Serving fuses one user at a time
(``zscore``); choosing the weights fuses every user at once (``zscore_rows`` + ``fuse_matrices``),
and a test keeps the two equal. The reranker and hybrid text search standardise with the same
``standardize``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def standardize(values: np.ndarray, keep: np.ndarray | None = None, min_std: float = 0.0) -> np.ndarray:
    """(values - mean) / std, with mean and population std over the ``keep`` entries (all if None).

    A spread not above ``min_std`` gives all zeros: constant scores carry no opinion, and a NaN
    spread (from NaN or infinite input) is treated the same way rather than spreading NaN.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    kept = values if keep is None else values[keep]
    std = kept.std()
    return (values - kept.mean()) / std if std > min_std else np.zeros_like(values)


def _finite_or_floor(scores: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Replace -inf/+inf (e.g. "unscorable") by the lowest/highest finite kept score; refuse NaN."""
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; give unscorable items -inf (or a low score) instead")
    if np.isfinite(scores).all():
        return scores
    finite = scores[keep & np.isfinite(scores)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    return np.where(np.isneginf(scores), low, np.where(np.isposinf(scores), high, scores))


def zscore(scores: np.ndarray, masked: Sequence[int] | np.ndarray = ()) -> np.ndarray:
    """One user's scores standardised over the unmasked items: (s - mean) / std.

    Mean and (population) standard deviation ignore the ``masked`` items (the user's history),
    because those are never recommended and would otherwise shift the scale; masked items still
    get a value on the same scale. A system with constant scores gives all zeros (it has no
    opinion) rather than dividing by zero. Infinite scores are clipped to the finite range.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-d (one per item), got shape {s.shape}")
    keep = np.ones(s.shape, dtype=bool)
    masked_idx = np.asarray(masked, dtype=np.int64)
    if masked_idx.size:
        keep[masked_idx] = False
    if not keep.any():
        raise ValueError("every item is masked: nothing left to standardise over")
    return standardize(_finite_or_floor(s, keep), keep)


def zscore_rows(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``zscore`` of every row of a (n_users, n_items) matrix; ``mask`` is True where masked."""
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != mask.shape:
        raise ValueError(f"scores {s.shape} and mask {mask.shape} differ in shape")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; give unscorable items -inf (or a low score) instead")
    if not np.isfinite(s).all():
        s = np.stack([_finite_or_floor(row, ~m) for row, m in zip(s, mask)])
    keep = ~mask
    n = keep.sum(axis=1, keepdims=True)
    if (n == 0).any():
        raise ValueError("a user has every item masked: nothing left to standardise over")
    mean = np.where(keep, s, 0.0).sum(axis=1, keepdims=True) / n
    var = np.where(keep, (s - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / n
    std = np.sqrt(var)
    return np.where(std == 0, 0.0, (s - mean) / np.where(std == 0, 1.0, std))


def fuse_matrices(zscored: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted sum of already z-scored matrices (names missing from ``weights`` count 0)."""
    first = next(iter(zscored.values()))
    total = np.zeros_like(first)
    for name, z in zscored.items():
        w = float(weights.get(name, 0.0))
        if w:
            total += w * z
    return total
